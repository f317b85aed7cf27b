import type { Kysely } from 'kysely';
import { dbSecondsAgo } from '../db/dialect.js';
import type { Database } from '../db/schema.js';
import { AppError } from '../errors.js';

/** How recent a sign-in re-authenticates (API-ACCOUNT.md: passkeys; optionally an email change). */
export const REAUTH_WINDOW_MS = 15 * 60_000;

/**
 * Throws 403 reauthentication_required unless the caller's session was opened within the last
 * 15 minutes: a stolen access token alone, or an old session left open, cannot change what signs
 * in or recovers the account.
 */
export async function assertRecentSignIn(db: Kysely<Database>, caller: { userId: string; sessionId: string }): Promise<void> {
  // On the database's clock, which stamped created_at: a skew with this process changes nothing.
  const recent = await db
    .selectFrom('user_sessions')
    .select('session_id')
    .where('session_id', '=', caller.sessionId)
    .where('user_id', '=', caller.userId)
    .where('created_at', '>=', dbSecondsAgo(db, REAUTH_WINDOW_MS / 1000))
    .executeTakeFirst();
  if (!recent) throw new AppError('reauthentication_required');
}
