import { sql, type Kysely, type Transaction } from 'kysely';
import { isMysql } from './dialect.js';
import type { Database } from './schema.js';

type Queryable = Kysely<Database> | Transaction<Database>;

/**
 * Runs `work` so that its statements are planned for the values they are given. PostgreSQL (and
 * PGlite) may give a prepared statement run often a generic plan, made without its parameters: a
 * `LIKE` whose pattern is a parameter can then use no index (text_pattern_ops, pg_trgm). Here the
 * work runs in a transaction with `plan_cache_mode = force_custom_plan`. MySQL/MariaDB plan each
 * execution anyway: the work runs as it is.
 */
export async function withCustomPlans<T>(db: Queryable, work: (db: Queryable) => Promise<T>): Promise<T> {
  if (isMysql(db)) return work(db);
  const run = async (trx: Transaction<Database>) => {
    await sql`set local plan_cache_mode = force_custom_plan`.execute(trx);
    return work(trx);
  };
  return db.isTransaction ? run(db as Transaction<Database>) : (db as Kysely<Database>).transaction().execute(run);
}
