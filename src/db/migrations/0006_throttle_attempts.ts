import type { Kysely } from 'kysely';

// Frozen in time: this migration never imports today's table types.

export async function up(db: Kysely<any>): Promise<void> {
  // Attempts being checked right now (counted before the hash, so concurrent guesses cannot
  // all pass a check that only counts finished ones).
  await db.schema.alterTable('login_throttles').addColumn('pending', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  // The hourly ceiling moves into login_throttles, keyed alike for accounts and unknown names.
  await db.schema.dropTable('login_account_failures').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('login_throttles').dropColumn('pending').execute();
}
