import type { Kysely } from 'kysely';
import type { Clock } from '../core/clock.js';
import type { DataCipher } from '../crypto/data-encryption.js';
import type { Database } from '../db/schema.js';
import { AppError, validationFailed, type FieldError } from '../errors.js';
import { literalAddressRefused } from './address-guard.js';
import {
  attemptsOf,
  deleteEndpoint,
  findDelivery,
  findEndpoint,
  insertEndpoint,
  listDeliveries,
  listEndpoints,
  rotateEndpointSecret,
  scheduleAgain,
  updateEndpoint,
  type DeliveryRow,
  type EndpointRow,
} from './repository.js';
import type { Delivery, NewWebhookBody, UpdateWebhookBody, Webhook } from './schemas.js';
import { SECRET_CONTEXT } from './sender.js';
import { newEndpointSecret } from './signing.js';

/** During a rotation the previous secret signs too, this long (API-INTEGRATION.md: 24 hours). */
export const ROTATION_OVERLAP_MS = 24 * 3_600_000;

const ID = /^[1-9][0-9]{0,17}$/;

function notFound(what: 'webhook' | 'delivery'): AppError {
  return new AppError('not_found', { detail: what === 'webhook' ? 'There is no webhook with that id.' : 'There is no delivery with that id for this webhook.' });
}

/** Events are stored ' a b ' (one LIKE finds a type) or '*'. */
function storedEvents(events: readonly string[]): string {
  return events.includes('*') ? '*' : ` ${[...events].sort().join(' ')} `;
}

function toWebhook(row: EndpointRow): Webhook {
  return {
    id: String(row.endpoint_id),
    url: row.url,
    events: row.events === '*' ? ['*'] : row.events.trim().split(' '),
    description: row.description,
    enabled: Boolean(row.enabled),
    disabled_reason: row.disabled_reason === 'gone' ? 'gone' : null,
    created_at: row.created_at.toISOString(),
  };
}

function toDelivery(row: DeliveryRow, attempts: Array<{ attempted_at: Date; status_code: number | null; error: string | null; duration_ms: number }>): Delivery {
  return {
    id: String(row.outbox_id),
    event_id: row.message_id,
    type: row.event_type,
    status: row.status as Delivery['status'],
    attempt_count: row.attempts,
    next_attempt_at: row.status === 'pending' && row.next_attempt_at ? row.next_attempt_at.toISOString() : null,
    response_status: row.last_status,
    error: row.last_error,
    created_at: row.created_at.toISOString(),
    finished_at: row.finished_at?.toISOString() ?? null,
    attempts: attempts.map((a) => ({ attempted_at: a.attempted_at.toISOString(), status_code: a.status_code, error: a.error, duration_ms: a.duration_ms })),
  };
}

export interface WebhooksServiceDeps {
  db: Kysely<Database>;
  clock: Clock;
  cipher: DataCipher;
  allowPrivate: boolean;
}

/** Webhook endpoints and their deliveries (API-INTEGRATION.md); the rules, never a request. */
export class WebhooksService {
  constructor(private readonly deps: WebhooksServiceDeps) {}

