/**
 * Fastify hook: `app.addHook('onRequest', requireAccessToken({ issuer, audience }))` (or a
 * route's `onRequest`); the handler reads the claims from `request.auth`.
 */
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { authenticate, refusal, verifierFor, type AccessTokenClaims, type AccessTokenVerifier, type VerifierOptions } from './index.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified access token's claims (set by requireAccessToken). */
    auth?: AccessTokenClaims;
  }
}

/** Refuses a request without a valid access token (401 problem+json); sets `request.auth`. */
export function requireAccessToken(options: VerifierOptions | AccessTokenVerifier): onRequestAsyncHookHandler {
  const verifier = verifierFor(options);
  return async function requireAccessToken(request: FastifyRequest, reply: FastifyReply) {
    try {
      request.auth = await authenticate(request.headers.authorization, verifier);
    } catch (err) {
      const { status, headers, body } = refusal(err);
      // Serialised here, so the app's own error handler and serializers cannot reshape the refusal.
      return reply.code(status).headers(headers).send(JSON.stringify(body));
    }
  };
}

export type { AccessTokenClaims, VerifierOptions } from './index.js';
