import { randomBytes } from 'node:crypto';
import { hash, verify, type Algorithm } from '@node-rs/argon2';
import type { Argon2Params } from '../config.js';

/**
 * Argon2id password hashing (OWASP Password Storage Cheat Sheet), as PHC strings.
 * @node-rs/argon2 runs each hash on the libuv thread pool, so hashing never blocks the event loop.
 * Passwords are NFKC-normalised here, once, so that every caller hashes and verifies the same
 * bytes (NIST SP 800-63B rev 4, 3.1.1.2).
 */
// Algorithm is an ambient const enum; its value for Argon2id is 2.
const ARGON2ID = 2 as Algorithm.Argon2id;

export class PasswordHasher {
  #dummyHash: Promise<string> | undefined;

  constructor(readonly params: Argon2Params) {}

  hash(password: string): Promise<string> {
    return hash(password.normalize('NFKC'), {
      algorithm: ARGON2ID,
      memoryCost: this.params.memoryCost,
      timeCost: this.params.timeCost,
      parallelism: this.params.parallelism,
    });
  }

  async verify(phc: string, password: string): Promise<boolean> {
    try {
      return await verify(phc, password.normalize('NFKC'));
    } catch {
      return false; // a malformed stored hash never matches
    }
  }

  /**
   * Spends the same work as verifying a real hash and answers false: a login for a name that
   * belongs to no account costs what a wrong password costs, so timing does not tell them apart.
   */
  async verifyNothing(password: string): Promise<false> {
    this.#dummyHash ??= this.hash(randomBytes(16).toString('base64url'));
    await this.verify(await this.#dummyHash, password);
    return false;
  }

  /** True when a stored hash is not Argon2id with at least the configured cost. */
  needsRehash(phc: string): boolean {
    const match = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$/.exec(phc);
    if (!match) return true;
    const [m, t, p] = match.slice(1).map(Number) as [number, number, number];
    return m !== this.params.memoryCost || t !== this.params.timeCost || p !== this.params.parallelism;
  }
}
