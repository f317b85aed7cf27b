import type { Kysely } from 'kysely';
import { schemaDialect } from '../dialect.js';

// Frozen in time: this migration never imports today's table types.

export async function up(db: Kysely<any>): Promise<void> {
  const d = schemaDialect(db);
  // The address has been shown to reach the user (a verification link, or a completed reset).
  await db.schema.alterTable('users').addColumn('email_verified', 'boolean', (c) => c.notNull().defaultTo(false)).execute();

  // Single-use tokens sent by mail: email verification and password reset. Only SHA-256 hashes
  // are kept. A token is superseded by a newer one of the same kind for the same user; the rows
  // of the last hour also count the mails sent (at most 5 an hour).
  await db.schema
    .createTable('account_tokens').$call(d.table)
    .addColumn('token_id', 'bigint', d.identity)
    .addColumn('token_hash', d.keyText(255), (c) => c.notNull().unique())
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.user_id').onDelete('cascade'))
    .addColumn('kind', 'varchar(32)', (c) => c.notNull())
    .addColumn('email', 'text', (c) => c.notNull())
    .addColumn('expires_at', d.timestamp, (c) => c.notNull())
    .addColumn('used_at', d.timestamp)
    .addColumn('created_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .execute();
  await db.schema.createIndex('account_tokens_by_user').on('account_tokens').columns(['user_id', 'kind', 'created_at']).execute();

  // After a self-service deletion the user's events keep only a keyed pseudonym in place of user_id.
  await db.schema.alterTable('audit_events').addColumn('subject_pseudonym', 'varchar(64)').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('audit_events').dropColumn('subject_pseudonym').execute();
  await db.schema.dropTable('account_tokens').execute();
  await db.schema.alterTable('users').dropColumn('email_verified').execute();
}
