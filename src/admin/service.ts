import type { Kysely } from 'kysely';
import { AuditLog } from '../audit/audit-log.js';
import { reencryptSigningKeys } from '../auth/keys.js';
import type { DataCipher } from '../crypto/data-encryption.js';
import { MfaService } from '../mfa/service.js';
import { notifyInvalidated } from '../db/notifications.js';
import type { Database } from '../db/schema.js';
import { endSessions } from '../sessions/repository.js';
import { lookupKey } from '../core/lookup-key.js';
import { InvalidatedCache } from '../cache/invalidated-cache.js';
import { Invalidation } from '../cache/invalidation.js';
import { SessionRevocation } from '../sessions/revocation.js';
import { AccessControl } from './access.js';
import { RolesService, type Actor, type Role } from './roles.js';
import { disableUser } from './users.js';

/**
 * What the admin command line does to users and sessions. Sessions ended here are announced like
 * any revocation, so running instances refuse them within a second.
 */

export interface AdminUser {
  id: string;
  username: string;
  name: string;
  email: string;
  dob: string;
  created_at: string;
  updated_at: string;
  disabled: boolean;
  email_verified: boolean;
}

const columns = ['user_id', 'username', 'name', 'email', 'dob', 'created_at', 'updated_at', 'disabled_at', 'email_verified'] as const;

function toAdminUser(row: { user_id: string; username: string; name: string; email: string; dob: string; created_at: Date; updated_at: Date; disabled_at: Date | null; email_verified: boolean }): AdminUser {
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
  readonly #invalidation = new Invalidation({ session: new InvalidatedCache(), user: new InvalidatedCache(), access: new InvalidatedCache() });
  readonly #roles: RolesService;

  /** `audit`: where its events go (the command line's, with security notices for reset-mfa). */
  constructor(
    private readonly db: Kysely<Database>,
    audit?: AuditLog,
  ) {
    this.#audit = audit ?? new AuditLog(db);
    this.#roles = new RolesService(db, new AccessControl(db, new InvalidatedCache(), this.#invalidation, 'none'), this.#audit);
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
    let query = this.db.selectFrom('users').select(columns).orderBy('user_id').limit(options.limit).offset(options.offset);
    if (options.filter) {
      const pattern = `%${lookupKey(options.filter).replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      query = query.where((eb) => eb.or([eb('username_key', 'like', pattern), eb('email_key', 'like', pattern)]));
    }
    return (await query.execute()).map(toAdminUser);
  }

  async findUser(username: string): Promise<(AdminUser & { active_sessions: number }) | undefined> {
    const row = await this.db.selectFrom('users').select(columns).where('username_key', '=', lookupKey(username)).executeTakeFirst();
    if (!row) return undefined;
    const count = await this.db
      .selectFrom('user_sessions')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('user_id', '=', row.user_id)
      .where('is_active', '=', true)
      .where('expires_at', '>', new Date())
      .executeTakeFirstOrThrow();
    return { ...toAdminUser(row), active_sessions: Number(count.n) };
  }

  /** Ends every session of the user, on every instance. Answers how many were active. */
  async revokeSessions(username: string): Promise<number | undefined> {
    const user = await this.findUser(username);
    if (!user) return undefined;
    const ended = await this.db.transaction().execute(async (trx) => {
      const ids = await endSessions(trx, { userId: user.id }, 'revoked_all');
      await notifyInvalidated(trx, 'session', ids);
      return ids;
    });
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
      const result = await disableUser(this.db, new SessionRevocation(this.#invalidation), user.id, null);
      if (!result) return undefined;
      await this.#audit.record('user_disabled', { userId: user.id, ...ADMIN_CONTEXT }, { sessions_ended: result.sessionsEnded });
      return { sessionsEnded: result.sessionsEnded };
    }
    await this.db.updateTable('users').set({ disabled_at: null, disabled_reason: null }).where('user_id', '=', user.id).execute();
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
    const result = await MfaService.reset(this.db, user.id);
    // Running instances read the user's second factors again (MFA_REQUIRED_FOR).
    await this.#invalidation.publish(this.db, 'access', [user.id]);
    await this.#audit.record('mfa_reset_by_admin', { userId: user.id, ...ADMIN_CONTEXT }, { had_totp: result.totp });
    return result;
  }

  /** Re-encrypts every secret at rest (private signing keys, TOTP secrets) with the first DATA_ENCRYPTION_KEY. */
  async reencryptSecrets(cipher: DataCipher): Promise<{ signing_keys: number; totp_secrets: number; key_id: string }> {
    const signingKeys = await reencryptSigningKeys(this.db, cipher);
    const totpSecrets = await MfaService.reencryptSecrets(this.db, cipher);
    return { signing_keys: signingKeys, totp_secrets: totpSecrets, key_id: cipher.currentKeyId };
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
      await trx.updateTable('users').set({ email_verified: true }).where('user_id', '=', user.id).execute();
      // Running instances drop their cached profile, so the user object shows it at once.
      await notifyInvalidated(trx, 'user', [user.id]);
    });
    await this.#audit.record('email_verified', { userId: user.id, ...ADMIN_CONTEXT }, { via: 'admin' });
    return { alreadyVerified: false };
  }

  /** The latest security events of everyone, newest first. */
  async auditTail(limit: number) {
    const rows = await this.db
      .selectFrom('audit_events')
      .leftJoin('users', 'users.user_id', 'audit_events.user_id')
      .select(['audit_events.event_id', 'audit_events.occurred_at', 'audit_events.event', 'audit_events.user_id', 'users.username', 'audit_events.session_id', 'audit_events.ip', 'audit_events.details'])
      .orderBy('audit_events.event_id', 'desc')
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      id: r.event_id,
      occurred_at: r.occurred_at.toISOString(),
      event: r.event,
      user_id: r.user_id === null ? null : String(r.user_id),
      username: r.username ?? null,
      session_id: r.session_id === null ? null : String(r.session_id),
      ip: r.ip,
      details: r.details ? (JSON.parse(r.details) as unknown) : null,
    }));
  }
}
