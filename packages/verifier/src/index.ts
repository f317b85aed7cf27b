/**
 * Verifies the access tokens of the user management service in another API: signature against
 * the service's JWKS, `typ`, `alg`, `iss`, `aud`, `exp`, and optionally that the session is still
 * active. Middleware for Express, Fastify, Hono and Next.js is in the sibling entry points.
 */
import { createRemoteJWKSet, customFetch, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';

/** The claims of an access token (RFC 9068), as the service issues them. */
export interface AccessTokenClaims extends JWTPayload {
  iss: string;
  aud: string | string[];
  /** The user id. */
  sub: string;
  /** The session id. */
  sid: string;
  client_id: string;
  iat: number;
  exp: number;
  jti: string;
  /** How the session was signed in (RFC 8176), e.g. `["pwd"]`, `["pwd", "otp", "mfa"]`. */
  amr?: string[];
  /** The user's role names: a hint, not a permission check. */
  roles?: string[];
}

export interface VerifierOptions {
  /** The service's issuer (its PUBLIC_URL unless JWT_ISSUER is set), e.g. `https://auth.example.com`. */
  issuer: string;
  /** The audience your API accepts (the service's JWT_AUDIENCE; its PUBLIC_URL by default). */
  audience: string | string[];
  /** Where the public keys are; `<issuer>/.well-known/jwks.json` by default. */
  jwksUri?: string;
  /** Signature algorithms accepted. Default: the service's, `EdDSA`, `Ed25519` and `ES256`. */
  algorithms?: string[];
  /** Leeway for clock skew on `exp`, `nbf` and `iat`, in seconds (default 5). */
  clockToleranceS?: number;
  /**
   * The least time between two JWKS fetches caused by tokens with an unknown `kid`, in ms
   * (default 30 000): a flood of forged kids costs the service one fetch per period.
   */
  jwksCooldownMs?: number;
  /** How long a fetched JWKS is used before it is fetched again anyway, in ms (default 10 minutes). */
  jwksCacheMaxAgeMs?: number;
  /**
   * Also ask the service whether the token's session is still active (`POST <issuer>/v1/sessions/introspect`),
   * so a logout or revocation is honoured before the token expires. Default false.
   */
  checkSession?: boolean;
  /** How long an "active" answer is reused for the same token, in ms (default 1000; 0 asks every time). */
  sessionCacheMs?: number;
  /** Where to ask about sessions; `<issuer>/v1/sessions/introspect` by default. */
  introspectionUri?: string;
  /** Timeout of the JWKS and session requests, in ms (default 5000). */
  timeoutMs?: number;
  /** The fetch to use (default globalThis.fetch): a proxy, a test double. */
  fetch?: typeof fetch;
  /** The current time in ms (default Date.now); for tests. */
  now?: () => number;
}

/**
 * Why a token was refused. `invalid_token` (401): missing, malformed, forged, expired, for
 * another audience, or of an ended session. `unavailable` (503): the service could not be asked.
 */
export class AccessTokenError extends Error {
  override readonly name = 'AccessTokenError';
  readonly status: 401 | 503;
  constructor(
    readonly code: 'invalid_token' | 'unavailable',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.status = code === 'invalid_token' ? 401 : 503;
  }
}

export interface AccessTokenVerifier {
  /** The token's claims, or an AccessTokenError. */
  verify(token: string): Promise<AccessTokenClaims>;
}

const DEFAULT_ALGORITHMS = ['EdDSA', 'Ed25519', 'ES256'];
const ID = /^\d+$/;

const withoutTrailingSlash = (url: string) => url.replace(/\/+$/, '');

/** A verifier with its own JWKS cache and session cache: make one per process and reuse it. */
export function createVerifier(options: VerifierOptions): AccessTokenVerifier {
  const now = options.now ?? Date.now;
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const timeoutMs = options.timeoutMs ?? 5000;
  const base = withoutTrailingSlash(options.issuer);
  const jwks = createRemoteJWKSet(new URL(options.jwksUri ?? `${base}/.well-known/jwks.json`), {
    cooldownDuration: options.jwksCooldownMs ?? 30_000,
    cacheMaxAge: options.jwksCacheMaxAgeMs ?? 600_000,
    timeoutDuration: timeoutMs,
    [customFetch]: (url, init) => fetchImpl(url, init),
  });
  const algorithms = options.algorithms ?? DEFAULT_ALGORITHMS;
  const introspectionUri = options.introspectionUri ?? `${base}/v1/sessions/introspect`;
  const sessionCacheMs = options.sessionCacheMs ?? 1000;
  /** token → when its "active" answer stops being reused. Kept in memory only, never logged. */
  const activeUntil = new Map<string, number>();

  async function sessionIsActive(token: string): Promise<boolean> {
    const t = now();
    const until = activeUntil.get(token);
    if (until !== undefined && until > t) return true;
    activeUntil.delete(token);
    let res: Response;
    try {
      res = await fetchImpl(introspectionUri, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new AccessTokenError('unavailable', 'The session could not be checked: the service did not answer.', { cause: err });
    }
    if (res.status === 401) {
      await res.body?.cancel();
      return false;
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new AccessTokenError('unavailable', `The session could not be checked: the service answered ${res.status}.`);
    }
    const body = (await res.json().catch(() => ({}))) as { active?: unknown };
    if (body.active !== true) return false;
    if (sessionCacheMs > 0) {
      if (activeUntil.size >= 10_000) activeUntil.clear(); // a bound, not an LRU: misses only cost a request
      activeUntil.set(token, t + sessionCacheMs);
    }
    return true;
  }

  return {
    async verify(token: string): Promise<AccessTokenClaims> {
      if (typeof token !== 'string' || token === '') throw new AccessTokenError('invalid_token', 'No access token.');
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, jwks, {
          issuer: options.issuer,
          audience: options.audience,
          algorithms,
          // RFC 9068 §4: the typ header is at+jwt, so an ID token or another JWT is not taken for one.
          typ: 'at+jwt',
          clockTolerance: options.clockToleranceS ?? 5,
          currentDate: new Date(now()),
          requiredClaims: ['iss', 'aud', 'sub', 'sid', 'exp', 'iat'],
        }));
      } catch (err) {
        // The keys could not be fetched (network, timeout, an answer that is not a JWKS): not the token's fault.
        if (err instanceof joseErrors.JWKSTimeout || !(err instanceof joseErrors.JOSEError) || err.code === 'ERR_JOSE_GENERIC') {
          throw new AccessTokenError('unavailable', 'The signing keys could not be fetched.', { cause: err });
        }
        throw new AccessTokenError('invalid_token', describe(err), { cause: err });
      }
      if (typeof payload.sub !== 'string' || !ID.test(payload.sub) || typeof payload.sid !== 'string' || !ID.test(payload.sid)) {
        throw new AccessTokenError('invalid_token', 'The token does not name a user and a session.');
      }
      if (options.checkSession && !(await sessionIsActive(token))) {
        throw new AccessTokenError('invalid_token', 'The session of this token has ended.');
      }
      return payload as AccessTokenClaims;
    },
  };
}

