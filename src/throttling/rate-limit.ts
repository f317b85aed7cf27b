import rateLimit from '@fastify/rate-limit';
import fp from 'fastify-plugin';
import type { Clock } from '../core/clock.js';
import { backgroundJob, PRUNE_EVERY_MS } from '../core/jobs.js';
import type { LoginThrottle } from './login-throttle.js';
import { addressKey } from './address-key.js';
import type { Kysely } from 'kysely';
import { addRateLimitHits } from '../db/counters.js';
import type { Database } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { App, Feature } from '../http/types.js';
import type { AuditLog } from '../audit/audit-log.js';
import { clientOf } from '../core/caller.js';
import { deleteInBatches, type PruneOptions } from '../db/batched-delete.js';

/**
 * Per-address request limits (API.md, Throttling: registration and refresh, each its own count)
 * through @fastify/rate-limit, with its counters in the database so that all instances sharing
 * it count together. Routes opt in with `config: { rateLimit: perMinute(n) }`.
 */

interface StoreResult {
  current: number;
  ttl: number;
}

/** The most hits of one busy window an instance reserves in the database ahead of use. */
const MAX_LEASE = 64;

/** One address's window of one route, as this instance knows it. */
interface Window {
  start: number;
  end: number;
  /**
   * Counts reserved in the database and not yet handed out: `next` up to `last`; `last` is also
   * the window's total in the database as of this instance's last write.
   */
  next: number;
  last: number;
  /** How many hits the next write reserves beyond those waiting. */
  lease: number;
  lastWriteAt: number;
  waiting: Array<{ resolve: (count: number) => void; reject: (err: unknown) => void }>;
  writing: boolean;
}

/**
 * Counts each hit of a window in the database, shared by every instance, with few writes:
 * - hits that arrive while this instance writes a window go in its next write, together;
 * - a window that is busy (written again within a second) reserves hits ahead, doubling up to
 *   MAX_LEASE but never more than a tenth of the limit nor half of what is left below it, and
 *   hands them out without a write;
 * - a window known to be over its limit refuses at once, without a write: counts only grow.
 * Every hit gets a count of its own from the database's total, so however the instances
 * interleave, no more than `max` hits of a window are ever under the limit. Reserved hits left
 * unused at the end of a window are lost, so with several instances an address can be refused
 * a little before its limit, never after.
 */
export class RateLimitCounter {
  readonly #windows = new Map<string, Window>();
  #sweptAt = 0;

  constructor(
    private readonly db: Kysely<Database>,
    /** Only for the lease's pace; windows come from the time each hit is given. */
    private readonly clock: Clock,
  ) {}

