import type { Kysely, Transaction } from 'kysely';
import type { Db, Listener } from '../db/create-db.js';
import { SESSIONS_ENDED_CHANNEL, notifySessionsEnded, parseSessionsEnded } from '../db/notifications.js';
import type { Database } from '../db/schema.js';
import { endSessions, type EndReason } from './repository.js';
import type { SessionCache } from './session-cache.js';

type Queryable = Kysely<Database> | Transaction<Database>;

/**
 * Ending sessions, everywhere: the rows, the notification to other instances, and this
 * instance's cache. Every way a session ends goes through here.
 */
export class SessionRevocation {
  #listener: Listener | undefined;
  #watchdog: NodeJS.Timeout | undefined;

  constructor(private readonly cache: SessionCache) {}

  /** Starts listening for sessions ended by other instances. */
  async start(db: Db): Promise<void> {
    this.#listener = await db.listen(SESSIONS_ENDED_CHANNEL, {
      onMessage: (payload) => this.cache.forget(parseSessionsEnded(payload)),
      onReset: () => this.cache.setEnabled(this.#listener?.healthy ?? false),
    });
    this.cache.setEnabled(this.#listener.healthy);
    // The listener reports its state through onReset; this also catches a silent change.
    this.#watchdog = setInterval(() => this.cache.setEnabled(this.#listener?.healthy ?? false), 500);
    this.#watchdog.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#watchdog);
    await this.#listener?.close();
  }

  /**
   * Ends the matching active sessions and tells the other instances (on commit, when `db` is a
   * transaction). Call `forget` with the result once the change is committed.
   */
  async end(db: Queryable, where: Parameters<typeof endSessions>[1], reason: EndReason): Promise<string[]> {
    const ids = await endSessions(db, where, reason);
    if (ids.length) await notifySessionsEnded(db, ids);
    return ids;
  }

  /** This instance refuses the sessions at once. */
  forget(ids: readonly string[]): void {
    if (ids.length) this.cache.forget(ids);
  }

  /** end + forget, outside a transaction. */
  async endNow(db: Kysely<Database>, where: Parameters<typeof endSessions>[1], reason: EndReason): Promise<string[]> {
    const ids = await this.end(db, where, reason);
    this.forget(ids);
    return ids;
  }
}
