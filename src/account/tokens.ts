import { sql, type Kysely, type Transaction } from 'kysely';
import type { AccountTokenKind, Database } from '../db/schema.js';
import { hashSecret, newSecret } from '../core/secrets.js';
import { lookupKey } from '../core/lookup-key.js';
import { dbNow } from '../db/dialect.js';
import { deleteInBatches, type PruneOptions } from '../db/batched-delete.js';

/**
 * Single-use tokens sent by mail (email verification, password reset). A token is 256 random
 * bits, base64url; only its SHA-256 is stored. It works once, until it expires, while it is the
 * newest of its kind for its user (a newer one supersedes it) and while the user's email is still
 * the address it was sent to.
 */

type Queryable = Kysely<Database> | Transaction<Database>;

/** What a token looks like; anything else is answered like an unknown token, without a lookup. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

/** Erases the user's mail tokens (account deletion). */
export async function eraseTokens(trx: Queryable, userId: string): Promise<void> {
  await trx.deleteFrom('account_tokens').where('user_id', '=', userId).execute();
}

export const HOUR_MS = 3_600_000;

export type Issued = { token: string } | { retryAfterS: number } | { noUser: true };

/**
 * Makes a new token for the user, unless `maxPerHour` tokens of this kind (to this address, when
 * `perAddress`) were made in the last hour. The user's row is locked meanwhile, so requests at
 * the same moment cannot both slip under the cap.
 */
export async function issueToken(
  db: Kysely<Database>,
  input: { userId: string; kind: AccountTokenKind; email: string; ttlMs: number; maxPerHour: number; perAddress: boolean; newUser?: boolean; now: number },
): Promise<Issued> {
  const token = newSecret();
  if (input.newUser) {
    // The user was created by this very request: no token of theirs to count, nobody else
    // issuing one yet, so one plain insert (registration pays for it on every sign-up).
    await db.insertInto('account_tokens').values(tokenRow(token, input)).execute();
    return { token };
  }
  return db.transaction().execute(async (trx): Promise<Issued> => {
    const user = await trx.selectFrom('users').select('user_id').where('user_id', '=', input.userId).forUpdate().executeTakeFirst();
    if (!user) return { noUser: true };
    const waitS = await hourlyCapWait(trx, input);
    if (waitS !== undefined) return { retryAfterS: waitS };
    await trx.insertInto('account_tokens').values(tokenRow(token, input)).execute();
    return { token };
  });
}

function tokenRow(token: string, input: { userId: string; kind: AccountTokenKind; email: string; ttlMs: number; now: number }) {
  return { token_hash: hashSecret(token), user_id: input.userId, kind: input.kind, email: input.email, expires_at: new Date(input.now + input.ttlMs) };
}

/**
 * Seconds until one more token of this kind may be issued under the hourly cap (per user, or per
 * address with `perAddress`), or undefined when one may be issued now.
 */
export async function hourlyCapWait(
  db: Queryable,
  input: { userId: string; kind: AccountTokenKind; email: string; maxPerHour: number; perAddress: boolean; now: number },
): Promise<number | undefined> {
  const since = new Date(input.now - HOUR_MS);
  let recent = db
    .selectFrom('account_tokens')
    .select('created_at')
    .where('user_id', '=', input.userId)
    .where('kind', '=', input.kind)
    .where('created_at', '>', since)
    .orderBy('created_at', 'asc');
  if (input.perAddress) recent = recent.where(sql<string>`lower(email)`, '=', lookupKey(input.email));
  const rows = await recent.execute();
  if (rows.length < input.maxPerHour) return undefined;
  const oldest = rows[rows.length - input.maxPerHour]!.created_at.getTime();
  return Math.max(1, Math.ceil((oldest + HOUR_MS - input.now) / 1000));
}

export interface LiveToken {
  token_id: string;
  user_id: string;
  /** The address it was sent to (still the user's email when it was found). */
  email: string;
}

/** The token if it works now (see above), else undefined. */
export async function findLiveToken(db: Queryable, kind: AccountTokenKind, token: string, now: number): Promise<LiveToken | undefined> {
  if (!TOKEN_SHAPE.test(token)) return undefined;
  const row = await db
    .selectFrom('account_tokens as t')
    .innerJoin('users as u', 'u.user_id', 't.user_id')
    .select(['t.token_id', 't.user_id', 't.email as sent_to', 'u.email'])
    .where('t.token_hash', '=', hashSecret(token))
    .where('t.kind', '=', kind)
    .where('t.used_at', 'is', null)
    .where('t.expires_at', '>', new Date(now))
    .where(({ not, exists, selectFrom }) =>
      not(
        exists(
          selectFrom('account_tokens as newer')
            .select('newer.token_id')
            .whereRef('newer.user_id', '=', 't.user_id')
            .whereRef('newer.kind', '=', 't.kind')
            .whereRef('newer.token_id', '>', 't.token_id'),
        ),
      ),
    )
    .executeTakeFirst();
  if (!row || lookupKey(row.sent_to) !== lookupKey(row.email)) return undefined;
  return { token_id: row.token_id, user_id: row.user_id, email: row.sent_to };
}

/** Uses the token up; false when it was used (or expired) meanwhile. */
export async function consumeToken(trx: Queryable, tokenId: string, now: number): Promise<boolean> {
  const result = await trx
    .updateTable('account_tokens')
    .set({ used_at: dbNow(trx) })
    .where('token_id', '=', tokenId)
    .where('used_at', 'is', null)
    .where('expires_at', '>', new Date(now))
    .executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

/** Marks the email verified, if it is still the address the token went to; false if not. */
export async function markEmailVerified(trx: Queryable, userId: string, email: string): Promise<boolean> {
  const result = await trx
    .updateTable('users')
    .set({ email_verified: true })
    .where('user_id', '=', userId)
    .where('email_key', '=', lookupKey(email))
    .executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

/** Drops tokens that expired over a day ago (they no longer count against any cap either). */
export function pruneTokens(db: Kysely<Database>, now: number, options?: PruneOptions): Promise<number> {
  const before = new Date(now - 24 * HOUR_MS);
  return deleteInBatches(db, { table: 'account_tokens', key: ['token_id'], oldestFirst: 'token_id', where: (eb) => eb('expires_at', '<', before) }, options);
}
