import { createHash, randomInt } from 'node:crypto';

/**
 * Recovery codes: 10 per set-up, each 16 characters of an unambiguous alphabet (80 bits, so a
 * plain SHA-256 is a fine way to store them, like refresh tokens), shown as xxxx-xxxx-xxxx-xxxx.
 * Typed back, case, spaces and hyphens do not matter.
 */
export const RECOVERY_CODE_COUNT = 10;
// Crockford's base32 alphabet, lower case: no i, l, o or u to misread. 32 symbols, 5 bits each.
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const LENGTH = 16;

export function newRecoveryCodes(count = RECOVERY_CODE_COUNT): string[] {
  return Array.from({ length: count }, () => {
    let code = '';
    for (let i = 0; i < LENGTH; i++) code += ALPHABET[randomInt(ALPHABET.length)];
    return code.match(/.{4}/g)!.join('-');
  });
}

/** The code as stored (before hashing), or undefined when it cannot be a recovery code. */
export function normaliseRecoveryCode(input: string): string | undefined {
  const code = input.toLowerCase().replace(/[\s-]/g, '');
  if (code.length !== LENGTH) return undefined;
  for (const c of code) if (!ALPHABET.includes(c)) return undefined;
  return code;
}

export function hashRecoveryCode(normalised: string): string {
  return createHash('sha256').update(normalised).digest('hex');
}
