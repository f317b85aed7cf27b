import { sql, type Kysely, type Transaction } from 'kysely';
import { isMysql } from './dialect.js';
import type { Database } from './schema.js';

/**
 * Fan-out of "these rows changed" to every instance sharing the database, so their caches
 * forget them. The one place each dialect supplies its fan-out: PostgreSQL NOTIFY; MySQL/MariaDB
 * a row in invalidation_log, which every instance polls (src/db/mysql.ts).
 * Sent inside a transaction, the notification is delivered when it commits, never before.
 */

export const INVALIDATION_CHANNEL = 'ums_invalidate';

/** What changed: sessions that ended, users whose profile changed, users whose roles or second factors changed (src/admin/access.ts), users whose organization memberships changed (src/orgs/access.ts). */
export type InvalidationKind = 'session' | 'user' | 'access' | 'membership';

/** NOTIFY payloads must stay under 8000 bytes. */
const MAX_PAYLOAD = 7000;

/** Payload: `<kind>:<id>,<id>,…`. */
export async function notifyInvalidated(db: Kysely<Database> | Transaction<Database>, kind: InvalidationKind, ids: readonly string[]): Promise<void> {
  const mysql = isMysql(db);
  let chunk: string[] = [];
  let length = 0;
  const flush = async () => {
    const payload = `${kind}:${chunk.join(',')}`;
    if (chunk.length && mysql) await sql`insert into invalidation_log (payload) values (${payload})`.execute(db);
    else if (chunk.length) await sql`select pg_notify(${INVALIDATION_CHANNEL}, ${payload})`.execute(db);
    chunk = [];
    length = 0;
  };
  for (const id of ids) {
    if (length + id.length + 1 > MAX_PAYLOAD) await flush();
    chunk.push(id);
    length += id.length + 1;
  }
  await flush();
}

export function parseInvalidation(payload: string): { kind: InvalidationKind; ids: string[] } | undefined {
  const match = /^(session|user|access|membership):([0-9,]+)$/.exec(payload);
  if (!match) return undefined;
  return { kind: match[1] as InvalidationKind, ids: match[2]!.split(',').filter(Boolean) };
}
