import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';

/**
 * Atomic counters for throttling: change a count and read the new value in one statement, so
 * that concurrent requests on any instance never lose a count.
 * PostgreSQL-only (INSERT … ON CONFLICT); the one place another dialect supplies its upsert.
 */

/** An attempt that is not back within this long is no longer counted as pending (a crashed request). */
const PENDING_STALE_S = 60;

/** Counts an attempt as pending; answers the row as it is now. */
export async function beginAttempt(db: Kysely<Database>, key: string) {
  return db
    .insertInto('login_throttles')
    .values({ throttle_key: key, failures: 0, pending: 1, locked_until: null })
    .onConflict((oc) =>
      oc.column('throttle_key').doUpdateSet({
        pending: sql`case when login_throttles.updated_at < now() - make_interval(secs => ${PENDING_STALE_S}) then 1 else login_throttles.pending + 1 end`,
        updated_at: sql`now()`,
      }),
    )
    .returning(['failures', 'pending', 'locked_until'])
    .executeTakeFirstOrThrow();
}

/** The attempt is over: not pending any more, and a failure counted if it failed. */
export async function endAttempt(db: Kysely<Database>, key: string, failed: boolean): Promise<number> {
  const row = await db
    .updateTable('login_throttles')
    .set({
      pending: sql`greatest(pending - 1, 0)`,
      failures: failed ? sql`failures + 1` : sql`failures`,
      updated_at: sql`now()`,
    })
    .where('throttle_key', '=', key)
    .returning('failures')
    .executeTakeFirst();
  return row?.failures ?? 0;
}

/** Adds `delta` to a plain counter (the hourly ceiling) and answers the new value. */
export async function addToCounter(db: Kysely<Database>, key: string, delta: number): Promise<number> {
  const row = await db
    .insertInto('login_throttles')
    .values({ throttle_key: key, failures: Math.max(delta, 0), locked_until: null })
    .onConflict((oc) => oc.column('throttle_key').doUpdateSet({ failures: sql`greatest(login_throttles.failures + ${delta}, 0)`, updated_at: sql`now()` }))
    .returning('failures')
    .executeTakeFirstOrThrow();
  return row.failures;
}

export async function incrementRateLimitHits(db: Kysely<Database>, bucket: string, windowStart: Date): Promise<number> {
  const row = await db
    .insertInto('rate_limit_hits')
    .values({ bucket, window_start: windowStart, hits: 1 })
    .onConflict((oc) => oc.columns(['bucket', 'window_start']).doUpdateSet({ hits: sql`rate_limit_hits.hits + 1` }))
    .returning('hits')
    .executeTakeFirstOrThrow();
  return row.hits;
}
