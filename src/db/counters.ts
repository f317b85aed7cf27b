import { sql, type Kysely } from 'kysely';
import { dbNow, isMysql } from './dialect.js';
import type { Database } from './schema.js';

/**
 * Atomic counters for throttling: change a count and read the new value, so that concurrent
 * requests on any instance never lose a count. The one place each dialect supplies its upsert:
 * PostgreSQL does it in one statement (INSERT … ON CONFLICT … RETURNING); MySQL/MariaDB in a
 * transaction (INSERT … ON DUPLICATE KEY UPDATE, then a read of the row it holds locked).
 */

/** An attempt that is not back within this long is no longer counted as pending (a crashed request). */
const PENDING_STALE_S = 60;

/** An attempt's throttle row as it is once the attempt is counted as pending. */
export interface AttemptRow {
  failures: number;
  pending: number;
  locked_until: Date | null;
}

/**
 * Whether an attempt may go on to the password check: not during a wait and, before the limit,
 * as many at once as failures are left; after a wait, one at a time. (The same rule is written in
 * SQL in beginAttempt, so that a refused attempt never touches the hourly ceiling.)
 */
function admits(row: AttemptRow, now: Date, maxFailures: number): boolean {
  if (row.locked_until && row.locked_until.getTime() > now.getTime()) return false;
  return row.failures + row.pending <= maxFailures || (row.failures >= maxFailures && row.pending === 1);
}

/**
 * Counts an attempt as pending on its throttle row and, if the row admits it, as one more in its
 * hourly ceiling row; answers the row and the ceiling's count (null when not admitted). One
 * statement on PostgreSQL (two upserts in one WITH), since every login pays for it.
 */
export async function beginAttempt(
  db: Kysely<Database>,
  key: string,
  ceilingKey: string,
  rule: { now: Date; maxFailures: number },
): Promise<AttemptRow & { in_hour: number | null }> {
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
      const row = await trx.selectFrom('login_throttles').select(['failures', 'pending', 'locked_until']).where('throttle_key', '=', key).executeTakeFirstOrThrow();
      if (!admits(row, rule.now, rule.maxFailures)) return { ...row, in_hour: null };
      await trx
        .insertInto('login_throttles')
        .values({ throttle_key: ceilingKey, failures: 1, locked_until: null })
        .onDuplicateKeyUpdate({ failures: sql`failures + 1`, updated_at: sql`current_timestamp(3)` })
        .execute();
      const hour = await trx.selectFrom('login_throttles').select('failures').where('throttle_key', '=', ceilingKey).executeTakeFirstOrThrow();
      return { ...row, in_hour: hour.failures };
    });
  }
  const { now, maxFailures } = rule;
  return db
    .with('attempt', (q) =>
      q
        .insertInto('login_throttles')
        .values({ throttle_key: key, failures: 0, pending: 1, locked_until: null })
        .onConflict((oc) =>
          oc.column('throttle_key').doUpdateSet({
            pending: sql`case when login_throttles.updated_at < now() - make_interval(secs => ${PENDING_STALE_S}) then 1 else login_throttles.pending + 1 end`,
            updated_at: sql`now()`,
          }),
        )
        .returning(['failures', 'pending', 'locked_until']),
    )
    // Reads `attempt`, so the attempt's row is locked first: every statement here locks an
    // attempt's row before its ceiling's, so two of them never wait for each other.
    .with('hour', (q) =>
      q
        .insertInto('login_throttles')
        .columns(['throttle_key', 'failures', 'locked_until'])
        .expression((eb) =>
          eb
            .selectFrom('attempt')
            .select((s) => [s.val(ceilingKey).as('throttle_key'), s.lit(1).as('failures'), s.lit(null).as('locked_until')])
            // admits(), in SQL.
            .where((w) =>
              w.and([
                w.or([w('attempt.locked_until', 'is', null), w('attempt.locked_until', '<=', now)]),
                w.or([
                  w(w('attempt.failures', '+', w.ref('attempt.pending')), '<=', maxFailures),
                  w.and([w('attempt.failures', '>=', maxFailures), w('attempt.pending', '=', 1)]),
                ]),
              ]),
            ),
        )
        .onConflict((oc) => oc.column('throttle_key').doUpdateSet({ failures: sql`login_throttles.failures + 1`, updated_at: sql`now()` }))
        .returning('failures as in_hour'),
    )
    .selectFrom('attempt')
    .leftJoin('hour', (join) => join.onTrue())
    .select(['attempt.failures', 'attempt.pending', 'attempt.locked_until', 'hour.in_hour'])
    .executeTakeFirstOrThrow();
}