/** What went wrong, for a log or a problem detail: never the token itself. */
function describe(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'The token has expired.';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `The token's "${err.claim}" claim is not accepted.`;
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'The token\'s algorithm is not accepted.';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'The token was not signed by a key of the service.';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'The token\'s signature does not verify.';
  return 'The token is not a valid access token.';
}

const verifiers = new Map<string, AccessTokenVerifier>();

/**
 * Verifies an access token, resolving to its claims. Verifiers (and so their JWKS caches) are
 * kept per set of options; options with a `fetch` or `now` of their own get a new one each call,
 * so pass those to createVerifier instead.
 */
export function verifyAccessToken(token: string, options: VerifierOptions): Promise<AccessTokenClaims> {
  return verifierFor(options).verify(token);
}

export function verifierFor(options: VerifierOptions | AccessTokenVerifier): AccessTokenVerifier {
  if ('verify' in options) return options;
  if (options.fetch || options.now) return createVerifier(options);
  const key = JSON.stringify(options, Object.keys(options).sort());
  let verifier = verifiers.get(key);
  if (!verifier) {
    verifier = createVerifier(options);
    verifiers.set(key, verifier);
  }
  return verifier;
}

/** The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1), or undefined. */
export function bearerToken(authorization: string | null | undefined): string | undefined {
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(authorization ?? '');
  return match?.[1];
}

/** The problem+json body and headers of a refusal, the same in every middleware. */
export function refusal(err: unknown): { status: 401 | 503; headers: Record<string, string>; body: Record<string, unknown> } {
  const e = err instanceof AccessTokenError ? err : new AccessTokenError('invalid_token', 'The token is not a valid access token.');
  const headers: Record<string, string> = { 'content-type': 'application/problem+json; charset=utf-8', 'cache-control': 'no-store' };
  if (e.status === 401) headers['www-authenticate'] = 'Bearer error="invalid_token"';
  else headers['retry-after'] = '1';
  return {
    status: e.status,
    headers,
    body: { type: 'about:blank', title: e.status === 401 ? 'Unauthorized' : 'Service Unavailable', status: e.status, code: e.code, detail: e.message },
  };
}

/** Verifies the request's bearer token: the claims, or an AccessTokenError. */
export async function authenticate(authorization: string | null | undefined, verifier: AccessTokenVerifier): Promise<AccessTokenClaims> {
  const token = bearerToken(authorization);
  if (!token) throw new AccessTokenError('invalid_token', 'No bearer token.');
  return verifier.verify(token);
}
