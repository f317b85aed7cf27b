import { sql, type InsertQueryBuilder, type Kysely, type SelectQueryBuilder, type Transaction, type UpdateQueryBuilder } from 'kysely';
import { isMysql } from './dialect.js';
import type { Database } from './schema.js';

type Queryable = Kysely<Database> | Transaction<Database>;

/**
 * "Write, then read the row back" without asking which database this is: the dialect's adapter
 * says whether it has RETURNING (PostgreSQL, PGlite) or not (MySQL 8, MariaDB), as Kysely's own
 * code asks it. Feature repositories use these and never branch on the dialect.
 */
export function supportsReturning(db: Queryable): boolean {
  return db.getExecutor().adapter.supportsReturning;
}

/**
 * Inserts one row and answers it as `readBack(id)` selects it. With RETURNING, one statement
 * (`returning` names the same columns); without, the insert then a select of the new
 * auto-increment id (in the caller's transaction if `db` is one).
 */
export async function insertReturning<T>(
  db: Queryable,
  insert: InsertQueryBuilder<Database, any, any>,
  returning: readonly string[],
  readBack: (id: string) => SelectQueryBuilder<Database, any, T>,
): Promise<T> {
  if (supportsReturning(db)) return (await insert.returning(returning as any).executeTakeFirstOrThrow()) as T;
  const { insertId } = await insert.executeTakeFirstOrThrow();
  return readBack(String(insertId)).executeTakeFirstOrThrow();
}

/**
 * Updates (at most) one row and answers it, or undefined when nothing matched. Without
 * RETURNING the row is read back by `readBack` after the update (call it in a transaction when
 * another writer could change the row in between).
 */
export async function updateReturning<T>(
  update: UpdateQueryBuilder<Database, any, any, any>,
  db: Queryable,
  returning: readonly string[],
  readBack: () => SelectQueryBuilder<Database, any, T>,
): Promise<T | undefined> {
  if (supportsReturning(db)) return (await update.returning(returning as any).executeTakeFirst()) as T | undefined;
  const { numUpdatedRows } = await update.executeTakeFirst();
  return numUpdatedRows === 0n ? undefined : readBack().executeTakeFirst();
}

/** A select that waits for a writer of its rows and then sees its change: FOR SHARE (MariaDB spells it LOCK IN SHARE MODE). */
export function forShare<Q extends SelectQueryBuilder<any, any, any>>(db: Queryable, query: Q): Q {
  return (isMysql(db) ? query.modifyEnd(sql`lock in share mode`) : query.forShare()) as Q;
}
