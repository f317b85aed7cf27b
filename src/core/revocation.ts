import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../db/schema.js';

type Queryable = Kysely<Database> | Transaction<Database>;

/** Why a session ended (user_sessions.end_reason). */
export type EndReason = 'logout' | 'revoked' | 'revoked_all' | 'password_changed' | 'refresh_reuse' | 'mfa_enabled' | 'password_reset' | 'account_deleted';

/** Which of a user's active sessions to end. */
export interface SessionsToEnd {
  userId: string;
  sessionId?: string;
  exceptSessionId?: string;
}

/**
 * The one path by which sessions end (implemented by sessions/revocation.ts): the rows, the
 * notification to other instances, and this instance's cache. Features that end sessions (a
 * password change, TOTP turned on, a deletion, the admin command line) take it from their
 * dependencies, so none of them imports the sessions feature.
 */
export interface Revocation {
  /** Ends the matching sessions inside `db` (a transaction: announced on commit); call `forget` after the commit. */
  end(db: Queryable, where: SessionsToEnd, reason: EndReason): Promise<string[]>;
  /** This instance refuses the sessions at once. */
  forget(ids: readonly string[]): void;
  /** end and forget, in a transaction of its own. */
  endNow(db: Kysely<Database>, where: SessionsToEnd, reason: EndReason): Promise<string[]>;
}
