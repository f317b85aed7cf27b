import type { Kysely } from 'kysely';
import { callerOf, type RequireCaller } from '../auth/guard.js';
import type { Config } from '../config.js';
import type { Clock } from '../core/clock.js';
import type { AccountErasure } from '../core/erasure.js';
import { backgroundJob, PRUNE_EVERY_MS } from '../core/jobs.js';
import type { Database } from '../db/schema.js';
import type { ProblemName } from '../errors.js';
import { bearerAuth, NoContent, problems } from '../http/schemas.js';
import type { Feature } from '../http/types.js';
import type { Mailer, MailLog } from '../mail/mailer.js';
import { TokenPair } from '../sessions/schemas.js';
import type { RefreshCookie } from '../sessions/refresh-cookie.js';
import { perMinute } from '../throttling/rate-limit.js';
import type { OrgAccess } from './access.js';
import { eraseMemberships, pruneOrgRows } from './repository.js';
import {
  AcceptBody,
  CreateOrgBody,
  CustomRoleBody,
  Invitation,
  InvitationBody,
  InvitationList,
  InvitationParams,
  MemberChangeBody,
  MemberList,
  MemberParams,
  MemberQuery,
  Membership,
  MyOrgList,
  Org,
  OrgParams,
  OrgRoleList,
  RoleParams,
  SwitchBody,
  UpdateOrgBody,
} from './schemas.js';
import { OrgsService } from './service.js';
import type { TokenPair as TokenPairValue } from '../sessions/schemas.js';
import type { Caller } from '../core/caller.js';

export interface OrgsFeatureDeps {
  db: Kysely<Database>;
  clock: Clock;
  orgAccess: OrgAccess;
  mailer: Mailer;
  log: MailLog;
  erasure: AccountErasure;
  requireCaller: RequireCaller;
  refreshCookie: RefreshCookie;
  config: Pick<Config, 'publicUrl' | 'orgLimitPerUser' | 'rateLimitPerMinute'>;
  sessions: { reissue(caller: Caller): Promise<TokenPairValue> };
  users: { profile(userId: string): Promise<{ email: string; email_verified: boolean; name: string }> };
}

const COMMON: ProblemName[] = ['invalid_token', 'not_found', 'forbidden'];
const WITH_BODY: ProblemName[] = ['validation_failed', 'payload_too_large', 'unsupported_media_type'];

