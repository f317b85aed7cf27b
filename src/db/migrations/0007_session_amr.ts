import type { Kysely } from 'kysely';

// Frozen in time: this migration never imports today's table types.

export async function up(db: Kysely<any>): Promise<void> {
  // How the session was signed in (RFC 8176 `amr` values, space-separated): every access
  // token of the session carries them, across refreshes.
  await db.schema.alterTable('user_sessions').addColumn('amr', 'varchar(64)', (c) => c.notNull().defaultTo('pwd')).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('user_sessions').dropColumn('amr').execute();
}
