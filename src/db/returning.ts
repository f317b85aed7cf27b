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
  const row = await insertReturningIfAny(db, insert, returning, readBack);
  if (row === undefined) throw new Error('insert wrote no row');
  return row;
}

/** As insertReturning, for an INSERT … SELECT that may insert nothing: then undefined. */
export async function insertReturningIfAny<T>(
  db: Queryable,
  insert: InsertQueryBuilder<Database, any, any>,
  returning: readonly string[],
  readBack: (id: string) => SelectQueryBuilder<Database, any, T>,
): Promise<T | undefined> {
  if (supportsReturning(db)) return (await insert.returning(returning as any).executeTakeFirst()) as T | undefined;
  const { insertId, numInsertedOrUpdatedRows } = await insert.executeTakeFirstOrThrow();
  if (!numInsertedOrUpdatedRows || insertId === undefined) return undefined;
  return readBack(String(insertId)).executeTakeFirst();
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

/**
 * Updates the rows `filter` picks and answers their `key` column: the rows this statement
 * changed. With RETURNING one statement; without, the rows are selected FOR UPDATE and then
 * updated, in one transaction (the caller's, when `db` is one).
 */
export async function updateReturningKeys<K extends string>(
  db: Queryable,
  table: keyof Database & string,
  key: K,
  filter: <Q extends { where: (...args: any[]) => any }>(query: Q) => Q,
  set: (db: Queryable) => Record<string, unknown>,
): Promise<string[]> {
  // Typed loosely inside: the table and the key are the caller's; its rows are typed where it reads them.
  const anyDb = db as Kysely<any>;
  const keysOf = (rows: unknown[]) => (rows as Array<Record<K, string>>).map((row) => row[key]);
  if (supportsReturning(db)) return keysOf(await filter(anyDb.updateTable(table).set(set(db))).returning(key as any).execute());
  const run = async (trx: Kysely<any>): Promise<string[]> => {
    const keys = keysOf(await filter(trx.selectFrom(table).select(key as any)).forUpdate().execute());
    if (keys.length) await filter(trx.updateTable(table).set(set(trx))).where(key as any, 'in', keys as any).execute();
    return keys;
  };
  return db.isTransaction ? run(anyDb) : anyDb.transaction().execute(run);
}
