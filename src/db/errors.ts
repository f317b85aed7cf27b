/**
 * What the database's errors mean to us. SQLSTATE codes are PostgreSQL's (PGlite speaks them too);
 * MySQL/MariaDB errors (mysql2) carry an `errno` and a `code` name such as ER_DUP_ENTRY.
 */

interface DriverError {
  code?: string;
  errno?: number;
  constraint?: string;
  message?: string;
  sqlMessage?: string;
}

/** The name of the unique constraint or index that a write broke, if that is what happened. */
export function uniqueViolation(err: unknown): string | undefined {
  const e = err as DriverError;
  if (e?.code === '23505') return e.constraint ?? '';
  if (e?.errno === 1062) {
    // "Duplicate entry '…' for key 'name'" (MariaDB) or "… for key 'table.name'" (MySQL 8).
    const key = /for key '([^']*)'\s*$/.exec(e.sqlMessage ?? e.message ?? '')?.[1] ?? '';
    return key.slice(key.lastIndexOf('.') + 1);
  }
  return undefined;
}

/** MySQL/MariaDB chose this transaction as a deadlock victim and rolled it back: it may run again. */
export function isDeadlock(err: unknown): boolean {
  const e = err as DriverError;
  return e?.errno === 1213 || e?.code === '40P01';
}

// Lock wait timeout, statement timeouts (MariaDB max_statement_time, MySQL max_execution_time),
// too many connections, server shutting down, connection killed.
const UNAVAILABLE_MYSQL_ERRNOS = new Set([1205, 1969, 3024, 1040, 1053, 1927, 2006, 2013]);
const UNAVAILABLE_MYSQL_CODES = new Set(['PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT', 'POOL_CLOSED', 'ER_CON_COUNT_ERROR']);

const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300', '57014']);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH']);

/** True when the database cannot be reached or is shutting down: the request may be retried. */
export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as DriverError;
  if (!e || typeof e !== 'object') return false;
  if ((e.errno !== undefined && UNAVAILABLE_MYSQL_ERRNOS.has(e.errno)) || (e.code && UNAVAILABLE_MYSQL_CODES.has(e.code))) return true;
  if (e.code && (UNAVAILABLE_SQLSTATES.has(e.code) || NETWORK_CODES.has(e.code) || e.code.startsWith('08'))) return true;
  const message = e.message ?? '';
  return (
    message.includes('timeout exceeded when trying to connect') ||
    message.includes('Connection terminated') ||
    message.includes('Query read timeout') ||
    message.includes('Client has encountered a connection error') ||
    message.includes('Cannot use a pool after calling end') ||
    message.includes('is not currently accepting connections') ||
    message.includes('the database system is starting up') ||
    message.includes('the database system is shutting down') ||
    message.includes('Pool is closed') ||
    message.includes("Can't add new command when connection is in closed state") ||
    message.includes('connect ETIMEDOUT')
  );
}
