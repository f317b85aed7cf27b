import type { Kysely } from 'kysely';
import type { EventRecorder } from '../core/events.js';
import type { AuditContext, AuditLog } from '../audit/audit-log.js';
import type { Invalidation } from '../cache/invalidation.js';
import type { Database } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { MailLog, Mailer } from '../mail/mailer.js';
import { emailChangedMessage, verifyEmailMessage } from '../mail/templates.js';
import type { Caller, ClientInfo } from '../core/caller.js';
import type { Clock } from '../core/clock.js';
import { findUserById, type UserRecord } from '../users/repository.js';
import type { EmailEvents } from '../users/service.js';
import { consumeToken, findLiveToken, HOUR_MS, hourlyCapWait, issueToken, markEmailVerified } from './tokens.js';

/** API-ACCOUNT.md, Email verification. */
export const VERIFICATION_TTL_MS = 24 * HOUR_MS;
/** Verification mails an hour per user, the one sent at registration included. */
export const VERIFICATION_MAILS_PER_HOUR = 5;

export interface EmailVerificationDeps {
  db: Kysely<Database>;
  mailer: Mailer;
  audit: AuditLog;
  invalidation: Invalidation;
  log: MailLog;
  config: { publicUrl: string };
  clock: Clock;
  events: EventRecorder;
}

export class EmailVerification implements EmailEvents {
  private readonly events: EventRecorder;
  private readonly db: Kysely<Database>;
  private readonly mailer: Mailer;
  private readonly audit: AuditLog;
  private readonly invalidation: Invalidation;
  private readonly log: MailLog;
  private readonly publicUrl: string;
  private readonly clock: Clock;

  constructor(deps: EmailVerificationDeps) {
    this.clock = deps.clock;
    this.events = deps.events;
    ({ db: this.db, mailer: this.mailer, audit: this.audit, invalidation: this.invalidation, log: this.log } = deps);
    this.publicUrl = deps.config.publicUrl;
  }

  /** A new token and its mail, unless the hourly cap is reached (then the seconds to wait). */
  /** `newUser`: the user was created by this request (registration): no hourly count to check. */
  async #send(user: UserRecord, context: AuditContext, reason: string, newUser = false): Promise<{ retryAfterS?: number }> {
    const issued = await issueToken(this.db, {
      userId: user.user_id,
      kind: 'verify_email',
      email: user.email,
      ttlMs: VERIFICATION_TTL_MS,
      maxPerHour: VERIFICATION_MAILS_PER_HOUR,
      perAddress: false,
      newUser,
      now: this.clock.now(),
    });
    if ('retryAfterS' in issued) return { retryAfterS: issued.retryAfterS };
    if ('noUser' in issued) return {};
    // The token travels in the fragment, so it never reaches a server's access log.
    this.mailer.send(verifyEmailMessage(user.email, `${this.publicUrl}/verify-email#token=${issued.token}`));
    await this.audit.record('email_verification_sent', context, { reason });
    return {};
  }

  async registered(user: UserRecord, client: ClientInfo): Promise<void> {
    await this.#send(user, { userId: user.user_id, ...client }, 'registered', true).catch((err: unknown) => this.log.error({ err }, 'verification mail after registration failed'));
  }

  /**
   * An email change sends two mails (the new address's link, the old address's notice), so it
   * shares the hourly cap of verification mails: past it the change is refused (429) rather than
   * made without its mails, and a changing address can never mail anyone without limit. (The
   * proof of presence an email change needs is checked before, by UsersService.updateProfile.)
   */
  async assertMayChangeEmail(caller: Caller, newEmail: string): Promise<void> {
    const waitS = await hourlyCapWait(this.db, { userId: caller.userId, kind: 'verify_email', email: newEmail, maxPerHour: VERIFICATION_MAILS_PER_HOUR, perAddress: false, now: this.clock.now() });
    if (waitS === undefined) return;
    await this.audit.record('throttled', caller, { what: 'email_change' });
    throw new AppError('too_many_requests', { headers: { 'retry-after': String(waitS) } });
  }

  async emailChanged(user: UserRecord, oldEmail: string, caller: Caller): Promise<void> {
    try {
      // ASVS 5.0 V6.3.7: the old address hears of the change.
      this.mailer.send(emailChangedMessage(oldEmail, user.email));
      await this.#send(user, caller, 'email_changed');
    } catch (err) {
      this.log.error({ err }, 'mail after an email change failed');
    }
  }

  /** POST /v1/users/me/email-verification: a new link; the sixth mail in an hour is 429. */
  async requestNew(caller: Caller): Promise<void> {
    const user = await findUserById(this.db, caller.userId);
    if (!user) throw new AppError('invalid_token');
    // Already verified: there is nothing to confirm, so no mail (the answer is the same).
    if (user.email_verified) return;
    const { retryAfterS } = await this.#send(user, caller, 'requested');
    if (retryAfterS !== undefined) {
      await this.audit.record('throttled', caller, { what: 'email_verification' });
      throw new AppError('too_many_requests', { headers: { 'retry-after': String(retryAfterS) } });
    }
  }

  /** POST /v1/email-verifications: the link's token marks the email verified, once. */
  async verify(token: string, client: ClientInfo): Promise<void> {
    const live = await findLiveToken(this.db, 'verify_email', token, this.clock.now());
    if (!live) throw new AppError('invalid_verification_token');
    await this.db.transaction().execute(async (trx) => {
      // Both or neither: the token used up, and the address it went to (still the user's) verified.
      if (!(await consumeToken(trx, live.token_id, this.clock.now())) || !(await markEmailVerified(trx, live.user_id, live.email))) {
        throw new AppError('invalid_verification_token');
      }
      await this.events.record(trx, { type: 'user.email_verified', userId: String(live.user_id), data: { email: live.email } });
      await this.invalidation.publish(trx, 'user', [live.user_id]);
    });
    this.invalidation.forget('user', [live.user_id]);
    await this.audit.record('email_verified', { userId: live.user_id, ...client }, { via: 'link' });
  }
}
