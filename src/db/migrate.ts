import { Migrator, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import * as m0001 from './migrations/0001_initial.js';
import * as m0002 from './migrations/0002_throttling.js';
import * as m0003 from './migrations/0003_audit.js';
import * as m0004 from './migrations/0004_key_rotation.js';
import * as m0005 from './migrations/0005_disabled_users.js';
import * as m0006 from './migrations/0006_throttle_attempts.js';
import * as m0007 from './migrations/0007_session_amr.js';
import * as m0008 from './migrations/0008_account_mail.js';
import * as m0009 from './migrations/0009_totp.js';
import * as m0010 from './migrations/0010_passkeys.js';
import * as m0011 from './migrations/0011_invalidation_log.js';
import * as m0013 from './migrations/0013_admin.js';
import * as m0014 from './migrations/0014_import.js';
import * as m0015 from './migrations/0015_user_identities.js';
import * as m0016 from './migrations/0016_oidc_provider.js';
import * as m0017 from './migrations/0017_organizations.js';
import * as m0018 from './migrations/0018_outbox.js';
import * as m0019 from './migrations/0019_service_instances.js';

/** Every migration, in order. Imported statically so the same list runs from src and from dist. */
const MIGRATIONS: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_throttling': m0002,
  '0003_audit': m0003,
  '0004_key_rotation': m0004,
  '0005_disabled_users': m0005,
  '0006_throttle_attempts': m0006,
  '0007_session_amr': m0007,
  '0008_account_mail': m0008,
  '0009_totp': m0009,
  '0010_passkeys': m0010,
  '0011_invalidation_log': m0011,
  '0013_admin': m0013,
  '0014_import': m0014,
  '0015_user_identities': m0015,
  '0016_oidc_provider': m0016,
  '0017_organizations': m0017,
  '0018_outbox': m0018,
  '0019_service_instances': m0019,
};

const provider: MigrationProvider = { getMigrations: async () => MIGRATIONS };

function migrator(db: Kysely<any>): Migrator {
  return new Migrator({ db, provider, migrationTableName: 'schema_migrations', migrationLockTableName: 'schema_migrations_lock' });
}

/**
 * Applies pending migrations. Safe when several instances start at once: Kysely takes a
 * database lock (an advisory lock on PostgreSQL, GET_LOCK on MySQL/MariaDB), so exactly one of
 * them runs each migration. MySQL cannot roll DDL back: a migration that fails half-way there
 * leaves what it did, and is not recorded as applied.
 */
export async function migrateToLatest(db: Kysely<any>): Promise<string[]> {
  const { error, results } = await migrator(db).migrateToLatest();
  if (error) throw error;
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** True when every known migration has been applied (what /readyz reports). */
export async function isMigrated(db: Kysely<any>): Promise<boolean> {
  const migrations = await migrator(db).getMigrations();
  return migrations.every((m) => m.executedAt !== undefined);
}
