import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isoCBOR } from '@simplewebauthn/server/helpers';

/**
 * A software passkey authenticator for tests (there is no browser here): an ES256 (P-256) key,
 * attestation format "none", and assertions signed over authenticatorData || SHA-256(clientDataJSON)
 * (WebAuthn Level 3 §6.1, §6.3.3, §8.7).
 */

const FLAG_UP = 0x01;
const FLAG_UV = 0x04;
const FLAG_BE = 0x08;
const FLAG_BS = 0x10;
const FLAG_AT = 0x40;

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest();
const b64url = (data: Buffer | Uint8Array) => Buffer.from(data).toString('base64url');

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

export interface AuthenticatorOptions {
  /** The origin the "browser" runs on. */
  origin?: string;
  /** The RP id the authenticator scopes the credential to. */
  rpId?: string;
  /** Clear the UV flag (user verification not done). */
  noUserVerification?: boolean;
  /** Backup eligible and backed up (a synced passkey). */
  backedUp?: boolean;
}

export class SoftAuthenticator {
  readonly credentialId: Buffer = randomBytes(32);
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** The signature counter; the next assertion carries counter + 1 unless told otherwise. */
  counter = 0;
  /** The user handle stored at registration (base64url), returned with assertions. */
  userHandle: string | undefined;
  origin: string;
  rpId: string;

  constructor(private readonly options: AuthenticatorOptions = {}) {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.privateKey = pair.privateKey;
    this.publicKey = pair.publicKey;
    this.origin = options.origin ?? 'http://localhost:3000';
    this.rpId = options.rpId ?? 'localhost';
  }

  get id(): string {
    return b64url(this.credentialId);
  }

  #flags(extra: number): number {
    let flags = FLAG_UP | extra;
    if (!this.options.noUserVerification) flags |= FLAG_UV;
    if (this.options.backedUp) flags |= FLAG_BE | FLAG_BS;
    return flags;
  }

  /** The COSE_Key of the public key (RFC 9053: kty EC2, alg ES256, crv P-256). */
  cosePublicKey(): Uint8Array {
    const jwk = this.publicKey.export({ format: 'jwk' });
    const key = new Map<number, number | Uint8Array>([
      [1, 2],
      [3, -7],
      [-1, 1],
      [-2, new Uint8Array(Buffer.from(jwk.x!, 'base64url'))],
      [-3, new Uint8Array(Buffer.from(jwk.y!, 'base64url'))],
    ]);
    return isoCBOR.encode(key);
  }

  clientData(type: 'webauthn.create' | 'webauthn.get', challenge: string, overrides: Record<string, unknown> = {}): string {
    return b64url(Buffer.from(JSON.stringify({ type, challenge, origin: this.origin, crossOrigin: false, ...overrides })));
  }

  /** navigator.credentials.create() for these creation options, as RegistrationResponseJSON. */
  register(options: { challenge: string; user: { id: string }; rp?: { id?: string } }, overrides: { clientData?: Record<string, unknown> } = {}) {
    this.userHandle = options.user.id;
    const credentialIdLength = Buffer.alloc(2);
    credentialIdLength.writeUInt16BE(this.credentialId.length);
    const authData = Buffer.concat([
      sha256(this.rpId),
      Buffer.from([this.#flags(FLAG_AT)]),
      u32(this.counter),
      Buffer.alloc(16), // AAGUID: zeros, as with attestation "none"
      credentialIdLength,
      this.credentialId,
      Buffer.from(this.cosePublicKey()),
    ]);
    const attestationObject = isoCBOR.encode(
      new Map<string, unknown>([
        ['fmt', 'none'],
        ['attStmt', new Map()],
        ['authData', new Uint8Array(authData)],
      ]) as Parameters<typeof isoCBOR.encode>[0],
    );
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key' as const,
      response: {
        clientDataJSON: this.clientData('webauthn.create', options.challenge, overrides.clientData),
        attestationObject: b64url(attestationObject),
        transports: ['internal', 'hybrid'],
      },
      clientExtensionResults: {},
      authenticatorAttachment: 'platform',
    };
  }

  /** navigator.credentials.get() for these request options, as AuthenticationResponseJSON. */
  assert(options: { challenge: string }, overrides: { counter?: number; clientData?: Record<string, unknown>; type?: 'webauthn.create' | 'webauthn.get' } = {}) {
    this.counter = overrides.counter ?? this.counter + 1;
    const authData = Buffer.concat([sha256(this.rpId), Buffer.from([this.#flags(0)]), u32(this.counter)]);
    const clientDataJSON = this.clientData(overrides.type ?? 'webauthn.get', options.challenge, overrides.clientData);
    const signature = sign('sha256', Buffer.concat([authData, sha256(Buffer.from(clientDataJSON, 'base64url'))]), this.privateKey); // DER, as WebAuthn wants
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key' as const,
      response: {
        clientDataJSON,
        authenticatorData: b64url(authData),
        signature: b64url(signature),
        ...(this.userHandle ? { userHandle: this.userHandle } : {}),
      },
      clientExtensionResults: {},
      authenticatorAttachment: 'platform',
    };
  }
}
