import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Caller, SessionsService } from '../sessions/service.js';
import { invalidToken, type AccessTokens } from './access-tokens.js';
import { clientOf } from '../http/client.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the bearer guard on protected routes. */
    caller: Caller | null;
  }
}

const BEARER = /^Bearer ([A-Za-z0-9_.~+/-]+=*)$/i;

/**
 * The bearer-token guard of protected routes: a valid access token (RFC 6750) whose session is
 * still active. Anything else is 401 invalid_token with WWW-Authenticate.
 */
export function bearerGuard(tokens: AccessTokens, sessions: SessionsService) {
  return async function requireCaller(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
    const header = request.headers.authorization;
    if (!header) throw invalidToken('An access token is required.');
    const match = BEARER.exec(header);
    if (!match) throw invalidToken();
    const claims = await tokens.verify(match[1]!);
    // ASVS 5.0 V7.2.1, V7.4.1: the session itself is checked on every request, not only the token.
    const caller = await sessions.authenticate(claims.userId, claims.sessionId);
    if (!caller) throw invalidToken();
    request.caller = { ...caller, ...clientOf(request) };
  };
}

/** The caller of a route behind the guard. */
export function callerOf(request: FastifyRequest): Caller {
  if (!request.caller) throw new Error('route is not behind the bearer guard');
  return request.caller;
}
