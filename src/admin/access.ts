import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Kysely, Transaction } from 'kysely';
import type { AuditEventType, AuditRow } from '../audit/audit-log.js';
import { callerOf } from '../auth/guard.js';
import type { InvalidatedCache } from '../cache/invalidated-cache.js';
import type { Invalidation } from '../cache/invalidation.js';
import type { Database } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { Guard } from '../http/types.js';
import { permissionsOfRoles, type Permission } from './permissions.js';
import { hasSecondFactor, rolesAndStoredPermissions } from './repository.js';

/**
 * What a user may do, decided from the database on every request (API-ADMIN.md): the roles held
 * now, never the token's `roles` hint. Kept in this instance's cache, right like sessions (see
 * cache/invalidated-cache.ts): a change publishes the `access` kind for the users concerned, in
 * the transaction that makes it, and every instance forgets them within a second.
 */

/** Where the guard asks for a user's permissions (#17's core names it so). */
export interface PermissionSource {
  permissionsOf(userId: string): Promise<ReadonlySet<string>>;
}

export type MfaRequiredFor = 'none' | 'roles' | 'all';

export interface AccessState {
  roles: readonly string[];
  permissions: ReadonlySet<Permission>;
  /** Whether the user has a second factor; only read when MFA_REQUIRED_FOR covers the user. */
  secondFactor: boolean | undefined;
}

type Queryable = Kysely<Database> | Transaction<Database>;

/**
 * The requests a session may make while MFA_REQUIRED_FOR covers its user and no second factor
 * exists: read the profile, set a factor up (TOTP or a passkey), sign out.
 */
const SETUP_ONLY = new Set([
  'GET /v1/users/me',
  'DELETE /v1/sessions/current',
  'DELETE /v1/sessions',
  'GET /v1/users/me/mfa',
  'POST /v1/users/me/mfa/totp',
  'POST /v1/users/me/mfa/totp/confirm',
  'GET /v1/users/me/passkeys',
  'POST /v1/users/me/passkeys/options',
  'POST /v1/users/me/passkeys',
]);

/** Events that change whether a user has a second factor. */
const FACTOR_EVENTS = new Set<AuditEventType>(['mfa_enabled', 'mfa_disabled', 'mfa_reset_by_admin', 'passkey_added', 'passkey_removed']);

export class AccessControl implements PermissionSource {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly cache: InvalidatedCache<AccessState>,
    private readonly invalidation: Invalidation,
    readonly mfaRequiredFor: MfaRequiredFor,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  async state(userId: string): Promise<AccessState> {
    const cached = this.cache.get(userId);
    if (cached) return cached;
    const epoch = this.cache.epoch;
    const { roles, stored } = await rolesAndStoredPermissions(this.db, userId);
    const covered = this.mfaRequiredFor === 'all' || (this.mfaRequiredFor === 'roles' && roles.length > 0);
    const state: AccessState = {
      roles,
      permissions: permissionsOfRoles(roles, stored),
      secondFactor: covered ? await hasSecondFactor(this.db, userId) : undefined,
    };
    this.cache.set(userId, state, epoch);
    return state;
  }

  async permissionsOf(userId: string): Promise<ReadonlySet<string>> {
    return (await this.state(userId)).permissions;
  }

  async rolesOf(userId: string): Promise<readonly string[]> {
    return (await this.state(userId)).roles;
  }

  /** MFA_REQUIRED_FOR covers the user, who has no second factor yet. */
  async mfaSetupRequired(userId: string): Promise<boolean> {
    if (this.mfaRequiredFor === 'none') return false;
    return (await this.state(userId)).secondFactor === false;
  }

  /** Tells the other instances (on commit, when `db` is a transaction) that these users' access changed. */
  publish(db: Queryable, userIds: readonly string[]): Promise<void> {
    return this.invalidation.publish(db, 'access', userIds);
  }

  /** This instance forgets at once; call once the change is committed. */
  forget(userIds: readonly string[]): void {
    this.invalidation.forget('access', userIds);
  }

  /**
   * AuditLog.onRecorded: a second factor added or removed (by any feature) changes what
   * MFA_REQUIRED_FOR lets the user do, here at once and elsewhere through the channel.
   */
  readonly recorded = (row: AuditRow): void => {
    if (this.mfaRequiredFor === 'none' || !FACTOR_EVENTS.has(row.event as AuditEventType) || row.user_id == null) return;
    const ids = [String(row.user_id)];
    this.forget(ids);
    this.publish(this.db, ids).catch(this.onError);
  };

  /**
   * The bearer guard, plus MFA_REQUIRED_FOR: a covered user without a second factor may only
   * make the SETUP_ONLY requests (403 mfa_setup_required elsewhere). With `none`, the guard as is.
   */
  guard(base: Guard): Guard {
    if (this.mfaRequiredFor === 'none') return base;
    const access = this;
    return async function requireCaller(this: unknown, request: FastifyRequest, reply: FastifyReply): Promise<void> {
      await base.call(this as never, request, reply);
      if (SETUP_ONLY.has(`${request.method} ${request.routeOptions.url ?? ''}`)) return;
      if (await access.mfaSetupRequired(callerOf(request).userId)) throw new AppError('mfa_setup_required');
    } as Guard;
  }
}

/** 403 forbidden for a rule beyond the route's own permission (nobody grants what they lack), naming it as the guard does. */
export function forbidden(permission: string, what = 'This needs'): AppError {
  return new AppError('forbidden', { detail: `${what} the permission "${permission}".`, extensions: { permission } });
}
