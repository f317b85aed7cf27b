import type { Kysely } from 'kysely';
import { AuditLog, latestEvents } from '../audit/audit-log.js';
import { InvalidatedCache } from '../cache/invalidated-cache.js';
import { Invalidation } from '../cache/invalidation.js';
import { systemClock, type Clock } from '../core/clock.js';
import type { EventRecorder } from '../core/events.js';
import type { Revocation } from '../core/revocation.js';
import { SessionRevocation } from '../sessions/revocation.js';
import { countActiveSessions } from '../sessions/repository.js';
import { findUserByLogin, listUsers, markEmailVerifiedByAdmin, setUserDisabled } from '../users/repository.js';
import { MfaService } from '../mfa/service.js';
import type { Database } from '../db/schema.js';
import { AccessControl } from './access.js';
import { RolesService, type Actor, type Role } from './roles.js';
import { disableUser, enableUser } from './users.js';

/**
 * What the admin command line does to users and sessions. Sessions ended here are announced like
 * any revocation, so running instances refuse them within a second.
 */

export interface AdminUser {
  id: string;
  username: string;
  name: string;
  email: string;
  dob: string | null;
  created_at: string;
  updated_at: string;
  disabled: boolean;
  email_verified: boolean;
}

function toAdminUser(row: { user_id: string; username: string; name: string; email: string; dob: string | null; created_at: Date; updated_at: Date; disabled_at: Date | null; email_verified: boolean }): AdminUser {
  return {
    id: row.user_id,
    username: row.username,
    name: row.name,
    email: row.email,
    dob: row.dob,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    disabled: row.disabled_at !== null,
    email_verified: row.email_verified,
  };
}

/** Who ran the command, for the audit log. */
const ADMIN_CONTEXT = { ip: null, userAgent: 'admin command line' };
/** The operator at the server: every permission, no recent sign-in needed (API-ADMIN.md). */
const OPERATOR: Actor = { userId: null, ...ADMIN_CONTEXT };

export class AdminService {
  readonly #audit: AuditLog;
  /** Changes are announced to running instances like theirs; this process caches nothing. */
  readonly #invalidation = new Invalidation({ session: new InvalidatedCache(), user: new InvalidatedCache(), access: new InvalidatedCache(), membership: new InvalidatedCache() });
  readonly #revocation: SessionRevocation;
  readonly #roles: RolesService;

  /**
   * `audit`: where its events go (the command line's, with security notices for reset-mfa).
   * Sessions end through the one revocation path; the command line has no caches of its own, so
   * it only announces the change to the running instances.
   */
  constructor(
    private readonly db: Kysely<Database>,
    audit?: AuditLog,
    private readonly clock: Clock = systemClock,
    /** Where its changes' events go (the command line passes the outbox's; none by default). */
    private readonly events?: EventRecorder,
  ) {
    this.#audit = audit ?? new AuditLog(db);
    this.#revocation = new SessionRevocation(this.#invalidation, events);
    this.#roles = new RolesService(db, new AccessControl(db, new InvalidatedCache(), this.#invalidation, 'none'), this.#audit, undefined, events);
  }

  /** Every role, with its permissions and its holders' usernames. */
  async listRoles(): Promise<Array<Role & { users: string[] }>> {
    const roles = await this.#roles.list();
    const holders = await this.db
      .selectFrom('user_roles')
      .innerJoin('users', 'users.user_id', 'user_roles.user_id')
      .select(['user_roles.role_name', 'users.username'])
      .orderBy('users.username')
      .execute();
    return roles.map((r) => ({ ...r, users: holders.filter((h) => h.role_name === r.name).map((h) => h.username) }));
  }

  /**
   * roles grant|revoke <username> <role>: answers the user's roles after, or undefined for no
   * such user. An unknown role, or taking admin from the last admin, throws (AppError).
   */
  async changeRole(username: string, role: string, grant: boolean): Promise<string[] | undefined> {
    const user = await this.findUser(username);
    if (!user) return undefined;
    const current = (await this.db.selectFrom('user_roles').select('role_name').where('user_id', '=', user.id).execute()).map((r) => r.role_name);
    const wanted = grant ? [...current, role] : current.filter((r) => r !== role);
    return this.#roles.setUserRoles(OPERATOR, user.id, wanted);
  }

