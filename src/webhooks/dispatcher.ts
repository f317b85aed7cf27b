import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Clock } from '../core/clock.js';
import type { Database } from '../db/schema.js';
import { claimDue, finishAttempt, type ClaimedMessage } from './repository.js';

/** What one attempt came to. `gone`: the receiver said 410, the endpoint is to be disabled. */
export type Outcome = { ok: true; statusCode: number | null } | { ok: false; statusCode: number | null; error: string; gone?: boolean };

/** Sends one kind of message (webhook, mail). */
export interface Sender {
  send(message: ClaimedMessage): Promise<Outcome>;
  /** After the outcome is stored (410: disable the endpoint; a delivered mail: drop its payload). */
  settled?(message: ClaimedMessage, outcome: Outcome): Promise<void>;
}

export interface DispatcherLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/**
 * Standard Webhooks' retry schedule (API-INTEGRATION.md): each delay counted from the attempt
 * before; after the last, the message is marked failed.
 */
export const WEBHOOK_RETRY_DELAYS_MS: readonly number[] = [5_000, 5 * 60_000, 30 * 60_000, 2 * 3_600_000, 5 * 3_600_000, 10 * 3_600_000, 10 * 3_600_000];

export interface DispatcherOptions {
  db: Kysely<Database>;
  clock: Clock;
  log: DispatcherLog;
  senders: Record<string, Sender>;
  /** Per kind, the waits between attempts; past the last, failed. */
  retryDelays: Record<string, readonly number[]>;
  /** How long a taken message is this instance's: past it, another instance takes it over (this one died). */
  leaseMs: number;
  /** How often the outbox is looked at. */
  pollMs?: number;
  /** Messages taken at once. */
  batch?: number;
}

/**
 * Sends what the outbox holds, off the request path. Every instance runs one; a message is taken
 * under a lease in a short transaction (SKIP LOCKED: instances never wait on each other), sent
 * outside any transaction, and finished only by the lease's holder. An instance that dies
 * mid-delivery leaves its lease to run out, and another instance sends the message again (at
 * least once; the webhook-id lets receivers drop the duplicate).
 */
export class OutboxDispatcher {
  /** Names this instance's leases. */
  readonly owner = randomBytes(12).toString('base64url');
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<number> | undefined;
  #stopped = false;

  constructor(private readonly options: DispatcherOptions) {}

  start(): void {
    this.#stopped = false;
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running?.catch(() => {});
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      void this.runOnce()
        .catch((err: unknown) => this.options.log.warn({ err }, 'outbox dispatch failed'))
        .finally(() => this.#schedule());
    }, this.options.pollMs ?? 1000);
    this.#timer.unref();
  }

  /** One pass: takes what is due and sends it; answers how many were taken. One pass at a time per instance. */
  runOnce(): Promise<number> {
    if (!this.#running) {
      this.#running = this.#pass().finally(() => (this.#running = undefined));
    }
    return this.#running;
  }

  /** Passes until nothing is due (tests; a message made due by a pass, such as a user's next event, goes too). */
  async drain(): Promise<void> {
    await this.#running?.catch(() => {});
    while ((await this.runOnce()) > 0) {
      /* again */
    }
  }

  async #pass(): Promise<number> {
    const { db, clock, leaseMs, batch = 50 } = this.options;
    const now = clock.now();
    const claimed = await claimDue(db, this.owner, new Date(now), new Date(now + leaseMs), batch);
    await Promise.all(claimed.map((message) => this.#deliver(message)));
    return claimed.length;
  }

  async #deliver(message: ClaimedMessage): Promise<void> {
    const { db, clock, log, senders, retryDelays } = this.options;
    const sender = senders[message.kind];
    const started = clock.now();
    const startedReal = performance.now();
    let outcome: Outcome;
    try {
      outcome = sender ? await sender.send(message) : { ok: false, statusCode: null, error: `no sender for ${message.kind}` };
    } catch (err) {
      outcome = { ok: false, statusCode: null, error: (err as Error).message };
    }
    const durationMs = Math.round(performance.now() - startedReal);
    const attempt = message.attempts + 1;
    const delays = retryDelays[message.kind] ?? [];
    const retryIn = outcome.ok || (!outcome.ok && outcome.gone) ? undefined : delays[attempt - 1];
    const status = outcome.ok ? 'delivered' : retryIn === undefined ? 'failed' : 'pending';
    const finishedAt = clock.now();
    const kept = await finishAttempt(db, message.outbox_id, this.owner, {
      at: new Date(started),
      statusCode: outcome.statusCode,
      error: outcome.ok ? null : outcome.error,
      durationMs,
      status,
      nextAttemptAt: status === 'pending' ? new Date(finishedAt + retryIn!) : null,
    });
    if (!kept) {
      log.warn({ kind: message.kind, message_id: message.message_id }, 'outbox: the lease ran out during the delivery; another instance took the message over');
      return;
    }
    const facts = { kind: message.kind, type: message.event_type, message_id: message.message_id, attempt, status_code: outcome.statusCode };
    if (outcome.ok) log.info(facts, `outbox: ${message.kind} delivered`);
    else log.warn({ ...facts, reason: outcome.error, retry_in_ms: retryIn ?? null }, status === 'failed' ? `outbox: ${message.kind} failed` : `outbox: ${message.kind} not delivered, will retry`);
    await sender?.settled?.(message, outcome);
  }
}
