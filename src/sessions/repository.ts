import type { ExpressionBuilder, Kysely, Transaction } from 'kysely';
import type { Database, SessionRow } from '../db/schema.js';
import { sql } from 'kysely';
import { dbNow, dbSecondsAgo } from '../db/dialect.js';
import { insertReturningIfAny, updateReturning, updateReturningKeys } from '../db/returning.js';
import { supportsWritingCtes, WITH_ROW, type SideWrite } from '../db/side-writes.js';
import { lookupKey } from '../core/lookup-key.js';
import { enabledUser, userColumns, type UserRecord } from '../users/repository.js';
import type { EndReason } from '../core/revocation.js';
import { deleteInBatches, type PruneOptions } from '../db/batched-delete.js';

type Queryable = Kysely<Database> | Transaction<Database>;

export type { EndReason } from '../core/revocation.js';

/** What a request needs to know about its session. */
export type SessionState = Pick<SessionRow, 'session_id' | 'user_id' | 'is_active' | 'expires_at' | 'last_used_at'>;

/** Who is signing in by password: the account, its current password hash, whether TOTP is on. */
export interface PasswordSignInSubject {
  user: UserRecord;
  credential: { credentials_id: string; hashed_password: string; imported: boolean } | undefined;
  totpOn: boolean;
}

/**
 * The look-ups of a password sign-in in one round trip (the user by username or email, ignoring
 * case; the current credential; the confirmed TOTP factor), where three would each cost a
 * statement on every login.
 */
export async function findPasswordSignInSubject(db: Queryable, by: 'username' | 'email', value: string): Promise<PasswordSignInSubject | undefined> {
  const row = await db
    .selectFrom('users')
    .leftJoin('user_credentials as current', (join) => join.onRef('current.user_id', '=', 'users.user_id').on('current.is_current', '=', true))
    .leftJoin('user_totp_factors as totp', (join) => join.onRef('totp.user_id', '=', 'users.user_id').on('totp.confirmed_at', 'is not', null))
    .select(userColumns.map((column) => `users.${column}` as const))
    .select(['current.credentials_id', 'current.hashed_password', 'current.imported', 'totp.user_id as totp_user_id'])
    .where(by === 'username' ? 'users.username_key' : 'users.email_key', '=', lookupKey(value))
    .executeTakeFirst();
  if (!row) return undefined;
  const { credentials_id, hashed_password, imported, totp_user_id, ...user } = row;
  return {
    user,
    credential: credentials_id !== null && hashed_password !== null ? { credentials_id, hashed_password, imported: imported === true } : undefined,
    totpOn: totp_user_id !== null,
  };
}

type OpenedSession = Pick<SessionRow, 'session_id' | 'created_at' | 'expires_at' | 'amr'>;
const openedColumns = ['session_id', 'created_at', 'expires_at', 'amr'] as const;

/**
 * Opens a session for a user who may hold one (users/repository.ts, enabledUser: the check is
 * part of the same statement, so a user disabled while their sign-in was checked never gets a
 * session). Undefined if not.
 *
 * `alongWith` are other features' writes that close a sign-in (the login throttle's reset, the
 * `login_succeeded` event; each feature owns its rule and SQL): they go in the same round trip,
 * since every login pays for it (docs/performance.md): one statement on PostgreSQL
 * (data-modifying WITH, reading the new row as WITH_ROW), one transaction elsewhere.
 */
export async function insertSession(
  db: Kysely<Database>,
  values: { userId: string; expiresAt: Date; refreshTokenHash: string; userAgent: string | null; ip: string | null; amr: readonly string[]; parentSessionId?: string | null },
  alongWith: ReadonlyArray<SideWrite<OpenedSession>> = [],
): Promise<OpenedSession | undefined> {
  const insert = (q: Kysely<Database>) =>
    q
      .insertInto('user_sessions')
      .columns(['user_id', 'expires_at', 'refresh_token_hash', 'user_agent', 'ip', 'amr', 'parent_session_id'])
      .expression(
        enabledUser(q, values.userId).select((s) => [
          s.ref('user_id').as('user_id'),
          s.val(values.expiresAt).as('expires_at'),
          s.val(values.refreshTokenHash).as('refresh_token_hash'),
          s.val(values.userAgent).as('user_agent'),
          s.val(values.ip).as('ip'),
          s.val(values.amr.join(' ')).as('amr'),
          s.val(values.parentSessionId ?? null).as('parent_session_id'),
        ]),
      );
  const readBack = (q: Kysely<Database>) => (id: string) => q.selectFrom('user_sessions').select(openedColumns).where('session_id', '=', id);
  if (!supportsWritingCtes(db) || alongWith.length === 0) {
    const run = async (trx: Kysely<Database>) => {
      const session = await insertReturningIfAny(trx, insert(trx), openedColumns, readBack(trx));
      for (const write of alongWith) await write.run(trx as Transaction<Database>, session);
      return session;
    };
    return alongWith.length ? db.transaction().execute(run) : run(db);
  }
  // Data-modifying WITH: every part runs, in one snapshot.
  const parts = [sql`${sql.table(WITH_ROW)} as (${insert(db).returning(openedColumns)})`];
  for (const write of alongWith) for (const [name, statement] of write.ctes(db)) parts.push(sql`${sql.table(name)} as (${statement})`);
  const { rows } = await sql<OpenedSession>`
    with ${sql.join(parts)}
    select ${sql.join(openedColumns.map((column) => sql.ref(`${WITH_ROW}.${column}`)))} from ${sql.table(WITH_ROW)}`.execute(db);
  return rows[0];
}

