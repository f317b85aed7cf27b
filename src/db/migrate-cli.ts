import { join } from 'node:path';
import { ConfigError, loadConfig } from '../config.js';
import { openDatabase } from './create-db.js';
import { migrateToLatest } from './migrate.js';

/** `npm run migrate`: applies pending migrations to the configured database and exits. */
try {
  const config = loadConfig();
  const db = await openDatabase({ databaseUrl: config.databaseUrl, pgliteDir: join(config.dataDir), timeoutMs: config.dbTimeoutMs });
  try {
    const applied = await migrateToLatest(db.kysely);
    console.log(applied.length ? `Applied: ${applied.join(', ')}` : 'Nothing to apply: the database is up to date.');
  } finally {
    await db.close();
  }
} catch (err) {
  console.error(err instanceof ConfigError ? `Configuration error: ${err.message}` : `Migration failed: ${(err as Error).message}`);
  process.exit(1);
}
