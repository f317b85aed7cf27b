import { sql, type Kysely } from 'kysely';
import { schemaDialect } from '../dialect.js';

// Frozen in time: this migration never imports today's table types.

export async function up(db: Kysely<any>): Promise<void> {
  const d = schemaDialect(db);
  // Users imported from another system may have no date of birth: the web app asks for it at
  // their next sign-in (API-MIGRATION.md).
  if (d.mysql) await sql`alter table users modify column dob date null`.execute(db);
  else await sql`alter table users alter column dob drop not null`.execute(db);
  // The id the user had in the system they came from (`auth0|5f1c...`): a conflict key of the
  // import, unique when present (both databases admit any number of nulls in a unique index).
  await db.schema.alterTable('users').addColumn('external_id', d.keyText(255)).execute();
  await db.schema.createIndex('users_external_id_unique').on('users').column('external_id').unique().execute();
  // A hash brought in by an import: replaced by the service's own Argon2id at the first sign-in
  // (the imported row then stays as history), however strong it was.
  await db.schema.alterTable('user_credentials').addColumn('imported', 'boolean', (c) => c.notNull().defaultTo(false)).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  const d = schemaDialect(db);
  await db.schema.alterTable('user_credentials').dropColumn('imported').execute();
  await db.schema.dropIndex('users_external_id_unique').$call((q) => (d.mysql ? q.on('users') : q)).execute();
  await db.schema.alterTable('users').dropColumn('external_id').execute();
  if (d.mysql) await sql`alter table users modify column dob date not null`.execute(db);
  else await sql`alter table users alter column dob set not null`.execute(db);
}
