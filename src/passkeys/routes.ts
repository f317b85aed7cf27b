import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { callerOf, type RequireCaller } from '../auth/guard.js';
import type { Config } from '../config.js';
import { backgroundJob, PRUNE_EVERY_MS } from '../core/jobs.js';
import { erasePasskeys, pruneChallenges } from './repository.js';
import type { AccountErasure } from '../core/erasure.js';
import { bearerAuth, NoContent, problems } from '../http/schemas.js';
import type { Feature } from '../http/types.js';
import type { RefreshCookie } from '../sessions/refresh-cookie.js';
import { SIGN_IN_REFUSALS } from '../sessions/sign-in-policy.js';
import { TokenPair } from '../sessions/schemas.js';
import { perMinute } from '../throttling/rate-limit.js';
import { AddPasskeyBody, CreationOptions, Passkey, PasskeyIdParams, PasskeyList, PasskeySignInBody, RequestOptions } from './schemas.js';
import { PasskeysService, type PasskeysDeps } from './service.js';
import { clientOf } from '../core/caller.js';

export interface PasskeysFeatureDeps extends Omit<PasskeysDeps, 'userHandleKey' | 'settings'> {
  erasure: AccountErasure;
  requireCaller: RequireCaller;
  refreshCookie: RefreshCookie;
  config: Pick<Config, 'rateLimitPerMinute' | 'webauthnRpId' | 'publicUrl'>;
  /** A secret of the service's (service_secrets), by name. */
  secret(name: string): Promise<Buffer>;
}

/** Passkeys: adding, listing and removing the caller's, and signing in with one. */
export const passkeysFeature: Feature<PasskeysFeatureDeps> = async (app, deps) => {
  const { requireCaller, refreshCookie: cookie, config } = deps;
  const { rateLimitPerMinute } = config;
  const passkeys = new PasskeysService({
    ...deps,
    userHandleKey: await deps.secret('webauthn_user_handle'),
    settings: { rpId: config.webauthnRpId, origin: config.publicUrl, rpName: config.webauthnRpId },
  });
  deps.erasure.add('passkeys', erasePasskeys);
  backgroundJob(app, 'pruning passkey challenges', PRUNE_EVERY_MS, () => pruneChallenges(deps.db, deps.clock.now()));

  app.post(
    '/v1/users/me/passkeys/options',
    {
      onRequest: requireCaller({ recentSignIn: true }),
      config: { rateLimit: perMinute(rateLimitPerMinute) },
      schema: {
        summary: 'Creation options for adding a passkey (needs a sign-in in the last 15 minutes)',
        tags: ['passkeys'],
        security: bearerAuth,
        response: { 200: CreationOptions, ...problems('invalid_token', 'reauthentication_required', 'too_many_requests') },
      },
    },
    async (request) => passkeys.registrationOptions(callerOf(request)),
  );

  app.post(
    '/v1/users/me/passkeys',
    {
      onRequest: requireCaller(),
      config: { rateLimit: perMinute(rateLimitPerMinute) },
      schema: {
        summary: 'Add a passkey: the registration response to the creation options',
        tags: ['passkeys'],
        security: bearerAuth,
        body: AddPasskeyBody,
        response: {
          201: Passkey,
          ...problems('validation_failed', 'invalid_passkey', 'invalid_token', 'reauthentication_required', 'passkey_exists', 'payload_too_large', 'unsupported_media_type', 'too_many_requests'),
        },
      },
    },
    async (request, reply) => {
      const passkey = await passkeys.register(callerOf(request), { name: request.body.name, response: request.body.response as unknown as RegistrationResponseJSON });
      return reply.code(201).send(passkey);
    },
  );

  app.get(
    '/v1/users/me/passkeys',
    {
      onRequest: requireCaller(),
      schema: { summary: "The caller's passkeys, oldest first", tags: ['passkeys'], security: bearerAuth, response: { 200: PasskeyList, ...problems('invalid_token') } },
    },
    async (request) => ({ passkeys: await passkeys.list(callerOf(request)) }),
  );

  app.delete(
    '/v1/users/me/passkeys/:id',
    {
      onRequest: requireCaller({ recentSignIn: true }),
      schema: {
        summary: 'Remove one of the caller\'s passkeys (needs a sign-in in the last 15 minutes)',
        tags: ['passkeys'],
        security: bearerAuth,
        params: PasskeyIdParams,
        response: { 204: NoContent, ...problems('invalid_token', 'reauthentication_required', 'not_found') },
      },
    },
    async (request, reply) => {
      await passkeys.remove(callerOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/sessions/passkey/options',
    {
      // Each call stores a challenge: per address, like login (ASVS 5.0 V2.4.1).
      config: { rateLimit: perMinute(rateLimitPerMinute) },
      schema: {
        summary: 'Request options for signing in with a passkey',
        tags: ['sessions', 'passkeys'],
        response: { 200: RequestOptions, ...problems('too_many_requests') },
      },
    },
    async () => passkeys.authenticationOptions(),
  );

  app.post(
    '/v1/sessions/passkey',
    {
      config: { rateLimit: perMinute(rateLimitPerMinute) },
      schema: {
        summary: 'Sign in with a passkey: the assertion for the request options',
        tags: ['sessions', 'passkeys'],
        body: PasskeySignInBody,
        response: { 201: TokenPair, ...problems('validation_failed', 'invalid_credentials', ...SIGN_IN_REFUSALS, 'payload_too_large', 'unsupported_media_type', 'too_many_requests') },
      },
    },
    async (request, reply) => {
      const pair = await passkeys.signIn(request.body.response as unknown as AuthenticationResponseJSON, clientOf(request));
      return reply.code(201).send(cookie.deliver(request, reply, pair));
    },
  );
};
