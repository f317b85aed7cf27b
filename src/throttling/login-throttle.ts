import type { Kysely } from 'kysely';
import { afterAttemptRow, beginAttempt, endFailedAttempt, leaveCeilingQuery, releaseAttempt, resetAttemptQuery } from '../db/counters.js';
import type { SideWrite } from '../db/side-writes.js';
import type { Database } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { AttemptGate } from '../core/reauth.js';
import type { Clock } from '../core/clock.js';
import { lookupKey } from '../core/lookup-key.js';
import { addressKey } from './address-key.js';
import { deleteInBatches, type PruneOptions } from '../db/batched-delete.js';

/**
 * Failed-login throttling (API.md, Throttling; ASVS 5.0 V6.3.1; NIST SP 800-63B rev 4 3.2.2):
 * - per account and client address (an IPv6 address by its /64, see address-key.ts): after `maxFailures` failures in a row the pair waits
 *   `baseWaitS`, doubling with each further failure, up to `maxWaitS`. An attempt during the wait
 *   answers 429 and neither counts nor extends it; a completed sign-in resets the count.
 * - a name that belongs to no account is counted per that name in exactly the same way, so the
 *   throttle never tells whether an account exists.
 * - per account across all addresses, `accountHourlyCeiling` failures an hour; past it only
 *   addresses the account signed in from in the last 30 days may still try (a name that is no
 *   account has no such addresses, exactly like an account attacked from new ones).
 * Attempts are counted before the hash, so guesses sent at once cannot outrun the count.
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

/**
 * One attempt under way: pass it back to `failed` or `released`, or, for a completed sign-in, to
 * the session's insert (sessions/repository.ts, insertSession), which resets it in the same round trip.
 */
export interface Attempt {
  key: string;
  ceilingKey: string;
}

export interface LoginThrottleDeps {
  db: Kysely<Database>;
  settings: LoginThrottleSettings;
  /** Where a refused attempt is recorded ('throttled'). */
  audit: Pick<AuditLog, 'record'>;
  /** The addresses the account opened sessions from since `since` (sessions/repository.ts): the ceiling lets them through. */
  knownAddresses(userId: string, since: Date): Promise<string[]>;
  clock: Clock;
}

export class LoginThrottle implements AttemptGate<Attempt> {
  private readonly db: Kysely<Database>;
  private readonly settings: LoginThrottleSettings;

  constructor(private readonly deps: LoginThrottleDeps) {
    this.db = deps.db;
    this.settings = deps.settings;
  }

