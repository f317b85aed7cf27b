import { sql, type InsertQueryBuilder, type InsertResult, type Kysely, type Transaction } from 'kysely';
import { isMysql } from './dialect.js';
import type { Database } from './schema.js';

type Queryable = Kysely<Database> | Transaction<Database>;

/** The PostgreSQL type of each column's array (the values are sent as one array per column). */
export type ColumnTypes<Row> = { [K in keyof Row]?: 'text' | 'int8' | 'bool' | 'date' | 'timestamptz' };

/**
 * An insert of many rows in one statement, to run or to add `returning` to. On PostgreSQL and
 * PGlite each column travels as one array through `unnest`: a handful of parameters whatever
 * the number of rows, so the statement is parsed and planned in microseconds, where 1,000 rows
 * of `VALUES` carry thousands of parameters that the server parses on every batch (an import's
 * batches spent most of their time there). MySQL takes the rows as multi-row `VALUES`.
 * The columns are those `types` names, in every row (null for none: a column's default is not
 * used); a row with another column is a mistake, refused on every database alike.
 */
export function insertMany<T extends keyof Database & string, Row extends object>(
  db: Queryable,
  table: T,
  types: ColumnTypes<Row>,
  rows: readonly Row[],
): InsertQueryBuilder<Database, T, InsertResult> {
  // The table's columns are checked by the callers' row types; Kysely cannot follow a generic table here.
  const insert = db.insertInto(table) as unknown as InsertQueryBuilder<Database, T, InsertResult> & {
    values(rows: readonly Row[]): InsertQueryBuilder<Database, T, InsertResult>;
    columns(columns: string[]): { expression(e: unknown): InsertQueryBuilder<Database, T, InsertResult> };
  };
  const columns = Object.keys(types) as Array<keyof Row & string>;
  const stray = rows.length ? Object.keys(rows[0]!).find((key) => !(key in types)) : undefined;
  if (stray !== undefined) throw new Error(`insertMany into ${table}: the rows have a column "${stray}" that the types do not name`);
  if (isMysql(db)) return insert.values(rows);
  const arrays = columns.map((column) => sql`${rows.map((row) => row[column] ?? null)}::${sql.raw(types[column]!)}[]`);
  return insert.columns(columns).expression(sql`select * from unnest(${sql.join(arrays)})`);
}
