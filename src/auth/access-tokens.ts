import { KeyObject, randomUUID, sign } from 'node:crypto';
import { errors as joseErrors, jwtVerify, type CryptoKey, type JWTHeaderParameters } from 'jose';
import { systemClock, type Clock } from '../core/clock.js';
import { isDatabaseUnavailable } from '../db/errors.js';
import { AppError } from '../errors.js';
import { SIGNING_ALG, type KeyStore } from './keys.js';
import { VerifiedTokenCache, type AccessClaims } from './token-cache.js';

/** The service's own first-party client (RFC 9068 `client_id`). */
export const FIRST_PARTY_CLIENT_ID = 'user-management';

export interface AccessTokenSettings {
  issuer: string;
  audience: string;
  ttlS: number;
}

export type { AccessClaims };

/** A token for a client of the OpenID Provider (API-FEDERATION.md B): its id, scope and audience (RFC 8707). */
export interface ClientGrant {
  clientId: string;
  scope: string;
  /** A registered resource; the service's own API when absent. */
  audience?: string;
}

const base64url = (text: string) => Buffer.from(text).toString('base64url');

// The same key as node:crypto wants it, made once per key.
const keyObjects = new WeakMap<CryptoKey, KeyObject>();
function keyObjectOf(key: CryptoKey): KeyObject {
  let keyObject = keyObjects.get(key);
  if (!keyObject) {
    keyObject = KeyObject.from(key as unknown as Parameters<typeof KeyObject.from>[0]);
    keyObjects.set(key, keyObject);
  }
  return keyObject;
}

/**
 * A compact JWS (RFC 7515) signed here, at once, with node:crypto: jose signs through WebCrypto,
 * whose jobs run on libuv's pool and so wait behind the password hashes there. Verification stays
 * with jose (AccessTokens.verify), and the tests verify what this signs with it.
 */
function signCompact(header: object, claims: object, privateKey: CryptoKey): string {
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  return `${input}.${sign(null, Buffer.from(input), keyObjectOf(privateKey)).toString('base64url')}`;
}

/** Leeway for clock skew between instances (RFC 8725; ASVS asks for at most 30 s). */
const CLOCK_TOLERANCE_S = 5;

/**
 * Access tokens: JWTs per RFC 9068 (`typ: at+jwt`), signed with Ed25519.
 */
export class AccessTokens {
  constructor(
    private readonly keys: KeyStore,
    readonly settings: AccessTokenSettings,
    readonly cache = new VerifiedTokenCache(),
    /** `iat` and `exp` when issuing, and the time a token is checked against. */
    private readonly clock: Clock = systemClock,
    /** The user's role names, carried as the `roles` claim (a hint for clients; API-ADMIN.md). */
    private readonly rolesOf?: (userId: string) => Promise<readonly string[]>,
    /** The organization the session speaks for and the user's role in it, carried as `org_id` and `org_role` (API-ORGS.md). */
    private readonly orgOf?: (userId: string, sessionId: string) => Promise<{ orgId: string; role: string } | undefined>,
  ) {}

  /** `amr`: how the session was signed in (RFC 8176), e.g. `['pwd']`, `['pwd', 'otp', 'mfa']`, `['swk', 'mfa']`. */
  async issue(userId: string, sessionId: string, amr: readonly string[], forClient?: ClientGrant): Promise<{ token: string; expiresIn: number }> {
    const roles = this.rolesOf ? await this.rolesOf(userId) : [];
    const org = this.orgOf ? await this.orgOf(userId, sessionId) : undefined;
    const { kid, privateKey } = this.keys.signingKey();
    const iat = Math.floor(this.clock.now() / 1000);
    const header = { alg: SIGNING_ALG, typ: 'at+jwt', kid };
    const claims = {
      sid: sessionId,
      client_id: forClient?.clientId ?? FIRST_PARTY_CLIENT_ID,
      ...(forClient ? { scope: forClient.scope } : {}),
      amr: [...amr],
      ...(roles.length ? { roles: [...roles] } : {}),
      ...(org ? { org_id: org.orgId, org_role: org.role } : {}),
      iss: this.settings.issuer,
      aud: forClient?.audience ?? this.settings.audience,
      sub: userId,
      iat,
      exp: iat + this.settings.ttlS,
      jti: randomUUID(),
    };
    return { token: signCompact(header, claims, privateKey), expiresIn: this.settings.ttlS };
  }

