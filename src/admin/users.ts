import type { Kysely, Transaction } from 'kysely';
import type { AccountDeletion } from '../account/deletion.js';
import type { BackgroundJobs } from '../account/background.js';
import { issueToken } from '../account/tokens.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { Invalidation } from '../cache/invalidation.js';
import type { Clock } from '../core/clock.js';
import type { EventRecorder } from '../core/events.js';
import type { PasswordHasher } from '../credentials/hashing.js';
import { checkPasswordPolicy } from '../credentials/policy.js';
import { insertCurrentCredential } from '../credentials/repository.js';
import type { CredentialsService } from '../credentials/service.js';
import type { Database } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { Mailer } from '../mail/mailer.js';
import { inviteMessage, passwordResetMessage } from '../mail/templates.js';
import { MfaService } from '../mfa/service.js';
import { deletePasskey } from '../passkeys/repository.js';
import type { SessionRevocation } from '../sessions/revocation.js';
import { RESET_MAILS_PER_HOUR, RESET_TTL_MS } from '../account/password-reset.js';
import { lookupKey } from '../core/lookup-key.js';
import { findUserById, insertUser, takenFields, toUser, updateUser } from '../users/repository.js';
import { conflict, conflictFromConstraint } from '../users/service.js';
import { actedBy, assertAdminsLeft, type Actor, type RolesService } from './roles.js';
import { listActiveSessions } from '../sessions/repository.js';
import { adminUsers, replaceUserRoles, searchEvents, searchUserIds, setDisabledState, type AdminUserRow, type EventSearch, type UserSearch } from './repository.js';
import type { AccessControl } from './access.js';

/** The admin user object (API-ADMIN.md). */
export function toAdminUser(row: AdminUserRow) {
  return {
    ...toUser(row),
    disabled_at: row.disabled_at ? row.disabled_at.toISOString() : null,
    disabled_reason: row.disabled_reason,
    roles: row.roles,
    mfa: { totp: row.totp, passkeys: row.passkeys },
    has_password: row.has_password,
    last_sign_in_at: row.last_sign_in_at ? row.last_sign_in_at.toISOString() : null,
  };
}
export type AdminUserObject = ReturnType<typeof toAdminUser>;

/** An invitation (send_invite) is the reset mail's link, valid 72 hours. */
export const INVITE_TTL_MS = 72 * 3_600_000;

/** The opaque cursor of GET /v1/admin/users: the last user id of the page, wrapped. */
export function encodeCursor(userId: string): string {
  return Buffer.from(`u:${userId}`).toString('base64url');
}

export function decodeCursor(cursor: string): string | undefined {
  const match = /^u:([1-9][0-9]{0,17})$/.exec(Buffer.from(cursor, 'base64url').toString('latin1'));
  return match?.[1];
}

export interface NewUserInput {
  username: string;
  name: string;
  dob: string;
  email: string;
  password?: string;
  email_verified?: boolean;
  roles?: string[];
  send_invite?: boolean;
}

export interface AdminUsersSettings {
  publicUrl: string;
  passwordMinLength: number;
  sessionIdleTtlS: number;
}

/**
 * Ends every session of a disabled user (the one revocation path) and disables them, unless they
 * are the last admin. The command line and the API both come here.
 */
export async function disableUser(db: Kysely<Database>, revocation: SessionRevocation, userId: string, reason: string | null, events?: EventRecorder): Promise<{ changed: boolean; sessionsEnded: number } | undefined> {
  const result = await db.transaction().execute(async (trx) => {
    await assertAdminsLeft(trx, userId);
    const exists = await trx.selectFrom('users').select('user_id').where('user_id', '=', userId).forUpdate().executeTakeFirst();
    if (!exists) return undefined;
    const changed = await setDisabledState(trx, userId, true, reason);
    if (changed) await events?.record(trx, { type: 'user.disabled', userId, data: { reason } });
    // ASVS 5.0 V7.4.2: a disabled user's sessions end at once, on every instance.
    const ended = changed ? await revocation.end(trx, { userId }, 'revoked_all') : [];
    return { changed, ended };
  });
  if (!result) return undefined;
  revocation.forget(result.ended);
  return { changed: result.changed, sessionsEnded: result.ended.length };
}

