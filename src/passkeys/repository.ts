import type { Kysely, Transaction } from 'kysely';
import { insertReturning } from '../db/returning.js';
import type { Database } from '../db/schema.js';
import { deleteInBatches, type PruneOptions } from '../db/batched-delete.js';

type Queryable = Kysely<Database> | Transaction<Database>;

export type ChallengePurpose = 'register' | 'authenticate';

const passkeyColumns = ['passkey_id', 'name', 'created_at', 'last_used_at'] as const;

/** How many passkeys the user has (GET /v1/users/me/mfa shows it). */
/** Erases the user's passkeys and pending challenges (account deletion). */
export async function erasePasskeys(trx: Queryable, userId: string): Promise<void> {
  await trx.deleteFrom('webauthn_challenges').where('user_id', '=', userId).execute();
  await trx.deleteFrom('user_passkeys').where('user_id', '=', userId).execute();
}

export async function countPasskeys(db: Queryable, userId: string): Promise<number> {
  const row = await db
    .selectFrom('user_passkeys')
    .select((eb) => eb.fn.countAll<string | number>().as('n'))
    .where('user_id', '=', userId)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

export function listPasskeys(db: Queryable, userId: string) {
  return db.selectFrom('user_passkeys').select(passkeyColumns).where('user_id', '=', userId).orderBy('passkey_id').execute();
}

/** The ids (and transports) of the user's credentials, for excludeCredentials. */
export function credentialIdsOf(db: Queryable, userId: string) {
  return db.selectFrom('user_passkeys').select(['credential_id', 'transports']).where('user_id', '=', userId).orderBy('passkey_id').execute();
}

export function findPasskeyByCredentialId(db: Queryable, credentialId: string) {
  return db
    .selectFrom('user_passkeys')
    .select(['passkey_id', 'user_id', 'credential_id', 'public_key', 'counter', 'transports'])
    .where('credential_id', '=', credentialId)
    .executeTakeFirst();
}

export async function insertPasskey(
  db: Queryable,
  values: { userId: string; credentialId: string; publicKey: string; counter: number; transports: string; name: string; deviceType: string; backedUp: boolean },
) {
  const insert = db
    .insertInto('user_passkeys')
    .values({
      user_id: values.userId,
      credential_id: values.credentialId,
      public_key: values.publicKey,
      counter: values.counter,
      transports: values.transports,
      name: values.name,
      device_type: values.deviceType,
      backed_up: values.backedUp,
    });
  return insertReturning(db, insert, passkeyColumns, (id) => db.selectFrom('user_passkeys').select(passkeyColumns).where('passkey_id', '=', id));
}

/**
 * Records a sign-in with the passkey, if its counter is still the one that was checked
 * (compare-and-swap: of two assertions racing with the same counter, one wins). False when it lost.
 */
export async function recordPasskeyUse(db: Queryable, passkeyId: string, expectedCounter: string, newCounter: number, backedUp: boolean, now: number): Promise<boolean> {
  const result = await db
    .updateTable('user_passkeys')
    .set({ counter: newCounter, backed_up: backedUp, last_used_at: new Date(now) })
    .where('passkey_id', '=', passkeyId)
    .where('counter', '=', expectedCounter)
    .executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

/** Deletes one of the user's passkeys; false when the user has no passkey with that id. */
export async function deletePasskey(db: Queryable, userId: string, passkeyId: string): Promise<boolean> {
  const result = await db.deleteFrom('user_passkeys').where('passkey_id', '=', passkeyId).where('user_id', '=', userId).executeTakeFirst();
  return result.numDeletedRows === 1n;
}

export async function insertChallenge(db: Queryable, values: { challenge: string; purpose: ChallengePurpose; userId: string | null; expiresAt: Date }): Promise<void> {
  await db
    .insertInto('webauthn_challenges')
    .values({ challenge: values.challenge, purpose: values.purpose, user_id: values.userId, expires_at: values.expiresAt })
    .execute();
}

/**
 * Uses up a challenge: deletes it and says whether it was there, unexpired, for this purpose
 * (and, for adding a passkey, this user). A challenge of the other purpose, or of another user,
 * is left alone.
 */
export async function consumeChallenge(db: Queryable, challenge: string, purpose: ChallengePurpose, userId: string | null, now: number): Promise<boolean> {
  let query = db
    .deleteFrom('webauthn_challenges')
    .where('challenge', '=', challenge)
    .where('purpose', '=', purpose)
    .where('expires_at', '>', new Date(now));
  query = userId === null ? query.where('user_id', 'is', null) : query.where('user_id', '=', userId);
  // Of two requests racing with the same challenge, exactly one deletes it.
  const result = await query.executeTakeFirst();
  return result.numDeletedRows === 1n;
}

export function pruneChallenges(db: Queryable, now: number, options?: PruneOptions): Promise<number> {
  const before = new Date(now);
  return deleteInBatches(db, { table: 'webauthn_challenges', key: ['challenge'], oldestFirst: 'expires_at', where: (eb) => eb('expires_at', '<', before) }, options);
}

