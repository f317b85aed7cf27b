import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../db/schema.js';
import { dbNow } from '../db/dialect.js';
import { deleteInBatches, type PruneOptions } from '../db/batched-delete.js';

type Queryable = Kysely<Database> | Transaction<Database>;

/** How many tries an mfa_token allows: after this many wrong codes it is dead. */
export const MFA_TOKEN_MAX_FAILURES = 5;

export function findTotpFactor(db: Queryable, userId: string) {
  return db.selectFrom('user_totp_factors').selectAll().where('user_id', '=', userId).executeTakeFirst();
}

export async function isTotpOn(db: Queryable, userId: string): Promise<boolean> {
  const row = await db.selectFrom('user_totp_factors').select('user_id').where('user_id', '=', userId).where('confirmed_at', 'is not', null).executeTakeFirst();
  return row !== undefined;
}

export async function unusedRecoveryCodes(db: Queryable, userId: string): Promise<number> {
  const row = await db
    .selectFrom('user_recovery_codes')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('user_id', '=', userId)
    .where('used_at', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/**
 * Accepts a TOTP code of `step` once: only if no code of this step or a later one was accepted
 * before (a compare-and-swap, so two requests with the same code cannot both pass).
 */
export async function acceptTotpStep(db: Queryable, userId: string, step: number): Promise<boolean> {
  const result = await db
    .updateTable('user_totp_factors')
    .set({ last_used_step: step })
    .where('user_id', '=', userId)
    .where('confirmed_at', 'is not', null)
    .where((eb) => eb.or([eb('last_used_step', 'is', null), eb('last_used_step', '<', String(step))]))
    .executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

/** Uses a recovery code once (compare-and-swap on used_at). */
export async function useRecoveryCode(db: Queryable, userId: string, codeHash: string): Promise<boolean> {
  const result = await db
    .updateTable('user_recovery_codes')
    .set({ used_at: dbNow(db) })
    .where('user_id', '=', userId)
    .where('code_hash', '=', codeHash)
    .where('used_at', 'is', null)
    .executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

/** Everything second-factor of a user: the factor, the recovery codes, the sign-ins half-way. */
export async function deleteSecondFactors(db: Queryable, userId: string): Promise<{ totp: boolean }> {
  const factor = await db.deleteFrom('user_totp_factors').where('user_id', '=', userId).executeTakeFirst();
  await db.deleteFrom('user_recovery_codes').where('user_id', '=', userId).execute();
  await db.deleteFrom('mfa_tokens').where('user_id', '=', userId).execute();
  return { totp: factor.numDeletedRows > 0n };
}

/** Starts (or starts again) a set-up: the pending secret replaces any pending one. Fails on a unique key if a factor is confirmed meanwhile. */
export async function replacePendingTotp(db: Kysely<Database>, userId: string, sealedSecret: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.deleteFrom('user_totp_factors').where('user_id', '=', userId).where('confirmed_at', 'is', null).execute();
    await trx.insertInto('user_totp_factors').values({ user_id: userId, secret_encrypted: sealedSecret }).execute();
  });
}

/** Confirms the very set-up whose secret was checked (not one started again meanwhile). False if it is gone. */
export async function confirmPendingTotp(trx: Queryable, userId: string, sealedSecret: string, step: number, at: Date): Promise<boolean> {
  const confirmed = await trx
    .updateTable('user_totp_factors')
    .set({ confirmed_at: at, last_used_step: step })
    .where('user_id', '=', userId)
    .where('confirmed_at', 'is', null)
    .where('secret_encrypted', '=', sealedSecret)
    .executeTakeFirst();
  return confirmed.numUpdatedRows === 1n;
}

/** A new set of recovery codes (their hashes) replaces the old one. */
export async function replaceRecoveryCodes(trx: Queryable, userId: string, codeHashes: readonly string[]): Promise<void> {
  await trx.deleteFrom('user_recovery_codes').where('user_id', '=', userId).execute();
  await trx
    .insertInto('user_recovery_codes')
    .values(codeHashes.map((code_hash) => ({ user_id: userId, code_hash })))
    .execute();
}

export async function insertMfaToken(db: Queryable, values: { tokenHash: string; userId: string; ip: string | null; expiresAt: Date; firstFactor: string }): Promise<void> {
  await db.insertInto('mfa_tokens').values({ token_hash: values.tokenHash, user_id: values.userId, ip: values.ip, expires_at: values.expiresAt, first_factor: values.firstFactor }).execute();
}

/** Every sign-in half-way of the user ends (a password reset: an mfa_token from the old password). */
export async function deleteMfaTokens(trx: Queryable, userId: string): Promise<void> {
  await trx.deleteFrom('mfa_tokens').where('user_id', '=', userId).execute();
}

/** Every stored TOTP secret, for re-encryption. */
export function allTotpSecrets(db: Queryable) {
  return db.selectFrom('user_totp_factors').select(['user_id', 'secret_encrypted']).execute();
}

/** Replaces a sealed secret if it is still the one read (compare-and-swap). Answers whether it did. */
export async function swapTotpSecret(db: Queryable, userId: string, old: string, sealed: string): Promise<boolean> {
  const result = await db.updateTable('user_totp_factors').set({ secret_encrypted: sealed }).where('user_id', '=', userId).where('secret_encrypted', '=', old).executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

export function findMfaToken(db: Queryable, tokenHash: string) {
  return db.selectFrom('mfa_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
}

/** Marks the token used, if it still works (compare-and-swap: single use under concurrency). */
export async function useMfaToken(db: Queryable, tokenHash: string, now: number): Promise<boolean> {
  const result = await db
    .updateTable('mfa_tokens')
    .set({ used_at: dbNow(db) })
    .where('token_hash', '=', tokenHash)
    .where('used_at', 'is', null)
    .where('failures', '<', MFA_TOKEN_MAX_FAILURES)
    .where('expires_at', '>', new Date(now))
    .executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

export async function countMfaTokenFailure(db: Queryable, tokenHash: string): Promise<void> {
  await db
    .updateTable('mfa_tokens')
    .set((eb) => ({ failures: eb('failures', '+', 1) }))
    .where('token_hash', '=', tokenHash)
    .execute();
}

/** Drops tokens that expired more than a day ago. */
export function pruneMfaTokens(db: Queryable, now: number, options?: PruneOptions): Promise<number> {
  const before = new Date(now - 86_400_000);
  return deleteInBatches(db, { table: 'mfa_tokens', key: ['token_hash'], oldestFirst: 'expires_at', where: (eb) => eb('expires_at', '<', before) }, options);
}

/**
 * The user's passkeys, for GET /v1/users/me/mfa.
 */
