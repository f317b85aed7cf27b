import cluster from 'node:cluster';
import { join } from 'node:path';
import { buildApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { DataDirInUseError, openDatabase, type Db } from './db/create-db.js';
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

async function open(config: Config): Promise<Db> {
  try {
    return await openDatabase({ databaseUrl: config.databaseUrl, pgliteDir: config.dataDir, poolMax: config.dbPoolMax, timeoutMs: config.dbTimeoutMs, preparedStatements: config.dbPreparedStatements });
  } catch (err) {
    if (err instanceof DataDirInUseError) fail(err.message);
    throw err;
  }
}

function announce(config: Config, port: number, kind: string, workers: number): void {
  const base = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  const where = kind === 'pglite' ? (config.dataDir.startsWith('memory://') ? 'embedded PGlite in memory (DATA_DIR=memory://: nothing is kept)' : `embedded PGlite in ${join(config.dataDir, 'pglite')}`) : 'PostgreSQL server (DATABASE_URL)';
  console.log(
    `User management service listening on ${base}\n  Web app: ${config.publicUrl}/ (PUBLIC_URL)\n  API docs: ${config.publicUrl}/docs\n  Database: ${where}\n  Workers: ${workers}`,
  );
}

/** One server process: what a worker runs, and the whole service when WORKERS=1. */
async function serve(config: Config, migrate: boolean): Promise<void> {
  const db = await open(config);
  if (migrate) await migrateToLatest(db.kysely);
  const app = await buildApp({ config, db, logger: { level: config.logLevel } });
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
  if (cluster.isPrimary) announce(config, (app.server.address() as { port: number }).port, db.kind, 1);
}

/** The supervisor: migrates once, forks the workers, restarts a crashed one, drains them all on SIGTERM. */
async function supervise(config: Config): Promise<void> {
  const db = await open(config);
  await migrateToLatest(db.kysely);
  await db.close();

  let stopping = false;
  let announced = false;
  const fork = () => cluster.fork();
  cluster.on('listening', (_worker, address) => {
    if (!announced) {
      announced = true;
      announce(config, address.port, 'postgres', config.workers);
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
run.catch((err: unknown) => fail(`Failed to start: ${err instanceof Error ? err.message : String(err)}`));
