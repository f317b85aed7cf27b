import { AppError, type ProblemName } from '../errors.js';

/**
 * The refusals assertMaySignIn can answer: every route that signs in lists them among its error
 * answers (OpenAPI), so a rule added here shows up on all of them.
 */
export const SIGN_IN_REFUSALS = ['email_not_verified'] as const satisfies readonly ProblemName[];

/**
 * Whether a user whose credentials checked out may have a session. Every way of signing in
 * (password, the second step, passkey) calls this after its credentials checked out and before
 * it opens a session, so a refusal never tells anything to someone without them.
 */
export function assertMaySignIn(user: { email_verified: boolean }, settings: { requireEmailVerification: boolean }): void {
  if (settings.requireEmailVerification && !user.email_verified) throw new AppError('email_not_verified');
}
