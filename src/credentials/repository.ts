import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../db/schema.js';

type Queryable = Kysely<Database> | Transaction<Database>;

export interface CurrentCredential {
  credentials_id: string;
  hashed_password: string;
}

export async function insertCurrentCredential(trx: Queryable, userId: string, hashedPassword: string): Promise<void> {
  await trx.insertInto('user_credentials').values({ user_id: userId, hashed_password: hashedPassword, is_current: true }).execute();
}

export function findCurrentCredential(db: Queryable, userId: string): Promise<CurrentCredential | undefined> {
  return db
    .selectFrom('user_credentials')
    .select(['credentials_id', 'hashed_password'])
    .where('user_id', '=', userId)
    .where('is_current', '=', true)
    .executeTakeFirst();
}

/** What the password rules compare a new password with: the account's username and email (read from users). */
export function findPolicySubject(db: Queryable, userId: string): Promise<{ user_id: string; username: string; email: string } | undefined> {
  return db.selectFrom('users').select(['user_id', 'username', 'email']).where('user_id', '=', userId).executeTakeFirst();
}

/** Makes every current password of the user history (a reset: the old one is not known). */
export async function retireCurrentCredentials(trx: Queryable, userId: string): Promise<void> {
  await trx.updateTable('user_credentials').set({ is_current: false }).where('user_id', '=', userId).where('is_current', '=', true).execute();
}

/** Erases the user's passwords, current and history (account deletion). */
export async function eraseCredentials(trx: Queryable, userId: string): Promise<void> {
  await trx.deleteFrom('user_credentials').where('user_id', '=', userId).execute();
}

/** The user's most recent password hashes, the current one first. */
export async function recentPasswordHashes(db: Queryable, userId: string, count: number): Promise<string[]> {
  const rows = await db
    .selectFrom('user_credentials')
    .select('hashed_password')
    .where('user_id', '=', userId)
    .orderBy('created_at', 'desc')
    .orderBy('credentials_id', 'desc')
    .limit(count)
    .execute();
  return rows.map((r) => r.hashed_password);
}

/**
 * Makes `credentialsId` history, if it is still the current one. False when another change
 * got there first.
 */
export async function retireCredential(trx: Queryable, credentialsId: string): Promise<boolean> {
  const result = await trx
    .updateTable('user_credentials')
    .set({ is_current: false })
    .where('credentials_id', '=', credentialsId)
    .where('is_current', '=', true)
    .executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

/** Replaces a hash in place with a stronger one of the same password (rehash on login). */
export async function replaceHash(db: Queryable, credentialsId: string, oldHash: string, newHash: string): Promise<void> {
  await db
    .updateTable('user_credentials')
    .set({ hashed_password: newHash })
    .where('credentials_id', '=', credentialsId)
    .where('hashed_password', '=', oldHash)
    .execute();
}
