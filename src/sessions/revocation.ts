import type { Kysely, Transaction } from 'kysely';
import type { Invalidation } from '../cache/invalidation.js';
import type { EventRecorder } from '../core/events.js';
import type { Database } from '../db/schema.js';
import { endSessions, type EndReason } from './repository.js';

type Queryable = Kysely<Database> | Transaction<Database>;

/**
 * Ending sessions, everywhere: the rows, the notification to other instances, and this
 * instance's cache. Every way a session ends goes through here.
 */
export class SessionRevocation {
  /** `events`: session.ended is recorded in the transaction that ends each session. */
  constructor(
    private readonly invalidation: Invalidation,
    private readonly events?: EventRecorder,
  ) {}

  /**
   * Ends the matching active sessions and tells the other instances (on commit, when `db` is a
   * transaction). Call `forget` with the result once the change is committed.
   */
  async end(db: Queryable, where: Parameters<typeof endSessions>[1], reason: EndReason): Promise<string[]> {
    const ids = await endSessions(db, where, reason);
    await this.invalidation.publish(db, 'session', ids);
    for (const id of ids) await this.events?.record(db, { type: 'session.ended', userId: where.userId, data: { session_id: id, reason } });
    return ids;
  }

  /** This instance refuses the sessions at once. */
  forget(ids: readonly string[]): void {
    this.invalidation.forget('session', ids);
  }

  /** end and forget, in a transaction of its own: the rows and the notification commit together. */
  async endNow(db: Kysely<Database>, where: Parameters<typeof endSessions>[1], reason: EndReason): Promise<string[]> {
    let ids: string[] = [];
    try {
      ids = await db.transaction().execute((trx) => this.end(trx, where, reason));
      return ids;
    } finally {
      // Forgetting a session that did not end costs one database read; keeping one that did is a hole.
      this.invalidation.forget('session', ids.length ? ids : where.sessionId ? [where.sessionId] : []);
    }
  }
}
