import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { withNamedLock } from '../db/locks.js';
import type { Database } from '../db/schema.js';

/**
 * Returns a random server-side secret by name, creating it once. Kept in the database so every
 * instance that shares it uses the same one.
 */
export async function loadOrCreateSecret(db: Kysely<Database>, name: string): Promise<Buffer> {
  const existing = await db.selectFrom('service_secrets').select('secret').where('name', '=', name).executeTakeFirst();
  if (existing) return Buffer.from(existing.secret, 'base64url');
  return withNamedLock(db, `service_secrets:${name}`, async (trx) => {
    const again = await trx.selectFrom('service_secrets').select('secret').where('name', '=', name).executeTakeFirst();
    if (again) return Buffer.from(again.secret, 'base64url');
    const secret = randomBytes(32);
    await trx.insertInto('service_secrets').values({ name, secret: secret.toString('base64url') }).execute();
    return secret;
  });
}
