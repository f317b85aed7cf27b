import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import type { Kysely } from 'kysely';
import type { AuditContext, AuditLog } from '../audit/audit-log.js';
import type { Database } from '../db/schema.js';
import { exportPage } from './repository.js';

const PAGE = 1000;

/**
 * `users export`: every user as the import's NDJSON record, hashes included (how users leave for
 * another system), read a page at a time so memory stays flat. Answers how many were written.
 */
export async function exportUsers(db: Kysely<Database>, out: Writable, audit: AuditLog, context: AuditContext): Promise<number> {
  let after: string | undefined;
  let count = 0;
  for (;;) {
    const rows = await exportPage(db, after, PAGE);
    if (!rows.length) break;
    for (const row of rows) {
      const record = {
        username: row.username,
        name: row.name,
        ...(row.dob !== null ? { dob: row.dob } : {}),
        email: row.email,
        email_verified: row.email_verified,
        ...(row.hashed_password !== null ? { password_hash: row.hashed_password } : {}),
        created_at: row.created_at.toISOString(),
        ...(row.external_id !== null ? { external_id: row.external_id } : {}),
      };
      if (!out.write(`${JSON.stringify(record)}\n`)) await once(out, 'drain');
      count += 1;
    }
    after = rows.at(-1)!.user_id;
  }
  await audit.record('users_exported', context, { users: count });
  return count;
}

/** The export file, readable by its owner only: it holds password hashes. */
export function secretFile(path: string): Writable {
  return createWriteStream(path, { mode: 0o600 });
}
