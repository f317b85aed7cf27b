import { sql, type Kysely, type Transaction } from 'kysely';
import { isMysql } from './dialect.js';
import type { Database } from './schema.js';

/** Longest wait for the named lock on MySQL/MariaDB. */
const MYSQL_LOCK_WAIT_S = 30;

/**
 * Runs `work` in a transaction that holds a database-wide named lock, so that instances
 * starting together do one-time work (creating a signing key, a server secret) exactly once.
 * The one place each dialect supplies its lock: PostgreSQL an advisory lock for the transaction;
 * MySQL/MariaDB GET_LOCK, held by the connection until the transaction has committed. GET_LOCK
 * names are server-wide: the database's name is part of it (hashed, names are at most 64 characters).
 */
export async function withNamedLock<T>(db: Kysely<Database>, name: string, work: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  if (isMysql(db)) {
    return db.connection().execute(async (conn) => {
      const lockName = sql`sha1(concat(database(), ':', ${name}))`;
      const { rows } = await sql<{ got: number | string | null }>`select get_lock(${lockName}, ${MYSQL_LOCK_WAIT_S}) as got`.execute(conn);
      if (Number(rows[0]?.got) !== 1) throw new Error(`Could not take the database lock "${name}" within ${MYSQL_LOCK_WAIT_S} s`);
      try {
        return await conn.transaction().execute(work);
      } finally {
        await sql`select release_lock(${lockName})`.execute(conn).catch(() => {});
      }
    });
  }
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext(${name}))`.execute(trx);
    return work(trx);
  });
}
