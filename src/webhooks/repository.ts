import { randomBytes } from 'node:crypto';
import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import type { DomainEvent, EventWriter } from '../core/events.js';
import { insertReturning } from '../db/returning.js';
import type { Database } from '../db/schema.js';
import { WITH_ROW, type SideWrite } from '../db/side-writes.js';

type Queryable = Kysely<Database> | Transaction<Database>;

/** A webhook-id: unique per message, the same on each of its attempts (Standard Webhooks). */
export function newMessageId(): string {
  return `msg_${randomBytes(16).toString('base64url')}`;
}

/** The body of a delivery (API-INTEGRATION.md): type, timestamp, data with user_id first. */
export function eventBody(event: DomainEvent, at: Date, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ type: event.type, timestamp: at.toISOString(), data: { user_id: event.userId, ...extra, ...event.data } });
}

/** The endpoints that want `type`: enabled, and subscribed to it or to everything. */
function subscribed(db: Queryable, type: string) {
  return db
    .selectFrom('webhook_endpoints')
    .where('enabled', '=', true)
    .where((eb) => eb.or([eb('events', '=', '*'), eb('events', 'like', `% ${type} %`)]));
}

/**
 * The outbox as the core's EventWriter: one INSERT … SELECT per event, a row per subscribed
 * endpoint, none when no endpoint wants it.
 */
export const outboxEventWriter: EventWriter = {
  async write(db, event, at) {
    const body = eventBody(event, at);
    const messageId = newMessageId();
    await db
      .insertInto('outbox')
      .columns(['kind', 'endpoint_id', 'message_id', 'event_type', 'order_key', 'payload'])
      .expression(
        subscribed(db, event.type).select((eb) => [
          sql<string>`'webhook'`.as('kind'),
          eb.ref('endpoint_id').as('endpoint_id'),
          sql<string>`${messageId}`.as('message_id'),
          sql<string>`${event.type}`.as('event_type'),
          sql<string | null>`${event.userId}`.as('order_key'),
          sql<string>`${body}`.as('payload'),
        ]),
      )
      .execute();
  },

  withNewRow(event, ids, at) {
    const messageId = newMessageId();
    // The body is made around the new row's ids: each is a marker, split out and joined back in SQL.
    const columns = [...(ids.userId ? [['user_id', ids.userId] as const] : []), ...Object.entries(ids.data ?? {})];
    const markers = columns.map(([key], i) => [key, `\u0000${i}\u0000`] as const);
    let rest = eventBody({ ...event, userId: ids.userId ? null : event.userId }, at, Object.fromEntries(markers));
    const pieces: RawBuilder<unknown>[] = [];
    for (const [i, [, column]] of columns.entries()) {
      const [before, after] = rest.split(JSON.stringify(markers[i]![1])) as [string, string];
      pieces.push(sql`${before}`, sql`'"' || cast(${sql.ref(`${WITH_ROW}.${column}`)} as text) || '"'`);
      rest = after;
    }
    pieces.push(sql`${rest}`);
    return {
      ctes: () => [
        [
          'webhook_event',
          sql`insert into outbox (kind, endpoint_id, message_id, event_type, order_key, payload)
          select 'webhook', e.endpoint_id, ${messageId}, ${event.type}, ${ids.userId ? sql`cast(${sql.ref(`${WITH_ROW}.${ids.userId}`)} as text)` : event.userId}, ${sql.join(pieces, sql` || `)}
          from ${sql.table(WITH_ROW)}, webhook_endpoints e
          where e.enabled and (e.events = '*' or e.events like ${`% ${event.type} %`})`,
        ],
      ],
      run: async (trx, row) => {
        if (!row) return;
        const data = Object.fromEntries(Object.entries(ids.data ?? {}).map(([key, column]) => [key, String(row[column])]));
        await outboxEventWriter.write(trx, { ...event, userId: ids.userId ? String(row[ids.userId]) : event.userId, data: { ...data, ...event.data } }, at);
      },
    } satisfies SideWrite<Record<string, unknown>>;
  },
};

export interface EndpointRow {
  endpoint_id: string;
  url: string;
  events: string;
  description: string;
  enabled: boolean;
  disabled_reason: string | null;
  created_at: Date;
}

const endpointColumns = ['endpoint_id', 'url', 'events', 'description', 'enabled', 'disabled_reason', 'created_at'] as const;

export function listEndpoints(db: Queryable): Promise<EndpointRow[]> {
  return db.selectFrom('webhook_endpoints').select(endpointColumns).orderBy('endpoint_id').execute();
}

export function findEndpoint(db: Queryable, id: string): Promise<EndpointRow | undefined> {
  return db.selectFrom('webhook_endpoints').select(endpointColumns).where('endpoint_id', '=', id).executeTakeFirst();
}

