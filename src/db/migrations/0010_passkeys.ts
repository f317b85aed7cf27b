import { sql, type Kysely } from 'kysely';
import { schemaDialect } from '../dialect.js';

// Frozen in time: this migration never imports today's table types.

export async function up(db: Kysely<any>): Promise<void> {
  const d = schemaDialect(db);
  // WebAuthn credentials (passkeys). The credential id and public key are public values, kept as
  // base64url text so that every dialect stores them alike.
  await db.schema
    .createTable('user_passkeys').$call(d.table)
    .addColumn('passkey_id', 'bigint', d.identity)
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.user_id').onDelete('cascade'))
    .addColumn('credential_id', d.asciiKey(1366), (c) => c.notNull().unique())
    .addColumn('public_key', 'text', (c) => c.notNull())
    // The signature counter (WebAuthn §6.1.1): 32 bits unsigned, so bigint.
    .addColumn('counter', 'bigint', (c) => c.notNull().defaultTo(0))
    // Space-separated AuthenticatorTransport hints, given back in excludeCredentials.
    .addColumn('transports', 'varchar(255)', (c) => c.notNull().defaultTo(''))
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('device_type', 'varchar(16)', (c) => c.notNull())
    .addColumn('backed_up', 'boolean', (c) => c.notNull())
    .addColumn('created_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .addColumn('last_used_at', d.timestamp)
    .execute();
  await db.schema.createIndex('user_passkeys_by_user').on('user_passkeys').columns(['user_id', 'passkey_id']).execute();

  // Challenges handed out for adding a passkey (bound to its user) or for signing in with one:
  // single-use (deleted when used), valid until expires_at.
  await db.schema
    .createTable('webauthn_challenges').$call(d.table)
    .addColumn('challenge', 'varchar(128)', (c) => c.primaryKey())
    .addColumn('purpose', 'varchar(16)', (c) => c.notNull().check(sql`purpose in ('register', 'authenticate')`))
    .addColumn('user_id', 'bigint', (c) => c.references('users.user_id').onDelete('cascade'))
    .addColumn('expires_at', d.timestamp, (c) => c.notNull())
    .addCheckConstraint('webauthn_challenges_register_has_user', sql`purpose <> 'register' or user_id is not null`)
    .execute();
  await db.schema.createIndex('webauthn_challenges_by_expiry').on('webauthn_challenges').column('expires_at').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('webauthn_challenges').execute();
  await db.schema.dropTable('user_passkeys').execute();
}
