import { createHash, randomBytes } from 'node:crypto';
import { hash, verify, type Algorithm } from '@node-rs/argon2';
import type { Argon2Params } from '../config.js';
import { verifyForeign } from './verifiers/index.js';

// Algorithm is an ambient const enum; its value for Argon2id is 2.
const ARGON2ID = 2 as Algorithm.Argon2id;

/** A pepper: a secret kept outside the database, given to Argon2id as its secret key (K). */
export interface Pepper {
  /** Short fingerprint stored in the PHC string as `keyid`, so the right pepper is used to verify. */
  id: string;
  secret: Buffer;
}

export function pepperFrom(secret: string): Pepper {
  return { id: createHash('sha256').update(secret).digest('hex').slice(0, 8), secret: Buffer.from(secret, 'utf8') };
}

const PHC_PARAMS = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)(?:,keyid=([0-9a-f]{8}))?\$/;

// ASVS 5.0 V11.4.2 (password hashing function); V6.2.8 (verified whole: never truncated or case-folded).
/**
 * Argon2id password hashing (OWASP Password Storage Cheat Sheet), as PHC strings.
 * @node-rs/argon2 runs each hash on the libuv thread pool, so hashing never blocks the event loop.
 * Passwords are NFKC-normalised here, once, so that every caller hashes and verifies the same
 * bytes (NIST SP 800-63B rev 4, 3.1.1.2). With peppers (PASSWORD_PEPPER), the first one peppers
 * new hashes and any of them verifies; a hash made with an older pepper is redone at login.
 */
export class PasswordHasher {
  #dummyHash: Promise<string> | undefined;

  constructor(
    readonly params: Argon2Params,
    private readonly peppers: readonly Pepper[] = [],
  ) {}

  async hash(password: string): Promise<string> {
    const pepper = this.peppers[0];
    const phc = await hash(password.normalize('NFKC'), {
      algorithm: ARGON2ID,
      memoryCost: this.params.memoryCost,
      timeCost: this.params.timeCost,
      parallelism: this.params.parallelism,
      ...(pepper ? { secret: pepper.secret } : {}),
    });
    return pepper ? phc.replace(/^(\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+)\$/, `$1,keyid=${pepper.id}$`) : phc;
  }

  async verify(phc: string, password: string): Promise<boolean> {
    // An imported hash of another format is checked in its own algorithm (credentials/verifiers/).
    if (!phc.startsWith('$argon2')) return verifyForeign(phc, password);
    const keyId = PHC_PARAMS.exec(phc)?.[4];
    let secret: Buffer | undefined;
    if (keyId) {
      secret = this.peppers.find((p) => p.id === keyId)?.secret;
      if (!secret) return false; // peppered with a secret this instance does not have
    }
    try {
      return await verify(keyId ? phc.replace(`,keyid=${keyId}$`, '$') : phc, password.normalize('NFKC'), secret ? { secret } : {});
    } catch {
      return false; // a malformed stored hash never matches
    }
  }

  // ASVS 5.0 V6.3.8: no user enumeration by response time.
  /**
   * Spends the same work as verifying a real hash and answers false: a login for a name that
   * belongs to no account costs what a wrong password costs, so timing does not tell them apart.
   */
  async verifyNothing(password: string): Promise<false> {
    await this.verify(await this.#standIn(), password);
    return false;
  }

  /** A hash of a random secret with today's parameters, made once. */
  #standIn(): Promise<string> {
    this.#dummyHash ??= this.hash(randomBytes(16).toString('base64url'));
    return this.#dummyHash;
  }

  /** Makes the stand-in hash now, so the first unknown-name login costs one hash like any other. */
  async warm(): Promise<void> {
    await this.#standIn();
  }

  /** True when a stored hash is not Argon2id with the configured cost and current pepper. */
  needsRehash(phc: string): boolean {
    const match = PHC_PARAMS.exec(phc);
    if (!match) return true;
    const [m, t, p] = match.slice(1, 4).map(Number) as [number, number, number];
    return m !== this.params.memoryCost || t !== this.params.timeCost || p !== this.params.parallelism || match[4] !== this.peppers[0]?.id;
  }
}
