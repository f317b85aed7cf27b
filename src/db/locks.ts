import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from './schema.js';

/**
 * Runs `work` in a transaction that holds a database-wide named lock, so that instances
 * starting together do one-time work (creating a signing key, a server secret) exactly once.
 * PostgreSQL-only (an advisory lock); the one place another dialect supplies its own lock.
 */
export async function withNamedLock<T>(db: Kysely<Database>, name: string, work: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext(${name}))`.execute(trx);
    return work(trx);
  });
}
