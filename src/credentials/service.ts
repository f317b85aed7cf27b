import type { Kysely, Transaction } from 'kysely';
import type { AuditLog } from '../audit/audit-log.js';
import type { Reauthentication } from '../core/reauth.js';
import type { Revocation } from '../core/revocation.js';
import type { Caller } from '../core/caller.js';
import type { EventRecorder } from '../core/events.js';
import type { Database } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { PasswordHasher } from './hashing.js';
import { checkPasswordPolicy } from './policy.js';
import { findPolicySubject, insertCurrentCredential, recentPasswordHashes, retireCredential, retireCurrentCredentials } from './repository.js';

/** How many of the latest passwords (the current one included) a new one must differ from. */
export const PASSWORD_HISTORY = 5;

export interface CredentialsDeps {
  db: Kysely<Database>;
  hasher: PasswordHasher;
  reauth: Pick<Reauthentication, 'password' | 'ownerProof'>;
  audit: AuditLog;
  revocation: Revocation;
  events: EventRecorder;
  config: { passwordMinLength: number };
}

export class CredentialsService {
  private readonly db: Kysely<Database>;
  private readonly hasher: PasswordHasher;
  private readonly reauth: Pick<Reauthentication, 'password' | 'ownerProof'>;
  private readonly audit: AuditLog;
  private readonly revocation: Revocation;
  private readonly events: EventRecorder;
  private readonly passwordMinLength: number;

  constructor(deps: CredentialsDeps) {
    ({ db: this.db, hasher: this.hasher, reauth: this.reauth, audit: this.audit, revocation: this.revocation, events: this.events } = deps);
    this.passwordMinLength = deps.config.passwordMinLength;
  }

  /**
   * update_user_password: a new current credentials row, the old one kept as history, and every
   * other session of the user revoked (the calling one stays).
   */
  async changePassword(
    caller: Caller,
    currentPassword: string | undefined,
    newPassword: string,
  ): Promise<void> {
    const { userId, sessionId } = caller;
    // Without current_password: a first password, for a user who has none, on a recent session.
    const credential = await this.reauth.ownerProof(caller, currentPassword, 'password_change');
    const user = await findPolicySubject(this.db, userId);
    if (!user) throw new AppError('wrong_current_password');
    await this.#checkNewPassword(user, newPassword);

    // Hash first; the transaction then only flips rows.
    const hashedPassword = await this.hasher.hash(newPassword);
    const revoked = await this.db.transaction().execute(async (trx) => {
      // If another change made a new password current meanwhile, the one given is no longer current.
      if (credential && !(await retireCredential(trx, credential.credentials_id))) throw new AppError('wrong_current_password');
      // A first password: one set by a concurrent request meanwhile is replaced, never left current beside it.
      if (!credential) await retireCurrentCredentials(trx, userId);
      await insertCurrentCredential(trx, userId, hashedPassword);
      await this.events.record(trx, { type: 'user.password_changed', userId, data: { reset: false } });
      // ASVS 5.0 V7.4.3: every other session of the user ends.
      return this.revocation.end(trx, { userId, exceptSessionId: sessionId }, 'password_changed');
    });
    this.revocation.forget(revoked);
    await this.audit.record('password_changed', caller, { revoked_sessions: revoked.length });
  }

  /**
   * A new current password without the old one (a completed password reset): the same rules as
   * a change, then, in one transaction, `consume` (which answers false when the proof was used
   * up meanwhile, rolling everything back), the new credential, and every session ended.
   * Answers the ended sessions, already forgotten by this instance.
   */
  async replacePassword(userId: string, newPassword: string, consume: (trx: Transaction<Database>) => Promise<void>, options: { revokeSessions?: boolean } = {}): Promise<string[]> {
    const user = await findPolicySubject(this.db, userId);
    if (!user) throw new AppError('not_found');
    await this.#checkNewPassword(user, newPassword);
    const hashedPassword = await this.hasher.hash(newPassword);
    const revoked = await this.db.transaction().execute(async (trx) => {
      await consume(trx);
      await retireCurrentCredentials(trx, userId);
      await insertCurrentCredential(trx, userId, hashedPassword);
      await this.events.record(trx, { type: 'user.password_changed', userId, data: { reset: true } });
      // An administrator may set a password and leave the sessions be (API-ADMIN.md, revoke_sessions).
      return options.revokeSessions === false ? [] : this.revocation.end(trx, { userId }, 'password_reset');
    });
    this.revocation.forget(revoked);
    return revoked;
  }

  /** The password policy and the last-5 rule, for a new password of `user`. */
  async #checkNewPassword(user: { user_id: string; username: string; email: string }, newPassword: string): Promise<void> {
    checkPasswordPolicy(newPassword, this.passwordMinLength, { username: user.username, email: user.email }, 'new_password');
    for (const previous of await recentPasswordHashes(this.db, user.user_id, PASSWORD_HISTORY)) {
      if (await this.hasher.verify(previous, newPassword)) {
        throw new AppError('password_reused', { errors: [{ field: 'new_password', message: `must differ from your last ${PASSWORD_HISTORY} passwords` }] });
      }
    }
  }
}
