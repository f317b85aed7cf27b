import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from './schema.js';

/**
 * Fan-out of "these sessions ended" to every instance sharing the database.
 * PostgreSQL-only (NOTIFY); the one place another dialect supplies its own fan-out.
 * Sent inside a transaction, the notification is delivered when it commits, never before.
 */

export const SESSIONS_ENDED_CHANNEL = 'ums_sessions_ended';

/** NOTIFY payloads must stay under 8000 bytes. */
const MAX_PAYLOAD = 7000;

export async function notifySessionsEnded(db: Kysely<Database> | Transaction<Database>, sessionIds: readonly string[]): Promise<void> {
  let chunk: string[] = [];
  let length = 0;
  const flush = async () => {
    if (chunk.length) await sql`select pg_notify(${SESSIONS_ENDED_CHANNEL}, ${chunk.join(',')})`.execute(db);
    chunk = [];
    length = 0;
  };
  for (const id of sessionIds) {
    if (length + id.length + 1 > MAX_PAYLOAD) await flush();
    chunk.push(id);
    length += id.length + 1;
  }
  await flush();
}

export function parseSessionsEnded(payload: string): string[] {
  return payload.split(',').filter((id) => /^[0-9]+$/.test(id));
}
