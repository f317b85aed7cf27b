import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { PGlitePool } from './pglite-pool.js';
import { PreparingClient } from './prepared-statements.js';
import type { Database } from './schema.js';

/**
 * The one driver switch: PGlite (embedded, in-process) or a PostgreSQL server through a `pg`
 * pool, both through Kysely's PostgresDialect; or MySQL 8 / MariaDB 10.11+ through `mysql2` and
 * Kysely's MysqlDialect (src/db/mysql.ts). The query code is the same; what differs per dialect
 * lives in src/db/ (dialect.ts for the schema, counters, locks, notifications, errors).
 */

export type { DatabaseKind, Db, ListenHandlers, Listener, OpenDatabaseOptions } from './handle.js';
import type { Db, ListenHandlers, Listener, OpenDatabaseOptions } from './handle.js';

const OID_INT8 = 20;
const OID_DATE = 1082;

// ids stay strings (as in the API), dates stay 'YYYY-MM-DD' (no time zone shift).
const keepText = (value: string) => value;

export function isMysqlUrl(url: string): boolean {
  return /^(mysql|mariadb):\/\//i.test(url);
}

export async function openDatabase(options: OpenDatabaseOptions): Promise<Db> {
  // Each driver is loaded only when it is used: a process holds one of them, not all three.
  if (options.databaseUrl && isMysqlUrl(options.databaseUrl)) return (await import('./mysql.js')).openMysql(options.databaseUrl, options);
  if (options.databaseUrl) return openServer(options.databaseUrl, options);
  return openEmbedded(options.pgliteDir ?? 'memory://');
}

function openServer(url: string, options: OpenDatabaseOptions): Db {
  const timeoutMs = options.timeoutMs ?? 5000;
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolMax ?? 10,
    // Each statement planned once per connection; off behind a pooler that cannot keep them.
    ...(options.preparedStatements === false ? {} : { Client: PreparingClient }),
    connectionTimeoutMillis: timeoutMs,
    // The server ends a statement that runs too long; the client gives up a little later.
    statement_timeout: timeoutMs,
    query_timeout: timeoutMs + 1000,
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === OID_INT8 || oid === OID_DATE ? keepText : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client that loses its server emits 'error' on the pool; without a listener that
  // would crash the process. The next query reports the outage instead.
  pool.on('error', () => {});
  // A checked-out connection that dies between two statements emits 'error' with no one to hear
  // it; the next statement reports the outage instead of the process crashing.
  pool.on('connect', (client) => client.on('error', () => {}));
  const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return {
    kysely,
    kind: 'postgres',
    listen: (channel, handlers) => listenOnServer(url, channel, handlers),
    close: () => kysely.destroy(),
  };
}

/**
 * LISTEN on a connection of its own (a pooled one would be handed to queries). When it drops,
 * it reports unhealthy at once and reconnects every second until it is back. A heartbeat on the
 * same connection every second notices a connection that died without a word (a network
 * partition sends no error): an answer missing for 1.5 s counts as a drop.
 */
async function listenOnServer(url: string, channel: string, handlers: ListenHandlers): Promise<Listener> {
  let client: pg.Client | undefined;
  let healthy = false;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  let beating = false;
  const heartbeat = setInterval(() => {
    if (!client || !healthy || beating) return;
    beating = true;
    const c = client;
    c.query('select 1').then(
      () => (beating = false),
      () => {
        beating = false;
        if (client === c) down();
      },
    );
  }, 1000);
  heartbeat.unref();

  const down = () => {
    if (closed) return;
    if (healthy) {
      healthy = false;
      handlers.onReset();
    }
    const gone = client;
    gone?.removeAllListeners();
    // A dying connection may still report an error; unheard, it would crash the process.
    gone?.on('error', () => {});
    gone?.end().catch(() => {});
    client = undefined;
    retry ??= setTimeout(() => {
      retry = undefined;
      void connect();
    }, 1000);
    retry.unref();
  };

  const connect = async () => {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000, keepAlive: true, query_timeout: 1500 });
    client = c;
    c.on('error', down);
    c.on('end', down);
    c.on('notification', (message) => {
      if (message.channel === channel && message.payload !== undefined) handlers.onMessage(message.payload);
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      healthy = true;
      handlers.onReset(); // anything sent while we were away is unknown
    } catch {
      down();
    }
  };

  await connect();
  return {
    get healthy() {
      return healthy && !closed;
    },
    close: async () => {
      closed = true;
      clearTimeout(retry);
      clearInterval(heartbeat);
      client?.removeAllListeners();
      client?.on('error', () => {});
      await client?.end().catch(() => {});
    },
  };
}

async function openEmbedded(dir: string): Promise<Db> {
  const onDisk = !dir.startsWith('memory://');
  let releaseLock = () => {};
  if (onDisk) {
    mkdirSync(dir, { recursive: true });
    releaseLock = lockDataDir(dir);
  }
  try {
    const { PGlite } = await import('@electric-sql/pglite');
    const path = onDisk ? join(dir, 'pglite') : dir;
    const options = {
      parsers: { [OID_INT8]: keepText, [OID_DATE]: keepText },
      // PGlite's default (128 MB of shared buffers) is sized for a server; the embedded
      // database of one process does well with less, and the process stays small.
      postgresqlconf: ['shared_buffers=16MB'],
    };
    if (onDisk && !existsSync(join(path, 'PG_VERSION'))) {
      // A new database: initdb grows the WASM memory to some 600 MiB, which a WASM instance
      // never gives back. Create it, close that instance, and serve from a fresh one.
      await (await PGlite.create(path, options)).close();
    }
    const pglite = await PGlite.create(path, options);
    const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool: new PGlitePool(pglite) as never }) });
    return {
      kysely,
      kind: 'pglite',
      listen: async (channel, handlers) => {
        // In-process: notifications cannot be lost, the channel is always healthy.
        const unsubscribe = await pglite.listen(channel, (payload) => handlers.onMessage(payload));
        return { healthy: true, close: () => unsubscribe() };
      },
      close: async () => {
        await kysely.destroy();
        releaseLock();
      },
    };
  } catch (err) {
    releaseLock();
    throw err;
  }
}

export class DataDirInUseError extends Error {
  override name = 'DataDirInUseError';
  /** The process that owns the embedded database, and the folder it is in. */
  constructor(
    readonly owner: number,
    readonly dir: string,
  ) {
    super(
      `The embedded database in ${dir} is in use by process ${owner} (a server already runs on it): ` +
        'stop it first, or give this one another DATA_DIR; several processes on one database need a server database (set DATABASE_URL).',
    );
  }
}

/**
 * One process owns an embedded database's files; a second one would corrupt them. A pid file
 * says who owns them; a file left by a process that is gone is taken over.
 */
function lockDataDir(dir: string): () => void {
  const lockFile = join(dir, 'pglite.pid');
  try {
    writeFileSync(lockFile, String(process.pid), { flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const owner = Number(readFileSync(lockFile, 'utf8').trim());
    if (owner && owner !== process.pid && isAlive(owner)) {
      throw new DataDirInUseError(owner, resolve(dir));
    }
    writeFileSync(lockFile, String(process.pid));
  }
  return () => rmSync(lockFile, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
