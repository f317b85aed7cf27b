import type { Kysely } from 'kysely';
import { schemaDialect } from '../dialect.js';

// Frozen in time: this migration never imports today's table types.

export async function up(db: Kysely<any>): Promise<void> {
  const d = schemaDialect(db);
  // A new key is published before it signs (RFC 7517 rollover): it signs from activates_at on.
  // retired_at, once set, is when it stops verifying and leaves the JWKS.
  await db.schema.alterTable('signing_keys').addColumn('activates_at', d.timestamp, (c) => c.notNull().defaultTo(d.now)).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('signing_keys').dropColumn('activates_at').execute();
}
