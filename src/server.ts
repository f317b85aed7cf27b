import { buildApp, LOG_REDACT } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { DataDirInUseError, openDatabase } from './db/create-db.js';
import { migrateToLatest } from './db/migrate.js';
import { join } from 'node:path';

/** Starts the service: settings, database, migrations, listen; drains and exits on SIGTERM. */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`Configuration error: ${err.message}`);
      process.exit(1);
    }
    throw err;
  }

  let db;
  try {
    db = await openDatabase({
      databaseUrl: config.databaseUrl,
      pgliteDir: join(config.dataDir),
      poolMax: config.dbPoolMax,
      timeoutMs: config.dbTimeoutMs,
    });
  } catch (err) {
    if (err instanceof DataDirInUseError) {
      console.error(err.message);
      process.exit(1);
    }
    throw err;
  }
  await migrateToLatest(db.kysely);
  const app = await buildApp({ config, db, logger: { level: config.logLevel, redact: LOG_REDACT } });

  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down: draining requests');
    try {
      await app.close();
      await db.close();
      process.exit(0);
    } catch (err) {
      app.log.error({ err }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  await app.listen({ port: config.port, host: config.host });
  const base = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${(app.server.address() as { port: number }).port}`;
  const where = db.kind === 'pglite' ? `embedded PGlite in ${join(config.dataDir, 'pglite')}` : 'PostgreSQL server (DATABASE_URL)';
  console.log(`User management service listening on ${base}\n  API docs: ${base}/docs\n  Database: ${where}`);
}

main().catch((err) => {
  console.error('Failed to start:', err instanceof Error ? err.message : err);
  process.exit(1);
});
