import { sql, type Kysely } from 'kysely';
import { schemaDialect } from '../dialect.js';

// Frozen in time: this migration never imports today's table types.

export async function up(db: Kysely<any>): Promise<void> {
  const d = schemaDialect(db);
  // Roles (API-ADMIN.md). The built-in ones (admin, support) have a row too, so that user_roles
  // can reference every role; their permissions live in code (src/admin/permissions.ts), so
  // admin holds every permission ever added without a migration.
  await db.schema
    .createTable('roles').$call(d.table)
    .addColumn('name', d.asciiKey(32), (c) => c.primaryKey())
    .addColumn('description', 'varchar(200)', (c) => c.notNull().defaultTo(''))
    .addColumn('builtin', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('created_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .addColumn('updated_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .execute();
  await db
    .insertInto('roles')
    .values([
      { name: 'admin', description: 'Every permission, including ones added later.', builtin: true },
      { name: 'support', description: 'Find users, see their sessions, factors and events, end sessions, read the audit log.', builtin: true },
    ])
    .execute();

  await db.schema
    .createTable('role_permissions').$call(d.table)
    .addColumn('role_name', d.asciiKey(32), (c) => c.notNull().references('roles.name').onDelete('cascade'))
    .addColumn('permission', d.asciiKey(64), (c) => c.notNull())
    .addPrimaryKeyConstraint('role_permissions_pk', ['role_name', 'permission'])
    .execute();

  await db.schema
    .createTable('user_roles').$call(d.table)
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.user_id').onDelete('cascade'))
    .addColumn('role_name', d.asciiKey(32), (c) => c.notNull().references('roles.name').onDelete('cascade'))
    .addColumn('granted_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    // Who granted it (null: the command line). No foreign key: the record outlives the granter.
    .addColumn('granted_by', 'bigint')
    .addPrimaryKeyConstraint('user_roles_pk', ['user_id', 'role_name'])
    .execute();
  // The holders of a role (role filter of the search, holder counts, the last-admin rule).
  await db.schema.createIndex('user_roles_by_role').on('user_roles').columns(['role_name', 'user_id']).execute();

  // Why an administrator disabled the user (shown to administrators only).
  await db.schema.alterTable('users').addColumn('disabled_reason', 'varchar(200)').execute();

  // Who did it, when an administrator acted on a user (null: the user themselves).
  await db.schema.alterTable('audit_events').addColumn('actor_id', 'bigint').execute();
  await db.schema.createIndex('audit_events_by_actor').on('audit_events').columns(['actor_id', 'event_id']).execute();

  // Admin search: username or email by prefix, name by substring (src/admin/repository.ts).
  if (d.mysql) {
    // The unique keys on username_key and email_key (utf8mb4_bin) serve `like 'q%'` as a range
    // scan; a name substring has no index on MySQL/MariaDB (FULLTEXT matches words, not
    // substrings): it scans users newest first until the page is full (docs/databases.md).
    return;
  }
  // PostgreSQL: the unique keys follow the database's collation, which a `like 'q%'` can use only
  // when it is C; text_pattern_ops indexes serve the prefixes under any collation.
  await sql`create index users_username_key_prefix on users (username_key text_pattern_ops)`.execute(db);
  await sql`create index users_email_key_prefix on users (email_key text_pattern_ops)`.execute(db);
  // The name substring: a trigram index (pg_trgm) where the extension can be created (a
  // PostgreSQL server, pg_trgm is trusted since 13); PGlite ships without it loaded, and then the
  // search scans (measured in docs/performance.md). The exception block keeps the migration's
  // transaction alive when it cannot be created.
  await sql`do $$ begin create extension if not exists pg_trgm; exception when others then null; end $$`.execute(db);
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_extension where extname = 'pg_trgm'`.execute(db);
  if (rows[0]?.n) await sql`create index users_name_trgm on users using gin (lower(name) gin_trgm_ops)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  const d = schemaDialect(db);
  if (!d.mysql) {
    await sql`drop index if exists users_name_trgm`.execute(db);
    await sql`drop index if exists users_email_key_prefix`.execute(db);
    await sql`drop index if exists users_username_key_prefix`.execute(db);
  }
  await db.schema.dropIndex('audit_events_by_actor').on('audit_events').execute();
  await db.schema.alterTable('audit_events').dropColumn('actor_id').execute();
  await db.schema.alterTable('users').dropColumn('disabled_reason').execute();
  await db.schema.dropTable('user_roles').execute();
  await db.schema.dropTable('role_permissions').execute();
  await db.schema.dropTable('roles').execute();
}
