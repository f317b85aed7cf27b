import { Kysely, MysqlDialect } from 'kysely';
import { createPool, type Pool, type PoolOptions, type TypeCastField, type TypeCastNext } from 'mysql2';
import type { Pool as PromisePool, RowDataPacket } from 'mysql2/promise';
import { isDeadlock } from './errors.js';
import type { Database } from './schema.js';
import type { Db, ListenHandlers, Listener, OpenDatabaseOptions } from './handle.js';

/**
 * MySQL 8 / MariaDB 10.11+ through `mysql2` and Kysely's MysqlDialect: the connection settings
 * that make it answer as PostgreSQL does (UTC, ids and dates as strings, booleans), the retry of
 * a deadlock victim, and the revocation fan-out by polling (no LISTEN/NOTIFY here).
 */

/** How often each instance reads the revocation log: the 1 s promise leaves room for a slow poll. */
export const POLL_INTERVAL_MS = 200;
/** A poll that has not answered in this long counts as the channel being down. */
const POLL_DEADLINE_MS = 1500;
/** An id skipped in the log may be a transaction still committing: looked for again this long. */
const GAP_WAIT_MS = 10_000;
/** Rows of the log older than this are deleted (every instance has long read them). */
const LOG_KEEP_S = 60;

function connectionOptions(url: string): PoolOptions {
  const u = new URL(url);
  if (u.protocol !== 'mysql:' && u.protocol !== 'mariadb:') throw new Error(`Not a MySQL URL: ${u.protocol}`);
  return {
    host: decodeURIComponent(u.hostname) || '127.0.0.1',
    port: u.port ? Number(u.port) : 3306,
    user: decodeURIComponent(u.username) || 'root',
    password: decodeURIComponent(u.password) || undefined,
    database: decodeURIComponent(u.pathname.replace(/^\//, '')) || undefined,
    charset: 'utf8mb4_bin',
    // Dates in and out in UTC; DATE columns stay 'YYYY-MM-DD' (no time zone shift).
    timezone: 'Z',
    dateStrings: ['DATE'],
    // bigint ids come back as strings, as the API shows them.
    supportBigNumbers: true,
    bigNumberStrings: true,
    typeCast: castBooleans,
    enableKeepAlive: true,
  };
}

/** `boolean` is tinyint(1) in MySQL: answer true/false, as PostgreSQL does. */
function castBooleans(field: TypeCastField, next: TypeCastNext): unknown {
  if (field.type === 'TINY' && field.length === 1) {
    const value = field.string();
    return value === null ? null : value === '1';
  }
  return next();
}

/** Each new connection: UTC, PostgreSQL's isolation level, and a bound on statements and lock waits. */
function initConnection(conn: { query: (sql: string, cb: (err: unknown) => void) => unknown }, timeoutMs: number): void {
  const ignore = () => {};
  conn.query("set time_zone = '+00:00'", ignore);
  // READ COMMITTED, as on PostgreSQL: fewer gap locks (deadlocks), and a statement sees what
  // committed before it started.
  conn.query('set session transaction isolation level read committed', ignore);
  conn.query(`set session innodb_lock_wait_timeout = ${Math.max(1, Math.ceil(timeoutMs / 1000))}`, ignore);
  // MariaDB bounds every statement (seconds); MySQL 8 only SELECTs (milliseconds). One of the two fails.
  conn.query(`set session max_statement_time = ${timeoutMs / 1000}`, ignore);
  conn.query(`set session max_execution_time = ${timeoutMs}`, ignore);
}

/**
 * Kysely whose transactions retry a deadlock victim once: InnoDB rolled the whole transaction
 * back, so running it again is what the client would have done.
 */
class RetryingKysely<DB> extends Kysely<DB> {
  override transaction(): ReturnType<Kysely<DB>['transaction']> {
    return retrying(super.transaction());
  }
}

function retrying<T extends object>(builder: T): T {
  return new Proxy(builder, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      if (prop === 'execute') {
        return async (work: unknown) => {
          const execute = value as (w: unknown) => Promise<unknown>;
          try {
            return await execute.call(target, work);
          } catch (err) {
            if (!isDeadlock(err)) throw err;
            return execute.call(target, work);
          }
        };
      }
      return (...args: unknown[]) => {
        const result = (value as (...a: unknown[]) => unknown).apply(target, args);
        return result && typeof result === 'object' && typeof (result as { execute?: unknown }).execute === 'function' ? retrying(result) : result;
      };
    },
  });
}

