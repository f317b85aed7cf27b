import type { Kysely } from 'kysely';
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
  const row = await db.selectFrom('user_sessions').select('created_at').where('session_id', '=', caller.sessionId).where('user_id', '=', caller.userId).executeTakeFirst();
  if (!row || Date.now() - row.created_at.getTime() > REAUTH_WINDOW_MS) throw new AppError('reauthentication_required');
}
