import http from 'node:http';
import https from 'node:https';
import type { Kysely } from 'kysely';
import type { Clock } from '../core/clock.js';
import type { DataCipher } from '../crypto/data-encryption.js';
import type { Database } from '../db/schema.js';
import { guardedLookup, literalAddressRefused, type Resolve } from './address-guard.js';
import type { Outcome, Sender } from './dispatcher.js';
import { endpointSecrets, reencryptEndpointSecrets, updateEndpoint, type ClaimedMessage } from './repository.js';
import { signatureHeader } from './signing.js';

/** The encryption context of an endpoint secret (DATA_ENCRYPTION_KEY). */
export const SECRET_CONTEXT = 'webhook_secret';

/** The most of an answer's body read (and thrown away): a receiver cannot make us hold more. */
const MAX_ANSWER_BYTES = 64 * 1024;

export interface WebhookSenderOptions {
  db: Kysely<Database>;
  clock: Clock;
  cipher: DataCipher;
  allowPrivate: boolean;
  timeoutMs: number;
  resolve: Resolve;
}

/**
 * POSTs a webhook (Standard Webhooks 1.0): signed with the endpoint's secret (and the previous
 * one during a rotation), through sockets whose DNS lookup refuses non-public addresses
 * (address-guard.ts). Keep-alive agents: the addresses a kept socket connects to were checked
 * when it opened.
 */
export class WebhookSender implements Sender {
  readonly #agents: { http: http.Agent; https: https.Agent };

  constructor(private readonly options: WebhookSenderOptions) {
    const lookup = guardedLookup(options.resolve, options.allowPrivate);
    this.#agents = { http: new http.Agent({ keepAlive: true, lookup }), https: new https.Agent({ keepAlive: true, lookup }) };
  }

  close(): void {
    this.#agents.http.destroy();
    this.#agents.https.destroy();
  }

  async send(message: ClaimedMessage): Promise<Outcome> {
    const { db, clock, cipher } = this.options;
    const endpoint = message.endpoint_id === null ? undefined : await endpointSecrets(db, message.endpoint_id);
    if (!endpoint) return { ok: false, statusCode: null, error: 'the endpoint is gone', gone: true };
    const now = clock.now();
    const secrets = [cipher.decrypt(endpoint.secret, SECRET_CONTEXT)];
    if (endpoint.previous_secret && endpoint.previous_secret_until && endpoint.previous_secret_until.getTime() > now) {
      secrets.push(cipher.decrypt(endpoint.previous_secret, SECRET_CONTEXT));
    }
    const timestampS = Math.floor(now / 1000);
    const url = new URL(endpoint.url);
    const refused = literalAddressRefused(url, this.options.allowPrivate);
    if (refused) return { ok: false, statusCode: null, error: refused };
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'user-management-webhooks/1',
      'webhook-id': message.message_id,
      'webhook-timestamp': String(timestampS),
      'webhook-signature': signatureHeader(secrets, message.message_id, timestampS, message.payload),
    };
    return this.#post(url, headers, message.payload);
  }

  async settled(message: ClaimedMessage, outcome: Outcome): Promise<void> {
    // 410 Gone (API-INTEGRATION.md): the receiver wants no more; the endpoint is disabled.
    if (!outcome.ok && outcome.gone && outcome.statusCode === 410 && message.endpoint_id !== null) {
      await updateEndpoint(this.options.db, message.endpoint_id, { enabled: false, disabled_reason: 'gone' });
    }
  }

  #post(url: URL, headers: Record<string, string>, body: string): Promise<Outcome> {
    const secure = url.protocol === 'https:';
    return new Promise<Outcome>((resolve) => {
      let settled = false;
      const done = (outcome: Outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(outcome);
      };
      const request = (secure ? https : http).request(url, { method: 'POST', headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, agent: secure ? this.#agents.https : this.#agents.http }, (response) => {
        const statusCode = response.statusCode ?? 0;
        let read = 0;
        response.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_ANSWER_BYTES) response.destroy();
        });
        const finish = () => {
          if (statusCode >= 200 && statusCode < 300) done({ ok: true, statusCode });
          else done({ ok: false, statusCode, error: `answered ${statusCode}`, gone: statusCode === 410 });
        };
        response.on('end', finish);
        response.on('close', finish);
        response.on('error', finish);
      });
      // The whole attempt, connection to last byte (API-INTEGRATION.md: 15 s).
      const timer = setTimeout(() => {
        request.destroy();
        done({ ok: false, statusCode: null, error: `no answer within ${this.options.timeoutMs} ms` });
      }, this.options.timeoutMs);
      request.on('error', (err: NodeJS.ErrnoException) => done({ ok: false, statusCode: null, error: err.code === 'EFORBIDDENADDRESS' ? err.message : `${err.code ?? 'error'}: ${err.message}` }));
      request.end(body);
    });
  }
}

/** `keys re-encrypt` for webhooks: every endpoint secret sealed under the current DATA_ENCRYPTION_KEY. */
export function reencryptWebhookSecrets(db: Kysely<Database>, cipher: DataCipher): Promise<number> {
  return reencryptEndpointSecrets(db, (sealed) => (cipher.isCurrent(sealed) ? undefined : cipher.encrypt(cipher.decrypt(sealed, SECRET_CONTEXT), SECRET_CONTEXT)));
}
