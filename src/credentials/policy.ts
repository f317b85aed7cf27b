import { readFileSync } from 'node:fs';
import { AppError } from '../errors.js';
import { resourcePath } from '../resources.js';

/**
 * The password rules of the contract (NIST SP 800-63B rev 4, 3.1.1.2; ASVS 5.0 V6.2):
 * length in code points after NFKC normalisation, no composition rules, nothing trimmed or
 * case-folded, not a commonly used password, not the account's own username or email.
 */

export const PASSWORD_MAX_LENGTH = 128;

let commonPasswords: Set<string> | undefined;

/** The shipped list of the 10,000 most common passwords, compared ignoring case. */
function isCommonPassword(normalized: string): boolean {
  commonPasswords ??= new Set(
    readFileSync(resourcePath('common-passwords.txt'), 'utf8')
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map((line) => line.toLowerCase()),
  );
  return commonPasswords.has(normalized.toLowerCase());
}

export interface PasswordContext {
  username?: string | undefined;
  email?: string | undefined;
}

/** Throws 400 weak_password naming the broken rule, or returns nothing. */
export function checkPasswordPolicy(password: string, minLength: number, context: PasswordContext, field = 'password'): void {
  const normalized = password.normalize('NFKC');
  const length = [...normalized].length;
  let message: string | undefined;
  // ASVS 5.0 V6.2.1 minimum, V6.2.9 up to 128, V6.2.4 common passwords, V6.2.11 context words; no composition rules (V6.2.5).
  if (length < minLength) message = `Use at least ${minLength} characters.`;
  else if (length > PASSWORD_MAX_LENGTH) message = `Use at most ${PASSWORD_MAX_LENGTH} characters.`;
  else if (isCommonPassword(normalized)) message = 'This password is too common; choose another.';
  else if (
    (context.username && normalized.toLowerCase() === context.username.toLowerCase()) ||
    (context.email && normalized.toLowerCase() === context.email.toLowerCase())
  ) {
    message = 'The password must not be your username or email.';
  }
  if (message) throw new AppError('weak_password', { detail: message, errors: [{ field, message }] });
}