export function insertEndpoint(db: Queryable, values: { url: string; events: string; description: string; secret: string }): Promise<EndpointRow> {
  return insertReturning(db, db.insertInto('webhook_endpoints').values(values), endpointColumns, (id) =>
    db.selectFrom('webhook_endpoints').select(endpointColumns).where('endpoint_id', '=', id),
  );
}

export async function updateEndpoint(
  db: Queryable,
  id: string,
  set: Partial<{ url: string; events: string; description: string; enabled: boolean; disabled_reason: string | null }>,
): Promise<boolean> {
  const result = await db.updateTable('webhook_endpoints').set(set).where('endpoint_id', '=', id).executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** The endpoint's secret now becomes the previous one (signing too until `until`), `secret` the new. */
export async function rotateEndpointSecret(db: Queryable, id: string, secret: string, until: Date): Promise<boolean> {
  const result = await db
    .updateTable('webhook_endpoints')
    .set((eb) => ({ previous_secret: eb.ref('secret'), previous_secret_until: until, secret }))
    .where('endpoint_id', '=', id)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function deleteEndpoint(db: Queryable, id: string): Promise<boolean> {
  const result = await db.deleteFrom('webhook_endpoints').where('endpoint_id', '=', id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

export function endpointSecrets(db: Queryable, id: string) {
  return db
    .selectFrom('webhook_endpoints')
    .select(['url', 'enabled', 'secret', 'previous_secret', 'previous_secret_until'])
    .where('endpoint_id', '=', id)
    .executeTakeFirst();
}

/** A mail for the outbox (its payload already encrypted), in the caller's transaction when it passes one. */
export async function insertMail(db: Queryable, payload: string): Promise<void> {
  await db.insertInto('outbox').values({ kind: 'mail', message_id: newMessageId(), event_type: 'mail', payload }).execute();
}

export interface ClaimedMessage {
  outbox_id: string;
  kind: string;
  endpoint_id: string | null;
  message_id: string;
  event_type: string;
  payload: string;
  attempts: number;
}

/**
 * Takes up to `limit` due messages under a lease for `owner` until `leaseUntil`: pending, due,
 * not leased (or leased by an instance that died: the lease ran out), to an enabled endpoint (or
 * a mail), and the first pending one of its user to its endpoint (order per user). Rows another
 * instance is claiming at the same moment are skipped (SKIP LOCKED), not waited for.
 */
export async function claimDue(db: Kysely<Database>, owner: string, now: Date, leaseUntil: Date, limit: number): Promise<ClaimedMessage[]> {
  return db.transaction().execute(async (trx) => {
    const rows = await trx
      .selectFrom('outbox as o')
      .select(['o.outbox_id', 'o.kind', 'o.endpoint_id', 'o.message_id', 'o.event_type', 'o.payload', 'o.attempts'])
      .where('o.status', '=', 'pending')
      .where((eb) => eb.or([eb('o.next_attempt_at', 'is', null), eb('o.next_attempt_at', '<=', now)]))
      .where((eb) => eb.or([eb('o.lease_until', 'is', null), eb('o.lease_until', '<=', now)]))
      .where((eb) =>
        eb.or([
          eb('o.endpoint_id', 'is', null),
          eb.exists(eb.selectFrom('webhook_endpoints as e').select('e.endpoint_id').whereRef('e.endpoint_id', '=', 'o.endpoint_id').where('e.enabled', '=', true)),
        ]),
      )
      .where((eb) =>
        eb.or([
          eb('o.order_key', 'is', null),
          eb.not(
            eb.exists(
              eb
                .selectFrom('outbox as p')
                .select('p.outbox_id')
                .whereRef('p.endpoint_id', '=', 'o.endpoint_id')
                .whereRef('p.order_key', '=', 'o.order_key')
                .where('p.status', '=', 'pending')
                .whereRef('p.outbox_id', '<', 'o.outbox_id'),
            ),
          ),
        ]),
      )
      .orderBy('o.outbox_id')
      .limit(limit)
      .forUpdate()
      .skipLocked()
      .execute();
    if (rows.length === 0) return [];
    await trx
      .updateTable('outbox')
      .set({ lease_owner: owner, lease_until: leaseUntil })
      .where(
        'outbox_id',
        'in',
        rows.map((r) => r.outbox_id),
      )
      .execute();
    return rows;
  });
}

export interface AttemptResult {
  at: Date;
  statusCode: number | null;
  error: string | null;
  durationMs: number;
  /** 'delivered', 'failed' or 'pending' (to be retried at nextAttemptAt). */
  status: 'delivered' | 'failed' | 'pending';
  nextAttemptAt: Date | null;
}

/** Records an attempt and its outcome, if `owner` still holds the lease (else another instance took it over). */
export async function finishAttempt(db: Kysely<Database>, outboxId: string, owner: string, result: AttemptResult): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const updated = await trx
      .updateTable('outbox')
      .set((eb) => ({
        status: result.status,
        attempts: eb('attempts', '+', 1),
        next_attempt_at: result.nextAttemptAt,
        lease_owner: null,
        lease_until: null,
        last_status: result.statusCode,
        last_error: result.error?.slice(0, 255) ?? null,
        finished_at: result.status === 'pending' ? null : result.at,
      }))
      .where('outbox_id', '=', outboxId)
      .where('lease_owner', '=', owner)
      .executeTakeFirst();
    if (updated.numUpdatedRows === 0n) return false;
    await trx
      .insertInto('outbox_attempts')
      .values({ outbox_id: outboxId, attempted_at: result.at, status_code: result.statusCode, error: result.error?.slice(0, 255) ?? null, duration_ms: result.durationMs })
      .execute();
    return true;
  });
}

/** A mail delivered: its payload (it holds live links) is not kept. */
export async function forgetMailPayload(db: Queryable, outboxId: string): Promise<void> {
  await db.updateTable('outbox').set({ payload: '' }).where('outbox_id', '=', outboxId).where('status', '=', 'delivered').execute();
}

export interface DeliveryRow {
  outbox_id: string;
  message_id: string;
  event_type: string;
  status: string;
  attempts: number;
  next_attempt_at: Date | null;
  last_status: number | null;
  last_error: string | null;
  created_at: Date;
  finished_at: Date | null;
}

const deliveryColumns = ['outbox_id', 'message_id', 'event_type', 'status', 'attempts', 'next_attempt_at', 'last_status', 'last_error', 'created_at', 'finished_at'] as const;

/** An endpoint's deliveries, newest first, `limit` at a time before the id `before`. */
export function listDeliveries(db: Queryable, endpointId: string, limit: number, before?: string): Promise<DeliveryRow[]> {
  let q = db.selectFrom('outbox').select(deliveryColumns).where('endpoint_id', '=', endpointId).orderBy('outbox_id', 'desc').limit(limit);
  if (before !== undefined) q = q.where('outbox_id', '<', before);
  return q.execute();
}

export function findDelivery(db: Queryable, endpointId: string, outboxId: string): Promise<DeliveryRow | undefined> {
  return db.selectFrom('outbox').select(deliveryColumns).where('endpoint_id', '=', endpointId).where('outbox_id', '=', outboxId).executeTakeFirst();
}

export function attemptsOf(db: Queryable, outboxIds: readonly string[]) {
  if (outboxIds.length === 0) return Promise.resolve([]);
  return db
    .selectFrom('outbox_attempts')
    .select(['outbox_id', 'attempted_at', 'status_code', 'error', 'duration_ms'])
    .where('outbox_id', 'in', outboxIds)
    .orderBy('attempt_id')
    .execute();
}

/** Sends a delivery again (the retry button): due now, its schedule from the start. */
export async function scheduleAgain(db: Queryable, endpointId: string, outboxId: string): Promise<boolean> {
  const result = await db
    .updateTable('outbox')
    .set({ status: 'pending', attempts: 0, next_attempt_at: null, finished_at: null })
    .where('endpoint_id', '=', endpointId)
    .where('outbox_id', '=', outboxId)
    .where((eb) => eb.or([eb('lease_owner', 'is', null), eb('status', '<>', 'pending')]))
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Drops finished messages older than `before` (the log is kept for its retention period). */
export async function pruneFinished(db: Queryable, before: Date): Promise<void> {
  await db.deleteFrom('outbox').where('status', '<>', 'pending').where('finished_at', '<', before).execute();
}

/** `keys re-encrypt`: each endpoint's secrets (and a rotated-out one still signing) move to the current key. */
export async function reencryptEndpointSecrets(db: Kysely<Database>, reseal: (sealed: string) => string | undefined): Promise<number> {
  const rows = await db.selectFrom('webhook_endpoints').select(['endpoint_id', 'secret', 'previous_secret']).execute();
  let rewritten = 0;
  for (const row of rows) {
    const secret = reseal(row.secret);
    const previous = row.previous_secret === null ? undefined : reseal(row.previous_secret);
    if (secret === undefined && previous === undefined) continue;
    const result = await db
      .updateTable('webhook_endpoints')
      .set({ ...(secret !== undefined ? { secret } : {}), ...(previous !== undefined ? { previous_secret: previous } : {}) })
      .where('endpoint_id', '=', row.endpoint_id)
      .where('secret', '=', row.secret)
      .executeTakeFirst();
    rewritten += Number(result.numUpdatedRows);
  }
  return rewritten;
}
