import { createHash, randomInt } from 'node:crypto';

/**
 * Recovery codes: 10 per set-up, each 24 characters of an unambiguous alphabet (120 bits: at
 * 112 bits or more a plain SHA-256 is an approved way to store a look-up secret, ASVS 5.0
 * V6.5.2, like refresh tokens), shown as six groups of four. Typed back, case, spaces and hyphens
 * do not matter.
 */
export const RECOVERY_CODE_COUNT = 10;
// Crockford's base32 alphabet, lower case: no i, l, o or u to misread. 32 symbols, 5 bits each.
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const LENGTH = 24;

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
