import { LIMITS } from './common.js';

const ARGON2_PHC = /^\$argon2(id|i|d)\$(?:v=(16|19)\$)?m=(\d{1,7}),t=(\d{1,3}),p=(\d{1,3})\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/;

/**
 * Argon2 PHC strings from elsewhere (`$argon2id$`, `$argon2i$`, `$argon2d$`). They are verified
 * by the PasswordHasher, which runs @node-rs/argon2 for all three; this only judges them at import.
 */
export function argon2Problem(hash: string): string | undefined {
  const match = ARGON2_PHC.exec(hash);
  if (!match) return 'is not a well-formed Argon2 PHC string';
  const [m, t, p] = [Number(match[3]), Number(match[4]), Number(match[5])];
  if (m > LIMITS.argon2MemoryKiB || t < 1 || t > LIMITS.argon2Time || p < 1 || p > LIMITS.argon2Parallelism) return 'has Argon2 parameters outside the accepted limits';
  return undefined;
}

export const isArgon2 = (hash: string): boolean => hash.startsWith('$argon2');
