import { createHmac } from 'node:crypto';
import type { Insertable, Kysely, Transaction } from 'kysely';
import type { AuditEventsTable, Database } from '../db/schema.js';
import { WriteBatcher } from '../db/write-batcher.js';
import { WITH_ROW, type SideWrite } from '../db/side-writes.js';
import { sql } from 'kysely';
import { deleteInBatches, type PruneOptions } from '../db/batched-delete.js';

/**
 * The security event log (ASVS 5.0 V16.1, V16.2, V16.3): who did what, when, from where.
 * Events never carry a password, hash or token (V16.2.5): details are small, typed facts.
 */

export const AUDIT_EVENTS = [
  'user_registered',
  'profile_updated',
  'login_succeeded',
  'login_failed',
  'throttled',
  'logout',
  'refresh',
  'refresh_reuse',
  'password_changed',
  'password_change_failed',
  'session_revoked',
  'sessions_revoked_all',
  'user_disabled',
  'user_enabled',
  'passkey_added',
  'passkey_removed',
  'passkey_login',
  'passkey_login_failed',
  'reauthentication_failed',
  'mfa_setup_started',
  'mfa_enabled',
  'mfa_disabled',
  'mfa_challenge_issued',
  'mfa_challenge_failed',
  'recovery_code_used',
  'mfa_reset_by_admin',
  'email_verification_sent',
  'email_verified',
  'password_reset_requested',
  'password_reset_completed',
  'account_deleted',
  'account_deletion_failed',
  // Administration (API-ADMIN.md): actor_id names the administrator.
  'user_created',
  'roles_changed',
  'role_created',
  'role_changed',
  'role_deleted',
  // Moving in and out (API-MIGRATION.md).
  'user_imported',
  'users_exported',
  'data_exported',
  'identity_linked',
  'identity_unlinked',
  // Organizations (API-ORGS.md): details carry org_id; user_id is whom it concerns, actor_id who did it.
  'org_created',
  'org_updated',
  'org_deleted',
  'org_member_added',
  'org_member_role_changed',
  'org_member_removed',
  'org_invitation_created',
  'org_invitation_revoked',
  'org_switched',
] as const;
export type AuditEventType = (typeof AUDIT_EVENTS)[number];

export interface AuditContext {
  userId?: string | null;
  sessionId?: string | null;
  ip: string | null;
  userAgent: string | null;
  /** In place of userId, for a user who deleted their account. */
  pseudonym?: string | null;
  /** The administrator acting on userId (API-ADMIN.md); absent for the user's own doings. */
  actorId?: string | null;
}

export interface AuditEvent {
  id: string;
  type: string;
  occurred_at: string;
  session_id: string | null;
  ip: string | null;
  user_agent: string | null;
  details: Record<string, unknown> | null;
  /** The administrator who did it, or null for the user's own doings. */
  actor_id: string | null;
}

export type AuditRow = Insertable<AuditEventsTable>;
export type AuditDetails = Record<string, string | number | boolean>;

/** The row of an event (for a statement that writes it along with what it records). */
export function auditRow(event: AuditEventType, context: AuditContext, details?: AuditDetails) {
  return {
    event,
    user_id: context.userId ?? null,
    session_id: context.sessionId ?? null,
    ip: context.ip,
    user_agent: context.userAgent?.slice(0, 512) ?? null,
    details: details ? JSON.stringify(details) : null,
    subject_pseudonym: context.pseudonym ?? null,
    actor_id: context.actorId ?? null,
  } satisfies AuditRow;
}

/**
 * Self-service deletion (API-ACCOUNT.md; GDPR art. 17). The user's rows go; the audit log keeps
 * its events with user_id replaced by a pseudonym: HMAC-SHA256 of the user id under a server
 * key (service_secrets 'audit_pseudonym'). Without the key the pseudonym says nothing; an
 * operator holding it can still tell which events belonged to one former account id, which is
 * what an investigation needs and all it gets.
 */
export function pseudonymFor(key: Buffer, userId: string): string {
  return `deleted:${createHmac('sha256', key).update(`user:${userId}`).digest('base64url').slice(0, 32)}`;
}

/**
 * The event `row` of a session being opened, written with the session in the same round trip
 * (sessions/repository.ts, insertSession) and only if it opened; its session id is the new one.
 */
