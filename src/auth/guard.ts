import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Caller } from '../core/caller.js';
import { noMemberships, type OrgMembershipSource, type PermissionSource } from '../core/permissions.js';
import { AppError, forbidden } from '../errors.js';
import type { onRequestAsyncHookHandler } from 'fastify';
import { clientOf } from '../core/caller.js';
import { invalidToken, type AccessTokens } from './access-tokens.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the bearer guard on protected routes. */
    caller: Caller | null;
  }
}

const BEARER = /^Bearer ([A-Za-z0-9_.~+/-]+=*)$/i;

/** What a protected route asks of its caller beyond a valid token and session. */
export interface CallerRequirements {
  /** A permission the caller must hold (from the PermissionSource); else 403 forbidden naming it. */
  permission?: string;
  /** A session opened in the last 15 minutes (core/reauth.ts); else 403 reauthentication_required. */
  recentSignIn?: boolean;
  /**
   * The organization of the route's `:id` (API-ORGS.md): the caller must be a member (else 404
   * not_found, no hint that it exists) holding `permission` in it when one is named (else 403).
   */
  organization?: { permission?: string };
}

/** The onRequest hook of a protected route. */
export type Guard = onRequestAsyncHookHandler;

/** Makes the onRequest guard of a protected route: `onRequest: requireCaller()`. */
export type RequireCaller = (requirements?: CallerRequirements) => Guard;

export interface GuardDeps {
  tokens: Pick<AccessTokens, 'verify'>;
  /** The session check behind every protected route (sessions/service.ts, authenticate). */
  sessions: { authenticate(userId: string, sessionId: string): Promise<{ userId: string; sessionId: string } | undefined> };
  reauth: { recentSignIn(caller: { userId: string; sessionId: string }): Promise<void> };
  permissions: PermissionSource;
  /** Memberships of organizations, held now (src/orgs/access.ts). */
  memberships?: OrgMembershipSource;
}

const ORG_ID = /^[1-9][0-9]{0,17}$/;

/**
 * The one guard factory of protected routes: a valid access token (RFC 6750) whose session is
 * still active, then what the route asks for (a permission, a recent sign-in). A missing or bad
 * token is 401 invalid_token with WWW-Authenticate.
 */
export function callerGuards({ tokens, sessions, reauth, permissions, memberships = noMemberships }: GuardDeps): RequireCaller {
  return ({ permission, recentSignIn = false, organization } = {}) =>
    async function requireCaller(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
      const header = request.headers.authorization;
      if (!header) throw invalidToken('An access token is required.');
      const match = BEARER.exec(header);
      if (!match) throw invalidToken();
      const claims = await tokens.verify(match[1]!);
      // ASVS 5.0 V7.2.1, V7.4.1: the session itself is checked on every request, not only the token.
      const caller = await sessions.authenticate(claims.userId, claims.sessionId);
      if (!caller) throw invalidToken();
      // API-ORGS.md: a token speaking for an organization holds while the membership and its role
      // do; a removed member's or a lowered role's token is refused at the next request.
      if (claims.orgId !== undefined && (await memberships.membershipOf(caller.userId, claims.orgId))?.role !== claims.orgRole) {
        throw invalidToken('The membership this token speaks for has changed; refresh the token.');
      }
      request.caller = { ...caller, ...clientOf(request) };
      // ASVS 5.0 V8.2.1: function-level access control, on the server, before anything runs.
      if (permission !== undefined && !(await permissions.permissionsOf(caller.userId)).has(permission)) throw forbidden(permission);
      if (organization) {
        const orgId = (request.params as { id?: unknown } | undefined)?.id;
        const membership = typeof orgId === 'string' && ORG_ID.test(orgId) ? await memberships.membershipOf(caller.userId, orgId) : undefined;
        if (!membership) throw new AppError('not_found', { detail: 'There is no organization with that id.' });
        if (organization.permission !== undefined && !membership.permissions.has(organization.permission)) throw forbidden(organization.permission);
      }
      if (recentSignIn) await reauth.recentSignIn(caller);
    };
}

/** The caller of a route behind the guard. */
export function callerOf(request: FastifyRequest): Caller {
  if (!request.caller) throw new Error('route is not behind the bearer guard');
  return request.caller;
}
