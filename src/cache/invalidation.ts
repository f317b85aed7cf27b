import type { Kysely, Transaction } from 'kysely';
import type { Db, Listener } from '../db/create-db.js';
import { INVALIDATION_CHANNEL, notifyInvalidated, parseInvalidation, type InvalidationKind } from '../db/notifications.js';
import type { Database } from '../db/schema.js';
import { InvalidatedCache } from './invalidated-cache.js';

type Queryable = Kysely<Database> | Transaction<Database>;

/**
 * This instance's caches and the channel that keeps them right: it listens for changes made by
 * other instances, turns the caches off while the channel is down, and tells the others of
 * changes made here.
 */
export class Invalidation {
  readonly caches: Record<InvalidationKind, InvalidatedCache<unknown>>;
  #listener: Listener | undefined;
  #watchdog: NodeJS.Timeout | undefined;

  constructor(caches: Record<InvalidationKind, InvalidatedCache<unknown>>) {
    this.caches = caches;
  }

  async start(db: Db): Promise<void> {
    this.#listener = await db.listen(INVALIDATION_CHANNEL, {
      onMessage: (payload) => {
        const message = parseInvalidation(payload);
        if (message) this.caches[message.kind].forget(message.ids);
      },
      onReset: () => this.#sync(),
    });
    this.#sync();
    // The listener reports its state through onReset; this also catches a silent change.
    this.#watchdog = setInterval(() => this.#sync(), 500);
    this.#watchdog.unref();
  }

  #sync(): void {
    const healthy = this.#listener?.healthy ?? false;
    for (const cache of Object.values(this.caches)) cache.setEnabled(healthy);
  }

  async stop(): Promise<void> {
    clearInterval(this.#watchdog);
    await this.#listener?.close();
  }

  /** Tells the other instances (on commit, when `db` is a transaction). */
  async publish(db: Queryable, kind: InvalidationKind, ids: readonly string[]): Promise<void> {
    if (ids.length) await notifyInvalidated(db, kind, ids);
  }

  /** This instance forgets at once; call once the change is committed. */
  forget(kind: InvalidationKind, ids: readonly string[]): void {
    if (ids.length) this.caches[kind].forget(ids);
  }
}
