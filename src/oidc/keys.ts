import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, SignJWT, jwtVerify, decodeProtectedHeader, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import type { Kysely } from 'kysely';
import type { KeyStore } from '../auth/keys.js';
import { SIGNING_ALG } from '../auth/keys.js';
import type { DataCipher } from '../crypto/data-encryption.js';
import { withNamedLock } from '../db/locks.js';
import type { Database } from '../db/schema.js';
import { insertIdTokenKey, listIdTokenKeys } from './repository.js';

/** The algorithms a client may ask its ID tokens in (id_token_signed_response_alg). */
export const ID_TOKEN_ALGS = ['RS256', 'EdDSA'] as const;
export type IdTokenAlg = (typeof ID_TOKEN_ALGS)[number];

interface RsaKey {
  kid: string;
  publicJwk: JWK;
  publicKey: CryptoKey;
  privateKey: CryptoKey;
}

const privateKeyContext = (kid: string) => `oauth_signing_key:${kid}`;

/** `keys re-encrypt`: the RS256 key's private half moves to the current DATA_ENCRYPTION_KEY. */
export async function reencryptIdTokenKeys(db: Kysely<Database>, cipher: DataCipher): Promise<number> {
  let rewritten = 0;
  for (const row of await listIdTokenKeys(db)) {
    if (cipher.isCurrent(row.private_jwk)) continue;
    const sealed = cipher.encrypt(cipher.decrypt(row.private_jwk, privateKeyContext(row.kid)), privateKeyContext(row.kid));
    const result = await db.updateTable('oauth_signing_keys').set({ private_jwk: sealed }).where('kid', '=', row.kid).where('private_jwk', '=', row.private_jwk).executeTakeFirst();
    rewritten += Number(result.numUpdatedRows);
  }
  return rewritten;
}

/**
 * ID tokens are signed with the service's keys: EdDSA with the Ed25519 keys of part 1 (the
 * KeyStore, rotating, shared through the database), RS256 with an RSA key kept in the database
 * too (created once, under a lock, by the first instance that needs it), so every instance signs
 * and verifies alike.
 */
export class IdTokenKeys {
  #rsa: RsaKey | undefined;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly cipher: DataCipher,
    private readonly keys: KeyStore,
  ) {}

  async init(): Promise<void> {
    if (!(await this.#load())) {
      await withNamedLock(this.db, 'oauth_signing_keys', async (trx) => {
        if ((await listIdTokenKeys(trx)).length) return;
        const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
        const publicJwk = await exportJWK(publicKey);
        const kid = await calculateJwkThumbprint(publicJwk);
        const sealed = this.cipher.encrypt(JSON.stringify(await exportJWK(privateKey)), privateKeyContext(kid));
        await insertIdTokenKey(trx, { kid, alg: 'RS256', public_jwk: JSON.stringify({ ...publicJwk, kid, alg: 'RS256', use: 'sig' }), private_jwk: sealed });
      });
      if (!(await this.#load())) throw new Error('no RS256 key for ID tokens');
    }
  }

  async #load(): Promise<boolean> {
    const [row] = await listIdTokenKeys(this.db);
    if (!row) return false;
    const publicJwk = JSON.parse(row.public_jwk) as JWK;
    const privateJwk = JSON.parse(this.cipher.decrypt(row.private_jwk, privateKeyContext(row.kid))) as JWK;
    this.#rsa = {
      kid: row.kid,
      publicJwk,
      publicKey: (await importJWK(publicJwk, 'RS256')) as CryptoKey,
      privateKey: (await importJWK(privateJwk, 'RS256')) as CryptoKey,
    };
    return true;
  }

  /** The JWKS of discovery: the Ed25519 keys of part 1 and the RS256 key. */
  async jwks(): Promise<{ keys: object[] }> {
    const own = await this.keys.jwks();
    return { keys: [...own.keys, this.#rsa!.publicJwk] };
  }

  async sign(payload: JWTPayload, alg: IdTokenAlg): Promise<string> {
    if (alg === 'RS256') {
      const rsa = this.#rsa!;
      return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: rsa.kid, typ: 'JWT' }).sign(rsa.privateKey);
    }
    const { kid, privateKey } = this.keys.signingKey();
    return new SignJWT(payload).setProtectedHeader({ alg: SIGNING_ALG, kid, typ: 'JWT' }).sign(privateKey);
  }

  /**
   * An ID token this service signed (id_token_hint of a logout): signature and issuer only, an
   * expired one included (OpenID RP-Initiated Logout 1.0 §2). Undefined if it is not ours.
   */
  async verifyHint(token: string, issuer: string): Promise<JWTPayload | undefined> {
    try {
      const { alg, kid } = decodeProtectedHeader(token);
      let key: CryptoKey | undefined;
      if (alg === 'RS256' && kid === this.#rsa!.kid) key = this.#rsa!.publicKey;
      else if (alg === SIGNING_ALG && typeof kid === 'string') key = await this.keys.verificationKey(kid);
      if (!key) return undefined;
      const { payload } = await jwtVerify(token, key, { issuer, algorithms: [alg!], currentDate: new Date(0) });
      return payload;
    } catch {
      return undefined;
    }
  }
}