  /** The hit's count in its window (over `max` means refuse). */
  hit(bucket: string, now: number, timeWindow: number, max: number): Promise<number> {
    const start = Math.floor(now / timeWindow) * timeWindow;
    let window = this.#windows.get(bucket);
    if (!window || window.start !== start) {
      if (this.#windows.size >= 10_000 && now - this.#sweptAt > 10_000) this.#forgetEnded(now);
      window = { start, end: start + timeWindow, next: 1, last: 0, lease: 0, lastWriteAt: 0, waiting: [], writing: false };
      this.#windows.set(bucket, window);
    }
    if (window.next <= window.last) return Promise.resolve(window.next++);
    if (window.last > max) return Promise.resolve(window.last + 1);
    const counted = new Promise<number>((resolve, reject) => window.waiting.push({ resolve, reject }));
    if (!window.writing) {
      window.writing = true;
      // Hits of the same turn of the event loop go in the same write.
      queueMicrotask(() => void this.#write(bucket, window, max));
    }
    return counted;
  }

  async #write(bucket: string, window: Window, max: number): Promise<void> {
    while (window.waiting.length) {
      const waiting = window.waiting.splice(0);
      const now = this.clock.now();
      window.lease = now - window.lastWriteAt < 1000 ? Math.min(MAX_LEASE, Math.max(1, window.lease * 2)) : 0;
      window.lastWriteAt = now;
      // Never more than a tenth of the limit, nor half of what this instance last saw was left.
      const ahead = Math.max(0, Math.min(window.lease, Math.floor(max / 10), Math.floor((max - window.last - waiting.length) / 2)));
      try {
        const total = await addRateLimitHits(this.db, bucket, new Date(window.start), waiting.length + ahead);
        // This write's hits are the last ones of the total: the waiting first, then those reserved.
        let count = total - ahead - waiting.length + 1;
        for (const hit of waiting) hit.resolve(count++);
        window.next = count;
        window.last = total;
      } catch (err) {
        for (const hit of waiting) hit.reject(err);
      }
      while (window.waiting.length && window.next <= window.last) window.waiting.shift()!.resolve(window.next++);
    }
    window.writing = false;
  }

  #forgetEnded(now: number): void {
    this.#sweptAt = now;
    for (const [bucket, window] of this.#windows) if (window.end <= now && !window.writing) this.#windows.delete(bucket);
  }
}

function databaseStore(counter: RateLimitCounter, clock: Clock) {
  return class DatabaseRateLimitStore {
    incr(key: string, callback: (err: Error | null, result?: StoreResult) => void, timeWindow = 60_000, max = Number.MAX_SAFE_INTEGER): void {
      const now = clock.now();
      const windowEnd = (Math.floor(now / timeWindow) + 1) * timeWindow;
      counter.hit(key, now, timeWindow, max).then(
        (current) => callback(null, { current, ttl: windowEnd - now }),
        (err: Error) => callback(err),
      );
    }

    child(): DatabaseRateLimitStore {
      return this;
    }
  };
}

// ASVS 5.0 V2.4.1 anti-automation (registration and refresh; login is throttled in login-throttle.ts).
export async function registerRateLimit(app: App, db: Kysely<Database>, audit: AuditLog, clock: Clock): Promise<void> {
  // One audit event per bucket and minute on this instance: a flood of refused requests must not
  // become a flood of writes.
  const audited = new Map<string, number>();
  await app.register(rateLimit, {
    global: false,
    store: databaseStore(new RateLimitCounter(db, clock), clock),
    // Each route counts on its own.
    keyGenerator: (request) => `${request.routeOptions.url}|${addressKey(request.ip)}`,
    addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
    addHeaders: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false, 'retry-after': true },
    onExceeded: (request, key) => {
      const minute = Math.floor(clock.now() / 60_000);
      if (audited.get(key) === minute) return;
      if (audited.size > 10_000) audited.clear();
      audited.set(key, minute);
      audit
        .record('throttled', clientOf(request), { what: request.routeOptions.url ?? '' })
        .catch((err) => request.log.warn({ err }, 'audit write failed'));
    },
    errorResponseBuilder: (_request, context) =>
      new AppError('too_many_requests', { headers: { 'retry-after': String(Math.max(1, Math.ceil(context.ttl / 1000))) } }),
  });
}

export interface ThrottlingFeatureDeps {
  db: Kysely<Database>;
  audit: AuditLog;
  throttle: Pick<LoginThrottle, 'prune'>;
  clock: Clock;
}

/**
 * Per-address limits for the routes of every feature (a route opts in with
 * `config: { rateLimit: perMinute(n) }`), and the pruning of throttling state. Not encapsulated
 * (fastify-plugin): the limits must reach the routes other features add.
 */
export const throttlingFeature: Feature<ThrottlingFeatureDeps> = fp(
  async (app: App, { db, audit, throttle, clock }: ThrottlingFeatureDeps) => {
    await registerRateLimit(app, db, audit, clock);
    backgroundJob(app, 'pruning throttling state', PRUNE_EVERY_MS, () => Promise.all([throttle.prune(), pruneRateLimitHits(db, clock.now())]));
  },
  { name: 'throttling' },
);

export function perMinute(max: number) {
  return { max, timeWindow: 60_000 };
}

export function pruneRateLimitHits(db: Kysely<Database>, now: number, options?: PruneOptions): Promise<number> {
  const before = new Date(now - 3_600_000);
  return deleteInBatches(db, { table: 'rate_limit_hits', key: ['bucket', 'window_start'], oldestFirst: 'window_start', where: (eb) => eb('window_start', '<', before) }, options);
}
