import type { Kysely, Selectable, Transaction } from 'kysely';
import type { Database, OAuthClientsTable } from '../db/schema.js';

type Queryable = Kysely<Database> | Transaction<Database>;

export type ClientRow = Selectable<OAuthClientsTable>;

// Clients

export function insertClient(db: Queryable, row: Omit<ClientRow, 'created_at' | 'updated_at'>) {
  return db.insertInto('oauth_clients').values(row).execute();
}

export function findClient(db: Queryable, clientId: string): Promise<ClientRow | undefined> {
  return db.selectFrom('oauth_clients').selectAll().where('client_id', '=', clientId).executeTakeFirst();
}

export function listClients(db: Queryable): Promise<ClientRow[]> {
  return db.selectFrom('oauth_clients').selectAll().orderBy('created_at').orderBy('client_id').execute();
}

export async function setClientSecret(db: Queryable, clientId: string, secretHash: string, now: Date): Promise<boolean> {
  const result = await db.updateTable('oauth_clients').set({ secret_hash: secretHash, updated_at: now }).where('client_id', '=', clientId).executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

export async function deleteClient(db: Queryable, clientId: string): Promise<boolean> {
  const result = await db.deleteFrom('oauth_clients').where('client_id', '=', clientId).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

// Authorization requests waiting for the person

export type RequestRow = Selectable<Database['oauth_requests']>;

export function insertRequest(db: Queryable, row: RequestRow) {
  return db.insertInto('oauth_requests').values(row).execute();
}

export function findRequest(db: Queryable, requestHash: string, now: Date): Promise<RequestRow | undefined> {
  return db.selectFrom('oauth_requests').selectAll().where('request_hash', '=', requestHash).where('expires_at', '>', now).executeTakeFirst();
}

/** Single use: true for the one caller that deleted it. */
export async function takeRequest(db: Queryable, requestHash: string): Promise<boolean> {
  const result = await db.deleteFrom('oauth_requests').where('request_hash', '=', requestHash).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

// Authorization codes

export type CodeRow = Selectable<Database['oauth_codes']>;

export function insertCode(db: Queryable, row: Omit<CodeRow, 'used_at' | 'issued_session_id'>) {
  return db.insertInto('oauth_codes').values(row).execute();
}

export function findCode(db: Queryable, codeHash: string): Promise<CodeRow | undefined> {
  return db.selectFrom('oauth_codes').selectAll().where('code_hash', '=', codeHash).executeTakeFirst();
}

/** Marks the code used; false when it was used before (a replay). */
export async function spendCode(db: Queryable, codeHash: string, now: Date): Promise<boolean> {
  const result = await db.updateTable('oauth_codes').set({ used_at: now }).where('code_hash', '=', codeHash).where('used_at', 'is', null).executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

export function recordIssuedSession(db: Queryable, codeHash: string, sessionId: string) {
  return db.updateTable('oauth_codes').set({ issued_session_id: sessionId }).where('code_hash', '=', codeHash).execute();
}

// Consents

export function findGrant(db: Queryable, userId: string, clientId: string) {
  return db.selectFrom('oauth_grants').select(['scopes', 'created_at']).where('user_id', '=', userId).where('client_id', '=', clientId).executeTakeFirst();
}

/** Adds `scopes` to the user's consent to the client (one row per user and client). */
export async function saveGrant(db: Kysely<Database>, userId: string, clientId: string, scopes: readonly string[]): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const existing = await findGrant(trx, userId, clientId);
    if (!existing) {
      await trx.insertInto('oauth_grants').values({ user_id: userId, client_id: clientId, scopes: scopes.join(' ') }).execute();
      return;
    }
    const union = [...new Set([...existing.scopes.split(' ').filter(Boolean), ...scopes])];
    await trx.updateTable('oauth_grants').set({ scopes: union.join(' ') }).where('user_id', '=', userId).where('client_id', '=', clientId).execute();
  });
}

export function listGrants(db: Queryable, userId: string) {
  return db
    .selectFrom('oauth_grants')
    .innerJoin('oauth_clients', 'oauth_clients.client_id', 'oauth_grants.client_id')
    .select(['oauth_grants.client_id', 'oauth_clients.name', 'oauth_grants.scopes', 'oauth_grants.created_at'])
    .where('oauth_grants.user_id', '=', userId)
    .orderBy('oauth_grants.created_at', 'desc')
    .execute();
}

export async function deleteGrant(db: Queryable, userId: string, clientId: string): Promise<boolean> {
  const result = await db.deleteFrom('oauth_grants').where('user_id', '=', userId).where('client_id', '=', clientId).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

// A client's sessions (one of ours each)

export type ClientSessionRow = Selectable<Database['oauth_sessions']>;

export function insertClientSession(db: Queryable, row: ClientSessionRow) {
  return db.insertInto('oauth_sessions').values(row).execute();
}

export function findClientSession(db: Queryable, sessionId: string): Promise<ClientSessionRow | undefined> {
  return db.selectFrom('oauth_sessions').selectAll().where('session_id', '=', sessionId).executeTakeFirst();
}

export async function clientSessionIds(db: Queryable, userId: string, clientId: string): Promise<string[]> {
  const rows = await db.selectFrom('oauth_sessions').select('session_id').where('user_id', '=', userId).where('client_id', '=', clientId).execute();
  return rows.map((row) => String(row.session_id));
}

export function sessionsOfClient(db: Queryable, clientId: string) {
  return db.selectFrom('oauth_sessions').select(['session_id', 'user_id']).where('client_id', '=', clientId).execute();
}

// Pruning and erasure

export async function pruneOAuthFlows(db: Queryable, now: Date): Promise<void> {
  await db.deleteFrom('oauth_requests').where('expires_at', '<=', now).execute();
  // Kept a while after expiry, so a late replay is still recognised and revokes what it issued.
  await db.deleteFrom('oauth_codes').where('expires_at', '<=', new Date(now.getTime() - 24 * 3600_000)).execute();
}

export async function eraseOAuthRows(trx: Queryable, userId: string): Promise<void> {
  await trx.deleteFrom('oauth_codes').where('user_id', '=', userId).execute();
  await trx.deleteFrom('oauth_grants').where('user_id', '=', userId).execute();
  await trx.deleteFrom('oauth_sessions').where('user_id', '=', userId).execute();
}

// Keys for ID tokens (RS256)

export function listIdTokenKeys(db: Queryable) {
  return db.selectFrom('oauth_signing_keys').selectAll().orderBy('created_at', 'desc').execute();
}

export function insertIdTokenKey(db: Queryable, row: { kid: string; alg: string; public_jwk: string; private_jwk: string }) {
  return db.insertInto('oauth_signing_keys').values(row).execute();
}
