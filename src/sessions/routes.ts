import { callerOf, type RequireCaller } from '../auth/guard.js';
import type { Config } from '../config.js';
import type { Clock } from '../core/clock.js';
import { backgroundJob, PRUNE_EVERY_MS } from '../core/jobs.js';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { eraseSessions, pruneEndedSessions } from './repository.js';
import type { AccountErasure } from '../core/erasure.js';
import { AppError } from '../errors.js';
import { bearerAuth, NoContent, problems } from '../http/schemas.js';
import type { Feature } from '../http/types.js';
import { perMinute } from '../throttling/rate-limit.js';
import { LoginBody, MfaLoginBody, RefreshBody, SessionIdParams, SessionIntrospection, SessionList, TokenPair } from './schemas.js';
import { COOKIE_MODE_HEADER, type RefreshCookie } from './refresh-cookie.js';
import type { SessionsService } from './service.js';
import { SIGN_IN_REFUSALS } from './sign-in-policy.js';
import { clientOf } from '../core/caller.js';

export interface SessionsFeatureDeps {
  db: Kysely<Database>;
  sessions: SessionsService;
  erasure: AccountErasure;
  requireCaller: RequireCaller;
  refreshCookie: RefreshCookie;
  config: Pick<Config, 'rateLimitPerMinute' | 'auditRetentionDays'>;
  clock: Clock;
}

/** Sign-in by password (and second step), refresh, the caller's sessions, logout. */
export const sessionsFeature: Feature<SessionsFeatureDeps> = async (app, { db, sessions, erasure, requireCaller, refreshCookie: cookie, config, clock }) => {
  erasure.add('sessions', eraseSessions);
  const { rateLimitPerMinute } = config;
  // Ended sessions keep their address and agent until AUDIT_RETENTION_DAYS, like the events.
  backgroundJob(app, 'pruning ended sessions', PRUNE_EVERY_MS, () => pruneEndedSessions(db, config.auditRetentionDays, clock.now()));

  app.post(
    '/v1/sessions',
    {
      // Per address, so one address cannot make the service hash for every name it tries (ASVS 5.0 V2.4.1).
      config: { rateLimit: perMinute(rateLimitPerMinute) },
      schema: {
        summary: 'Log in (create_new_session) with username or email and password',
        tags: ['sessions'],
        body: LoginBody,
        response: { 201: TokenPair, ...problems('validation_failed', 'invalid_credentials', 'mfa_required', ...SIGN_IN_REFUSALS, 'payload_too_large', 'unsupported_media_type', 'too_many_requests') },
      },
    },
    async (request, reply) => {
      const signIn = await sessions.login(request.body, clientOf(request));
      // The password checked out and a second factor is on: API.md answers it as a 403 problem.
      if (signIn.kind === 'mfa_required') throw new AppError('mfa_required', { extensions: { mfa_token: signIn.mfaToken, factors: [...signIn.factors] } });
      return reply.code(201).send(cookie.deliver(request, reply, signIn.pair));
    },
  );

  app.post(
    '/v1/sessions/mfa',
    {
      config: { rateLimit: perMinute(rateLimitPerMinute) },
      schema: {
        summary: 'Second step of a sign-in: the mfa_token of 403 mfa_required and a TOTP or recovery code',
        tags: ['sessions'],
        body: MfaLoginBody,
        response: { 201: TokenPair, ...problems('validation_failed', 'invalid_mfa_token', 'invalid_mfa_code', ...SIGN_IN_REFUSALS, 'payload_too_large', 'unsupported_media_type', 'too_many_requests') },
      },
    },
    async (request, reply) => {
      const pair = await sessions.loginWithMfa(request.body, clientOf(request));
      return reply.code(201).send(cookie.deliver(request, reply, pair));
    },
  );

  app.post(
    '/v1/sessions/refresh',
    {
      config: { rateLimit: perMinute(rateLimitPerMinute) },
      schema: {
        summary: 'Trade a refresh token for a new token pair (rotation with reuse detection)',
        description: `In cookie mode (\`${COOKIE_MODE_HEADER}: cookie\`), the body is empty and the refresh token comes from the cookie.`,
        tags: ['sessions'],
        body: RefreshBody,
        response: { 200: TokenPair, ...problems('validation_failed', 'invalid_refresh_token', 'payload_too_large', 'unsupported_media_type', 'too_many_requests') },
      },
      // Cookie mode: the token comes from the cookie, never from a body beside it.
      preValidation: async (request) => {
        if (cookie.requested(request)) request.body = { refresh_token: cookie.read(request) ?? '' };
      },
    },
    async (request, reply) => {
      try {
        const pair = await sessions.refresh(request.body.refresh_token, clientOf(request));
        return cookie.deliver(request, reply, pair);
      } catch (err) {
        // Only a refused token drops the cookie: an outage (503) must not sign browsers out.
        if (cookie.requested(request) && err instanceof AppError && err.code === 'invalid_refresh_token') cookie.clear(request, reply);
        throw err;
      }
    },
  );

  app.get(
    '/v1/sessions',
    {
      onRequest: requireCaller(),
      schema: { summary: "The caller's active sessions, newest first", tags: ['sessions'], security: bearerAuth, response: { 200: SessionList, ...problems('invalid_token') } },
    },
    async (request) => ({ sessions: await sessions.list(callerOf(request)) }),
  );

  // For APIs that accept our tokens (the verifier's checkSession): the guard checks the
  // signature and that the session is still active, so a 200 says both; any other answer is 401.
  app.post(
    '/v1/sessions/introspect',
    {
      onRequest: requireCaller(),
      schema: {
        summary: "Is the bearer token's session still active? (for APIs that accept the access tokens)",
        description: 'An access token that is invalid, expired, or whose session has ended (logout, revocation, password change) is answered 401 invalid_token.',
        tags: ['sessions'],
        security: bearerAuth,
        response: { 200: SessionIntrospection, ...problems('invalid_token') },
      },
    },
    async (request) => {
      const caller = callerOf(request);
      return { active: true as const, sub: caller.userId, sid: caller.sessionId };
    },
  );

  app.delete(
    '/v1/sessions/current',
    {
      onRequest: requireCaller(),
      schema: { summary: 'Log out (update_session): end the calling session', tags: ['sessions'], security: bearerAuth, response: { 204: NoContent, ...problems('invalid_token') } },
    },
    async (request, reply) => {
      await sessions.logout(callerOf(request));
      cookie.clear(request, reply);
      return reply.code(204).send(null);
    },
  );

  app.delete(
    '/v1/sessions',
    {
      onRequest: requireCaller(),
      schema: { summary: 'Log out everywhere: end all of the caller\'s sessions', tags: ['sessions'], security: bearerAuth, response: { 204: NoContent, ...problems('invalid_token') } },
    },
    async (request, reply) => {
      await sessions.revokeAll(callerOf(request));
      cookie.clear(request, reply);
      return reply.code(204).send(null);
    },
  );

  app.delete(
    '/v1/sessions/:id',
    {
      onRequest: requireCaller(),
      schema: {
        summary: 'Revoke one of the caller\'s sessions',
        tags: ['sessions'],
        security: bearerAuth,
        params: SessionIdParams,
        response: { 204: NoContent, ...problems('invalid_token', 'not_found') },
      },
    },
    async (request, reply) => {
      await sessions.revoke(callerOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  );
};
