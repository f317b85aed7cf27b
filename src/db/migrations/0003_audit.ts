import type { Kysely } from 'kysely';
import { schemaDialect } from '../dialect.js';

// Frozen in time: this migration never imports today's table types.

export async function up(db: Kysely<any>): Promise<void> {
  const d = schemaDialect(db);
  // Security events (ASVS 5.0 V16). No foreign key on user_id: the record outlives the user.
  await db.schema
    .createTable('audit_events').$call(d.table)
    .addColumn('event_id', 'bigint', d.identity)
    .addColumn('occurred_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .addColumn('event', 'text', (c) => c.notNull())
    .addColumn('user_id', 'bigint')
    .addColumn('session_id', 'bigint')
    .addColumn('ip', 'text')
    .addColumn('user_agent', 'text')
    .addColumn('details', 'text')
    .execute();
  await db.schema.createIndex('audit_events_by_user').on('audit_events').columns(['user_id', 'event_id desc']).execute();
  await db.schema.createIndex('audit_events_by_time').on('audit_events').column('occurred_at').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('audit_events').execute();
}