  /** The URL's rules: http(s), no user name or password in it, not a non-public address literal. */
  #checkUrl(raw: string, errors: FieldError[]): string {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      errors.push({ field: 'url', message: 'must be an absolute http or https URL' });
      return raw;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') errors.push({ field: 'url', message: 'must be an http or https URL' });
    else if (url.username || url.password) errors.push({ field: 'url', message: 'must not carry a user name or password (deliveries are signed)' });
    else if (url.hash) errors.push({ field: 'url', message: 'must not have a fragment' });
    else {
      const refused = literalAddressRefused(url, this.deps.allowPrivate);
      if (refused) errors.push({ field: 'url', message: `must reach a public address: ${refused}` });
    }
    return url.toString();
  }

  #checkEvents(events: readonly string[] | undefined, errors: FieldError[]): void {
    if (events && events.includes('*') && events.length > 1) errors.push({ field: 'events', message: 'must be ["*"] alone, or a list of event types' });
  }

  async list(): Promise<Webhook[]> {
    return (await listEndpoints(this.deps.db)).map(toWebhook);
  }

  async get(id: string): Promise<Webhook> {
    const row = ID.test(id) ? await findEndpoint(this.deps.db, id) : undefined;
    if (!row) throw notFound('webhook');
    return toWebhook(row);
  }

  /** A new endpoint (enabled) and its secret, shown this once. */
  async create(input: NewWebhookBody): Promise<Webhook & { secret: string }> {
    const errors: FieldError[] = [];
    const url = this.#checkUrl(input.url, errors);
    this.#checkEvents(input.events, errors);
    if (errors.length) throw validationFailed(errors);
    const secret = newEndpointSecret();
    const row = await insertEndpoint(this.deps.db, { url, events: storedEvents(input.events), description: input.description ?? '', secret: this.deps.cipher.encrypt(secret, SECRET_CONTEXT) });
    return { ...toWebhook(row), secret };
  }

  async update(id: string, input: UpdateWebhookBody): Promise<Webhook> {
    if (!ID.test(id)) throw notFound('webhook');
    const errors: FieldError[] = [];
    const url = input.url === undefined ? undefined : this.#checkUrl(input.url, errors);
    this.#checkEvents(input.events, errors);
    if (errors.length) throw validationFailed(errors);
    const set = {
      ...(url !== undefined ? { url } : {}),
      ...(input.events !== undefined ? { events: storedEvents(input.events) } : {}),
      ...(input.description !== undefined ? { description: input.description } : {}),
      ...(input.enabled !== undefined ? { enabled: input.enabled, disabled_reason: null } : {}),
    };
    if (!(await updateEndpoint(this.deps.db, id, set))) throw notFound('webhook');
    return this.get(id);
  }

  async remove(id: string): Promise<void> {
    if (!ID.test(id) || !(await deleteEndpoint(this.deps.db, id))) throw notFound('webhook');
  }

  /** A new secret, shown once; the old one signs too for 24 hours (two signatures). */
  async rotateSecret(id: string): Promise<Webhook & { secret: string }> {
    if (!ID.test(id)) throw notFound('webhook');
    const secret = newEndpointSecret();
    const rotated = await rotateEndpointSecret(this.deps.db, id, this.deps.cipher.encrypt(secret, SECRET_CONTEXT), new Date(this.deps.clock.now() + ROTATION_OVERLAP_MS));
    if (!rotated) throw notFound('webhook');
    return { ...(await this.get(id)), secret };
  }

  async deliveries(id: string, limit: number, before?: string): Promise<{ deliveries: Delivery[]; next: string | null }> {
    await this.get(id);
    const rows = await listDeliveries(this.deps.db, id, limit + 1, before);
    const page = rows.slice(0, limit);
    const attempts = await attemptsOf(
      this.deps.db,
      page.map((r) => r.outbox_id),
    );
    return {
      deliveries: page.map((row) => toDelivery(row, attempts.filter((a) => String(a.outbox_id) === String(row.outbox_id)))),
      next: rows.length > limit ? String(page.at(-1)!.outbox_id) : null,
    };
  }

  /** The retry button: the delivery is sent again now (same webhook-id), its schedule from the start. */
  async retry(id: string, deliveryId: string): Promise<Delivery> {
    await this.get(id);
    if (!ID.test(deliveryId)) throw notFound('delivery');
    // A delivery under way right now (leased) is left to finish: the answer shows it as it is.
    await scheduleAgain(this.deps.db, id, deliveryId);
    const row = await findDelivery(this.deps.db, id, deliveryId);
    if (!row) throw notFound('delivery');
    return toDelivery(row, await attemptsOf(this.deps.db, [row.outbox_id]));
  }
}
