import type { Kysely } from 'kysely';
import { schemaDialect } from '../dialect.js';

// Frozen in time: this migration never imports today's table types.

export async function up(db: Kysely<any>): Promise<void> {
  const d = schemaDialect(db);
  // MySQL/MariaDB only: they have no LISTEN/NOTIFY. The transaction that ends sessions (or
  // changes a user) writes a row here; every instance polls the rows past the last id it read
  // (src/db/mysql.ts), and old rows are deleted after a minute. PostgreSQL notifies instead.
  if (!d.mysql) return;
  await db.schema
    .createTable('invalidation_log')
    .$call(d.table)
    .addColumn('log_id', 'bigint', d.identity)
    .addColumn('payload', d.text, (c) => c.notNull())
    .addColumn('created_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .execute();
  await db.schema.createIndex('invalidation_log_by_time').on('invalidation_log').column('created_at').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  if (schemaDialect(db).mysql) await db.schema.dropTable('invalidation_log').execute();
}
