import { join } from 'node:path';
import { sql } from 'kysely';
import type { Db } from './create-db.js';

/**
 * What the start banner and the start errors say about the database: its product and version,
 * where it is (never the password), and what a failure to reach it means.
 */

/** `127.0.0.1:3306, database ums`: where a server database is, without its credentials. */
export function databaseAddress(url: string): string {
  try {
    const u = new URL(url);
    const name = decodeURIComponent(u.pathname.replace(/^\//, ''));
    return `${u.host}${name ? `, database ${name}` : ''}`;
  } catch {
    return 'the address in DATABASE_URL';
  }
}

/** `MariaDB 10.11.19 at 127.0.0.1:3306, database ums (DATABASE_URL)`, or the embedded database's folder. */
export async function describeDatabase(db: Db, options: { databaseUrl?: string | undefined; dataDir: string }): Promise<string> {
  if (db.kind === 'pglite') {
    return options.dataDir.startsWith('memory://')
      ? 'embedded PGlite in memory (DATA_DIR=memory://: nothing is kept)'
      : `embedded PGlite in ${join(options.dataDir, 'pglite')} (DATA_DIR)`;
  }
  const where = `${databaseAddress(options.databaseUrl ?? '')} (DATABASE_URL)`;
  try {
    const { rows } = await sql<{ v: string }>`select version() as v`.execute(db.kysely);
    return `${productAndVersion(db.kind, rows[0]?.v ?? '')} at ${where}`;
  } catch {
    return `${db.kind === 'mysql' ? 'MySQL or MariaDB' : 'PostgreSQL'} server at ${where}`;
  }
}

/** `10.11.19-MariaDB-ubu2204` → `MariaDB 10.11.19`; `8.0.36` → `MySQL 8.0.36`; `PostgreSQL 16.4 on …` → `PostgreSQL 16.4`. */
export function productAndVersion(kind: Db['kind'], version: string): string {
  if (kind === 'mysql') {
    const number = /^[0-9.]+/.exec(version)?.[0] ?? version;
    return /mariadb/i.test(version) ? `MariaDB ${number}` : `MySQL ${number}`;
  }
  return /^PostgreSQL [0-9.]+/.exec(version)?.[0] ?? 'PostgreSQL';
}

interface DriverError {
  code?: string;
  errno?: number;
  message?: string;
  errors?: DriverError[];
}

/**
 * One line for a start that could not reach or use the server database, naming DATABASE_URL
 * and what to do; undefined for any other error. PostgreSQL and MySQL/MariaDB name the same
 * failures with different codes.
 */
export function explainDatabaseError(err: unknown, url: string | undefined): string | undefined {
  if (!url || !err || typeof err !== 'object') return undefined;
  const e = err as DriverError;
  // Node's happy-eyeballs connect may report several addresses in an AggregateError.
  const code = e.code ?? e.errors?.[0]?.code;
  const where = databaseAddress(url);
  const mysql = /^(mysql|mariadb):/i.test(url);
  const name = /, database (.*)$/.exec(where)?.[1];
  switch (code) {
    case 'ECONNREFUSED':
      return `Cannot reach the database at DATABASE_URL (${where}): connection refused. Start the database server, or fix DATABASE_URL (unset, the service uses its embedded database).`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `Cannot reach the database at DATABASE_URL (${where}): the host name is not known. Fix DATABASE_URL.`;
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
      return `Cannot reach the database at DATABASE_URL (${where}): no answer. Is the server up, and is the address in DATABASE_URL right?`;
    case '3D000':
      return `The database named in DATABASE_URL (${where}) does not exist: create it first (createdb ${name ?? '<name>'}, or psql -c 'CREATE DATABASE ${name ?? '<name>'}').`;
    case 'ER_BAD_DB_ERROR':
      return `The database named in DATABASE_URL (${where}) does not exist: create it first (mysql -e "CREATE DATABASE ${name ?? '<name>'} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin").`;
    case '28P01':
    case '28000':
    case 'ER_ACCESS_DENIED_ERROR':
    case 'ER_DBACCESS_DENIED_ERROR':
      return `The database at DATABASE_URL (${where}) refused the user or password in it: fix DATABASE_URL.`;
    default:
      if (!mysql && /timeout exceeded when trying to connect/.test(e.message ?? '')) {
        return `Cannot reach the database at DATABASE_URL (${where}): no answer. Is the server up, and is the address in DATABASE_URL right?`;
      }
      return undefined;
  }
}