export function eventOfNewSession(row: AuditRow): SideWrite<{ session_id: string }> {
  return {
    ctes: () => [
      [
        'event',
        sql`insert into audit_events (event, user_id, session_id, ip, user_agent, details, subject_pseudonym)
        select ${row.event}, cast(${row.user_id} as bigint), ${sql.ref(`${WITH_ROW}.session_id`)}, ${row.ip}, ${row.user_agent}, ${row.details}, ${row.subject_pseudonym}
        from ${sql.table(WITH_ROW)}`,
      ],
    ],
    run: async (trx, session) => {
      if (session) await trx.insertInto('audit_events').values({ ...row, session_id: String(session.session_id) }).execute();
    },
  };
}

/** A deleted user's events keep no user id: the pseudonym takes its place. */
export async function pseudonymizeEvents(trx: Transaction<Database>, userId: string, pseudonym: string): Promise<void> {
  await trx.updateTable('audit_events').set({ user_id: null, subject_pseudonym: pseudonym }).where('user_id', '=', userId).execute();
}

/** The latest security events of everyone, newest first, with the username where the user still exists (the admin command line). */
export async function latestEvents(db: Kysely<Database>, limit: number) {
  const rows = await db
    .selectFrom('audit_events')
    .leftJoin('users', 'users.user_id', 'audit_events.user_id')
    .select(['audit_events.event_id', 'audit_events.occurred_at', 'audit_events.event', 'audit_events.user_id', 'users.username', 'audit_events.session_id', 'audit_events.ip', 'audit_events.details'])
    .orderBy('audit_events.event_id', 'desc')
    .limit(limit)
    .execute();
  return rows.map((r) => ({
    id: r.event_id,
    occurred_at: r.occurred_at.toISOString(),
    event: r.event,
    user_id: r.user_id === null ? null : String(r.user_id),
    username: r.username ?? null,
    session_id: r.session_id === null ? null : String(r.session_id),
    ip: r.ip,
    details: r.details ? (JSON.parse(r.details) as unknown) : null,
  }));
}

export class AuditLog {
  // Events of requests running at the same time go in one INSERT; each request still waits for its own.
  readonly #rows: WriteBatcher<AuditRow, undefined>;

  readonly #listeners: Array<(row: AuditRow) => void> = [];

  constructor(private readonly db: Kysely<Database>) {
    this.#rows = new WriteBatcher(async (rows) => {
      await this.db.insertInto('audit_events').values(rows).execute();
      return rows.map(() => undefined);
    });
  }

  /** Writes the event; resolves once it is in the database. */
  async record(event: AuditEventType, context: AuditContext, details?: AuditDetails): Promise<void> {
    const row = auditRow(event, context, details);
    await this.#rows.push(row);
    for (const listener of this.#listeners) listener(row);
  }

  /** Calls `listener` with each event this instance records, once it is stored (security notices). */
  onRecorded(listener: (row: AuditRow) => void): void {
    this.#listeners.push(listener);
  }

  /** A user's own events, newest first, `limit` at a time, before the event id `before`. */
  async listForUser(userId: string, limit: number, before?: string): Promise<{ events: AuditEvent[]; next: string | null }> {
    let query = this.db
      .selectFrom('audit_events')
      .select(['event_id', 'event', 'occurred_at', 'session_id', 'ip', 'user_agent', 'details', 'actor_id'])
      .where('user_id', '=', userId)
      .orderBy('event_id', 'desc')
      .limit(limit + 1);
    if (before !== undefined) query = query.where('event_id', '<', before);
    const rows = await query.execute();
    const page = rows.slice(0, limit);
    return {
      events: page.map((row) => {
        // An administrator's doing: the user sees who and what, not the administrator's address and browser.
        const byOther = row.actor_id !== null && String(row.actor_id) !== userId;
        return {
          id: row.event_id,
          type: row.event,
          occurred_at: row.occurred_at.toISOString(),
          session_id: row.session_id === null || byOther ? null : String(row.session_id),
          ip: byOther ? null : row.ip,
          user_agent: byOther ? null : row.user_agent,
          details: row.details ? (JSON.parse(row.details) as Record<string, unknown>) : null,
          actor_id: row.actor_id === null ? null : String(row.actor_id),
        };
      }),
      next: rows.length > limit ? page.at(-1)!.event_id : null,
    };
  }

  /** Drops events older than the retention period. */
  prune(retentionDays: number, now: number, options?: PruneOptions): Promise<number> {
    const before = new Date(now - retentionDays * 86_400_000);
    return deleteInBatches(this.db, { table: 'audit_events', key: ['event_id'], oldestFirst: 'occurred_at', where: (eb) => eb('occurred_at', '<', before) }, options);
  }
}