export function findSessionState(db: Queryable, sessionId: string): Promise<SessionState | undefined> {
  return db
    .selectFrom('user_sessions')
    .select(['session_id', 'user_id', 'is_active', 'expires_at', 'last_used_at'])
    .where('session_id', '=', sessionId)
    .executeTakeFirst();
}

/**
 * The session, for a refresh that did not rotate it. `rotated_within` is 1 when its last rotation
 * was at most `retryS` seconds ago, measured on the database's clock, the one that stamped it, so
 * a skew between this process and the database neither opens nor closes the retry window.
 */
export function findSessionForRefresh(db: Queryable, sessionId: string, retryS: number) {
  return db
    .selectFrom('user_sessions')
    .select([
      'session_id',
      'user_id',
      'is_active',
      'created_at',
      'expires_at',
      'last_used_at',
      'refresh_token_hash',
      'previous_refresh_token_hash',
      'refresh_generation',
      'amr',
      'parent_session_id',
      sql<number>`case when refresh_rotated_at >= ${dbSecondsAgo(db, retryS)} then 1 else 0 end`.as('rotated_within'),
    ])
    .where('session_id', '=', sessionId)
    .executeTakeFirst();
}

/** What a refresh needs of the session it rotated. */
export type RotatedSession = Pick<SessionRow, 'session_id' | 'user_id' | 'created_at' | 'expires_at' | 'amr' | 'refresh_generation'>;

/**
 * The common refresh in one statement: moves the session to `nextHash` if `presentedHash` is its
 * current token and the session is usable at `now` (active, before its expiry, used within
 * `idleTtlS`), and answers the session; undefined if any of that is not so (the caller then reads
 * the row to tell a retry from a reuse). MySQL has no UPDATE … RETURNING: the row is read after.
 */
export async function rotateIfCurrent(
  db: Queryable,
  values: { sessionId: string; presentedHash: string; nextHash: string; now: Date; idleTtlS: number; clientSession: boolean },
): Promise<RotatedSession | undefined> {
  const update = db
    .updateTable('user_sessions')
    .set((eb) => ({
      previous_refresh_token_hash: values.presentedHash,
      refresh_token_hash: values.nextHash,
      refresh_rotated_at: dbNow(db),
      refresh_generation: eb('refresh_generation', '+', 1),
      last_used_at: dbNow(db),
    }))
    .where('session_id', '=', values.sessionId)
    .where('refresh_token_hash', '=', values.presentedHash)
    .where('is_active', '=', true)
    .where('expires_at', '>', values.now)
    .where('last_used_at', '>', new Date(values.now.getTime() - values.idleTtlS * 1000))
    // An app's session (opened from a browser session by the OpenID Provider) rotates only at
    // /oauth/token, where its client authenticates; the service's own sessions only here.
    .where('parent_session_id', values.clientSession ? 'is not' : 'is', null);
  const rotated = ['session_id', 'user_id', 'created_at', 'expires_at', 'amr', 'refresh_generation'] as const;
  return updateReturning(update, db, rotated, () => db.selectFrom('user_sessions').select(rotated).where('session_id', '=', values.sessionId));
}

/**
 * Gives an active session of `userId` a new refresh token that follows from no presented one (the
 * session's pair is issued again: an organization switch). The token before is an older generation
 * from then on: presented again, it is a replay.
 */
export async function rotateToFresh(db: Queryable, values: { sessionId: string; userId: string; nextHash: string }): Promise<RotatedSession | undefined> {
  const update = db
    .updateTable('user_sessions')
    .set((eb) => ({
      previous_refresh_token_hash: null,
      refresh_token_hash: values.nextHash,
      refresh_rotated_at: dbNow(db),
      refresh_generation: eb('refresh_generation', '+', 1),
    }))
    .where('session_id', '=', values.sessionId)
    .where('user_id', '=', values.userId)
    .where('is_active', '=', true);
  const rotated = ['session_id', 'user_id', 'created_at', 'expires_at', 'amr', 'refresh_generation'] as const;
  return updateReturning(update, db, rotated, () => db.selectFrom('user_sessions').select(rotated).where('session_id', '=', values.sessionId));
}