export function openMysql(url: string, options: OpenDatabaseOptions): Db {
  const timeoutMs = options.timeoutMs ?? 5000;
  const settings = connectionOptions(url);
  const pool: Pool = createPool({ ...settings, connectionLimit: options.poolMax ?? 10, connectTimeout: timeoutMs, waitForConnections: true, queueLimit: 0 });
  pool.on('connection', (conn) => {
    initConnection(conn, timeoutMs);
    // The server ends a statement that runs too long; the client gives up a little later (a
    // server that went silent answers nothing), and drops that connection: an answer may still come.
    const query = conn.query.bind(conn) as (options: object, cb: (err: { code?: string } | null, ...rest: unknown[]) => void) => unknown;
    (conn as unknown as { query: unknown }).query = (sqlText: string, values: unknown[], cb: (err: unknown, ...rest: unknown[]) => void) =>
      query({ sql: sqlText, values, timeout: timeoutMs + 1000 }, (err, ...rest) => {
        if (err?.code === 'PROTOCOL_SEQUENCE_TIMEOUT') conn.destroy();
        cb(err, ...rest);
      });
  });
  const kysely = new RetryingKysely<Database>({ dialect: new MysqlDialect({ pool: pool as never }) });
  let poller: PromisePool | undefined;
  return {
    kysely,
    kind: 'mysql',
    listen: async (_channel, handlers) => {
      // A pool of one connection of its own: the polls never wait behind requests, and it reconnects.
      if (!poller) {
        poller = createPool({ ...settings, connectionLimit: 1, connectTimeout: 2000 }).promise();
        poller.pool.on('connection', (conn) => initConnection(conn, POLL_DEADLINE_MS));
      }
      return pollLog(poller, handlers);
    },
    close: async () => {
      await kysely.destroy();
      await poller?.end().catch(() => {});
    },
  };
}

/**
 * Reads the revocation log (the invalidation_log table, written by notifications.ts in the
 * transaction that made the change) every POLL_INTERVAL_MS. Auto-increment ids are taken at
 * insert and seen at commit, so a lower id can appear after a higher one: an id skipped over
 * is asked for again until GAP_WAIT_MS has passed (then it was a rollback).
 */
async function pollLog(pool: PromisePool, handlers: ListenHandlers): Promise<Listener> {
  let healthy = false;
  let closed = false;
  let lastId: bigint | undefined;
  const gaps = new Map<bigint, number>(); // id → when it was first missed
  let polling = false;
  let startedAt = 0;
  let lastPrune = 0;

  const down = () => {
    if (healthy) {
      healthy = false;
      handlers.onReset();
    }
    lastId = undefined; // start again from the end of the log once back
    gaps.clear();
  };

  const poll = async () => {
    if (closed) return;
    if (polling) {
      if (Date.now() - startedAt > POLL_DEADLINE_MS) down();
      return;
    }
    polling = true;
    startedAt = Date.now();
    try {
      if (lastId === undefined) {
        const [rows] = await pool.query<RowDataPacket[]>({ sql: 'select coalesce(max(log_id), 0) as id from invalidation_log', timeout: POLL_DEADLINE_MS });
        lastId = BigInt(rows[0]!.id as string);
      } else {
        const now = Date.now();
        for (const [id, since] of gaps) if (now - since > GAP_WAIT_MS) gaps.delete(id);
        const wanted = [...gaps.keys()];
        const [rows] = await pool.query<RowDataPacket[]>({
          sql: `select log_id, payload from invalidation_log where log_id > ?${wanted.length ? ` or log_id in (${wanted.map(() => '?').join(',')})` : ''} order by log_id limit 1000`,
          values: [lastId.toString(), ...wanted.map(String)],
          timeout: POLL_DEADLINE_MS,
        });
        for (const row of rows) {
          const id = BigInt(row.log_id as string);
          if (gaps.delete(id) || id <= lastId) {
            handlers.onMessage(row.payload as string);
            continue;
          }
          for (let missing = lastId + 1n; missing < id && gaps.size < 1000; missing++) gaps.set(missing, now);
          lastId = id;
          handlers.onMessage(row.payload as string);
        }
        if (now - lastPrune > 10_000) {
          lastPrune = now;
          await pool.query({ sql: `delete from invalidation_log where created_at < current_timestamp(3) - interval ${LOG_KEEP_S} second`, timeout: POLL_DEADLINE_MS });
        }
      }
      if (Date.now() - startedAt > POLL_DEADLINE_MS) throw new Error('poll too slow');
      if (!healthy && !closed) {
        healthy = true;
        handlers.onReset(); // anything sent while we were away is unknown
      }
    } catch {
      down();
    } finally {
      polling = false;
    }
  };

  const timer = setInterval(() => void poll(), POLL_INTERVAL_MS);
  timer.unref();
  await poll();
  return {
    get healthy() {
      return healthy && !closed;
    },
    close: async () => {
      closed = true;
      clearInterval(timer);
    },
  };
}
