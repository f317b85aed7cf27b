import { sql, type Kysely } from 'kysely';
import { isMysql } from './dialect.js';
import type { Database } from './schema.js';

/**
 * Atomic counters for throttling: change a count and read the new value, so that concurrent
 * requests on any instance never lose a count. The one place each dialect supplies its upsert:
 * PostgreSQL does it in one statement (INSERT … ON CONFLICT … RETURNING); MySQL/MariaDB in a
 * transaction (INSERT … ON DUPLICATE KEY UPDATE, then a read of the row it holds locked).
 */

/** An attempt that is not back within this long is no longer counted as pending (a crashed request). */
const PENDING_STALE_S = 60;

/** Counts an attempt as pending; answers the row as it is now. */
export async function beginAttempt(db: Kysely<Database>, key: string) {
  if (isMysql(db)) {
    return db.transaction().execute(async (trx) => {
      await trx
        .insertInto('login_throttles')
        .values({ throttle_key: key, failures: 0, pending: 1, locked_until: null })
        // MySQL assigns left to right: pending reads updated_at before it changes.
        .onDuplicateKeyUpdate({
          pending: sql`case when updated_at < current_timestamp(3) - interval ${PENDING_STALE_S} second then 1 else pending + 1 end`,
          updated_at: sql`current_timestamp(3)`,
        })
        .execute();
      return trx.selectFrom('login_throttles').select(['failures', 'pending', 'locked_until']).where('throttle_key', '=', key).executeTakeFirstOrThrow();
    });
  }
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
  const mysql = isMysql(db);
  const update = (q: Kysely<Database>) =>
    q
      .updateTable('login_throttles')
      .set({
        pending: sql`greatest(pending - 1, 0)`,
        failures: failed ? sql`failures + 1` : sql`failures`,
        updated_at: mysql ? sql`current_timestamp(3)` : sql`now()`,
      })
      .where('throttle_key', '=', key);
  if (mysql) {
    return db.transaction().execute(async (trx) => {
      await update(trx).execute();
      const row = await trx.selectFrom('login_throttles').select('failures').where('throttle_key', '=', key).executeTakeFirst();
      return row?.failures ?? 0;
    });
  }
  const row = await update(db).returning('failures').executeTakeFirst();
  return row?.failures ?? 0;
}

/** Adds `delta` to a plain counter (the hourly ceiling) and answers the new value. */
export async function addToCounter(db: Kysely<Database>, key: string, delta: number): Promise<number> {
  if (isMysql(db)) {
    return db.transaction().execute(async (trx) => {
      await trx
        .insertInto('login_throttles')
        .values({ throttle_key: key, failures: Math.max(delta, 0), locked_until: null })
        .onDuplicateKeyUpdate({ failures: sql`greatest(failures + ${delta}, 0)`, updated_at: sql`current_timestamp(3)` })
        .execute();
      const row = await trx.selectFrom('login_throttles').select('failures').where('throttle_key', '=', key).executeTakeFirstOrThrow();
      return row.failures;
    });
  }
  const row = await db
    .insertInto('login_throttles')
    .values({ throttle_key: key, failures: Math.max(delta, 0), locked_until: null })
    .onConflict((oc) => oc.column('throttle_key').doUpdateSet({ failures: sql`greatest(login_throttles.failures + ${delta}, 0)`, updated_at: sql`now()` }))
    .returning('failures')
    .executeTakeFirstOrThrow();
  return row.failures;
}

export async function incrementRateLimitHits(db: Kysely<Database>, bucket: string, windowStart: Date): Promise<number> {
  if (isMysql(db)) {
    return db.transaction().execute(async (trx) => {
      await trx
        .insertInto('rate_limit_hits')
        .values({ bucket, window_start: windowStart, hits: 1 })
        .onDuplicateKeyUpdate({ hits: sql`hits + 1` })
        .execute();
      const row = await trx
        .selectFrom('rate_limit_hits')
        .select('hits')
        .where('bucket', '=', bucket)
        .where('window_start', '=', windowStart)
        .executeTakeFirstOrThrow();
      return row.hits;
    });
  }
  const row = await db
    .insertInto('rate_limit_hits')
    .values({ bucket, window_start: windowStart, hits: 1 })
    .onConflict((oc) => oc.columns(['bucket', 'window_start']).doUpdateSet({ hits: sql`rate_limit_hits.hits + 1` }))
    .returning('hits')
    .executeTakeFirstOrThrow();
  return row.hits;
}
