import { type Kysely } from 'kysely';
import { schemaDialect } from '../dialect.js';

// Frozen in time: this migration never imports today's table types.

export async function up(db: Kysely<any>): Promise<void> {
  const d = schemaDialect(db);
  // The service as an OpenID Provider (API-FEDERATION.md B). Clients an admin registered; the
  // secret is stored as its SHA-256 (256 random bits), never in plain.
  await db.schema
    .createTable('oauth_clients').$call(d.table)
    .addColumn('client_id', d.asciiKey(64), (c) => c.primaryKey())
    .addColumn('name', 'varchar(200)', (c) => c.notNull())
    .addColumn('type', d.asciiKey(16), (c) => c.notNull())
    .addColumn('redirect_uris', d.text, (c) => c.notNull())
    .addColumn('post_logout_redirect_uris', d.text, (c) => c.notNull())
    .addColumn('scopes', 'varchar(1000)', (c) => c.notNull())
    .addColumn('first_party', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('roles', d.text, (c) => c.notNull())
    .addColumn('id_token_alg', d.asciiKey(8), (c) => c.notNull().defaultTo('RS256'))
    .addColumn('secret_hash', d.asciiKey(64))
    .addColumn('created_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .addColumn('updated_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .execute();

  // An authorization request waiting for the person (sign-in, consent) in the web app.
  await db.schema
    .createTable('oauth_requests').$call(d.table)
    .addColumn('request_hash', d.asciiKey(64), (c) => c.primaryKey())
    .addColumn('client_id', d.asciiKey(64), (c) => c.notNull().references('oauth_clients.client_id').onDelete('cascade'))
    .addColumn('redirect_uri', d.text, (c) => c.notNull())
    .addColumn('scope', 'varchar(1000)', (c) => c.notNull())
    .addColumn('state', d.text)
    .addColumn('nonce', d.text)
    .addColumn('code_challenge', d.asciiKey(128), (c) => c.notNull())
    .addColumn('resource', d.text)
    .addColumn('prompt', 'varchar(64)')
    .addColumn('max_age', 'integer')
    .addColumn('created_at', d.timestamp, (c) => c.notNull())
    .addColumn('expires_at', d.timestamp, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('oauth_requests_by_expiry').on('oauth_requests').column('expires_at').execute();

  // An authorization code (RFC 6749 4.1.2): single use, short-lived, bound to its client,
  // redirect URI and PKCE challenge; `issued_session_id` is what a replay of it revokes.
  await db.schema
    .createTable('oauth_codes').$call(d.table)
    .addColumn('code_hash', d.asciiKey(64), (c) => c.primaryKey())
    .addColumn('client_id', d.asciiKey(64), (c) => c.notNull().references('oauth_clients.client_id').onDelete('cascade'))
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.user_id').onDelete('cascade'))
    .addColumn('browser_session_id', 'bigint', (c) => c.notNull())
    .addColumn('redirect_uri', d.text, (c) => c.notNull())
    .addColumn('scope', 'varchar(1000)', (c) => c.notNull())
    .addColumn('nonce', d.text)
    .addColumn('code_challenge', d.asciiKey(128), (c) => c.notNull())
    .addColumn('resource', d.text)
    .addColumn('auth_time', d.timestamp, (c) => c.notNull())
    .addColumn('expires_at', d.timestamp, (c) => c.notNull())
    .addColumn('used_at', d.timestamp)
    .addColumn('issued_session_id', 'bigint')
    .execute();
  await db.schema.createIndex('oauth_codes_by_expiry').on('oauth_codes').column('expires_at').execute();

  // A person's consent to a client (until withdrawn from the account app).
  await db.schema
    .createTable('oauth_grants').$call(d.table)
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.user_id').onDelete('cascade'))
    .addColumn('client_id', d.asciiKey(64), (c) => c.notNull().references('oauth_clients.client_id').onDelete('cascade'))
    .addColumn('scopes', 'varchar(1000)', (c) => c.notNull())
    .addColumn('created_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .addPrimaryKeyConstraint('oauth_grants_pk', ['user_id', 'client_id'])
    .execute();

  // A client's session is one of ours (user_sessions: its refresh chain, the retry rule, every
  // revocation); this says which client holds it and with what scope.
  await db.schema
    .createTable('oauth_sessions').$call(d.table)
    .addColumn('session_id', 'bigint', (c) => c.primaryKey().references('user_sessions.session_id').onDelete('cascade'))
    .addColumn('client_id', d.asciiKey(64), (c) => c.notNull().references('oauth_clients.client_id').onDelete('cascade'))
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.user_id').onDelete('cascade'))
    .addColumn('scope', 'varchar(1000)', (c) => c.notNull())
    .addColumn('resource', d.text)
    .addColumn('auth_time', d.timestamp, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('oauth_sessions_by_user_client').on('oauth_sessions').columns(['user_id', 'client_id']).execute();

  // The browser session a client's session was opened from: ending it ends them (single sign-out).
  await db.schema.alterTable('user_sessions').addColumn('parent_session_id', 'bigint').execute();
  await db.schema.createIndex('user_sessions_by_parent').on('user_sessions').column('parent_session_id').execute();

  // RS256 keys for ID tokens (OpenID Core 15.1 makes RS256 every client's must), beside the
  // Ed25519 keys of signing_keys; the private key encrypted with DATA_ENCRYPTION_KEY.
  await db.schema
    .createTable('oauth_signing_keys').$call(d.table)
    .addColumn('kid', d.asciiKey(64), (c) => c.primaryKey())
    .addColumn('alg', d.asciiKey(8), (c) => c.notNull())
    .addColumn('public_jwk', d.text, (c) => c.notNull())
    .addColumn('private_jwk', d.text, (c) => c.notNull())
    .addColumn('created_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('oauth_signing_keys').execute();
  await db.schema.dropIndex('user_sessions_by_parent').on('user_sessions').execute();
  await db.schema.alterTable('user_sessions').dropColumn('parent_session_id').execute();
  await db.schema.dropTable('oauth_sessions').execute();
  await db.schema.dropTable('oauth_grants').execute();
  await db.schema.dropTable('oauth_codes').execute();
  await db.schema.dropTable('oauth_requests').execute();
  await db.schema.dropTable('oauth_clients').execute();
}
