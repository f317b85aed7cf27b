import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

/** An open database, whatever the driver (create-db.ts opens it; mysql.ts is one kind). */
export type DatabaseKind = 'pglite' | 'postgres' | 'mysql';

export interface Db {
  readonly kysely: Kysely<Database>;
  readonly kind: DatabaseKind;
  /**
   * Subscribes to a notification channel (PostgreSQL LISTEN/NOTIFY; PGlite has it in-process;
   * MySQL/MariaDB polls the invalidation_log table, src/db/mysql.ts).
   */
  listen(channel: string, handlers: ListenHandlers): Promise<Listener>;
  close(): Promise<void>;
}

export interface ListenHandlers {
  onMessage(payload: string): void;
  /** The channel was down and is back (or just went down): messages may have been missed. */
  onReset(): void;
}

export interface Listener {
  /** False while the channel is down: the caller must not rely on notifications then. */
  readonly healthy: boolean;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** A postgres:// or mysql:// (mariadb://) URL; unset opens PGlite. */
  databaseUrl?: string | undefined;
  /** Where PGlite keeps its files; 'memory://' keeps nothing (tests). */
  pgliteDir?: string;
  poolMax?: number;
  /** Longest wait for a connection, and for a statement, in milliseconds. */
  timeoutMs?: number;
  /** PostgreSQL server: send statements as named prepared statements (default true; see prepared-statements.ts). */
  preparedStatements?: boolean;
}
