import { AppError, validationFailed } from '../errors.js';
import type { Caller } from './caller.js';

/** How recent a sign-in re-authenticates (API-ACCOUNT.md: passkeys; API.md: an email change). */
export const REAUTH_WINDOW_MS = 15 * 60_000;

/** What a re-authentication is for; it names the failure in the audit log and the 429 of the throttle. */
export type ReauthPurpose = 'password_change' | 'account_deletion' | 'mfa_totp_enable' | 'mfa_totp_disable' | 'email_change';

/** The audit events of a wrong password, per purpose (the names the audit log has always used). */
const FAILED_EVENT = {
  password_change: ['password_change_failed', { reason: 'wrong_current_password' }],
  account_deletion: ['account_deletion_failed', { reason: 'wrong_current_password' }],
  mfa_totp_enable: ['reauthentication_failed', { what: 'mfa_totp_enable' }],
  mfa_totp_disable: ['reauthentication_failed', { what: 'mfa_totp_disable' }],
  email_change: ['reauthentication_failed', { what: 'email_change' }],
} as const;

type FailedEvent = (typeof FAILED_EVENT)[ReauthPurpose][0];

/** A counted sign-in attempt (throttling/login-throttle.ts): begun before the hash, then failed or released. */
export interface AttemptGate<A> {
  /** Counts an attempt of the account from the caller's address, or throws 429 (audited as `what`). */
  begin(subject: { userId: string }, context: { userId: string | null; ip: string | null; userAgent: string | null }, what: string): Promise<A>;
  failed(attempt: A): Promise<void>;
  released(attempt: A): Promise<void>;
}

export interface ReauthenticationDeps<A> {
  attempts: AttemptGate<A>;
  audit: { record(event: FailedEvent, context: Caller, details: Record<string, string>): Promise<void> };
  /** The user's current password hash (credentials/repository.ts). */
  passwords: { current(userId: string): Promise<{ credentials_id: string; hashed_password: string } | undefined> };
  hasher: { verify(hash: string, password: string): Promise<boolean> };
  /** Whether the caller's session was opened within `seconds`, on the database's clock that stamped it (sessions/repository.ts). */
  sessions: { openedWithin(caller: { userId: string; sessionId: string }, seconds: number): Promise<boolean> };
}

/**
 * The one re-authentication service: proof that the person holding an access token is the
 * account's owner, before a change that could take the account over. A current password
 * (counted as a sign-in attempt), or a sign-in in the last 15 minutes (by any factor: a password,
 * a password and a second factor, or a passkey, since each opens a new session).
 */
export class Reauthentication<A = unknown> {
  constructor(private readonly deps: ReauthenticationDeps<A>) {}

  /**
   * Checks `current_password`. A wrong one counts as a failed login (ASVS 5.0 V6.2.3, V6.3.1), so a
   * stolen token cannot be used to guess, and while the account waits the answer is 429. A right
   * one neither fails nor resets the count (only a completed sign-in does). Answers the current
   * credential.
   */
  async password(caller: Caller, password: string, purpose: ReauthPurpose): Promise<{ credentials_id: string; hashed_password: string }> {
    const { attempts, passwords, hasher, audit } = this.deps;
    const attempt = await attempts.begin({ userId: caller.userId }, caller, purpose);
    const credential = await passwords.current(caller.userId);
    if (!credential || !(await hasher.verify(credential.hashed_password, password))) {
      await attempts.failed(attempt);
      const [event, details] = FAILED_EVENT[purpose];
      await audit.record(event, caller, details);
      throw new AppError('wrong_current_password');
    }
    await attempts.released(attempt);
    return credential;
  }

  /**
   * Throws 403 reauthentication_required unless the caller's session was opened within the last
   * 15 minutes: a stolen access token alone, or an old session left open, cannot change what signs
   * in or recovers the account.
   */
  async recentSignIn(caller: { userId: string; sessionId: string }): Promise<void> {
    if (!(await this.deps.sessions.openedWithin(caller, REAUTH_WINDOW_MS / 1000))) throw new AppError('reauthentication_required');
  }

  /**
   * Where a password is asked (TOTP on or off, deletion, a password change): the current password
   * when the user has one; a user without one (signed up with another provider) proves it with a
   * sign-in in the last 15 minutes instead (API-FEDERATION.md A). A user who has a password and
   * sends none gets 400, as before. Answers the current credential when a password was checked.
   */
  async ownerProof(caller: Caller, password: string | undefined, purpose: ReauthPurpose): Promise<{ credentials_id: string; hashed_password: string } | undefined> {
    if (password !== undefined) return this.password(caller, password, purpose);
    if (await this.deps.passwords.current(caller.userId)) throw validationFailed([{ field: 'current_password', message: 'is required' }]);
    await this.recentSignIn(caller);
    return undefined;
  }

  /** A password when one is given, else a recent sign-in (an email change, API.md). */
  async passwordOrRecentSignIn(caller: Caller, password: string | undefined, purpose: ReauthPurpose): Promise<void> {
    if (password !== undefined) await this.password(caller, password, purpose);
    else await this.recentSignIn(caller);
  }
}
