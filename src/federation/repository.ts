import type { Kysely, Selectable, Transaction } from 'kysely';
import { insertReturning } from '../db/returning.js';
import type { Database, FederationSignupsTable, FederationStatesTable } from '../db/schema.js';
import { findUserByLogin, insertUser, type UserRecord } from '../users/repository.js';
import { deleteInBatches, type PruneOptions } from '../db/batched-delete.js';

type Queryable = Kysely<Database> | Transaction<Database>;

export type StateRow = Selectable<FederationStatesTable>;
export type SignupRow = Selectable<FederationSignupsTable>;

const identityColumns = ['identity_id', 'user_id', 'provider', 'subject', 'email', 'email_verified', 'created_at', 'last_used_at'] as const;

export async function insertState(db: Queryable, row: Omit<StateRow, 'user_id'> & { user_id: string | null }): Promise<void> {
  await db.insertInto('federation_states').values(row).execute();
}

/**
 * Takes a state once: read, then deleted; of two callbacks racing with the same state exactly one
 * gets it. An expired one is taken too (and answered as unknown by the service).
 */
export async function takeState(db: Queryable, stateHash: string): Promise<StateRow | undefined> {
  const row = await db.selectFrom('federation_states').selectAll().where('state_hash', '=', stateHash).executeTakeFirst();
  if (!row) return undefined;
  const { numDeletedRows } = await db.deleteFrom('federation_states').where('state_hash', '=', stateHash).executeTakeFirst();
  return numDeletedRows === 1n ? row : undefined;
}

export async function insertSignup(db: Queryable, row: SignupRow): Promise<void> {
  await db.insertInto('federation_signups').values(row).execute();
}

export function findSignup(db: Queryable, tokenHash: string): Promise<SignupRow | undefined> {
  return db.selectFrom('federation_signups').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
}

export async function deleteSignup(db: Queryable, tokenHash: string): Promise<boolean> {
  const { numDeletedRows } = await db.deleteFrom('federation_signups').where('token_hash', '=', tokenHash).executeTakeFirst();
  return numDeletedRows === 1n;
}

export async function pruneFlows(db: Queryable, now: Date, options?: PruneOptions): Promise<number> {
  const states = await deleteInBatches(db, { table: 'federation_states', key: ['state_hash'], oldestFirst: 'expires_at', where: (eb) => eb('expires_at', '<', now) }, options);
  const signups = await deleteInBatches(db, { table: 'federation_signups', key: ['token_hash'], oldestFirst: 'expires_at', where: (eb) => eb('expires_at', '<', now) }, options);
  return states + signups;
}

export function findIdentity(db: Queryable, provider: string, subject: string) {
  return db.selectFrom('user_identities').select(identityColumns).where('provider', '=', provider).where('subject', '=', subject).executeTakeFirst();
}

export function listIdentities(db: Queryable, userId: string) {
  return db.selectFrom('user_identities').select(identityColumns).where('user_id', '=', userId).orderBy('identity_id').execute();
}

export function insertIdentity(db: Queryable, values: { user_id: string; provider: string; subject: string; email: string | null; email_verified: boolean; last_used_at: Date | null }) {
  return insertReturning(db, db.insertInto('user_identities').values(values), ['identity_id'], (id) =>
    db.selectFrom('user_identities').select('identity_id').where('identity_id', '=', id),
  );
}

export async function recordIdentityUse(db: Queryable, identityId: string, at: Date, email: string | null, emailVerified: boolean): Promise<void> {
  await db.updateTable('user_identities').set({ last_used_at: at, email, email_verified: emailVerified }).where('identity_id', '=', identityId).execute();
}

export async function deleteIdentity(db: Queryable, userId: string, identityId: string): Promise<{ provider: string } | undefined> {
  const row = await db.selectFrom('user_identities').select('provider').where('identity_id', '=', identityId).where('user_id', '=', userId).executeTakeFirst();
  if (!row) return undefined;
  await db.deleteFrom('user_identities').where('identity_id', '=', identityId).where('user_id', '=', userId).execute();
  return row;
}

/**
 * Deletes one identity of the user unless no other way in would remain. The user's row is
 * locked first, so two unlinks at once (the last two identities) run one after the other and
 * the second sees what the first left.
 */
export async function unlinkUnlessLastWayIn(db: Kysely<Database>, userId: string, identityId: string): Promise<{ provider: string } | 'last_way_in' | undefined> {
  return db.transaction().execute(async (trx) => {
    await trx.selectFrom('users').select('user_id').where('user_id', '=', userId).forUpdate().executeTakeFirst();
    if ((await otherWaysIn(trx, userId, identityId)) === 0) return 'last_way_in';
    return deleteIdentity(trx, userId, identityId);
  });
}

/** The ways into an account besides one identity: a current password, a passkey, another identity. */
export async function otherWaysIn(db: Queryable, userId: string, exceptIdentityId: string): Promise<number> {
  const [password, passkeys, identities] = await Promise.all([
    db.selectFrom('user_credentials').select((eb) => eb.fn.countAll<string>().as('n')).where('user_id', '=', userId).where('is_current', '=', true).executeTakeFirstOrThrow(),
    db.selectFrom('user_passkeys').select((eb) => eb.fn.countAll<string>().as('n')).where('user_id', '=', userId).executeTakeFirstOrThrow(),
    db.selectFrom('user_identities').select((eb) => eb.fn.countAll<string>().as('n')).where('user_id', '=', userId).where('identity_id', '!=', exceptIdentityId).executeTakeFirstOrThrow(),
  ]);
  return Number(password.n) + Number(passkeys.n) + Number(identities.n);
}

export function findUserByEmail(db: Queryable, email: string): Promise<UserRecord | undefined> {
  return findUserByLogin(db, 'email', email);
}

/** A new user without a password and their first identity, together. */
export async function insertUserWithIdentity(
  db: Kysely<Database>,
  user: { username: string; name: string; dob: string; email: string; email_verified: boolean },
  identity: { provider: string; subject: string; at: Date },
  /** More writes in the same transaction (the user.created event). */
  alongWith: (trx: Transaction<Database>, row: UserRecord) => Promise<void> = async () => {},
): Promise<UserRecord> {
  return db.transaction().execute(async (trx) => {
    const { email_verified, ...values } = user;
    let row = await insertUser(trx, values);
    if (email_verified) {
      await trx.updateTable('users').set({ email_verified: true }).where('user_id', '=', row.user_id).execute();
      row = { ...row, email_verified: true };
    }
    await insertIdentity(trx, { user_id: row.user_id, provider: identity.provider, subject: identity.subject, email: user.email, email_verified, last_used_at: identity.at });
    await alongWith(trx, row);
    return row;
  });
}

export async function eraseIdentities(trx: Queryable, userId: string): Promise<void> {
  await trx.deleteFrom('federation_states').where('user_id', '=', userId).execute();
  await trx.deleteFrom('user_identities').where('user_id', '=', userId).execute();
}
