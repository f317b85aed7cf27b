/**
 * Express middleware: `app.get('/orders', requireAccessToken({ issuer, audience }), handler)`;
 * the handler reads the claims from `req.auth`.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { authenticate, refusal, verifierFor, type AccessTokenClaims, type AccessTokenVerifier, type VerifierOptions } from './index.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The verified access token's claims (set by requireAccessToken). */
      auth?: AccessTokenClaims;
    }
  }
}

/** Refuses a request without a valid access token (401 problem+json); sets `req.auth`. */
export function requireAccessToken(options: VerifierOptions | AccessTokenVerifier): RequestHandler {
  const verifier = verifierFor(options);
  return (req: Request, res: Response, next: NextFunction) => {
    authenticate(req.headers.authorization, verifier).then(
      (claims) => {
        req.auth = claims;
        next();
      },
      (err: unknown) => {
        const { status, headers, body } = refusal(err);
        res.status(status).set(headers).send(JSON.stringify(body));
      },
    );
  };
}

export type { AccessTokenClaims, VerifierOptions } from './index.js';
