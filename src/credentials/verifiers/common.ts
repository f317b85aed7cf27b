import { pbkdf2, scrypt, timingSafeEqual, type BinaryLike } from 'node:crypto';
import { promisify } from 'node:util';

/**
 * A verifier of one foreign hash format (API-MIGRATION.md). Each one runs its work on libuv's
 * thread pool (node:crypto's async scrypt and pbkdf2, @node-rs/bcrypt), never on the event loop.
 */
export interface Verifier {
  /** The format's name, as the import report and the docs say it. */
  readonly name: string;
  /** True when `hash` is written in this format (its prefix or shape says so). */
  matches(hash: string): boolean;
  /**
   * Why `hash` cannot be accepted (malformed, or a cost so high one sign-in would tie up the
   * service), or undefined: asked at import, so a bad hash is that record's error.
   */
  problem(hash: string): string | undefined;
  /** True when `password` is the one `hash` was made from; false for a malformed hash. */
  verify(hash: string, password: string): Promise<boolean>;
}

const scryptAsync = promisify(scrypt) as (password: BinaryLike, salt: BinaryLike, keylen: number, options: { N: number; r: number; p: number; maxmem: number }) => Promise<Buffer>;
const pbkdf2Async = promisify(pbkdf2);

/** scrypt off the event loop, with room for its memory (128·N·r bytes; Node's default allows 32 MiB). */
export function scryptKey(password: BinaryLike, salt: BinaryLike, keyLength: number, cost: { N: number; r: number; p: number }): Promise<Buffer> {
  return scryptAsync(password, salt, keyLength, { ...cost, maxmem: 128 * cost.N * cost.r * 2 + 1024 * 1024 });
}

export function pbkdf2Key(password: BinaryLike, salt: BinaryLike, iterations: number, keyLength: number, digest: string): Promise<Buffer> {
  return pbkdf2Async(password, salt, iterations, keyLength, digest);
}

/** Compares in constant time (for equal lengths; a length difference is no secret). */
export function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && a.length > 0 && timingSafeEqual(a, b);
}

/** Standard or PHC/passlib base64 ("." for "+", padding optional), or undefined when it is not base64. */
export function fromBase64(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/.]*={0,2}$/.test(text)) return undefined;
  const bytes = Buffer.from(text.replace(/\./g, '+'), 'base64');
  return bytes.length > 0 ? bytes : undefined;
}

/** Limits on imported costs: one sign-in must not hold a hashing thread for seconds or take 1 GiB. */
export const LIMITS = {
  bcryptCost: 17,
  scryptLogN: 20,
  scryptMemoryBytes: 256 * 1024 * 1024,
  scryptP: 16,
  pbkdf2Iterations: 5_000_000,
  argon2MemoryKiB: 262_144,
  argon2Time: 20,
  argon2Parallelism: 16,
} as const;
