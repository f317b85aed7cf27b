import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import type { Kysely } from 'kysely';
import { withNamedLock } from '../db/locks.js';
import type { Database } from '../db/schema.js';

/** Access tokens are signed with Ed25519 only (RFC 8725 3.1: one algorithm per key, pinned). */
export const SIGNING_ALG = 'EdDSA';

interface LoadedKey {
  kid: string;
  publicJwk: JWK;
  publicKey: CryptoKey;
  privateKey: CryptoKey;
  createdAt: Date;
}

/**
 * Signing keys live in the database, so every instance sharing it signs and verifies with the
 * same keys and tokens survive a restart. The newest unretired key signs; every unretired key
 * verifies and is published in the JWKS.
 */
export class KeyStore {
  #keys = new Map<string, LoadedKey>();
  #signing: LoadedKey | undefined;
  #lastReload = 0;

  constructor(private readonly db: Kysely<Database>) {}

  /** Loads the keys, creating the first one (once, under a lock) on a new database. */
  async init(): Promise<void> {
    await this.#reload();
    if (this.#signing) return;
    await withNamedLock(this.db, 'signing_keys', async (trx) => {
      const count = await trx.selectFrom('signing_keys').select((eb) => eb.fn.countAll<string>().as('n')).where('retired_at', 'is', null).executeTakeFirstOrThrow();
      if (Number(count.n) > 0) return;
      await trx.insertInto('signing_keys').values(await newKeyRow()).execute();
    });
    await this.#reload();
    if (!this.#signing) throw new Error('no signing key after creating one');
  }

  signingKey(): { kid: string; privateKey: CryptoKey } {
    if (!this.#signing) throw new Error('KeyStore.init() was not called');
    return this.#signing;
  }

  /**
   * The public key for a `kid`, looked up only among our own keys (RFC 8725 3.10: no jku, jwk
   * or x5u is ever followed). An unknown kid may be a key another instance just made, so the
   * keys are read again, at most once a second.
   */
  async verificationKey(kid: string): Promise<CryptoKey | undefined> {
    const known = this.#keys.get(kid);
    if (known) return known.publicKey;
    if (Date.now() - this.#lastReload < 1000) return undefined;
    await this.#reload();
    return this.#keys.get(kid)?.publicKey;
  }

  jwks(): { keys: Array<{ kty: string; crv: string; x: string; kid: string; alg: string; use: string }> } {
    return {
      keys: [...this.#keys.values()].map((k) => ({ kty: k.publicJwk.kty!, crv: k.publicJwk.crv!, x: k.publicJwk.x!, kid: k.kid, alg: SIGNING_ALG, use: 'sig' })),
    };
  }

  async #reload(): Promise<void> {
    this.#lastReload = Date.now();
    const rows = await this.db.selectFrom('signing_keys').selectAll().where('retired_at', 'is', null).orderBy('created_at', 'asc').execute();
    const keys = new Map<string, LoadedKey>();
    for (const row of rows) {
      const publicJwk = JSON.parse(row.public_jwk) as JWK;
      keys.set(row.kid, {
        kid: row.kid,
        publicJwk,
        publicKey: (await importJWK(publicJwk, SIGNING_ALG)) as CryptoKey,
        privateKey: (await importJWK(JSON.parse(row.private_jwk) as JWK, SIGNING_ALG)) as CryptoKey,
        createdAt: row.created_at,
      });
    }
    this.#keys = keys;
    this.#signing = [...keys.values()].at(-1);
  }
}

async function newKeyRow() {
  const { publicKey, privateKey } = await generateKeyPair(SIGNING_ALG, { crv: 'Ed25519', extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { kid, alg: SIGNING_ALG, public_jwk: JSON.stringify(publicJwk), private_jwk: JSON.stringify(await exportJWK(privateKey)), retired_at: null };
}