  /** Users by id, `limit` at a time after `offset`; `filter` matches username or email (case-insensitive substring). */
  async listUsers(options: { limit: number; offset: number; filter?: string }): Promise<AdminUser[]> {
    return (await listUsers(this.db, options)).map(toAdminUser);
  }

  async findUser(username: string): Promise<(AdminUser & { active_sessions: number }) | undefined> {
    const row = await findUserByLogin(this.db, 'username', username);
    if (!row) return undefined;
    return { ...toAdminUser(row), active_sessions: await countActiveSessions(this.db, row.user_id, new Date(this.clock.now())) };
  }

  /** Ends every session of the user, on every instance. Answers how many were active. */
  async revokeSessions(username: string): Promise<number | undefined> {
    const user = await this.findUser(username);
    if (!user) return undefined;
    const ended = await this.#revocation.endNow(this.db, { userId: user.id }, 'revoked_all');
    await this.#audit.record('sessions_revoked_all', { userId: user.id, ...ADMIN_CONTEXT }, { count: ended.length, by: 'admin' });
    return ended.length;
  }

  /**
   * A disabled user cannot sign in, and all their sessions end at once (ASVS 5.0 V7.4.2); the
   * last admin cannot be disabled (AppError last_admin).
   */
  async setDisabled(username: string, disabled: boolean): Promise<{ sessionsEnded: number } | undefined> {
    const user = await this.findUser(username);
    if (!user) return undefined;
    if (disabled) {
      const result = await disableUser(this.db, this.#revocation, user.id, null, this.events);
      if (!result) return undefined;
      await this.#audit.record('user_disabled', { userId: user.id, ...ADMIN_CONTEXT }, { sessions_ended: result.sessionsEnded });
      return { sessionsEnded: result.sessionsEnded };
    }
    await enableUser(this.db, user.id, this.events);
    await this.#audit.record('user_enabled', { userId: user.id, ...ADMIN_CONTEXT });
    return { sessionsEnded: 0 };
  }

  /**
   * Support: removes every second factor of the user (TOTP, recovery codes, sign-ins half-way),
   * so they sign in with their password alone and can set TOTP up again. Audited.
   */
  async resetMfa(username: string): Promise<{ totp: boolean } | undefined> {
    const user = await this.findUser(username);
    if (!user) return undefined;
    const result = await MfaService.reset(this.db, user.id, this.events);
    // Running instances read the user's second factors again (MFA_REQUIRED_FOR).
    await this.#invalidation.publish(this.db, 'access', [user.id]);
    await this.#audit.record('mfa_reset_by_admin', { userId: user.id, ...ADMIN_CONTEXT }, { had_totp: result.totp });
    return result;
  }


  /**
   * Marks the user's email verified (an operator confirmed the address another way). Answers
   * whether it already was, or undefined for no such user.
   */
  async verifyEmail(username: string): Promise<{ alreadyVerified: boolean } | undefined> {
    const user = await this.findUser(username);
    if (!user) return undefined;
    if (user.email_verified) return { alreadyVerified: true };
    await this.db.transaction().execute(async (trx) => {
      await markEmailVerifiedByAdmin(trx, user.id);
      await this.events?.record(trx, { type: 'user.email_verified', userId: user.id, data: { email: user.email } });
      // Running instances drop their cached profile, so the user object shows it at once.
      await this.#invalidation.publish(trx, 'user', [user.id]);
    });
    await this.#audit.record('email_verified', { userId: user.id, ...ADMIN_CONTEXT }, { via: 'admin' });
    return { alreadyVerified: false };
  }

  /** The latest security events of everyone, newest first. */
  async auditTail(limit: number) {
    return latestEvents(this.db, limit);
  }
}
