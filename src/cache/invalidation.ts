import cluster, { type Worker } from 'node:cluster';
import type { Kysely, Transaction } from 'kysely';
import type { Db, Listener } from '../db/create-db.js';
import { INVALIDATION_CHANNEL, notifyInvalidated, parseInvalidation, type InvalidationKind } from '../db/notifications.js';
import type { Database } from '../db/schema.js';
import { InvalidatedCache } from './invalidated-cache.js';

type Queryable = Kysely<Database> | Transaction<Database>;

/**
 * The workers of one instance (WORKERS > 1, node:cluster) tell each other of every change
 * through the cluster's own channel, and an answer waits until the other workers have forgotten
 * (WORKER_ACK_WAIT_MS at most): to a client, one `npm start` is one instance, and the instance
 * that answered a logout refuses the token at once, whichever worker the next request reaches.
 * The database channel (NOTIFY, or the polled log on MySQL) is for the other instances.
 */
const WORKER_ACK_WAIT_MS = 1000;

/** A worker's change, sent to the supervisor, which hands it to every other worker. */
interface ForgetMessage {
  ums: 'forget';
  kind: InvalidationKind;
  ids: string[];
  /** Numbered by the sending worker; the supervisor answers `forgotten` with it. */
  seq: number;
}
/** From the supervisor: every other worker has forgotten the change numbered `seq`. */
interface ForgottenMessage {
  ums: 'forgotten';
  seq: number;
}
/** From a worker to the supervisor: the relayed change `relay` is forgotten here. */
interface AckMessage {
  ums: 'forget-ack';
  relay: number;
}
type ClusterMessage = ForgetMessage | ForgottenMessage | AckMessage | (Omit<ForgetMessage, 'seq'> & { relay: number });

function isClusterMessage(message: unknown): message is ClusterMessage {
  return typeof message === 'object' && message !== null && typeof (message as { ums?: unknown }).ums === 'string';
}

/**
 * This instance's caches and the channel that keeps them right: it listens for changes made by
 * other instances, turns the caches off while the channel is down, and tells the others of
 * changes made here.
 */
export class Invalidation {
  readonly caches: Record<InvalidationKind, InvalidatedCache<unknown>>;
  #listener: Listener | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  /** Changes sent to the other workers and not yet confirmed by all of them, by number. */
  #unconfirmed = new Map<number, { confirm: () => void; done: Promise<void> }>();
  #seq = 0;
  #onClusterMessage = (message: unknown) => {
    if (!isClusterMessage(message)) return;
    if (message.ums === 'forgotten') this.#unconfirmed.get(message.seq)?.confirm();
    else if (message.ums === 'forget' && 'relay' in message) {
      this.caches[message.kind]?.forget(message.ids);
      process.send?.({ ums: 'forget-ack', relay: message.relay } satisfies AckMessage);
    }
  };

  constructor(caches: Record<InvalidationKind, InvalidatedCache<unknown>>) {
    this.caches = caches;
  }

  /**
   * A Fastify onSend hook: holds an answer until the other workers have forgotten what this one
   * changed so far. Costs nothing when nothing is waiting (every answer but a change's).
   */
  readonly awaitWorkers = (_request: unknown, _reply: unknown, payload: unknown, done: (err: null, payload: unknown) => void): void => {
    if (this.#unconfirmed.size === 0) return done(null, payload);
    void Promise.all([...this.#unconfirmed.values()].map((change) => change.done)).then(() => done(null, payload));
  };

  async start(db: Db): Promise<void> {
    if (cluster.isWorker) process.on('message', this.#onClusterMessage);
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
    process.off('message', this.#onClusterMessage);
    for (const change of this.#unconfirmed.values()) change.confirm();
    clearInterval(this.#watchdog);
    await this.#listener?.close();
  }

  /** Tells the other instances (on commit, when `db` is a transaction). */
  async publish(db: Queryable, kind: InvalidationKind, ids: readonly string[]): Promise<void> {
    if (ids.length) await notifyInvalidated(db, kind, ids);
  }

  /** This instance forgets at once (every worker of it); call once the change is committed. */
  forget(kind: InvalidationKind, ids: readonly string[]): void {
    if (!ids.length) return;
    this.caches[kind].forget(ids);
    if (cluster.isWorker && process.connected) this.#tellWorkers(kind, ids);
  }

  #tellWorkers(kind: InvalidationKind, ids: readonly string[]): void {
    const seq = ++this.#seq;
    let confirm!: () => void;
    const done = new Promise<void>((resolve) => (confirm = resolve));
    // A worker that does not answer (stuck, dying) holds no answer for long; the database
    // channel still reaches it.
    const timer = setTimeout(() => confirm(), WORKER_ACK_WAIT_MS);
    timer.unref();
    void done.then(() => {
      clearTimeout(timer);
      this.#unconfirmed.delete(seq);
    });
    this.#unconfirmed.set(seq, { confirm, done });
    process.send!({ ums: 'forget', kind, ids: [...ids], seq } satisfies ForgetMessage, undefined, undefined, (err: Error | null) => {
      if (err) confirm();
    });
  }
}

/**
 * The supervisor's half (server.ts): hands each worker's change to every other worker and tells
 * the sender once they have all forgotten it. A worker that exits, or is still starting, is not waited for.
 */
export function relayInvalidations(): void {
  let relays = 0;
  const waiting = new Map<number, { from: Worker; seq: number; left: Set<Worker> }>();
  // A worker still starting has nothing cached and cannot answer yet: only those that listen are asked.
  const serving = new Set<Worker>();
  cluster.on('listening', (worker) => serving.add(worker));
  const settle = (relay: number) => {
    const entry = waiting.get(relay);
    if (!entry || entry.left.size > 0) return;
    waiting.delete(relay);
    if (entry.from.isConnected()) entry.from.send({ ums: 'forgotten', seq: entry.seq } satisfies ForgottenMessage);
  };
  cluster.on('message', (from, message: unknown) => {
    if (!isClusterMessage(message)) return;
    if (message.ums === 'forget-ack') {
      const entry = waiting.get(message.relay);
      entry?.left.delete(from);
      settle(message.relay);
      return;
    }
    if (message.ums !== 'forget' || !('seq' in message)) return;
    const relay = ++relays;
    const others = [...serving].filter((w) => w !== from && w.isConnected());
    waiting.set(relay, { from, seq: message.seq, left: new Set(others) });
    for (const worker of others) worker.send({ ums: 'forget', kind: message.kind, ids: message.ids, relay });
    settle(relay);
  });
  cluster.on('exit', (gone) => {
    serving.delete(gone);
    for (const [relay, entry] of waiting) {
      entry.left.delete(gone);
      settle(relay);
    }
  });
}