  #who(subject: LoginSubject): string {
    return 'userId' in subject ? `account:${subject.userId}` : `name:${lookupKey(subject.unknownName)}`;
  }

  /**
   * Counts an attempt before its password is checked, or throws 429 with Retry-After, recorded
   * as a 'throttled' event of `context` for `what` (a login, a re-authentication...). Counting
   * first means guesses sent all at once are held to the same numbers as guesses sent in turn.
   */
  async begin(subject: LoginSubject, context: { userId: string | null; ip: string | null; userAgent: string | null }, what: string): Promise<Attempt> {
    try {
      return await this.#begin(subject, context.ip);
    } catch (err) {
      if (err instanceof AppError && err.code === 'too_many_requests') await this.deps.audit.record('throttled', context, { what });
      throw err;
    }
  }

  async #begin(subject: LoginSubject, ip: string | null): Promise<Attempt> {
    const now = this.deps.clock.now();
    const who = this.#who(subject);
    const key = `${who}|${addressKey(ip)}`;
    // The hourly ceiling across addresses, kept alike for accounts and unknown names.
    const windowStart = Math.floor(now / HOUR_MS) * HOUR_MS;
    const attempt = { key, ceilingKey: `ceiling:${who}|${windowStart}` };
    const { maxFailures } = this.settings;
    const row = await beginAttempt(this.db, attempt.key, attempt.ceilingKey, { now: new Date(now), maxFailures });
    if (row.in_hour === null) {
      // Not admitted (see admits()): it neither counts nor extends a wait, and never reached the ceiling.
      await releaseAttempt(this.db, attempt.key, null);
      const waiting = row.locked_until && row.locked_until.getTime() > now;
      throw tooManyRequests(waiting ? (row.locked_until!.getTime() - now) / 1000 : this.#waitAfter(Math.max(row.failures, maxFailures)));
    }
    if (row.in_hour > this.settings.accountHourlyCeiling && !('userId' in subject && (await this.#isKnownAddress(subject.userId, ip)))) {
      await releaseAttempt(this.db, attempt.key, attempt.ceilingKey);
      throw tooManyRequests((windowStart + HOUR_MS - now) / 1000);
    }
    return attempt;
  }

  async failed(attempt: Attempt): Promise<void> {
    const failures = await endFailedAttempt(this.db, attempt.key);
    if (failures >= this.settings.maxFailures) {
      const lockedUntil = new Date(this.deps.clock.now() + this.#waitAfter(failures) * 1000);
      await this.db.updateTable('login_throttles').set({ locked_until: lockedUntil }).where('throttle_key', '=', attempt.key).execute();
    }
  }

  /**
   * A password sign-in completed: its count for the subject and address starts again and the
   * attempt leaves the hourly ceiling, written with the new session in the same round trip
   * (sessions/repository.ts, insertSession), even if no session opens (the password was right).
   */
  completion(attempt: Attempt): SideWrite<unknown> {
    return {
      // The ceiling's row is locked after the attempt's (see db/counters.ts, beginAttempt).
      ctes: (db) => [
        ['attempt_reset', resetAttemptQuery(db, attempt.key).returning('pending')],
        ['ceiling_left', leaveCeilingQuery(db, attempt.ceilingKey).where(afterAttemptRow('attempt_reset'))],
      ],
      run: async (trx) => {
        await resetAttemptQuery(trx, attempt.key).execute();
        await leaveCeilingQuery(trx, attempt.ceilingKey).execute();
      },
    };
  }

  /** A sign-in that completed without a password attempt (a passkey): this account and address start again. */
  async signedIn(userId: string, ip: string | null): Promise<void> {
    await this.db.deleteFrom('login_throttles').where('throttle_key', '=', `account:${userId}|${addressKey(ip)}`).execute();
  }

  /** A re-authentication that checked out: no failure, but the count of failures stays (only a sign-in resets it). */
  async released(attempt: Attempt): Promise<void> {
    await releaseAttempt(this.db, attempt.key, attempt.ceilingKey);
  }

  /**
   * Forgets every failure counted against the account, from every address, and its hourly
   * ceiling (a completed password reset: the owner proved control of the mailbox).
   */
  async clearAccount(userId: string): Promise<void> {
    // Ids are digits, so `account:12|%` never matches account 123.
    await this.db
      .deleteFrom('login_throttles')
      .where((eb) => eb.or([eb('throttle_key', 'like', `account:${userId}|%`), eb('throttle_key', 'like', `ceiling:account:${userId}|%`)]))
      .execute();
  }

  /** Seconds to wait after `failures` failures in a row: the base, doubling, up to the maximum. */
  #waitAfter(failures: number): number {
    return Math.min(this.settings.baseWaitS * 2 ** (failures - this.settings.maxFailures), this.settings.maxWaitS);
  }

  /**
   * Whether the account signed in from this address (an IPv6 address: from its /64, as the
   * counts key it) in the last KNOWN_ADDRESS_DAYS. Runs only past the hourly ceiling.
   */
  async #isKnownAddress(userId: string, ip: string | null): Promise<boolean> {
    if (!ip) return false;
    const since = new Date(this.deps.clock.now() - KNOWN_ADDRESS_DAYS * 24 * HOUR_MS);
    const key = addressKey(ip);
    return (await this.deps.knownAddresses(userId, since)).some((known) => addressKey(known) === key);
  }

  /** Forgets state that no longer matters (old windows, waits long over). */
  prune(options?: PruneOptions): Promise<number> {
    const now = this.deps.clock.now();
    return deleteInBatches(this.db, {
      table: 'login_throttles',
      key: ['throttle_key'],
      oldestFirst: 'updated_at',
      where: (eb) => eb.and([eb('updated_at', '<', new Date(now - 24 * HOUR_MS)), eb.or([eb('locked_until', 'is', null), eb('locked_until', '<', new Date(now))])]),
    }, options);
  }
}
