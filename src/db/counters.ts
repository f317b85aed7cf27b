import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';

/**
 * Atomic counters for throttling: add one and read the new value in one statement, so that
 * concurrent requests on any instance never lose a count.
 * PostgreSQL-only (INSERT … ON CONFLICT); the one place another dialect supplies its upsert.
 */

export async function incrementLoginFailures(db: Kysely<Database>, key: string): Promise<number> {
  const row = await db
    .insertInto('login_throttles')
    .values({ throttle_key: key, failures: 1, locked_until: null })
    .onConflict((oc) => oc.column('throttle_key').doUpdateSet({ failures: sql`login_throttles.failures + 1`, updated_at: sql`now()` }))
    .returning('failures')
    .executeTakeFirstOrThrow();
  return row.failures;
}

export async function incrementAccountFailures(db: Kysely<Database>, userId: string, windowStart: Date): Promise<number> {
  const row = await db
    .insertInto('login_account_failures')
    .values({ user_id: userId, window_start: windowStart, failures: 1 })
    .onConflict((oc) => oc.columns(['user_id', 'window_start']).doUpdateSet({ failures: sql`login_account_failures.failures + 1` }))
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
