import type { Kysely } from 'kysely';
import { addressKey } from '../throttling/address-key.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { Invalidation } from '../cache/invalidation.js';
import type { CredentialsService } from '../credentials/service.js';
import { addRateLimitHits } from '../db/counters.js';
import type { Database } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { Mailer } from '../mail/mailer.js';
import { passwordResetMessage } from '../mail/templates.js';
import type { ClientInfo } from '../core/caller.js';
import type { Clock } from '../core/clock.js';
import type { LoginThrottle } from '../throttling/login-throttle.js';
import { deleteMfaTokens } from '../mfa/repository.js';
import { findUserByLogin } from '../users/repository.js';
import type { BackgroundJobs } from './background.js';
import { consumeToken, findLiveToken, HOUR_MS, issueToken, markEmailVerified } from './tokens.js';

/** API-ACCOUNT.md, Password reset. */
export const RESET_TTL_MS = 30 * 60_000;
export const RESET_MAILS_PER_HOUR = 5;

export interface PasswordResetSettings {
  publicUrl: string;
  rateLimitPerMinute: number;
}

export interface PasswordResetDeps {
  db: Kysely<Database>;
  credentials: Pick<CredentialsService, 'replacePassword'>;
  throttle: Pick<LoginThrottle, 'clearAccount'>;
  mailer: Mailer;
  jobs: BackgroundJobs;
  audit: AuditLog;
  invalidation: Invalidation;
  config: PasswordResetSettings;
  clock: Clock;
}

export class PasswordReset {
  private readonly db: Kysely<Database>;
  private readonly credentials: Pick<CredentialsService, 'replacePassword'>;
  private readonly throttle: Pick<LoginThrottle, 'clearAccount'>;
  private readonly mailer: Mailer;
  private readonly jobs: BackgroundJobs;
  private readonly audit: AuditLog;
  private readonly invalidation: Invalidation;
  private readonly settings: PasswordResetSettings;
  private readonly clock: Clock;

  constructor(deps: PasswordResetDeps) {
    this.clock = deps.clock;
    ({ db: this.db, credentials: this.credentials, throttle: this.throttle, mailer: this.mailer, jobs: this.jobs, audit: this.audit, invalidation: this.invalidation, config: this.settings } = deps);
  }

  /**
   * POST /v1/password-resets. The answer is the same 202, in the same time, for every address:
   * the request path only counts the client address (the same work for all). The look-up, the
   * hourly cap per address and the mail are the work this answers; call it once the answer has
   * gone (on the embedded database a query runs on the same thread, so work started before
   * the answer is written would delay it, for known addresses only).
   */
  async request(email: string, client: ClientInfo): Promise<() => void> {
    // Counted like the other per-address limits (rate_limit_hits, shared by all instances); past
    // it nothing is done, and the answer is still 202, so a throttle tells nothing.
    const windowStart = Math.floor(this.clock.now() / 60_000) * 60_000;
    const hits = await addRateLimitHits(this.db, `/v1/password-resets|${addressKey(client.ip)}`, new Date(windowStart), 1);
    if (hits > this.settings.rateLimitPerMinute) return () => {};
    const start = this.jobs.reserve();
    return () => start(() => this.#mailReset(email, client));
  }

  async #mailReset(email: string, client: ClientInfo): Promise<void> {
    const user = await findUserByLogin(this.db, 'email', email);
    if (!user) return; // no account, no mail, no event
    const context = { userId: user.user_id, ...client };
    if (user.disabled_at) {
      await this.audit.record('password_reset_requested', context, { sent: false, reason: 'disabled' });
      return;
    }
    const issued = await issueToken(this.db, { userId: user.user_id, kind: 'password_reset', email: user.email, ttlMs: RESET_TTL_MS, maxPerHour: RESET_MAILS_PER_HOUR, perAddress: true, now: this.clock.now() });
    if ('noUser' in issued) return;
    if ('retryAfterS' in issued) {
      await this.audit.record('password_reset_requested', context, { sent: false, reason: 'throttled' });
      return;
    }
    this.mailer.send(passwordResetMessage(user.email, `${this.settings.publicUrl}/reset-password#token=${issued.token}`));
    await this.audit.record('password_reset_requested', context, { sent: true });
  }

  /**
   * POST /v1/password-resets/complete: a new current password (policy and last-5 rule), every
   * session ended, the login throttle of the account cleared, the token used up and the email
   * verified (the mail reached it). A refused password leaves the token usable.
   */
  async complete(token: string, newPassword: string, client: ClientInfo): Promise<void> {
    const live = await findLiveToken(this.db, 'password_reset', token, this.clock.now());
    if (!live) throw new AppError('invalid_reset_token');
    const revoked = await this.credentials
      .replacePassword(live.user_id, newPassword, async (trx) => {
        if (!(await consumeToken(trx, live.token_id, this.clock.now())) || !(await markEmailVerified(trx, live.user_id, live.email))) {
          throw new AppError('invalid_reset_token');
        }
        // A sign-in half-way (an mfa_token from the old password) dies with the old password.
        await deleteMfaTokens(trx, live.user_id);
        await this.invalidation.publish(trx, 'user', [live.user_id]);
      })
      .catch((err: unknown) => {
        // The account was deleted since the token was found: the token went with it.
        throw err instanceof AppError && err.code === 'not_found' ? new AppError('invalid_reset_token') : err;
      });
    this.invalidation.forget('user', [live.user_id]);
    // The owner proved control of the mailbox: the failures counted against the account are forgiven.
    await this.throttle.clearAccount(live.user_id);
    await this.audit.record('password_reset_completed', { userId: live.user_id, ...client }, { revoked_sessions: revoked.length });
  }
}

