/**
 * Hono middleware: `app.use('/api/*', requireAccessToken({ issuer, audience }))`; the handler
 * reads the claims with `c.get('auth')`.
 */
import type { MiddlewareHandler } from 'hono';
import { authenticate, refusal, verifierFor, type AccessTokenClaims, type AccessTokenVerifier, type VerifierOptions } from './index.js';

export type AccessTokenEnv = { Variables: { auth: AccessTokenClaims } };

/** Refuses a request without a valid access token (401 problem+json); sets `c.var.auth`. */
export function requireAccessToken(options: VerifierOptions | AccessTokenVerifier): MiddlewareHandler<AccessTokenEnv> {
  const verifier = verifierFor(options);
  return async (c, next) => {
    let claims: AccessTokenClaims;
    try {
      claims = await authenticate(c.req.header('authorization'), verifier);
    } catch (err) {
      const { status, headers, body } = refusal(err);
      return new Response(JSON.stringify(body), { status, headers });
    }
    c.set('auth', claims);
    await next();
  };
}

export type { AccessTokenClaims, VerifierOptions } from './index.js';