/** Enables a disabled user; answers whether they were disabled. The command line and the API both come here. */
export async function enableUser(db: Kysely<Database>, userId: string, events?: EventRecorder): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const changed = await setDisabledState(trx, userId, false, null);
    if (changed) await events?.record(trx, { type: 'user.enabled', userId });
    return changed;
  });
}

export class AdminUsersService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly deps: {
      hasher: PasswordHasher;
      credentials: CredentialsService;
      revocation: SessionRevocation;
      invalidation: Invalidation;
      deletion: AccountDeletion;
      mailer: Mailer;
      jobs: BackgroundJobs;
      audit: AuditLog;
      access: AccessControl;
      roles: RolesService;
      clock: Clock;
      events: EventRecorder;
    },
    private readonly settings: AdminUsersSettings,
  ) {}

  async search(search: Omit<UserSearch, 'beforeId'> & { before?: string }): Promise<{ users: AdminUserObject[]; next: string | null }> {
    const ids = await searchUserIds(this.db, { ...search, beforeId: search.before === undefined ? undefined : decodeCursor(search.before) });
    const page = ids.slice(0, search.limit);
    return { users: (await adminUsers(this.db, page)).map(toAdminUser), next: ids.length > search.limit ? encodeCursor(page.at(-1)!) : null };
  }

  async get(userId: string): Promise<AdminUserObject> {
    const [row] = await adminUsers(this.db, [userId]);
    if (!row) throw notFound();
    return toAdminUser(row);
  }

  async #exists(userId: string): Promise<void> {
    if (!(await findUserById(this.db, userId))) throw notFound();
  }

  async create(actor: Actor, input: NewUserInput): Promise<AdminUserObject> {
    const roles = [...new Set(input.roles ?? [])].sort();
    await this.deps.roles.assertMayGive(actor, roles);
    if (input.password !== undefined) checkPasswordPolicy(input.password, this.settings.passwordMinLength, { username: input.username, email: input.email });
    const taken = await takenFields(this.db, input);
    if (taken.length) throw conflict(taken);
    const hashed = input.password === undefined ? undefined : await this.deps.hasher.hash(input.password);
    let userId: string;
    try {
      userId = await this.db.transaction().execute(async (trx) => {
        const row = await insertUser(trx, { username: input.username, name: input.name.trim(), dob: input.dob, email: input.email });
        if (input.email_verified) await trx.updateTable('users').set({ email_verified: true }).where('user_id', '=', row.user_id).execute();
        if (hashed !== undefined) await insertCurrentCredential(trx, row.user_id, hashed);
        if (roles.length) await replaceUserRoles(trx, row.user_id, [], roles, actor.userId);
        await this.deps.events.record(trx, {
          type: 'user.created',
          userId: String(row.user_id),
          data: { username: row.username, name: row.name, email: row.email, email_verified: input.email_verified === true, roles },
        });
        return String(row.user_id);
      });
    } catch (err) {
      throw conflictFromConstraint(err) ?? err;
    }
    await this.deps.audit.record('user_created', actedBy(actor, userId), { roles: roles.join(' '), password: hashed !== undefined, invited: input.send_invite === true });
    if (input.send_invite) await this.#mailLink(actor, userId, 'invite');
    return this.get(userId);
  }

  async update(actor: Actor, userId: string, input: { username?: string; name?: string; dob?: string; email?: string; email_verified?: boolean }): Promise<AdminUserObject> {
    await this.#exists(userId);
    const changes = { ...input, ...(input.name !== undefined ? { name: input.name.trim() } : {}) };
    const taken = await takenFields(this.db, changes, userId);
    if (taken.length) throw conflict(taken);
    try {
      await this.db.transaction().execute(async (trx) => {
        const before = await trx.selectFrom('users').select('email').where('user_id', '=', userId).forUpdate().executeTakeFirst();
        if (!before) throw notFound();
        // A new address is unverified unless the administrator says otherwise in the same request.
        const emailChanged = changes.email !== undefined && lookupKey(changes.email) !== lookupKey(before.email);
        const set = emailChanged && changes.email_verified === undefined ? { ...changes, email_verified: false } : changes;
        await updateUser(trx, userId, set);
        const { email_verified: verified, ...profile } = set;
        if (Object.keys(profile).length) await this.deps.events.record(trx, { type: 'user.updated', userId, data: { fields: Object.keys(profile).sort(), ...profile, ...(verified === false ? { email_verified: false } : {}) } });
        if (verified === true) await this.deps.events.record(trx, { type: 'user.email_verified', userId, data: { email: changes.email ?? before.email } });
        await this.deps.invalidation.publish(trx, 'user', [userId]);
      });
    } catch (err) {
      throw conflictFromConstraint(err) ?? err;
    }
    this.deps.invalidation.forget('user', [userId]);
    await this.deps.audit.record('profile_updated', actedBy(actor, userId), { fields: Object.keys(input).sort().join(',') });
    return this.get(userId);
  }

  async disable(actor: Actor, userId: string, reason: string | null): Promise<AdminUserObject> {
    const result = await disableUser(this.db, this.deps.revocation, userId, reason, this.deps.events);
    if (!result) throw notFound();
    if (result.changed) await this.deps.audit.record('user_disabled', actedBy(actor, userId), { sessions_ended: result.sessionsEnded, ...(reason ? { reason } : {}) });
    return this.get(userId);
  }

  async enable(actor: Actor, userId: string): Promise<AdminUserObject> {
    await this.#exists(userId);
    const changed = await enableUser(this.db, userId, this.deps.events);
    if (changed) await this.deps.audit.record('user_enabled', actedBy(actor, userId));
    return this.get(userId);
  }

  async setPassword(actor: Actor, userId: string, newPassword: string, revokeSessions: boolean): Promise<void> {
    await this.#exists(userId);
    const revoked = await this.deps.credentials
      .replacePassword(userId, newPassword, async (trx) => {
        await trx.deleteFrom('mfa_tokens').where('user_id', '=', userId).execute();
      }, { revokeSessions })
      .catch((err: unknown) => {
        throw err instanceof AppError && err.code === 'not_found' ? notFound() : err;
      });
    // password_changed: the owner gets the notice of a changed password.
    await this.deps.audit.record('password_changed', actedBy(actor, userId), { by: 'admin', revoked_sessions: revoked.length });
  }

  /** The reset mail of part 2 (or, for a new user, the invitation), 5 an hour per address. */
  async sendPasswordReset(actor: Actor, userId: string): Promise<void> {
    await this.#exists(userId);
    await this.#mailLink(actor, userId, 'reset');
  }

  async #mailLink(actor: Actor, userId: string, kind: 'reset' | 'invite'): Promise<void> {
    const user = await findUserById(this.db, userId);
    if (!user) throw notFound();
    const issued = await issueToken(this.db, {
      userId,
      kind: 'password_reset',
      email: user.email,
      ttlMs: kind === 'invite' ? INVITE_TTL_MS : RESET_TTL_MS,
      maxPerHour: RESET_MAILS_PER_HOUR,
      perAddress: true,
      newUser: kind === 'invite',
      now: this.deps.clock.now(),
    });
    if ('noUser' in issued) throw notFound();
    if ('retryAfterS' in issued) throw new AppError('too_many_requests', { headers: { 'retry-after': String(issued.retryAfterS) } });
    const link = `${this.settings.publicUrl}/reset-password#token=${issued.token}`;
    this.deps.mailer.send(kind === 'invite' ? inviteMessage(user.email, link, INVITE_TTL_MS / 3_600_000) : passwordResetMessage(user.email, link));
    await this.deps.audit.record('password_reset_requested', actedBy(actor, userId), { sent: true, by: 'admin', ...(kind === 'invite' ? { invite: true } : {}) });
  }

  async disableMfa(actor: Actor, userId: string): Promise<void> {
    await this.#exists(userId);
    const result = await MfaService.reset(this.db, userId, this.deps.events);
    // mfa_reset_by_admin: the owner is told by mail (security notices) when TOTP was on.
    await this.deps.audit.record('mfa_reset_by_admin', actedBy(actor, userId), { had_totp: result.totp });
  }

  async removePasskey(actor: Actor, userId: string, passkeyId: string): Promise<void> {
    await this.#exists(userId);
    const removed =
      /^[1-9][0-9]{0,17}$/.test(passkeyId) &&
      (await this.db.transaction().execute(async (trx) => {
        const deleted = await deletePasskey(trx, userId, passkeyId);
        if (deleted) await this.deps.events.record(trx, { type: 'passkey.removed', userId, data: { passkey_id: passkeyId } });
        return deleted;
      }));
    if (!removed) throw new AppError('not_found', { detail: 'The user has no passkey with that id.' });
    await this.deps.audit.record('passkey_removed', actedBy(actor, userId), { passkey_id: passkeyId, by: 'admin' });
  }

  async sessions(userId: string) {
    await this.#exists(userId);
    const rows = await listActiveSessions(this.db, userId, this.settings.sessionIdleTtlS, new Date(this.deps.clock.now()));
    return rows.map((row) => ({
      id: row.session_id,
      created_at: row.created_at.toISOString(),
      last_used_at: row.last_used_at.toISOString(),
      expires_at: row.expires_at.toISOString(),
      is_active: true,
      user_agent: row.user_agent,
      ip: row.ip,
      amr: row.amr.split(' ').filter(Boolean),
    }));
  }

  async revokeSessions(actor: Actor, userId: string): Promise<void> {
    await this.#exists(userId);
    const ended = await this.deps.revocation.endNow(this.db, { userId }, 'revoked_all');
    await this.deps.audit.record('sessions_revoked_all', actedBy(actor, userId), { count: ended.length, by: 'admin' });
  }

  async revokeSession(actor: Actor, userId: string, sessionId: string): Promise<void> {
    await this.#exists(userId);
    const owned = /^[1-9][0-9]{0,17}$/.test(sessionId)
      ? await this.db.selectFrom('user_sessions').select('session_id').where('session_id', '=', sessionId).where('user_id', '=', userId).executeTakeFirst()
      : undefined;
    if (!owned) throw new AppError('not_found', { detail: 'The user has no session with that id.' });
    const ended = await this.deps.revocation.endNow(this.db, { userId, sessionId }, 'revoked');
    if (ended.length) await this.deps.audit.record('session_revoked', actedBy(actor, userId), { revoked_session_id: sessionId, by: 'admin' });
  }

  async events(userId: string, search: Omit<EventSearch, 'userId'>) {
    await this.#exists(userId);
    return searchEvents(this.db, { ...search, userId });
  }

  allEvents(search: EventSearch) {
    return searchEvents(this.db, search);
  }

  async delete(actor: Actor, userId: string): Promise<void> {
    await this.#exists(userId);
    // The last-admin rule runs first in the deleting transaction (see AccountDeletion's beforeDelete).
    await this.deps.deletion.deleteUser(userId, { ...actedBy(actor, userId) });
    this.deps.access.forget([userId]);
  }
}

/** AccountDeletion's beforeDelete: the last admin is not deleted (API-ADMIN.md). */
export function lastAdminIsKept(trx: Transaction<Database>, userId: string): Promise<void> {
  return assertAdminsLeft(trx, userId);
}

function notFound(): AppError {
  return new AppError('not_found', { detail: 'There is no user with that id.' });
}