/** Ends sessions; returns the ids that were active and now are not. */
export async function endSessions(
  db: Queryable,
  where: { userId: string; sessionId?: string; exceptSessionId?: string },
  reason: EndReason,
): Promise<string[]> {
  return updateReturningKeys(db, 'user_sessions', 'session_id', (q) => {
    let matching = q.where('user_id', '=', where.userId).where('is_active', '=', true);
    // A client's session (OpenID Provider) ends with the browser session it was opened from.
    if (where.sessionId !== undefined) matching = matching.where((eb: ExpressionBuilder<Database, 'user_sessions'>) => eb.or([eb('session_id', '=', where.sessionId!), eb('parent_session_id', '=', where.sessionId!)]));
    if (where.exceptSessionId !== undefined) matching = matching.where('session_id', '!=', where.exceptSessionId);
    return matching;
  }, (q) => ({ is_active: false, ended_at: dbNow(q), end_reason: reason }));
}

/** The distinct addresses the user opened sessions from since `since` (at most 1000): the login throttle's known addresses. */
export async function addressesSince(db: Queryable, userId: string, since: Date): Promise<string[]> {
  const rows = await db
    .selectFrom('user_sessions')
    .select('ip')
    .distinct()
    .where('user_id', '=', userId)
    .where('created_at', '>', since)
    .where('ip', 'is not', null)
    .limit(1000)
    .execute();
  return rows.map((row) => row.ip!);
}

/**
 * Whether the user's session was opened within `seconds`, on the database's clock: it stamped
 * created_at, so a skew with this process changes nothing.
 */
export async function openedWithin(db: Queryable, caller: { userId: string; sessionId: string }, seconds: number): Promise<boolean> {
  const row = await db
    .selectFrom('user_sessions')
    .select('session_id')
    .where('session_id', '=', caller.sessionId)
    .where('user_id', '=', caller.userId)
    .where('created_at', '>=', dbSecondsAgo(db, seconds))
    // An app's session is opened by a code exchange, not by the person signing in: never a proof of presence.
    .where('parent_session_id', 'is', null)
    .executeTakeFirst();
  return row !== undefined;
}

/** How many of the user's sessions are active and not expired at `now` (the admin command line). */
export async function countActiveSessions(db: Queryable, userId: string, now: Date): Promise<number> {
  const row = await db
    .selectFrom('user_sessions')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('user_id', '=', userId)
    .where('is_active', '=', true)
    .where('expires_at', '>', now)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Erases the user's sessions, ended by the revocation path first (account deletion). */
export async function eraseSessions(trx: Queryable, userId: string): Promise<void> {
  await trx.deleteFrom('user_sessions').where('user_id', '=', userId).execute();
}

export function sessionBelongsTo(db: Queryable, sessionId: string, userId: string) {
  return db.selectFrom('user_sessions').select('session_id').where('session_id', '=', sessionId).where('user_id', '=', userId).executeTakeFirst();
}

/** The user's sessions that can still be used, newest first (GET /v1/sessions and the admin's view of them). */
export function listActiveSessions(db: Queryable, userId: string, idleTtlS: number, now: Date) {
  return db
    .selectFrom('user_sessions')
    .select(['session_id', 'created_at', 'last_used_at', 'expires_at', 'is_active', 'user_agent', 'ip', 'amr'])
    .where('user_id', '=', userId)
    .where('is_active', '=', true)
    .where('expires_at', '>', now)
    .where('last_used_at', '>', new Date(now.getTime() - idleTtlS * 1000))
    .orderBy('created_at', 'desc')
    .orderBy('session_id', 'desc')
    .execute();
}

/** Drops sessions that ended (or expired) more than `retentionDays` ago: their address and agent go with them. */
export function pruneEndedSessions(db: Queryable, retentionDays: number, now: number, options?: PruneOptions): Promise<number> {
  const before = new Date(now - retentionDays * 86_400_000);
  return deleteInBatches(db, {
    table: 'user_sessions',
    key: ['session_id'],
    oldestFirst: 'session_id',
    where: (eb) => eb.or([eb.and([eb('is_active', '=', false), eb('ended_at', '<', before)]), eb('expires_at', '<', before)]),
  }, options);
}

/** When and how a session was signed in (OpenID `auth_time` and `amr` for the clients it signs in to). */
export function findSessionSignIn(db: Queryable, sessionId: string) {
  return db
    .selectFrom('user_sessions')
    .select(['session_id', 'user_id', 'created_at', 'amr', 'parent_session_id', 'refresh_token_hash', 'expires_at'])
    .where('session_id', '=', sessionId)
    .executeTakeFirst();
}