/**
 * An attempt that was no failure and no sign-in is over (refused, or a re-authentication): no
 * longer pending, and out of the hourly ceiling if it was counted there (`ceilingKey`). One
 * statement on PostgreSQL.
 */
export async function releaseAttempt(db: Kysely<Database>, key: string, ceilingKey: string | null): Promise<void> {
  if (isMysql(db)) {
    await db.transaction().execute(async (trx) => {
      await releaseAttemptQuery(trx, key).execute();
      if (ceilingKey !== null) await leaveCeilingQuery(trx, ceilingKey).execute();
    });
    return;
  }
  if (ceilingKey === null) {
    await releaseAttemptQuery(db, key).execute();
    return;
  }
  await sql`with released as (${releaseAttemptQuery(db, key).returning('pending')})
    ${leaveCeilingQuery(db, ceilingKey).where(afterAttemptRow('released'))}`.execute(db);
}

/**
 * A condition that is always true but reads the CTE `name` first, so that its row (the
 * attempt's) is locked before the ceiling's, as in beginAttempt: no two statements wait for each
 * other. Without a read, PostgreSQL runs an unread data-modifying WITH in no set order.
 */
export function afterAttemptRow(name: string) {
  return sql<boolean>`(select count(*) from ${sql.table(name)}) >= 0`;
}

/** A completed sign-in: the count for its subject and address starts again. */
export function resetAttemptQuery(db: Kysely<Database>, key: string) {
  return db.deleteFrom('login_throttles').where('throttle_key', '=', key);
}

function releaseAttemptQuery(db: Kysely<Database>, key: string) {
  return db.updateTable('login_throttles').set({ pending: sql`greatest(pending - 1, 0)`, updated_at: dbNow(db) }).where('throttle_key', '=', key);
}

/** An attempt that was no failure leaves the hourly ceiling. */
export function leaveCeilingQuery(db: Kysely<Database>, ceilingKey: string) {
  return db.updateTable('login_throttles').set({ failures: sql`greatest(failures - 1, 0)`, updated_at: dbNow(db) }).where('throttle_key', '=', ceilingKey);
}

/** A failed attempt is over: no longer pending, one more failure; answers the failures in a row. */
export async function endFailedAttempt(db: Kysely<Database>, key: string): Promise<number> {
  const update = (q: Kysely<Database>) =>
    q
      .updateTable('login_throttles')
      .set({ pending: sql`greatest(pending - 1, 0)`, failures: sql`failures + 1`, updated_at: dbNow(q) })
      .where('throttle_key', '=', key);
  if (isMysql(db)) {
    return db.transaction().execute(async (trx) => {
      await update(trx).execute();
      const row = await trx.selectFrom('login_throttles').select('failures').where('throttle_key', '=', key).executeTakeFirst();
      return row?.failures ?? 0;
    });
  }
  const row = await update(db).returning('failures').executeTakeFirst();
  return row?.failures ?? 0;
}

/** Adds `hits` to a per-address window (throttling/rate-limit.ts) and answers its new total. */
export async function addRateLimitHits(db: Kysely<Database>, bucket: string, windowStart: Date, hits: number): Promise<number> {
  if (isMysql(db)) {
    return db.transaction().execute(async (trx) => {
      await trx
        .insertInto('rate_limit_hits')
        .values({ bucket, window_start: windowStart, hits })
        .onDuplicateKeyUpdate({ hits: sql`hits + ${hits}` })
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
    .values({ bucket, window_start: windowStart, hits })
    .onConflict((oc) => oc.columns(['bucket', 'window_start']).doUpdateSet({ hits: sql`rate_limit_hits.hits + ${hits}` }))
    .returning('hits')
    .executeTakeFirstOrThrow();
  return row.hits;
}
