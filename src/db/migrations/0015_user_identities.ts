import { type Kysely } from 'kysely';
import { schemaDialect } from '../dialect.js';

// Frozen in time: this migration never imports today's table types.

export async function up(db: Kysely<any>): Promise<void> {
  const d = schemaDialect(db);
  // Accounts elsewhere (API-FEDERATION.md A): one (provider, subject) pair belongs to one user.
  // OpenID's `sub` is at most 255 ASCII characters (Core 1.0 §2).
  await db.schema
    .createTable('user_identities').$call(d.table)
    .addColumn('identity_id', 'bigint', d.identity)
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.user_id').onDelete('cascade'))
    .addColumn('provider', d.asciiKey(32), (c) => c.notNull())
    .addColumn('subject', d.asciiKey(255), (c) => c.notNull())
    .addColumn('email', 'varchar(254)')
    .addColumn('email_verified', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('created_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .addColumn('last_used_at', d.timestamp)
    .addUniqueConstraint('user_identities_provider_subject', ['provider', 'subject'])
    .execute();
  await db.schema.createIndex('user_identities_by_user').on('user_identities').columns(['user_id', 'identity_id']).execute();

  // A sign-in or link started at a provider: single use (deleted when the callback comes), bound to
  // the browser that started it (binding_hash: SHA-256 of an HttpOnly cookie), valid until expires_at.
  await db.schema
    .createTable('federation_states').$call(d.table)
    .addColumn('state_hash', d.asciiKey(64), (c) => c.primaryKey())
    .addColumn('binding_hash', d.asciiKey(64), (c) => c.notNull())
    .addColumn('provider', d.asciiKey(32), (c) => c.notNull())
    // Set when a signed-in user links another account; null for a sign-in.
    .addColumn('user_id', 'bigint', (c) => c.references('users.user_id').onDelete('cascade'))
    .addColumn('nonce', d.asciiKey(64), (c) => c.notNull())
    .addColumn('code_verifier', d.asciiKey(128), (c) => c.notNull())
    .addColumn('return_to', 'varchar(512)', (c) => c.notNull())
    .addColumn('expires_at', d.timestamp, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('federation_states_by_expiry').on('federation_states').column('expires_at').execute();

  // A new person's sign-up, between the callback and /complete-sign-up: bound to the upstream
  // identity it was made for and to the browser (the same cookie binding), single use.
  await db.schema
    .createTable('federation_signups').$call(d.table)
    .addColumn('token_hash', d.asciiKey(64), (c) => c.primaryKey())
    .addColumn('binding_hash', d.asciiKey(64), (c) => c.notNull())
    .addColumn('provider', d.asciiKey(32), (c) => c.notNull())
    .addColumn('subject', d.asciiKey(255), (c) => c.notNull())
    .addColumn('email', 'varchar(254)', (c) => c.notNull())
    .addColumn('email_verified', 'boolean', (c) => c.notNull())
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('username_hint', 'varchar(64)')
    .addColumn('return_to', 'varchar(512)', (c) => c.notNull())
    .addColumn('expires_at', d.timestamp, (c) => c.notNull())
    .execute();
  // How the first step of a sign-in half-way was made ('pwd', or 'fed' after another provider): the
  // second step's amr says it (RFC 8176), ["fed","otp","mfa"] after a provider.
  await db.schema.alterTable('mfa_tokens').addColumn('first_factor', d.asciiKey(8), (c) => c.notNull().defaultTo('pwd')).execute();
  await db.schema.createIndex('federation_signups_by_expiry').on('federation_signups').column('expires_at').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('mfa_tokens').dropColumn('first_factor').execute();
  await db.schema.dropTable('federation_signups').execute();
  await db.schema.dropTable('federation_states').execute();
  await db.schema.dropTable('user_identities').execute();
}
