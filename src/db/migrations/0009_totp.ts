import type { Kysely } from 'kysely';
import { schemaDialect } from '../dialect.js';

// Frozen in time: this migration never imports today's table types.

export async function up(db: Kysely<any>): Promise<void> {
  const d = schemaDialect(db);
  // One TOTP factor per user: pending until confirmed with a first code.
  await db.schema
    .createTable('user_totp_factors').$call(d.table)
    .addColumn('user_id', 'bigint', (c) => c.primaryKey().references('users.user_id').onDelete('cascade'))
    // AES-256-GCM envelope (DATA_ENCRYPTION_KEY) of the base32 secret; never the secret itself.
    .addColumn('secret_encrypted', 'text', (c) => c.notNull())
    .addColumn('created_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    // Null while pending.
    .addColumn('confirmed_at', d.timestamp)
    // The last time step a code was accepted for: no code of this step or an earlier one is accepted again.
    .addColumn('last_used_step', 'bigint')
    .execute();

  // Recovery codes, as SHA-256 hashes only.
  await db.schema
    .createTable('user_recovery_codes').$call(d.table)
    .addColumn('recovery_code_id', 'bigint', d.identity)
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.user_id').onDelete('cascade'))
    .addColumn('code_hash', 'varchar(64)', (c) => c.notNull())
    .addColumn('created_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .addColumn('used_at', d.timestamp)
    .addUniqueConstraint('user_recovery_codes_user_code_unique', ['user_id', 'code_hash'])
    .execute();

  // The second step of a sign-in: single-use, short-lived, bound to the user and the client address.
  await db.schema
    .createTable('mfa_tokens').$call(d.table)
    .addColumn('token_hash', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.user_id').onDelete('cascade'))
    .addColumn('ip', 'text')
    .addColumn('created_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .addColumn('expires_at', d.timestamp, (c) => c.notNull())
    .addColumn('used_at', d.timestamp)
    .addColumn('failures', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.createIndex('mfa_tokens_user').on('mfa_tokens').column('user_id').execute();
  await db.schema.createIndex('mfa_tokens_expires').on('mfa_tokens').column('expires_at').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('mfa_tokens').execute();
  await db.schema.dropTable('user_recovery_codes').execute();
  await db.schema.dropTable('user_totp_factors').execute();
}
