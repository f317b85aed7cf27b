import { type Kysely } from 'kysely';
import { schemaDialect } from '../dialect.js';

// Frozen in time: this migration never imports today's table types.

export async function up(db: Kysely<any>): Promise<void> {
  const d = schemaDialect(db);
  // Webhook endpoints (API-INTEGRATION.md, Webhooks). `events` is ' type type ' (spaces around
  // each, so one LIKE finds a type) or '*'. Secrets are DATA_ENCRYPTION_KEY envelopes; during a
  // rotation the previous one signs too, until previous_secret_until.
  await db.schema
    .createTable('webhook_endpoints').$call(d.table)
    .addColumn('endpoint_id', 'bigint', d.identity)
    .addColumn('url', 'varchar(2048)', (c) => c.notNull())
    .addColumn('events', 'varchar(2048)', (c) => c.notNull())
    .addColumn('description', 'varchar(500)', (c) => c.notNull().defaultTo(''))
    .addColumn('enabled', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('disabled_reason', d.asciiKey(32))
    .addColumn('secret', d.text, (c) => c.notNull())
    .addColumn('previous_secret', d.text)
    .addColumn('previous_secret_until', d.timestamp)
    .addColumn('created_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .execute();

  // The durable outbox: one row per message to send, written in the transaction of the change it
  // tells of; a webhook row per subscribed endpoint, a mail row per mail. The dispatcher of any
  // instance takes a due row under a lease (lease_owner, lease_until) and finishes it.
  // next_attempt_at null means due now. order_key (the user id) keeps a user's events in order per endpoint.
  await db.schema
    .createTable('outbox').$call(d.table)
    .addColumn('outbox_id', 'bigint', d.identity)
    .addColumn('kind', d.asciiKey(16), (c) => c.notNull())
    .addColumn('endpoint_id', 'bigint', (c) => c.references('webhook_endpoints.endpoint_id').onDelete('cascade'))
    .addColumn('message_id', d.asciiKey(64), (c) => c.notNull())
    .addColumn('event_type', d.asciiKey(64), (c) => c.notNull())
    .addColumn('order_key', d.asciiKey(64))
    .addColumn('payload', d.text, (c) => c.notNull())
    .addColumn('status', d.asciiKey(16), (c) => c.notNull().defaultTo('pending'))
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', d.timestamp)
    .addColumn('lease_owner', d.asciiKey(32))
    .addColumn('lease_until', d.timestamp)
    .addColumn('last_status', 'integer')
    .addColumn('last_error', 'varchar(255)')
    .addColumn('created_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .addColumn('finished_at', d.timestamp)
    .execute();
  await db.schema.createIndex('outbox_due').on('outbox').columns(['status', 'next_attempt_at']).execute();
  await db.schema.createIndex('outbox_by_order').on('outbox').columns(['endpoint_id', 'order_key', 'status', 'outbox_id']).execute();

  // Each attempt of a delivery: the log the admin console shows.
  await db.schema
    .createTable('outbox_attempts').$call(d.table)
    .addColumn('attempt_id', 'bigint', d.identity)
    .addColumn('outbox_id', 'bigint', (c) => c.notNull().references('outbox.outbox_id').onDelete('cascade'))
    .addColumn('attempted_at', d.timestamp, (c) => c.notNull())
    .addColumn('status_code', 'integer')
    .addColumn('error', 'varchar(255)')
    .addColumn('duration_ms', 'integer', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('outbox_attempts_by_message').on('outbox_attempts').columns(['outbox_id', 'attempt_id']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('outbox_attempts').execute();
  await db.schema.dropTable('outbox').execute();
  await db.schema.dropTable('webhook_endpoints').execute();
}