/** Organizations, their members, roles and invitations; switching a session's organization (API-ORGS.md). */
export const orgsFeature: Feature<OrgsFeatureDeps> = async (app, deps) => {
  const { db, clock, requireCaller, refreshCookie: cookie, erasure } = deps;
  const orgs = new OrgsService({
    ...deps,
    users: { find: (userId) => deps.users.profile(userId).catch(() => undefined) },
  });
  erasure.add('orgs', eraseMemberships);
  backgroundJob(app, 'pruning expired invitations', PRUNE_EVERY_MS, () => pruneOrgRows(db, clock.now()));

  const org = (permission?: string) => requireCaller({ organization: permission === undefined ? {} : { permission } });
  const doc = (summary: string, needs: string) => ({ summary, description: `Needs ${needs}. Not a member, or no such organization: 404 not_found.`, tags: ['organizations'], security: bearerAuth });

  app.post(
    '/v1/orgs',
    {
      config: { rateLimit: perMinute(deps.config.rateLimitPerMinute) },
      onRequest: requireCaller(),
      schema: { summary: 'Make an organization; the caller becomes its owner', tags: ['organizations'], security: bearerAuth, body: CreateOrgBody, response: { 201: Org, ...problems('invalid_token', 'slug_taken', 'org_limit_reached', 'too_many_requests', ...WITH_BODY) } },
    },
    async (request, reply) => {
      const created = await orgs.create(callerOf(request), request.body);
      return reply.code(201).header('location', `/v1/orgs/${created.id}`).send(created);
    },
  );

  app.get(
    '/v1/orgs',
    { onRequest: requireCaller(), schema: { summary: "The caller's organizations, each with the caller's role", tags: ['organizations'], security: bearerAuth, response: { 200: MyOrgList, ...problems('invalid_token') } } },
    async (request) => ({ orgs: await orgs.listMine(callerOf(request).userId) }),
  );

  app.get(
    '/v1/orgs/:id',
    { onRequest: org('org:read'), schema: { ...doc('An organization', '`org:read`'), params: OrgParams, response: { 200: Org, ...problems(...COMMON) } } },
    async (request) => orgs.get(request.params.id),
  );

  app.patch(
    '/v1/orgs/:id',
    { onRequest: org('org:settings'), schema: { ...doc('Rename an organization or change its slug', '`org:settings`'), params: OrgParams, body: UpdateOrgBody, response: { 200: Org, ...problems(...COMMON, 'slug_taken', ...WITH_BODY) } } },
    async (request) => orgs.update(callerOf(request), request.params.id, request.body),
  );

  app.delete(
    '/v1/orgs/:id',
    {
      onRequest: requireCaller({ organization: { permission: 'org:delete' }, recentSignIn: true }),
      schema: { ...doc('Delete an organization, its memberships and invitations', '`org:delete` and a sign-in in the last 15 minutes'), params: OrgParams, response: { 204: NoContent, ...problems(...COMMON, 'reauthentication_required') } },
    },
    async (request, reply) => {
      await orgs.delete(callerOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/orgs/:id/members',
    { onRequest: org('org:read'), schema: { ...doc('Members, newest first (`limit`, `before`)', '`org:read`'), params: OrgParams, querystring: MemberQuery, response: { 200: MemberList, ...problems(...COMMON, 'validation_failed') } } },
    async (request) => orgs.members(request.params.id, Number(request.query.limit ?? 50), request.query.before),
  );

  app.patch(
    '/v1/orgs/:id/members/:user_id',
    {
      onRequest: org('org:members'),
      schema: { ...doc("Change a member's role (owners any; others only roles below their own)", '`org:members`'), params: MemberParams, body: MemberChangeBody, response: { 200: Membership, ...problems(...COMMON, 'last_owner', ...WITH_BODY) } },
    },
    async (request) => orgs.changeRole(callerOf(request), request.params.id, idOrNone(request.params.user_id), request.body.role),
  );

  app.delete(
    '/v1/orgs/:id/members/:user_id',
    { onRequest: org(), schema: { ...doc('Remove a member, or leave', '`org:members` (a member leaving needs none)'), params: MemberParams, response: { 204: NoContent, ...problems(...COMMON, 'last_owner') } } },
    async (request, reply) => {
      await orgs.removeMember(callerOf(request), request.params.id, idOrNone(request.params.user_id));
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/orgs/:id/invitations',
    {
      // Each invitation sends a mail: per address, as the other mail-sending routes are.
      config: { rateLimit: perMinute(deps.config.rateLimitPerMinute) },
      onRequest: org('org:members'),
      schema: { ...doc('Invite by email: a single-use link by mail, 7 days; supersedes an earlier one to the address', '`org:members`'), params: OrgParams, body: InvitationBody, response: { 201: Invitation, ...problems(...COMMON, 'already_member', 'too_many_requests', ...WITH_BODY) } },
    },
    async (request, reply) => reply.code(201).send(await orgs.invite(callerOf(request), request.params.id, request.body)),
  );

  app.get(
    '/v1/orgs/:id/invitations',
    { onRequest: org('org:members'), schema: { ...doc('Pending invitations', '`org:members`'), params: OrgParams, response: { 200: InvitationList, ...problems(...COMMON) } } },
    async (request) => ({ invitations: await orgs.invitations(request.params.id) }),
  );

  app.delete(
    '/v1/orgs/:id/invitations/:iid',
    { onRequest: org('org:members'), schema: { ...doc('Withdraw an invitation', '`org:members`'), params: InvitationParams, response: { 204: NoContent, ...problems(...COMMON) } } },
    async (request, reply) => {
      await orgs.revokeInvitation(callerOf(request), request.params.id, request.params.iid);
      return reply.code(204).send(null);
    },
  );

  // Beyond the contract's table (README, Decisions): custom roles are made per organization.
  app.get(
    '/v1/orgs/:id/roles',
    { onRequest: org('org:read'), schema: { ...doc('The roles of an organization: owner, admin, member and its custom ones', '`org:read`'), params: OrgParams, response: { 200: OrgRoleList, ...problems(...COMMON) } } },
    async (request) => ({ roles: await orgs.roles(request.params.id) }),
  );

  app.post(
    '/v1/orgs/:id/roles',
    {
      onRequest: org('org:settings'),
      schema: { ...doc('Make a custom role (no broader than your own permissions)', '`org:settings`'), params: OrgParams, body: CustomRoleBody, response: { 201: OrgRoleList, ...problems(...COMMON, 'role_exists', ...WITH_BODY) } },
    },
    async (request, reply) => {
      await orgs.createRole(callerOf(request), request.params.id, request.body.name, request.body.permissions);
      return reply.code(201).send({ roles: await orgs.roles(request.params.id) });
    },
  );

  app.delete(
    '/v1/orgs/:id/roles/:name',
    { onRequest: org('org:settings'), schema: { ...doc('Delete a custom role nobody holds', '`org:settings`'), params: RoleParams, response: { 204: NoContent, ...problems(...COMMON, 'role_builtin', 'validation_failed') } } },
    async (request, reply) => {
      await orgs.deleteRole(callerOf(request), request.params.id, request.params.name);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/invitations/accept',
    {
      onRequest: requireCaller(),
      schema: {
        summary: 'Accept an invitation: the invited person, signed in, whose verified email is the one invited',
        tags: ['organizations'],
        security: bearerAuth,
        body: AcceptBody,
        response: { 200: Membership, ...problems('invalid_token', 'invalid_invitation', 'email_not_verified', 'already_member', ...WITH_BODY) },
      },
    },
    async (request) => orgs.accept(callerOf(request), request.body.token),
  );

  app.post(
    '/v1/sessions/organization',
    {
      onRequest: requireCaller(),
      schema: {
        summary: "Switch the session's organization: the new access token carries org_id and org_role, and refreshes keep them",
        description: '`{ "org_id": null }` clears it. In cookie mode the new refresh token goes in the cookie, as a refresh does.',
        tags: ['sessions', 'organizations'],
        security: bearerAuth,
        body: SwitchBody,
        response: { 200: TokenPair, ...problems('invalid_token', 'not_found', ...WITH_BODY) },
      },
    },
    async (request, reply) => {
      const caller = callerOf(request);
      await orgs.switchTo(caller, request.body.org_id);
      return cookie.deliver(request, reply, await deps.sessions.reissue(caller));
    },
  );
};

/** A user id that cannot exist is answered like one that is not a member: 404. */
function idOrNone(value: string): string {
  return /^[1-9][0-9]{0,17}$/.test(value) ? value : '0';
}
