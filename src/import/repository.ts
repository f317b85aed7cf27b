import { sql, type Kysely, type Transaction } from 'kysely';
import type { AuditRow } from '../audit/audit-log.js';
import type { Database } from '../db/schema.js';
import { insertMany } from '../db/bulk-insert.js';
import { dbNow, isMysql } from '../db/dialect.js';

type Queryable = Kysely<Database> | Transaction<Database>;

export interface ExistingUser {
  user_id: string;
  username_key: string;
  email_key: string;
  external_id: string | null;
}

/** The users holding any of these keys (lower-cased usernames and emails, external ids). */
export async function findHolders(db: Queryable, keys: { usernames: string[]; emails: string[]; externalIds: string[] }): Promise<ExistingUser[]> {
  if (!keys.usernames.length && !keys.emails.length && !keys.externalIds.length) return [];
  return db
    .selectFrom('users')
    .select(['user_id', 'username_key', 'email_key', 'external_id'])
    .where((eb) =>
      eb.or([
        ...(keys.usernames.length ? [eb('username_key', 'in', keys.usernames)] : []),
        ...(keys.emails.length ? [eb('email_key', 'in', keys.emails)] : []),
        ...(keys.externalIds.length ? [eb('external_id', 'in', keys.externalIds)] : []),
      ]),
    )
    .execute();
}

/** Which of these lower-cased usernames are taken. */
export async function takenUsernames(db: Queryable, keys: string[]): Promise<Set<string>> {
  if (!keys.length) return new Set();
  const rows = await db.selectFrom('users').select('username_key').where('username_key', 'in', keys).execute();
  return new Set(rows.map((r) => r.username_key));
}

/** The taken lower-cased usernames that start with one of `prefixes`. */
export async function usernamesStartingWith(db: Queryable, prefixes: string[]): Promise<Set<string>> {
  if (!prefixes.length) return new Set();
  const rows = await db
    .selectFrom('users')
    .select('username_key')
    .where((eb) => eb.or(prefixes.map((p) => eb('username_key', 'like', `${p.replace(/[\\%_]/g, (c) => `\\${c}`)}%`))))
    .execute();
  return new Set(rows.map((r) => r.username_key));
}

export interface NewImportedUser {
  username: string;
  name: string;
  dob: string | null;
  email: string;
  email_verified: boolean;
  external_id: string | null;
  created_at: Date;
}

/**
 * Inserts the users in one statement and answers their ids by lower-cased username (on MySQL,
 * which has no INSERT … RETURNING, read back in the same transaction).
 */
export async function insertUsers(trx: Transaction<Database>, users: NewImportedUser[]): Promise<Map<string, string>> {
  if (!users.length) return new Map();
  const insert = insertMany(trx, 'users', { username: 'text', name: 'text', dob: 'date', email: 'text', email_verified: 'bool', external_id: 'text', created_at: 'timestamptz' }, users);
  if (!isMysql(trx)) return new Map((await insert.returning(['user_id', 'username_key']).execute()).map((r) => [r.username_key, r.user_id]));
  await insert.execute();
  const rows = await trx
    .selectFrom('users')
    .select(['user_id', 'username_key'])
    .where('username_key', 'in', users.map((u) => u.username.toLowerCase()))
    .execute();
  return new Map(rows.map((r) => [r.username_key, r.user_id]));
}

/** Which of these role names exist. */
export async function existingRoles(db: Queryable, names: string[]): Promise<Set<string>> {
  if (!names.length) return new Set();
  const rows = await db.selectFrom('roles').select('name').where('name', 'in', names).execute();
  return new Set(rows.map((r) => r.name));
}

/** Grants the roles (the command line grants them: no granter), leaving those already held. */
export async function grantRoles(trx: Transaction<Database>, grants: Array<{ user_id: string; role_name: string }>): Promise<void> {
  if (!grants.length) return;
  const held = await trx
    .selectFrom('user_roles')
    .select(['user_id', 'role_name'])
    .where('user_id', 'in', [...new Set(grants.map((g) => g.user_id))])
    .execute();
  const have = new Set(held.map((h) => `${h.user_id} ${h.role_name}`));
  const missing = grants.filter((g) => !have.has(`${g.user_id} ${g.role_name}`));
  if (missing.length) await trx.insertInto('user_roles').values(missing).execute();
}

