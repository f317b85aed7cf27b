import cluster from 'node:cluster';
import { buildApp } from './app.js';
import { relayInvalidations } from './cache/invalidation.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { GENERATED_KEY_WARNING } from './crypto/data-encryption.js';
import { DataDirInUseError, openDatabase, type Db } from './db/create-db.js';
import { describeDatabase, explainDatabaseError } from './db/describe.js';
import { migrateToLatest } from './db/migrate.js';
import { collectWhenIdle } from './idle-collection.js';
import { lowerBackgroundThreads } from './thread-priority.js';

/**
 * Starts the service: settings, database, migrations, listen; drains and exits 0 on SIGTERM.
 * With WORKERS > 1 (a server database), this process supervises that many workers through
 * node:cluster, restarting any that crashes; they share the port.
 */

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

function settings(): Config {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) fail(`Configuration error: ${err.message}`);
    throw err;
  }
}

/** Opens the database, and migrates it when asked; a database that cannot be reached or used stops the start with one line. */
async function open(config: Config, migrate: boolean): Promise<Db> {
  let db: Db | undefined;
  try {
    db = await openDatabase({ databaseUrl: config.databaseUrl, pgliteDir: config.dataDir, poolMax: config.dbPoolMax, timeoutMs: config.dbTimeoutMs, preparedStatements: config.dbPreparedStatements });
    if (migrate) await migrateToLatest(db.kysely);
    return db;
  } catch (err) {
    if (err instanceof DataDirInUseError) fail(err.message);
    const explained = explainDatabaseError(err, config.databaseUrl);
    if (explained) {
      await db?.close().catch(() => {});
      fail(explained);
    }
    throw err;
  }
}

/** Leads with PUBLIC_URL: the address to open, and the only one where passkeys work. */
function announce(config: Config, port: number, database: string, workers: number): void {
  const base = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  console.log(
    [
      `User management service ready at ${config.publicUrl}/ (PUBLIC_URL: the web app, and the one address where passkeys work)`,
      `  API docs: ${config.publicUrl}/docs`,
      `  listening on ${base} (HOST, PORT)`,
      `  Database: ${database}`,
      `  Workers: ${workers}`,
    ].join('\n'),
  );
}

/** One server process: what a worker runs, and the whole service when WORKERS=1. */
async function serve(config: Config, migrate: boolean): Promise<void> {
  const db = await open(config, migrate);
  const app = await buildApp({ config, db, logger: { level: config.logLevel }, quietStartWarnings: cluster.isWorker });
  lowerBackgroundThreads();
  const idle = collectWhenIdle();
  app.server.on('request', idle.touch);

  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down: draining requests');
    try {
      idle.stop();
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

  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') fail(`Port ${config.port} on ${config.host} is in use: stop what listens there or set PORT.`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') fail(`HOST ${config.host} is not an address of this machine: set HOST.`);
    throw err;
  }
  if (cluster.isPrimary) announce(config, (app.server.address() as { port: number }).port, await describeDatabase(db, config), 1);
}

/** The supervisor: migrates once, forks the workers, restarts a crashed one, drains them all on SIGTERM. */
async function supervise(config: Config): Promise<void> {
  const db = await open(config, true);
  const database = await describeDatabase(db, config);
  await db.close();
  // Said once here, not once per worker.
  if (config.dataEncryptionKeys.length === 0) console.error(`Warning: ${GENERATED_KEY_WARNING}`);
  relayInvalidations();

  let stopping = false;
  let announced = false;
  const fork = () => cluster.fork();
  cluster.on('listening', (_worker, address) => {
    if (!announced) {
      announced = true;
      announce(config, address.port, database, config.workers);
    }
  });
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      return;
    }
    console.error(`Worker ${worker.process.pid} exited (${signal ?? code}); starting another.`);
    setTimeout(fork, 1000);
  });
  const stop = () => {
    if (stopping) return;
    stopping = true;
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  for (let i = 0; i < config.workers; i++) fork();
}

const config = settings();
const run = cluster.isPrimary && config.workers > 1 ? supervise(config) : serve(config, cluster.isPrimary);
run.catch((err: unknown) => fail(explainDatabaseError(err, config.databaseUrl) ?? `Failed to start: ${err instanceof Error ? err.message : String(err)}`));
