import rateLimit from '@fastify/rate-limit';
import type { Kysely } from 'kysely';
import { incrementRateLimitHits } from '../db/counters.js';
import type { Database } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { App } from '../http/types.js';
import type { AuditLog } from '../audit/audit-log.js';
import { clientOf } from '../http/client.js';

/**
 * Per-address request limits (API.md, Throttling: registration and refresh, each its own count)
 * through @fastify/rate-limit, with its counters in the database so that all instances sharing
 * it count together. Routes opt in with `config: { rateLimit: perMinute(n) }`.
 */

interface StoreResult {
  current: number;
  ttl: number;
}

function databaseStore(db: Kysely<Database>) {
  return class DatabaseRateLimitStore {
    incr(key: string, callback: (err: Error | null, result?: StoreResult) => void, timeWindow = 60_000): void {
      const now = Date.now();
      const windowStart = Math.floor(now / timeWindow) * timeWindow;
      incrementRateLimitHits(db, key, new Date(windowStart)).then(
        (current) => callback(null, { current, ttl: windowStart + timeWindow - now }),
        (err: Error) => callback(err),
      );
    }

    child(): DatabaseRateLimitStore {
      return this;
    }
  };
}

// ASVS 5.0 V2.4.1 anti-automation (registration and refresh; login is throttled in login-throttle.ts).
export async function registerRateLimit(app: App, db: Kysely<Database>, audit: AuditLog): Promise<void> {
  // One audit event per bucket and minute on this instance: a flood of refused requests must not
  // become a flood of writes.
  const audited = new Map<string, number>();
  await app.register(rateLimit, {
    global: false,
    store: databaseStore(db),
    // Each route counts on its own.
    keyGenerator: (request) => `${request.routeOptions.url}|${request.ip}`,
    addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
    addHeaders: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false, 'retry-after': true },
    onExceeded: (request, key) => {
      const minute = Math.floor(Date.now() / 60_000);
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

export function perMinute(max: number) {
  return { max, timeWindow: 60_000 };
}

export async function pruneRateLimitHits(db: Kysely<Database>): Promise<void> {
  await db.deleteFrom('rate_limit_hits').where('window_start', '<', new Date(Date.now() - 3_600_000)).execute();
}
