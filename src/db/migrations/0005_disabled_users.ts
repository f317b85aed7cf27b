import type { Kysely } from 'kysely';
import { schemaDialect } from '../dialect.js';

// Frozen in time: this migration never imports today's table types.

export async function up(db: Kysely<any>): Promise<void> {
  const d = schemaDialect(db);
  // Set by an administrator: the user cannot sign in, and their sessions were ended (ASVS 5.0 V7.4.2).
  await db.schema.alterTable('users').addColumn('disabled_at', d.timestamp).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('users').dropColumn('disabled_at').execute();
}
