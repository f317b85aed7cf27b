import { argon2Problem, isArgon2 } from './argon2.js';
import { bcryptVerifier } from './bcrypt.js';
import type { Verifier } from './common.js';
import { djangoVerifier, pbkdf2PhcVerifier } from './pbkdf2.js';
import { betterAuthVerifier, firebaseScryptVerifier, scryptPhcVerifier } from './scrypt.js';

/**
 * The verifier registry: a stored hash's prefix (or shape) picks the verifier of its format.
 * Argon2 is the service's own format and stays with the PasswordHasher; every other format here
 * came in by an import (API-MIGRATION.md) and is replaced by Argon2id at the first sign-in.
 */
const FOREIGN: readonly Verifier[] = [bcryptVerifier, scryptPhcVerifier, firebaseScryptVerifier, pbkdf2PhcVerifier, djangoVerifier, betterAuthVerifier];

export function foreignVerifierFor(hash: string): Verifier | undefined {
  return FOREIGN.find((v) => v.matches(hash));
}

/** Checks an imported hash against its own algorithm; false for an unknown format. */
export async function verifyForeign(hash: string, password: string): Promise<boolean> {
  const verifier = foreignVerifierFor(hash);
  if (!verifier) return false;
  try {
    return await verifier.verify(hash, password);
  } catch {
    return false; // a stored hash its algorithm refuses never matches
  }
}

/** Why an imported hash cannot be taken (an unknown format, malformed, too costly), or undefined. */
export function importedHashProblem(hash: string): string | undefined {
  if (isArgon2(hash)) return argon2Problem(hash);
  const verifier = foreignVerifierFor(hash);
  if (!verifier) return 'is not a hash format this service accepts (bcrypt, Argon2, scrypt, Firebase scrypt, PBKDF2, Django PBKDF2, Better Auth scrypt)';
  return verifier.problem(hash);
}

export type { Verifier } from './common.js';
export { firebaseHash } from './scrypt.js';
