import { type Kysely } from 'kysely';
import { schemaDialect } from '../dialect.js';

// Frozen in time: this migration never imports today's table types.

export async function up(db: Kysely<any>): Promise<void> {
  const d = schemaDialect(db);
  // Organizations (API-ORGS.md): created_by counts against ORG_LIMIT_PER_USER; the row is also
  // the lock every membership change takes (the last-owner rule).
  await db.schema
    .createTable('organizations').$call(d.table)
    .addColumn('org_id', 'bigint', d.identity)
    .addColumn('name', 'varchar(100)', (c) => c.notNull())
    .addColumn('slug', d.asciiKey(40), (c) => c.notNull().unique())
    .addColumn('created_by', 'bigint', (c) => c.references('users.user_id').onDelete('set null'))
    .addColumn('created_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .execute();
  await db.schema.createIndex('organizations_by_creator').on('organizations').column('created_by').execute();

  // Custom organization roles: made per organization, a space-separated list of org permissions.
  await db.schema
    .createTable('org_roles').$call(d.table)
    .addColumn('org_id', 'bigint', (c) => c.notNull().references('organizations.org_id').onDelete('cascade'))
    .addColumn('name', d.asciiKey(32), (c) => c.notNull())
    .addColumn('permissions', 'varchar(255)', (c) => c.notNull())
    .addPrimaryKeyConstraint('org_roles_pk', ['org_id', 'name'])
    .execute();

  await db.schema
    .createTable('org_members').$call(d.table)
    .addColumn('org_id', 'bigint', (c) => c.notNull().references('organizations.org_id').onDelete('cascade'))
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.user_id').onDelete('cascade'))
    .addColumn('role', d.asciiKey(32), (c) => c.notNull())
    .addColumn('joined_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .addPrimaryKeyConstraint('org_members_pk', ['org_id', 'user_id'])
    .execute();
  await db.schema.createIndex('org_members_by_user').on('org_members').columns(['user_id', 'org_id']).execute();

  // A pending invitation: single use (deleted when accepted), its token stored hashed; a newer
  // one to the same address for the same organization replaces it (superseded).
  await db.schema
    .createTable('org_invitations').$call(d.table)
    .addColumn('invitation_id', 'bigint', d.identity)
    .addColumn('org_id', 'bigint', (c) => c.notNull().references('organizations.org_id').onDelete('cascade'))
    .addColumn('email', 'varchar(254)', (c) => c.notNull())
    .addColumn('email_key', d.keyText(254), (c) => c.notNull())
    .addColumn('role', d.asciiKey(32), (c) => c.notNull())
    .addColumn('token_hash', d.asciiKey(64), (c) => c.notNull().unique())
    .addColumn('invited_by', 'bigint', (c) => c.references('users.user_id').onDelete('set null'))
    .addColumn('created_at', d.timestamp, (c) => c.notNull().defaultTo(d.now))
    .addColumn('expires_at', d.timestamp, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('org_invitations_by_org_email').on('org_invitations').columns(['org_id', 'email_key']).execute();
  await db.schema.createIndex('org_invitations_by_expiry').on('org_invitations').column('expires_at').execute();

  // The organization a session speaks for (POST /v1/sessions/organization); kept across refreshes.
  // No foreign key to user_sessions (another feature's table, which must stay droppable and
  // prunable on its own): rows of sessions gone are pruned by the organizations feature.
  await db.schema
    .createTable('session_orgs').$call(d.table)
    .addColumn('session_id', 'bigint', (c) => c.primaryKey())
    .addColumn('org_id', 'bigint', (c) => c.notNull().references('organizations.org_id').onDelete('cascade'))
    .execute();
  await db.schema.createIndex('session_orgs_by_org').on('session_orgs').column('org_id').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('session_orgs').execute();
  await db.schema.dropTable('org_invitations').execute();
  await db.schema.dropTable('org_members').execute();
  await db.schema.dropTable('org_roles').execute();
  await db.schema.dropTable('organizations').execute();
}
