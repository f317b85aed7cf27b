import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database, UserRow } from '../db/schema.js';
import type { User } from './schemas.js';
import { dbNow } from '../db/dialect.js';
import { forShare, insertReturning, updateReturning } from '../db/returning.js';
import { supportsWritingCtes, WITH_ROW, type SideWrite } from '../db/side-writes.js';
import { insertCurrentCredential } from '../credentials/repository.js';
import { lookupKey } from '../core/lookup-key.js';

export { lookupKey };

type Queryable = Kysely<Database> | Transaction<Database>;

export const userColumns = ['user_id', 'username', 'name', 'dob', 'email', 'email_verified', 'created_at', 'updated_at', 'disabled_at'] as const;
export type UserRecord = Pick<UserRow, (typeof userColumns)[number]>;

// ASVS 5.0 V15.3.1: only the public fields, picked one by one.
export function toUser(row: UserRecord): User {
  return {
    id: String(row.user_id),
    username: row.username,
    name: row.name,
    dob: row.dob,
    email: row.email,
    email_verified: row.email_verified,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

export function findUserById(db: Queryable, userId: string): Promise<UserRecord | undefined> {
  return db.selectFrom('users').select(userColumns).where('user_id', '=', userId).executeTakeFirst();
}

/** Finds a user by username or email, ignoring case (the lower-cased key columns). */
export function findUserByLogin(db: Queryable, by: 'username' | 'email', value: string): Promise<UserRecord | undefined> {
  return db
    .selectFrom('users')
    .select(userColumns)
    .where(by === 'username' ? 'username_key' : 'email_key', '=', lookupKey(value))
    .executeTakeFirst();
}

/** Which of these values already belong to another user (case-insensitive). */
export async function takenFields(
  db: Queryable,
  values: { username?: string | undefined; email?: string | undefined },
  exceptUserId?: string,
): Promise<Array<'username' | 'email'>> {
  const username = values.username === undefined ? undefined : lookupKey(values.username);
  const email = values.email === undefined ? undefined : lookupKey(values.email);
  if (username === undefined && email === undefined) return [];
  // One round trip for both keys.
  let query = db
    .selectFrom('users')
    .select(['username_key', 'email_key'])
    .where((eb) =>
      eb.or([
        ...(username !== undefined ? [eb('username_key', '=', username)] : []),
        ...(email !== undefined ? [eb('email_key', '=', email)] : []),
      ]),
    );
  if (exceptUserId) query = query.where('user_id', '!=', exceptUserId);
  const rows = await query.execute();
  const taken: Array<'username' | 'email'> = [];
  if (username !== undefined && rows.some((r) => r.username_key === username)) taken.push('username');
  if (email !== undefined && rows.some((r) => r.email_key === email)) taken.push('email');
  return taken;
}

export function insertUser(trx: Queryable, values: { username: string; name: string; dob: string; email: string }): Promise<UserRecord> {
  return insertReturning(trx, trx.insertInto('users').values(values), userColumns, (id) => trx.selectFrom('users').select(userColumns).where('user_id', '=', id));
}

/**
 * The user, if they may hold a session (they exist and are not disabled), as the source of an
 * INSERT … SELECT (sessions/repository.ts): the row is locked for share, so a disable in
 * progress is waited for and then seen, and a disabled user never gets a session.
 */
export function enabledUser(db: Queryable, userId: string) {
  return forShare(db, db.selectFrom('users').where('user_id', '=', userId).where('disabled_at', 'is', null));
}

/**
 * A new user and their first (current) password, together: one statement on PostgreSQL (a
 * data-modifying WITH), a transaction on MySQL. A taken username or email fails it whole.
 */
export async function insertUserWithPassword(
  db: Kysely<Database>,
  values: { username: string; name: string; dob: string; email: string },
  hashedPassword: string,
  alongWith: ReadonlyArray<SideWrite<Record<string, unknown>>> = [],
): Promise<UserRecord> {
  if (!supportsWritingCtes(db)) {
    return db.transaction().execute(async (trx) => {
      const user = await insertUser(trx, values);
      await insertCurrentCredential(trx, user.user_id, hashedPassword);
      for (const write of alongWith) await write.run(trx, user);
      return user;
    });
  }
  let query = db
    .with(WITH_ROW, (q) => q.insertInto('users').values(values).returning(userColumns))
    .with('credential', (q) =>
      q
        .insertInto('user_credentials')
        .columns(['user_id', 'hashed_password', 'is_current'])
        .expression((eb) => eb.selectFrom(WITH_ROW).select((s) => [s.ref(`${WITH_ROW}.user_id`).as('user_id'), s.val(hashedPassword).as('hashed_password'), s.lit(true).as('is_current')])),
    );
  // Other features' writes (an event of the new user) in the same statement.
  for (const write of alongWith) for (const [name, statement] of write.ctes(db)) query = query.with(name, () => sql`(${statement})` as any) as unknown as typeof query;
  return query.selectFrom(WITH_ROW).select(userColumns).executeTakeFirstOrThrow();
}

/** Users by id, `limit` at a time after `offset`; `filter` matches username or email (case-insensitive substring). */
export function listUsers(db: Queryable, options: { limit: number; offset: number; filter?: string | undefined }): Promise<UserRecord[]> {
  let query = db.selectFrom('users').select(userColumns).orderBy('user_id').limit(options.limit).offset(options.offset);
  if (options.filter) {
    const pattern = `%${lookupKey(options.filter).replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    query = query.where((eb) => eb.or([eb('username_key', 'like', pattern), eb('email_key', 'like', pattern)]));
  }
  return query.execute();
}

/** A disabled user cannot sign in (the admin command line); enabling clears it. */
export async function setUserDisabled(trx: Queryable, userId: string, disabled: boolean): Promise<void> {
  await trx.updateTable('users').set({ disabled_at: disabled ? dbNow(trx) : null }).where('user_id', '=', userId).execute();
}

/** An operator confirmed the address another way (the admin command line). */
export async function markEmailVerifiedByAdmin(trx: Queryable, userId: string): Promise<void> {
  await trx.updateTable('users').set({ email_verified: true }).where('user_id', '=', userId).execute();
}

/** The user row goes (self-service deletion, once every feature erased its rows). */
export async function deleteUser(trx: Queryable, userId: string): Promise<void> {
  await trx.deleteFrom('users').where('user_id', '=', userId).execute();
}

/** The user's email, with the row locked until the transaction ends (an email change). */
export function lockUserEmail(trx: Queryable, userId: string) {
  return trx.selectFrom('users').select('email').where('user_id', '=', userId).forUpdate().executeTakeFirst();
}

export async function updateUser(
  db: Queryable,
  userId: string,
  changes: { username?: string; name?: string; dob?: string; email?: string; email_verified?: boolean },
): Promise<UserRecord | undefined> {
  const update = db
    .updateTable('users')
    .set({ ...changes, updated_at: dbNow(db) })
    .where('user_id', '=', userId);
  // Without UPDATE … RETURNING the row is read back (in the caller's transaction, it is ours).
  return updateReturning(update, db, userColumns, () => db.selectFrom('users').select(userColumns).where('user_id', '=', userId));
}
