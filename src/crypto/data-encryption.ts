import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { loadOrCreateSecret } from './secrets.js';
import type { Database } from '../db/schema.js';

/**
 * Encryption of secrets at rest (TOTP secrets, private signing keys) with DATA_ENCRYPTION_KEY:
 * AES-256-GCM (NIST SP 800-38D), a fresh 96-bit nonce per value, and an envelope that names its
 * version and key:
 *
 *   v1.<key id>.<nonce, base64url>.<ciphertext and 128-bit tag, base64url>
 *
 * The key id is a short hash of the key, so the envelope says which key opens it without telling
 * anything about the key. Each value is bound (as additional authenticated data) to where it
 * belongs, e.g. `totp:<user id>`, so a ciphertext copied into another row does not decrypt.
 * The first key encrypts; every key decrypts, so a key is rotated by putting a new one first and
 * re-encrypting (`keys re-encrypt` on the command line).
 */

const VERSION = 'v1';
const ENVELOPE = /^v1\.([A-Za-z0-9_-]{11})\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{22,})$/;
const TAG_BYTES = 16;

/** The name of the generated key in service_secrets, used only while DATA_ENCRYPTION_KEY is unset. */
export const GENERATED_KEY_NAME = 'data_encryption_key';

export class DecryptionError extends Error {
  override name = 'DecryptionError';
}

/** A short, stable id of a key: 8 bytes of SHA-256, base64url. Reveals nothing useful about the key. */
export function keyId(key: Buffer): string {
  return createHash('sha256').update('ums data encryption key id\0').update(key).digest().subarray(0, 8).toString('base64url');
}

export class DataCipher {
  readonly #keys: Map<string, Buffer>;
  readonly #current: { id: string; key: Buffer };

  /** `keys[0]` encrypts; all of them decrypt. Each is 32 bytes. */
  constructor(keys: readonly Buffer[]) {
    if (keys.length === 0) throw new Error('DataCipher needs at least one key');
    for (const key of keys) if (key.length !== 32) throw new Error('data encryption keys are 32 bytes');
    this.#keys = new Map(keys.map((k) => [keyId(k), k]));
    this.#current = { id: keyId(keys[0]!), key: keys[0]! };
  }

  /** The id of the key that encrypts. */
  get currentKeyId(): string {
    return this.#current.id;
  }

  encrypt(plaintext: string, context: string): string {
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#current.key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${VERSION}.${this.#current.id}.${nonce.toString('base64url')}.${body.toString('base64url')}`;
  }

  decrypt(envelope: string, context: string): string {
    const match = ENVELOPE.exec(envelope);
    if (!match) throw new DecryptionError('not an encrypted value');
    const key = this.#keys.get(match[1]!);
    if (!key) throw new DecryptionError(`no key with id ${match[1]} (is DATA_ENCRYPTION_KEY missing a key?)`);
    const body = Buffer.from(match[3]!, 'base64url');
    if (body.length < TAG_BYTES) throw new DecryptionError('truncated value');
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(match[2]!, 'base64url'), { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
      return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw new DecryptionError('the value does not decrypt (wrong key, or tampered with)');
    }
  }

  /** True when the value is an envelope of this service (any key). */
  static isEnvelope(value: string): boolean {
    return ENVELOPE.test(value);
  }

  /** True when the value is encrypted with the key that encrypts now (nothing to re-encrypt). */
  isCurrent(value: string): boolean {
    const match = ENVELOPE.exec(value);
    return match !== null && match[1] === this.#current.id;
  }
}

/** Parses DATA_ENCRYPTION_KEY: base64 (or base64url) 32-byte keys, comma-separated. Throws a message naming the bad entry. */
export function parseDataEncryptionKeys(raw: string | undefined): Buffer[] {
  const entries = (raw ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  return entries.map((entry, i) => {
    if (!/^[A-Za-z0-9+/_-]{43}=?$/.test(entry)) throw new Error(`key ${i + 1} is not 32 bytes of base64 (make one with: openssl rand -base64 32)`);
    const key = Buffer.from(entry.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (key.length !== 32) throw new Error(`key ${i + 1} is not 32 bytes of base64 (make one with: openssl rand -base64 32)`);
    return key;
  });
}

export const GENERATED_KEY_WARNING =
  'DATA_ENCRYPTION_KEY is not set: TOTP secrets and signing keys are encrypted with a key kept in the database itself, so a database dump alone reveals them. Set DATA_ENCRYPTION_KEY (openssl rand -base64 32) and run "keys re-encrypt".';

/**
 * The service's cipher. With DATA_ENCRYPTION_KEY set, its keys (the first encrypts); a key
 * generated earlier, if the database has one, still decrypts, so values written before the
 * setting existed keep working until `keys re-encrypt` moves them. Unset, a key is generated
 * once and kept in the database, with a warning.
 */
export async function loadDataCipher(db: Kysely<Database>, configured: readonly Buffer[], warn: (message: string) => void = () => {}): Promise<DataCipher> {
  if (configured.length > 0) {
    const generated = await db.selectFrom('service_secrets').select('secret').where('name', '=', GENERATED_KEY_NAME).executeTakeFirst();
    return new DataCipher(generated ? [...configured, Buffer.from(generated.secret, 'base64url')] : configured);
  }
  warn(GENERATED_KEY_WARNING);
  return new DataCipher([await loadOrCreateSecret(db, GENERATED_KEY_NAME)]);
}
