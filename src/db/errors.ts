/**
 * What the database's errors mean to us. SQLSTATE codes are PostgreSQL's (PGlite speaks them too).
 */

interface DriverError {
  code?: string;
  constraint?: string;
  message?: string;
}

/** The name of the unique constraint or index that a write broke, if that is what happened. */
export function uniqueViolation(err: unknown): string | undefined {
  const e = err as DriverError;
  return e?.code === '23505' ? (e.constraint ?? '') : undefined;
}

const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300', '57014']);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH']);

/** True when the database cannot be reached or is shutting down: the request may be retried. */
export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as DriverError;
  if (!e || typeof e !== 'object') return false;
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
    message.includes('the database system is shutting down')
  );
}
