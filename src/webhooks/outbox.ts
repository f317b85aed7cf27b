import type { Kysely } from 'kysely';
import type { Config } from '../config.js';
import type { Clock } from '../core/clock.js';
import type { DataCipher } from '../crypto/data-encryption.js';
import type { Database } from '../db/schema.js';
import { systemResolve, type Resolve } from './address-guard.js';
import { OutboxDispatcher, WEBHOOK_RETRY_DELAYS_MS, type DispatcherLog, type Sender } from './dispatcher.js';
import { WebhookSender } from './sender.js';

/** How much longer than an attempt may take a lease lasts (the time to take the message and record the outcome). */
export const LEASE_MARGIN_MS = 10_000;

export interface OutboxOptions {
  db: Kysely<Database>;
  clock: Clock;
  cipher: DataCipher;
  config: Pick<Config, 'webhookAllowPrivate' | 'webhookTimeoutMs'>;
  log: DispatcherLog;
  /** Other kinds of message on the same outbox (mail), with their waits between attempts. */
  more?: Record<string, { sender: Sender; retryDelays: readonly number[] }>;
  /** Tests: a resolver of their own (DNS rebinding). */
  resolve?: Resolve;
}

/** The instance's dispatcher of the durable outbox: webhooks, and what `more` adds. */
export function createOutbox({ db, clock, cipher, config, log, more = {}, resolve = systemResolve }: OutboxOptions): { dispatcher: OutboxDispatcher; close: () => Promise<void> } {
  const webhooks = new WebhookSender({ db, clock, cipher, allowPrivate: config.webhookAllowPrivate, timeoutMs: config.webhookTimeoutMs, resolve });
  const senders: Record<string, Sender> = { webhook: webhooks };
  const retryDelays: Record<string, readonly number[]> = { webhook: WEBHOOK_RETRY_DELAYS_MS };
  for (const [kind, { sender, retryDelays: delays }] of Object.entries(more)) {
    senders[kind] = sender;
    retryDelays[kind] = delays;
  }
  // A lease outlives the longest attempt by a margin: only a dead instance's lease runs out.
  const dispatcher = new OutboxDispatcher({ db, clock, log, senders, retryDelays, leaseMs: config.webhookTimeoutMs + LEASE_MARGIN_MS });
  return {
    dispatcher,
    close: async () => {
      await dispatcher.stop();
      webhooks.close();
    },
  };
}