export async function insertCredentials(trx: Transaction<Database>, rows: Array<{ user_id: string; hashed_password: string; imported: boolean }>): Promise<void> {
  if (rows.length) await insertMany(trx, 'user_credentials', { user_id: 'int8', hashed_password: 'text', imported: 'bool', is_current: 'bool' }, rows.map((r) => ({ ...r, is_current: true }))).execute();
}

export async function insertAuditRows(trx: Transaction<Database>, rows: AuditRow[]): Promise<void> {
  const types = { event: 'text', user_id: 'int8', session_id: 'int8', ip: 'text', user_agent: 'text', details: 'text', subject_pseudonym: 'text', actor_id: 'int8' } as const;
  if (rows.length) await insertMany(trx, 'audit_events', types, rows).execute();
}

export async function updateImportedUser(
  trx: Transaction<Database>,
  userId: string,
  changes: { username?: string; name?: string; dob?: string; email: string; email_verified: boolean; external_id?: string },
): Promise<void> {
  await trx.updateTable('users').set({ ...changes, updated_at: dbNow(trx) }).where('user_id', '=', userId).execute();
}

/** Makes `hash` the user's current password, the previous one history; nothing when it already is. */
export async function replaceCurrentHash(trx: Transaction<Database>, userId: string, hash: string, imported: boolean): Promise<void> {
  const current = await trx.selectFrom('user_credentials').select('hashed_password').where('user_id', '=', userId).where('is_current', '=', true).executeTakeFirst();
  if (current?.hashed_password === hash) return;
  await trx.updateTable('user_credentials').set({ is_current: false }).where('user_id', '=', userId).where('is_current', '=', true).execute();
  await trx.insertInto('user_credentials').values({ user_id: userId, hashed_password: hash, is_current: true, imported }).execute();
}

export interface ExportedRow {
  user_id: string;
  username: string;
  name: string;
  dob: string | null;
  email: string;
  email_verified: boolean;
  created_at: Date;
  external_id: string | null;
  hashed_password: string | null;
}

/** Users after `afterId` in id order, with their current hash: one page of `users export`. */
export function exportPage(db: Queryable, afterId: string | undefined, limit: number): Promise<ExportedRow[]> {
  let query = db
    .selectFrom('users')
    .leftJoin('user_credentials as c', (join) => join.onRef('c.user_id', '=', 'users.user_id').on('c.is_current', '=', true))
    .select(['users.user_id', 'users.username', 'users.name', 'users.dob', 'users.email', 'users.email_verified', 'users.created_at', 'users.external_id', 'c.hashed_password'])
    .orderBy('users.user_id')
    .limit(limit);
  if (afterId !== undefined) query = query.where('users.user_id', '>', afterId);
  return query.execute();
}

/** The number of users, for the export's progress and its audit event. */
export async function countUsers(db: Queryable): Promise<number> {
  const row = await db.selectFrom('users').select(sql<string>`count(*)`.as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

/** A person's own rows for GET /v1/users/me/export: never a hash, a token or a secret. */
export async function personalData(db: Queryable, userId: string) {
  const [sessions, passkeys, totp, codes] = await Promise.all([
    db
      .selectFrom('user_sessions')
      .select(['session_id', 'created_at', 'last_used_at', 'expires_at', 'ended_at', 'end_reason', 'is_active', 'user_agent', 'ip', 'amr'])
      .where('user_id', '=', userId)
      .orderBy('session_id')
      .execute(),
    db.selectFrom('user_passkeys').select(['name', 'created_at', 'last_used_at', 'device_type', 'backed_up']).where('user_id', '=', userId).orderBy('passkey_id').execute(),
    db.selectFrom('user_totp_factors').select(['created_at', 'confirmed_at']).where('user_id', '=', userId).executeTakeFirst(),
    db.selectFrom('user_recovery_codes').select(sql<string>`count(*)`.as('n')).where('user_id', '=', userId).where('used_at', 'is', null).executeTakeFirstOrThrow(),
  ]);
  return { sessions, passkeys, totp, recoveryCodesLeft: Number(codes.n) };
}
