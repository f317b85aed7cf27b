import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Expression, ExpressionBuilder, Kysely, SqlBool, Transaction } from 'kysely';
import { isMysql } from './dialect.js';
import type { Database } from './schema.js';

type Queryable = Kysely<Database> | Transaction<Database>;

/** Rows one pruning statement deletes at most: short enough that no statement holds its locks for long. */
export const PRUNE_BATCH_ROWS = 1_000;
/** How long one pruning run goes on; what is left waits for the next run. */
export const PRUNE_BUDGET_MS = 10_000;

export interface PruneOptions {
  /** At most this many rows a statement (PRUNE_BATCH_ROWS). */
  batchRows?: number;
  /** Stop starting statements after this long (PRUNE_BUDGET_MS). */
  budgetMs?: number;
  /** Called after each statement with the rows it deleted (tests count the statements). */
  onStatement?: (deletedRows: number) => void;
}

/** What to delete: rows of `table` matching `where`, oldest first by `oldestFirst`, picked by their primary key `key`. */
export interface PruneTarget<T extends keyof Database & string> {
  table: T;
  /** The primary key: one or two columns. */
  key: readonly (keyof Database[T] & string)[];
  oldestFirst: keyof Database[T] & string;
  where: (eb: ExpressionBuilder<Database, T>) => Expression<SqlBool>;
}

/**
 * Deletes every row of `target`, at most `batchRows` a statement, each statement its own short
 * transaction, yielding to other work between statements, until none is left or the time budget
 * is spent. Returns the rows deleted. The one place the dialects differ in how they bound a
 * DELETE: MySQL/MariaDB take `DELETE ... ORDER BY ... LIMIT n`; PostgreSQL has no LIMIT on
 * DELETE, so it deletes the keys a limited SELECT picks.
 */
export async function deleteInBatches<T extends keyof Database & string>(db: Queryable, target: PruneTarget<T>, options: PruneOptions = {}): Promise<number> {
  const batchRows = options.batchRows ?? PRUNE_BATCH_ROWS;
  const budgetMs = options.budgetMs ?? PRUNE_BUDGET_MS;
  // A run-time budget, not a rule of the service: measured on the monotonic clock.
  const started = performance.now();
  let total = 0;
  for (;;) {
    const deleted = await deleteOneBatch(db, target, batchRows);
    options.onStatement?.(deleted);
    total += deleted;
    if (deleted < batchRows || performance.now() - started >= budgetMs) return total;
    await nextTurn();
  }
}

async function deleteOneBatch<T extends keyof Database & string>(db: Queryable, target: PruneTarget<T>, batchRows: number): Promise<number> {
  // Kysely cannot type a table chosen at run time: the target's own types were checked above.
  const any = db as unknown as Kysely<any>;
  const where = target.where as unknown as (eb: ExpressionBuilder<any, any>) => Expression<SqlBool>;
  const table: string = target.table;
  const key: readonly string[] = target.key;
  const order: string[] = [target.oldestFirst, ...key.filter((k) => k !== target.oldestFirst)];
  if (isMysql(db)) {
    let statement = any.deleteFrom(table).where(where);
    for (const column of order) statement = statement.orderBy(column);
    const result = await statement.limit(batchRows).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
  let picked = any.selectFrom(table).select([...key]).where(where);
  for (const column of order) picked = picked.orderBy(column);
  picked = picked.limit(batchRows);
  const result = await any
    .deleteFrom(table)
    .where((eb) => (key.length === 1 ? eb(eb.ref(key[0]!), 'in', picked) : eb(eb.refTuple(key[0]!, key[1]!), 'in', picked)))
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
