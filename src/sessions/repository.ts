import type { Kysely, Transaction } from 'kysely';
import type { Database, SessionRow } from '../db/schema.js';
import { sql } from 'kysely';
import { dbNow, isMysql } from '../db/dialect.js';

type Queryable = Kysely<Database> | Transaction<Database>;

export type EndReason = 'logout' | 'revoked' | 'revoked_all' | 'password_changed' | 'refresh_reuse' | 'mfa_enabled' | 'password_reset' | 'account_deleted';

/** What a request needs to know about its session. */
export type SessionState = Pick<SessionRow, 'session_id' | 'user_id' | 'is_active' | 'expires_at' | 'last_used_at'>;

/**
 * Opens a session, in the same statement that checks the user still exists and is not disabled,
 * so a user disabled while their login was being checked never gets a session. Undefined if not.
 */
export async function insertSession(
  db: Queryable,
  values: { userId: string; expiresAt: Date; refreshTokenHash: string; userAgent: string | null; ip: string | null; amr: readonly string[] },
): Promise<Pick<SessionRow, 'session_id' | 'created_at' | 'expires_at' | 'amr'> | undefined> {
  const mysql = isMysql(db);
  const insert = db
    .insertInto('user_sessions')
    .columns(['user_id', 'expires_at', 'refresh_token_hash', 'user_agent', 'ip', 'amr'])
    .expression((eb) =>
      eb
        .selectFrom('users')
        .select((s) => [
          s.ref('user_id').as('user_id'),
          s.val(values.expiresAt).as('expires_at'),
          s.val(values.refreshTokenHash).as('refresh_token_hash'),
          s.val(values.userAgent).as('user_agent'),
          s.val(values.ip).as('ip'),
          s.val(values.amr.join(' ')).as('amr'),
        ])
        .where('user_id', '=', values.userId)
        .where('disabled_at', 'is', null)
        // Waits for a disable in progress, then sees it (MariaDB spells FOR SHARE the old way).
        .$if(!mysql, (q) => q.forShare())
        .$if(mysql, (q) => q.modifyEnd(sql`lock in share mode`)),
    );
  if (mysql) {
    // No INSERT … RETURNING on MySQL 8: the new id, then the row.
    const { insertId, numInsertedOrUpdatedRows } = await insert.executeTakeFirstOrThrow();
    if (!numInsertedOrUpdatedRows || insertId === undefined) return undefined;
    return db.selectFrom('user_sessions').select(['session_id', 'created_at', 'expires_at', 'amr']).where('session_id', '=', String(insertId)).executeTakeFirst();
  }
  return insert.returning(['session_id', 'created_at', 'expires_at', 'amr']).executeTakeFirst();
}

export function findSessionState(db: Queryable, sessionId: string): Promise<SessionState | undefined> {
  return db
    .selectFrom('user_sessions')
    .select(['session_id', 'user_id', 'is_active', 'expires_at', 'last_used_at'])
    .where('session_id', '=', sessionId)
    .executeTakeFirst();
}

export function findSessionForRefresh(db: Queryable, sessionId: string) {
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
      'refresh_rotated_at',
      'refresh_generation',
      'amr',
    ])
    .where('session_id', '=', sessionId)
    .executeTakeFirst();
}

/**
 * Moves the session to its next refresh token if `presentedHash` is still its current one
 * (compare-and-swap: of two racing refreshes, exactly one rotates). False when it lost.
 */
export async function rotateRefreshToken(db: Queryable, sessionId: string, presentedHash: string, nextHash: string): Promise<boolean> {
  const result = await db
    .updateTable('user_sessions')
    .set((eb) => ({
      previous_refresh_token_hash: presentedHash,
      refresh_token_hash: nextHash,
      refresh_rotated_at: dbNow(db),
      refresh_generation: eb('refresh_generation', '+', 1),
      last_used_at: dbNow(db),
    }))
    .where('session_id', '=', sessionId)
    .where('refresh_token_hash', '=', presentedHash)
    .where('is_active', '=', true)
    .executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

/** Ends sessions; returns the ids that were active and now are not. */
export async function endSessions(
  db: Queryable,
  where: { userId: string; sessionId?: string; exceptSessionId?: string },
  reason: EndReason,
): Promise<string[]> {
  if (isMysql(db)) {
    // No UPDATE … RETURNING on MySQL/MariaDB: lock the rows, then end them, in one transaction.
    const run = async (trx: Queryable) => {
      let select = trx.selectFrom('user_sessions').select('session_id').where('user_id', '=', where.userId).where('is_active', '=', true);
      if (where.sessionId !== undefined) select = select.where('session_id', '=', where.sessionId);
      if (where.exceptSessionId !== undefined) select = select.where('session_id', '!=', where.exceptSessionId);
      const ids = (await select.forUpdate().execute()).map((r) => r.session_id);
      if (ids.length) {
        await trx
          .updateTable('user_sessions')
          .set({ is_active: false, ended_at: dbNow(trx), end_reason: reason })
          .where('session_id', 'in', ids)
          .where('is_active', '=', true)
          .execute();
      }
      return ids;
    };
    return db.isTransaction ? run(db) : (db as Kysely<Database>).transaction().execute(run);
  }
  let query = db
    .updateTable('user_sessions')
    .set({ is_active: false, ended_at: dbNow(db), end_reason: reason })
    .where('user_id', '=', where.userId)
    .where('is_active', '=', true);
  if (where.sessionId !== undefined) query = query.where('session_id', '=', where.sessionId);
  if (where.exceptSessionId !== undefined) query = query.where('session_id', '!=', where.exceptSessionId);
  const rows = await query.returning('session_id').execute();
  return rows.map((r) => r.session_id);
}

export function sessionBelongsTo(db: Queryable, sessionId: string, userId: string) {
  return db.selectFrom('user_sessions').select('session_id').where('session_id', '=', sessionId).where('user_id', '=', userId).executeTakeFirst();
}

/** The user's sessions that can still be used, newest first. */
export function listActiveSessions(db: Queryable, userId: string, idleTtlS: number) {
  return db
    .selectFrom('user_sessions')
    .select(['session_id', 'created_at', 'last_used_at', 'expires_at', 'is_active', 'user_agent', 'ip'])
    .where('user_id', '=', userId)
    .where('is_active', '=', true)
    .where('expires_at', '>', new Date())
    .where('last_used_at', '>', new Date(Date.now() - idleTtlS * 1000))
    .orderBy('created_at', 'desc')
    .orderBy('session_id', 'desc')
    .execute();
}

/** Drops sessions that ended (or expired) more than `retentionDays` ago: their address and agent go with them. */
export async function pruneEndedSessions(db: Queryable, retentionDays: number): Promise<void> {
  const before = new Date(Date.now() - retentionDays * 86_400_000);
  await db
    .deleteFrom('user_sessions')
    .where((eb) => eb.or([eb.and([eb('is_active', '=', false), eb('ended_at', '<', before)]), eb('expires_at', '<', before)]))
    .execute();
}
