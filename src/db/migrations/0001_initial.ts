import { sql, type Kysely } from 'kysely';
import { schemaDialect } from '../dialect.js';

// Frozen in time: this migration never imports today's table types.

export async function up(db: Kysely<any>): Promise<void> {
  const d = schemaDialect(db);
  await db.schema
    .createTable('users').$call(d.table)
    .addColumn('user_id', 'bigint', d.identity)
    .addColumn('username', 'text', (c) => c.notNull())
    .addColumn('username_key', d.keyText(255), d.generated(sql`lower(username)`))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('dob', 'date', (c) => c.notNull())
    .addColumn('email', 'text', (c) => c.notNull())
    .addColumn('email_key', d.keyText(255), d.generated(sql`lower(email)`))
    .addColumn('created_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .addColumn('updated_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .addUniqueConstraint('users_username_key_unique', ['username_key'])
    .addUniqueConstraint('users_email_key_unique', ['email_key'])
    .execute();

  await db.schema
    .createTable('user_credentials').$call(d.table)
    .addColumn('credentials_id', 'bigint', d.identity)
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.user_id').onDelete('cascade'))
    .addColumn('hashed_password', 'text', (c) => c.notNull())
    .addColumn('is_current', 'boolean', (c) => c.notNull())
    .addColumn('created_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .execute();
  // At most one current credential per user, enforced by the database.
  if (d.mysql) {
    // No partial index in MySQL: a generated column holds user_id for the current row only
    // (null otherwise, and a unique index admits any number of nulls).
    await db.schema
      .alterTable('user_credentials')
      .addColumn('current_user_id', 'bigint', (c) => c.generatedAlwaysAs(sql`case when is_current then user_id end`))
      .execute();
    await db.schema.createIndex('user_credentials_one_current').on('user_credentials').column('current_user_id').unique().execute();
  } else {
    await db.schema
      .createIndex('user_credentials_one_current')
      .on('user_credentials')
      .column('user_id')
      .unique()
      .where(sql.ref('is_current'), '=', true)
      .execute();
  }
  await db.schema
    .createIndex('user_credentials_history')
    .on('user_credentials')
    .columns(['user_id', 'created_at desc'])
    .execute();

  await db.schema
    .createTable('user_sessions').$call(d.table)
    .addColumn('session_id', 'bigint', d.identity)
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.user_id').onDelete('cascade'))
    .addColumn('created_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .addColumn('is_active', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('expires_at', d.timestamp, (c) => c.notNull())
    .addColumn('last_used_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .addColumn('ended_at', d.timestamp)
    .addColumn('end_reason', 'text')
    .addColumn('user_agent', 'text')
    .addColumn('ip', 'text')
    .addColumn('refresh_token_hash', 'text', (c) => c.notNull())
    .addColumn('previous_refresh_token_hash', 'text')
    .addColumn('refresh_rotated_at', d.timestamp)
    .addColumn('refresh_generation', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .createIndex('user_sessions_by_user')
    .on('user_sessions')
    .columns(['user_id', 'created_at desc'])
    .execute();

  await db.schema
    .createTable('signing_keys').$call(d.table)
    .addColumn('kid', d.keyText(255), (c) => c.primaryKey())
    .addColumn('alg', 'text', (c) => c.notNull())
    .addColumn('public_jwk', 'text', (c) => c.notNull())
    .addColumn('private_jwk', 'text', (c) => c.notNull())
    .addColumn('created_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .addColumn('retired_at', d.timestamp)
    .execute();

  await db.schema
    .createTable('service_secrets').$call(d.table)
    .addColumn('name', d.keyText(255), (c) => c.primaryKey())
    .addColumn('secret', 'text', (c) => c.notNull())
    .addColumn('created_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['service_secrets', 'signing_keys', 'user_sessions', 'user_credentials', 'users']) {
    await db.schema.dropTable(table).execute();
  }
}
