import { type Kysely } from 'kysely';
import { schemaDialect } from '../dialect.js';

// Frozen in time: this migration never imports today's table types.

export async function up(db: Kysely<any>): Promise<void> {
  const d = schemaDialect(db);
  // Each running instance, the issuer and audience of the tokens it signs, and when it was last
  // seen: an instance that starts beside others signing for another issuer says so in its log.
  await db.schema
    .createTable('service_instances').$call(d.table)
    .addColumn('instance_id', d.asciiKey(36), (c) => c.primaryKey())
    .addColumn('issuer', 'varchar(512)', (c) => c.notNull())
    .addColumn('audience', 'varchar(512)', (c) => c.notNull())
    .addColumn('started_at', d.timestamp, (c) => c.notNull())
    .addColumn('seen_at', d.timestamp, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('service_instances_by_seen').on('service_instances').column('seen_at').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('service_instances').execute();
}