  /**
   * A token of the client credentials grant (API-FEDERATION.md B): `sub` is the client's id, no
   * `sid` (no person, no session), and the client's roles.
   */
  async issueForService(clientId: string, scope: string, roles: readonly string[], audience?: string): Promise<{ token: string; expiresIn: number }> {
    const { kid, privateKey } = this.keys.signingKey();
    const iat = Math.floor(this.clock.now() / 1000);
    const header = { alg: SIGNING_ALG, typ: 'at+jwt', kid };
    const claims = {
      client_id: clientId,
      ...(scope ? { scope } : {}),
      ...(roles.length ? { roles: [...roles] } : {}),
      iss: this.settings.issuer,
      aud: audience ?? this.settings.audience,
      sub: clientId,
      iat,
      exp: iat + this.settings.ttlS,
      jti: randomUUID(),
    };
    return { token: signCompact(header, claims, privateKey), expiresIn: this.settings.ttlS };
  }

  /**
   * Checks signature, alg (pinned), kid (ours only), typ, iss, aud, exp and nbf.
   * Anything wrong is 401 invalid_token; the session's state is checked by the caller.
   */
  async verify(token: string): Promise<AccessClaims> {
    const cached = this.cache.get(token, this.clock.now() / 1000);
    if (cached && this.keys.isLive(cached.kid)) return cached;
    try {
      // ASVS 5.0 V9.1.1 signature, V9.1.2 alg allow list, V9.1.3 our keys only, V9.2.1 exp/nbf, V9.2.2 typ, V9.2.3 aud.
      const { payload, protectedHeader } = await jwtVerify(
        token,
        async (header: JWTHeaderParameters) => {
          if (header.alg !== SIGNING_ALG || typeof header.kid !== 'string') throw new joseErrors.JOSEAlgNotAllowed('alg or kid not allowed');
          const key = await this.keys.verificationKey(header.kid);
          if (!key) throw new joseErrors.JWKSNoMatchingKey();
          return key;
        },
        {
          algorithms: [SIGNING_ALG],
          typ: 'at+jwt',
          issuer: this.settings.issuer,
          audience: this.settings.audience,
          clockTolerance: CLOCK_TOLERANCE_S,
          currentDate: new Date(this.clock.now()),
          requiredClaims: ['sub', 'sid', 'exp', 'iat', 'jti'],
        },
      );
      if (typeof payload.sub !== 'string' || !/^\d+$/.test(payload.sub) || typeof payload.sid !== 'string' || !/^\d+$/.test(payload.sid)) {
        throw new joseErrors.JWTClaimValidationFailed('sub and sid must be ids', payload);
      }
      const claims: AccessClaims = { userId: payload.sub, sessionId: payload.sid, expiresAt: payload.exp!, kid: protectedHeader.kid! };
      if (payload.org_id !== undefined) {
        if (typeof payload.org_id !== 'string' || !/^\d+$/.test(payload.org_id) || typeof payload.org_role !== 'string') {
          throw new joseErrors.JWTClaimValidationFailed('org_id must be an id, with org_role', payload);
        }
        claims.orgId = payload.org_id;
        claims.orgRole = payload.org_role;
      }
      this.cache.set(token, claims);
      return claims;
    } catch (err) {
      if (err instanceof AppError || isDatabaseUnavailable(err)) throw err;
      throw invalidToken();
    }
  }
}

export function invalidToken(detail?: string): AppError {
  return new AppError('invalid_token', {
    detail,
    headers: { 'www-authenticate': 'Bearer error="invalid_token"' },
  });
}
