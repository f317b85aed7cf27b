import type { Kysely } from 'kysely';
import { incrementAccountFailures, incrementLoginFailures } from '../db/counters.js';
import type { Database } from '../db/schema.js';
import { AppError } from '../errors.js';
import { lookupKey } from '../users/repository.js';

/**
 * Failed-login throttling (API.md, Throttling; ASVS 5.0 V6.3.1; NIST SP 800-63B rev 4 3.2.2):
 * - per account and client address: after `maxFailures` failures in a row the pair waits
 *   `baseWaitS`, doubling with each further failure, up to `maxWaitS`. An attempt during the wait
 *   answers 429 and neither counts nor extends it; a completed sign-in resets the count.
 * - a name that belongs to no account is counted per that name in exactly the same way, so the
 *   throttle never tells whether an account exists.
 * - per account across all addresses, `accountHourlyCeiling` failures an hour; past it only
 *   addresses the account signed in from in the last 30 days may still try.
 */

export interface LoginThrottleSettings {
  maxFailures: number;
  baseWaitS: number;
  maxWaitS: number;
  accountHourlyCeiling: number;
}

/** Who is trying: an account, or a name that matched none. */
export type LoginSubject = { userId: string } | { unknownName: string };

const HOUR_MS = 3_600_000;
const KNOWN_ADDRESS_DAYS = 30;

function tooManyRequests(retryAfterS: number): AppError {
  return new AppError('too_many_requests', { headers: { 'retry-after': String(Math.max(1, Math.ceil(retryAfterS))) } });
}

export class LoginThrottle {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly settings: LoginThrottleSettings,
  ) {}

  #key(subject: LoginSubject, ip: string | null): string {
    const who = 'userId' in subject ? `account:${subject.userId}` : `name:${lookupKey(subject.unknownName)}`;
    return `${who}|${ip ?? 'unknown'}`;
  }

  /**
   * Throws 429 with Retry-After while this subject and address must wait. Answers whether they
   * have failures on record (a completed sign-in then clears them).
   */
  async check(subject: LoginSubject, ip: string | null): Promise<{ hasFailures: boolean }> {
    const now = Date.now();
    const row = await this.db.selectFrom('login_throttles').select('locked_until').where('throttle_key', '=', this.#key(subject, ip)).executeTakeFirst();
    if (row?.locked_until && row.locked_until.getTime() > now) throw tooManyRequests((row.locked_until.getTime() - now) / 1000);

    if ('userId' in subject) {
      const windowStart = new Date(Math.floor(now / HOUR_MS) * HOUR_MS);
      const account = await this.db
        .selectFrom('login_account_failures')
        .select('failures')
        .where('user_id', '=', subject.userId)
        .where('window_start', '=', windowStart)
        .executeTakeFirst();
      if (account && account.failures >= this.settings.accountHourlyCeiling && !(await this.#isKnownAddress(subject.userId, ip))) {
        throw tooManyRequests((windowStart.getTime() + HOUR_MS - now) / 1000);
      }
    }
    return { hasFailures: row !== undefined };
  }

  async recordFailure(subject: LoginSubject, ip: string | null): Promise<void> {
    const key = this.#key(subject, ip);
    const failures = await incrementLoginFailures(this.db, key);
    if (failures >= this.settings.maxFailures) {
      const waitS = Math.min(this.settings.baseWaitS * 2 ** (failures - this.settings.maxFailures), this.settings.maxWaitS);
      await this.db.updateTable('login_throttles').set({ locked_until: new Date(Date.now() + waitS * 1000) }).where('throttle_key', '=', key).execute();
    }
    if ('userId' in subject) {
      await incrementAccountFailures(this.db, subject.userId, new Date(Math.floor(Date.now() / HOUR_MS) * HOUR_MS));
    }
  }

  /** A completed sign-in: the count for this subject and address starts again. */
  async recordSuccess(subject: LoginSubject, ip: string | null): Promise<void> {
    await this.db.deleteFrom('login_throttles').where('throttle_key', '=', this.#key(subject, ip)).execute();
  }

  async #isKnownAddress(userId: string, ip: string | null): Promise<boolean> {
    if (!ip) return false;
    const since = new Date(Date.now() - KNOWN_ADDRESS_DAYS * 24 * HOUR_MS);
    const row = await this.db
      .selectFrom('user_sessions')
      .select('session_id')
      .where('user_id', '=', userId)
      .where('ip', '=', ip)
      .where('created_at', '>', since)
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Forgets state that no longer matters (old windows, waits long over). */
  async prune(): Promise<void> {
    const hourAgo = new Date(Date.now() - HOUR_MS);
    await this.db.deleteFrom('login_account_failures').where('window_start', '<', hourAgo).execute();
    await this.db
      .deleteFrom('login_throttles')
      .where('updated_at', '<', new Date(Date.now() - 24 * HOUR_MS))
      .execute();
  }
}
