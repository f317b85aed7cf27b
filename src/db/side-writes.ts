import type { Kysely, OperationNodeSource, Transaction } from 'kysely';
import { isMysql } from './dialect.js';
import type { Database } from './schema.js';

/**
 * Writes of other features that go with a row a repository inserts, in the same round trip:
 * on PostgreSQL parts of one data-modifying WITH (which may read the new row as `with_row`),
 * elsewhere statements in the insert's transaction. The feature that owns a table writes the
 * rule and the SQL for it; the repository of the row only runs them (see sessions/repository.ts,
 * insertSession).
 */
export interface SideWrite<Row> {
  /** PostgreSQL: named parts of the WITH, in order; a part may read `with_row` (the new row, or none). */
  ctes(db: Kysely<Database>): Array<[name: string, statement: OperationNodeSource]>;
  /** Without data-modifying WITH: the same writes in the insert's transaction; `row` is undefined if nothing was inserted. */
  run(trx: Transaction<Database>, row: Record<string, unknown> | undefined): Promise<void>;
}

/** The CTE name under which side writes read the inserted row. */
export const WITH_ROW = 'with_row';

/** Whether the database runs data-modifying statements inside WITH (PostgreSQL, PGlite; not MySQL/MariaDB). */
export function supportsWritingCtes(db: Kysely<Database> | Transaction<Database>): boolean {
  return !isMysql(db);
}
