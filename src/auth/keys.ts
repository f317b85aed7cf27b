import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import type { Kysely } from 'kysely';
import { systemClock, type Clock } from '../core/clock.js';
import type { DataCipher } from '../crypto/data-encryption.js';
import { withNamedLock } from '../db/locks.js';
import type { Database } from '../db/schema.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The signing keys this instance knows (reloaded every 30 s, and on an unknown kid). */
    keyStore: KeyStore;
  }
}

/** Access tokens are signed with Ed25519 only (RFC 8725 3.1: one algorithm per key, pinned). */
export const SIGNING_ALG = 'EdDSA';

/** How often an instance reads the keys again, to see keys that another instance or the CLI added. */
export const KEY_RELOAD_INTERVAL_MS = 30_000;

interface LoadedKey {
  kid: string;
  publicJwk: JWK;
  publicKey: CryptoKey;
  privateKey: CryptoKey;
  createdAt: number;
  activatesAt: number;
  retiredAt: number | null;
}

export interface PublicJwk {
  kty: string;
  crv: string;
  x: string;
  kid: string;
  alg: string;
  use: string;
}

/**
 * Signing keys live in the database, so every instance sharing it signs and verifies with the
 * same keys and tokens survive a restart. A key is published in the JWKS from its creation,
 * signs from `activates_at` (the newest such key signs), and verifies until `retired_at`.
 */
export class KeyStore {
  #keys = new Map<string, LoadedKey>();
  #lastReload = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Kysely<Database>,
    /** Private keys are stored encrypted with DATA_ENCRYPTION_KEY. */
    private readonly cipher: DataCipher,
    /** When keys start signing and stop verifying. */
    private readonly clock: Clock = systemClock,
  ) {}

  /**
   * Loads the keys, creating the first one (once, under a lock) on a new database. Private keys
   * stored in plain JSON (written before they were encrypted) are encrypted now.
   */
  async init(): Promise<void> {
    await reencryptSigningKeys(this.db, this.cipher, { plainOnly: true });
    await this.reload();
    if (!this.#signing()) {
      await withNamedLock(this.db, 'signing_keys', async (trx) => {
        const live = await trx.selectFrom('signing_keys').select('kid').where('retired_at', 'is', null).executeTakeFirst();
        if (!live) await trx.insertInto('signing_keys').values(await newKeyRow(new Date(this.clock.now()), this.cipher)).execute();
      });
      await this.reload();
    }
    if (!this.#signing()) throw new Error('no active signing key');
    this.#timer = setInterval(() => void this.reload().catch(() => {}), KEY_RELOAD_INTERVAL_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /**
   * The newest live key whose time to sign has come. If none has by this process's clock (it
   * stepped back, or runs behind the clock that stamped the only key), the live key that was
   * first to sign: it is published already, and a login must not fail for a clock.
   */
  #signing(now = this.clock.now()): LoadedKey | undefined {
    let newest: LoadedKey | undefined;
    let earliest: LoadedKey | undefined;
    for (const key of this.#keys.values()) {
      if (key.retiredAt !== null && key.retiredAt <= now) continue;
      if (key.activatesAt <= now && (!newest || key.createdAt >= newest.createdAt)) newest = key;
      if (!earliest || key.activatesAt < earliest.activatesAt) earliest = key;
    }
    return newest ?? earliest;
  }

  signingKey(): { kid: string; privateKey: CryptoKey } {
    const key = this.#signing();
    if (!key) throw new Error('no active signing key');
    return key;
  }

  // ASVS 5.0 V9.1.3: key material only from our own table; jku, jwk and x5u are never read.
  /**
   * The public key for a `kid`, looked up only among our own unretired keys (RFC 8725 3.10:
   * no jku, jwk or x5u is ever followed). An unknown kid may be a key another instance just
   * made, so the keys are read again, at most once a second.
   */
  async verificationKey(kid: string): Promise<CryptoKey | undefined> {
    let key = this.#keys.get(kid);
    if (!key && this.clock.now() - this.#lastReload >= 1000) {
      await this.reload();
      key = this.#keys.get(kid);
    }
    if (!key || (key.retiredAt !== null && key.retiredAt <= this.clock.now())) return undefined;
    return key.publicKey;
  }

  /** True while `kid` is one of our keys and not retired (checked again for cached tokens). */
  isLive(kid: string, now = this.clock.now()): boolean {
    const key = this.#keys.get(kid);
    return key !== undefined && (key.retiredAt === null || key.retiredAt > now);
  }

  /** The JWK Set: public keys only, the signing one, the next one and retired ones still verifying. */
  jwks(): { keys: PublicJwk[] } {
    const now = this.clock.now();
    return {
      keys: [...this.#keys.values()]
        .filter((k) => k.retiredAt === null || k.retiredAt > now)
        .map((k) => ({ kty: k.publicJwk.kty!, crv: k.publicJwk.crv!, x: k.publicJwk.x!, kid: k.kid, alg: SIGNING_ALG, use: 'sig' })),
    };
  }

  async reload(): Promise<void> {
    this.#lastReload = this.clock.now();
    const rows = await this.db
      .selectFrom('signing_keys')
      .selectAll()
      .where((eb) => eb.or([eb('retired_at', 'is', null), eb('retired_at', '>', new Date(this.clock.now()))]))
      .orderBy('created_at', 'asc')
      .execute();
    const keys = new Map<string, LoadedKey>();
    for (const row of rows) {
      const known = this.#keys.get(row.kid);
      const publicJwk = JSON.parse(row.public_jwk) as JWK;
      keys.set(row.kid, {
        kid: row.kid,
        publicJwk,
        publicKey: known?.publicKey ?? ((await importJWK(publicJwk, SIGNING_ALG)) as CryptoKey),
        privateKey: known?.privateKey ?? ((await importJWK(JSON.parse(openPrivateJwk(this.cipher, row)) as JWK, SIGNING_ALG)) as CryptoKey),
        createdAt: row.created_at.getTime(),
        activatesAt: row.activates_at.getTime(),
        retiredAt: row.retired_at?.getTime() ?? null,
      });
    }
    this.#keys = keys;
  }
}

