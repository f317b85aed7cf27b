import { Type } from 'typebox';

// Field schemas several features take in their bodies (API.md).

/** An address to look an account up by (a password reset request): its shape only. */
export const EmailLookup = Type.String({ format: 'email', maxLength: 254, examples: ['ada@example.com'] });
/**
 * A new password. Its length is a password rule (400 weak_password, in code points after NFKC,
 * judged before anything is hashed), so it has no bound here: the 16 KiB body limit bounds it.
 */
export const NewPassword = Type.String({ description: 'Judged by the password rules once the rest of the body is valid; breaking one (length included) answers 400 weak_password.', examples: ['violet lantern orbit 4217'] });
/** A password checked against the stored one (login, current_password): any string; one longer than any password can be is simply wrong. */
export const CurrentPassword = Type.String({ examples: ['violet lantern orbit 4217'] });
