import type { Kysely, Transaction } from 'kysely';
import type { AuditLog } from '../audit/audit-log.js';
import type { SessionRevocation } from '../sessions/revocation.js';
import type { Caller } from '../sessions/service.js';
import type { Database } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { Attempt, LoginThrottle } from '../throttling/login-throttle.js';
import { findUserById } from '../users/repository.js';
import type { PasswordHasher } from './hashing.js';
import { checkPasswordPolicy } from './policy.js';
import { findCurrentCredential, insertCurrentCredential, recentPasswordHashes, retireCredential, type CurrentCredential } from './repository.js';

/** How many of the latest passwords (the current one included) a new one must differ from. */
export const PASSWORD_HISTORY = 5;

export class CredentialsService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly hasher: PasswordHasher,
    private readonly throttle: LoginThrottle,
    private readonly audit: AuditLog,
    private readonly revocation: SessionRevocation,
    private readonly passwordMinLength: number,
  ) {}

  /**
   * update_user_password: a new current credentials row, the old one kept as history, and every
   * other session of the user revoked (the calling one stays).
   */
  async changePassword(
    caller: Caller,
    currentPassword: string,
    newPassword: string,
  ): Promise<void> {
    const { userId, sessionId } = caller;
    const credential = await this.reauthenticate(caller, currentPassword, 'password_change');
    const user = await findUserById(this.db, userId);
    if (!user) throw new AppError('wrong_current_password');
    await this.#checkNewPassword(user, newPassword);

    // Hash first; the transaction then only flips rows.
    const hashedPassword = await this.hasher.hash(newPassword);
    const revoked = await this.db.transaction().execute(async (trx) => {
      // If another change made a new password current meanwhile, the one given is no longer current.
      if (!(await retireCredential(trx, credential.credentials_id))) throw new AppError('wrong_current_password');
      await insertCurrentCredential(trx, userId, hashedPassword);
      // ASVS 5.0 V7.4.3: every other session of the user ends.
      return this.revocation.end(trx, { userId, exceptSessionId: sessionId }, 'password_changed');
    });
    this.revocation.forget(revoked);
    await this.audit.record('password_changed', caller, { revoked_sessions: revoked.length });
  }

  /**
   * Checks `current_password` on a re-authentication (password change, account deletion, ...).
   * A wrong one counts as a failed login, so a stolen token cannot be used to guess, and while the
   * account waits the answer is 429. Answers the current credential.
   */
  async reauthenticate(caller: Caller, password: string, what: 'password_change' | 'account_deletion'): Promise<CurrentCredential> {
    let attempt: Attempt;
    try {
      attempt = await this.throttle.begin({ userId: caller.userId }, caller.ip);
    } catch (err) {
      if (err instanceof AppError && err.code === 'too_many_requests') await this.audit.record('throttled', caller, { what });
      throw err;
    }
    // ASVS 5.0 V6.2.3: the current password is required; a wrong one counts as a failed login (V6.3.1).
    const credential = await findCurrentCredential(this.db, caller.userId);
    if (!credential || !(await this.hasher.verify(credential.hashed_password, password))) {
      await this.throttle.failed(attempt);
      await this.audit.record(what === 'password_change' ? 'password_change_failed' : 'account_deletion_failed', caller, { reason: 'wrong_current_password' });
      throw new AppError('wrong_current_password');
    }
    await this.throttle.released(attempt);
    return credential;
  }

  /**
   * A new current password without the old one (a completed password reset): the same rules as
   * a change, then, in one transaction, `consume` (which answers false when the proof was used
   * up meanwhile, rolling everything back), the new credential, and every session ended.
   * Answers the ended sessions, already forgotten by this instance.
   */
  async replacePassword(userId: string, newPassword: string, consume: (trx: Transaction<Database>) => Promise<void>): Promise<string[]> {
    const user = await findUserById(this.db, userId);
    if (!user) throw new AppError('not_found');
    await this.#checkNewPassword(user, newPassword);
    const hashedPassword = await this.hasher.hash(newPassword);
    const revoked = await this.db.transaction().execute(async (trx) => {
      await consume(trx);
      await trx.updateTable('user_credentials').set({ is_current: false }).where('user_id', '=', userId).where('is_current', '=', true).execute();
      await insertCurrentCredential(trx, userId, hashedPassword);
      return this.revocation.end(trx, { userId }, 'password_reset');
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