/** What a private key is bound to when encrypted: its own row. */
const privateKeyContext = (kid: string) => `signing_key:${kid}`;

/** The private JWK JSON of a row: decrypted, or as stored when it predates encryption (plain JSON). */
export function openPrivateJwk(cipher: DataCipher, row: { kid: string; private_jwk: string }): string {
  return row.private_jwk.startsWith('{') ? row.private_jwk : cipher.decrypt(row.private_jwk, privateKeyContext(row.kid));
}

async function newKeyRow(activatesAt: Date, cipher: DataCipher) {
  const { publicKey, privateKey } = await generateKeyPair(SIGNING_ALG, { crv: 'Ed25519', extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  const privateJwk = cipher.encrypt(JSON.stringify(await exportJWK(privateKey)), privateKeyContext(kid));
  return { kid, alg: SIGNING_ALG, public_jwk: JSON.stringify(publicJwk), private_jwk: privateJwk, activates_at: activatesAt, retired_at: null };
}

/**
 * Encrypts every private key with the key that encrypts now: those in plain JSON and, unless
 * `plainOnly`, those under an older key. Each row is swapped only if nobody changed it meanwhile.
 * Answers how many rows were rewritten.
 */
export async function reencryptSigningKeys(db: Kysely<Database>, cipher: DataCipher, options: { plainOnly?: boolean } = {}): Promise<number> {
  const rows = await db.selectFrom('signing_keys').select(['kid', 'private_jwk']).execute();
  let rewritten = 0;
  for (const row of rows) {
    if (cipher.isCurrent(row.private_jwk) || (options.plainOnly && !row.private_jwk.startsWith('{'))) continue;
    const sealed = cipher.encrypt(openPrivateJwk(cipher, row), privateKeyContext(row.kid));
    const result = await db
      .updateTable('signing_keys')
      .set({ private_jwk: sealed })
      .where('kid', '=', row.kid)
      .where('private_jwk', '=', row.private_jwk)
      .executeTakeFirst();
    rewritten += Number(result.numUpdatedRows);
  }
  return rewritten;
}

export interface KeyInfo {
  kid: string;
  alg: string;
  created_at: string;
  activates_at: string;
  retired_at: string | null;
  state: 'next' | 'signing' | 'verifying' | 'retired';
}

export async function listKeys(db: Kysely<Database>, now = systemClock.now()): Promise<KeyInfo[]> {
  const rows = await db.selectFrom('signing_keys').select(['kid', 'alg', 'created_at', 'activates_at', 'retired_at']).orderBy('created_at', 'asc').execute();
  const live = rows.filter((r) => r.activates_at.getTime() <= now && (r.retired_at === null || r.retired_at.getTime() > now));
  const signing = live.at(-1)?.kid;
  return rows.map((r) => ({
    kid: r.kid,
    alg: r.alg,
    created_at: r.created_at.toISOString(),
    activates_at: r.activates_at.toISOString(),
    retired_at: r.retired_at?.toISOString() ?? null,
    state:
      r.retired_at !== null && r.retired_at.getTime() <= now ? 'retired' : r.activates_at.getTime() > now ? 'next' : r.kid === signing ? 'signing' : 'verifying',
  }));
}

/**
 * Key rotation: adds a key that is published now and signs after `publishDelayS` (so every
 * verifier has fetched it first), and schedules the keys in use to retire once the last token
 * they signed has expired (`accessTokenTtlS` after the new key takes over).
 */
export async function rotateKeys(
  db: Kysely<Database>,
  options: { publishDelayS: number; accessTokenTtlS: number; cipher: DataCipher; clock?: Clock },
): Promise<{ kid: string; activatesAt: Date; retiresAt: Date }> {
  const clock = options.clock ?? systemClock;
  return withNamedLock(db, 'signing_keys', async (trx) => {
    const activatesAt = new Date(clock.now() + options.publishDelayS * 1000);
    const retiresAt = new Date(activatesAt.getTime() + options.accessTokenTtlS * 1000 + 60_000);
    await trx.updateTable('signing_keys').set({ retired_at: retiresAt }).where('retired_at', 'is', null).execute();
    const row = await newKeyRow(activatesAt, options.cipher);
    await trx.insertInto('signing_keys').values(row).execute();
    return { kid: row.kid, activatesAt, retiresAt };
  });
}

/**
 * Retires a key at once (a suspected leak): its tokens are refused from each instance's next key
 * reload on. Refused when no other key could sign; rotate with no publish delay first.
 */
export async function retireKey(db: Kysely<Database>, kid: string, clock: Clock = systemClock): Promise<'retired' | 'unknown' | 'last_key'> {
  return withNamedLock(db, 'signing_keys', async (trx) => {
    const now = new Date(clock.now());
    const live = await trx
      .selectFrom('signing_keys')
      .select('kid')
      .where((eb) => eb.or([eb('retired_at', 'is', null), eb('retired_at', '>', now)]))
      .execute();
    if (!live.some((k) => k.kid === kid)) return 'unknown';
    if (live.length < 2) return 'last_key';
    await trx.updateTable('signing_keys').set({ retired_at: now }).where('kid', '=', kid).execute();
    return 'retired';
  });
}
