import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import type { PasswordHasher } from './hashing.js';
import { insertCurrentCredential, replaceHash, retireCredential } from './repository.js';

/**
 * After a sign-in whose password checked out: an imported hash gives way to one with our own
 * Argon2id parameters, however strong it was, and stays as history (so the reuse rule still sees
 * it, checked in its own algorithm); one of our own made with older parameters or pepper is
 * redone in place.
 */
export async function upgradeAfterSignIn(
  db: Kysely<Database>,
  hasher: PasswordHasher,
  userId: string,
  credential: { credentials_id: string; hashed_password: string; imported: boolean },
  password: string,
): Promise<void> {
  if (credential.imported) {
    const hashed = await hasher.hash(password);
    await db.transaction().execute(async (trx) => {
      // Another change may have made a new password current meanwhile: then it stays.
      if (await retireCredential(trx, credential.credentials_id)) await insertCurrentCredential(trx, userId, hashed);
    });
  } else if (hasher.needsRehash(credential.hashed_password)) {
    await replaceHash(db, credential.credentials_id, credential.hashed_password, await hasher.hash(password));
  }
}
