import { sql, type Kysely } from 'kysely';
import { schemaDialect } from '../dialect.js';

// Frozen in time: this migration never imports today's table types.
// Throttling state lives in the database so that every instance sharing it counts alike.

export async function up(db: Kysely<any>): Promise<void> {
  const d = schemaDialect(db);
  // Failed logins in a row per account (or unknown name) and client address, with the wait they earned.
  await db.schema
    .createTable('login_throttles').$call(d.table)
    .addColumn('throttle_key', d.keyText(512), (c) => c.primaryKey())
    .addColumn('failures', 'integer', (c) => c.notNull())
    .addColumn('locked_until', d.timestamp)
    .addColumn('updated_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .execute();

  // Failed logins per account across all addresses, in fixed one-hour windows.
  await db.schema
    .createTable('login_account_failures').$call(d.table)
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.user_id').onDelete('cascade'))
    .addColumn('window_start', d.timestamp, (c) => c.notNull())
    .addColumn('failures', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('login_account_failures_pk', ['user_id', 'window_start'])
    .execute();

  // Requests per bucket (route and client address) in fixed windows.
  await db.schema
    .createTable('rate_limit_hits').$call(d.table)
    .addColumn('bucket', d.keyText(512), (c) => c.notNull())
    .addColumn('window_start', d.timestamp, (c) => c.notNull())
    .addColumn('hits', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('rate_limit_hits_pk', ['bucket', 'window_start'])
    .execute();

  // Known addresses of an account: looked up when the account is past its hourly ceiling.
  if (d.mysql) {
    // MySQL indexes a text column by a prefix only.
    await sql`create index user_sessions_by_user_ip on user_sessions (user_id, ip(64))`.execute(db);
  } else {
    await db.schema.createIndex('user_sessions_by_user_ip').on('user_sessions').columns(['user_id', 'ip']).execute();
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  const index = db.schema.dropIndex('user_sessions_by_user_ip');
  await (schemaDialect(db).mysql ? index.on('user_sessions') : index).execute();
  for (const table of ['rate_limit_hits', 'login_account_failures', 'login_throttles']) await db.schema.dropTable(table).execute();
}
