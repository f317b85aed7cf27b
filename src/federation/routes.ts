import type { FastifyReply, FastifyRequest } from 'fastify';
import { callerOf, type RequireCaller } from '../auth/guard.js';
import type { Config } from '../config.js';
import { clientOf } from '../core/caller.js';
import type { AccountErasure } from '../core/erasure.js';
import { backgroundJob, PRUNE_EVERY_MS } from '../core/jobs.js';
import { bearerAuth, NoContent, problems } from '../http/schemas.js';
import type { Feature } from '../http/types.js';
import type { RefreshCookie } from '../sessions/refresh-cookie.js';
import { perMinute } from '../throttling/rate-limit.js';
import { loadProviders } from './providers.js';
import { eraseIdentities, pruneFlows } from './repository.js';
import {
  AuthorizeQuery,
  AuthorizeUrl,
  CompleteSignUpBody,
  IdentityList,
  IdentityParams,
  PendingSignUp,
  ProviderList,
  ProviderParams,
  SignedUp,
} from './schemas.js';
import { FederationService, FLOW_TTL_MS, newSecret, type CallbackOutcome, type FederationDeps } from './service.js';

export interface FederationFeatureDeps extends Omit<FederationDeps, 'providers' | 'publicUrl' | 'log'> {
  erasure: AccountErasure;
  requireCaller: RequireCaller;
  refreshCookie: RefreshCookie;
  config: Pick<Config, 'identityProviders' | 'publicUrl' | 'rateLimitPerMinute'>;
}

/** Binds a flow to the browser that started it; the state alone is not enough (RFC 9700 4.7.1). */
const BINDING_COOKIE = 'ums_oauth';
/** The pending sign-up of /complete-sign-up. */
const SIGNUP_COOKIE = 'ums_signup';
const COOKIE_PATH = '/v1/oauth';

/**
 * Sign in with another provider (API-FEDERATION.md A): the providers of IDENTITY_PROVIDERS, the
 * flow (authorize, callback, complete sign-up), and the caller's linked accounts. With no
 * provider configured, only the empty list and 404s answer.
 */
export const federationFeature: Feature<FederationFeatureDeps> = async (app, deps) => {
  const { requireCaller, refreshCookie, config } = deps;
  const secure = config.publicUrl.startsWith('https:');
  const providers = await loadProviders(config.identityProviders, app.log);
  const federation = new FederationService({ ...deps, providers, publicUrl: config.publicUrl, log: app.log });
  deps.erasure.add('identities', eraseIdentities);
  backgroundJob(app, 'pruning sign-in flows', PRUNE_EVERY_MS, () => pruneFlows(deps.db, new Date(deps.clock.now())));
  const rateLimit = perMinute(config.rateLimitPerMinute);

  const cookieName = (name: string) => (secure ? `__Secure-${name}` : name);
  /** The browser's binding, made once and kept for 10 minutes from the last start (two tabs share it). */
  const binding = (request: FastifyRequest, reply: FastifyReply): string => {
    const value = request.cookies[cookieName(BINDING_COOKIE)] ?? newSecret();
    // A form_post answer is a cross-site POST: SameSite=None (with Secure) lets the cookie come with it.
    reply.setCookie(cookieName(BINDING_COOKIE), value, { path: COOKIE_PATH, httpOnly: true, secure, sameSite: secure ? 'none' : 'lax', maxAge: FLOW_TTL_MS / 1000 });
    return value;
  };

  app.get(
    '/v1/identity-providers',
    { schema: { summary: 'The providers one can sign in with (for the sign-in page)', tags: ['federation'], response: { 200: ProviderList } } },
    async () => ({ providers: federation.list() }),
  );

  app.get(
    '/v1/oauth/:name/authorize',
    {
      config: { rateLimit },
      schema: {
        summary: 'Start signing in with a provider: 302 to it, with state, nonce and PKCE S256',
        tags: ['federation'],
        params: ProviderParams,
        querystring: AuthorizeQuery,
        response: { 302: NoContent, ...problems('validation_failed', 'not_found', 'too_many_requests') },
      },
    },
    async (request, reply) => {
      const url = await federation.start(request.params.name, request.query.return_to, binding(request, reply));
      return reply.redirect(url.href, 302);
    },
  );

  const answer = (reply: FastifyReply, outcome: CallbackOutcome) => {
    switch (outcome.kind) {
      case 'signed_in':
        refreshCookie.put(reply, outcome.pair);
        return reply.redirect(outcome.returnTo, 302);
      case 'mfa_required': {
        // In the fragment: it never reaches a server or a log, and the web app asks for the code.
        const fragment = new URLSearchParams({ mfa_token: outcome.mfaToken, factors: outcome.factors.join(','), return_to: outcome.returnTo });
        return reply.redirect(`/sign-in#${fragment}`, 302);
      }
      case 'sign_up':
        reply.setCookie(cookieName(SIGNUP_COOKIE), outcome.token, { path: COOKIE_PATH, httpOnly: true, secure, sameSite: 'lax', maxAge: FLOW_TTL_MS / 1000 });
        return reply.redirect('/complete-sign-up', 302);
      case 'linked':
        return reply.redirect(outcome.returnTo, 302);
      case 'refused':
        return reply.redirect(`/sign-in?error=${outcome.code}`, 302);
    }
  };
  const callbackSchema = {
    summary: "The provider's answer (query, or form_post): signs in, links, or starts /complete-sign-up; a refusal redirects to /sign-in?error=<code>",
    tags: ['federation'],
    params: ProviderParams,
    response: { 302: NoContent, ...problems('not_found', 'too_many_requests') },
  };
  const callback = async (request: FastifyRequest, reply: FastifyReply, params: URLSearchParams) => {
    const { name } = request.params as { name: string };
    const outcome = await federation.callback(name, params, request.cookies[cookieName(BINDING_COOKIE)], clientOf(request));
    return answer(reply, outcome);
  };

  app.get('/v1/oauth/:name/callback', { config: { rateLimit }, schema: callbackSchema }, async (request, reply) =>
    callback(request, reply, new URL(request.url, 'http://service.invalid').searchParams),
  );

  // form_post (OpenID Form Post Response Mode): its own parser, for this route only.
  await app.register(async (formPost) => {
    formPost.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => done(null, new URLSearchParams(body as string)));
    formPost.post('/v1/oauth/:name/callback', { config: { rateLimit }, schema: callbackSchema }, async (request, reply) =>
      callback(request, reply, request.body instanceof URLSearchParams ? request.body : new URLSearchParams()),
    );
  });

  app.get(
    '/v1/oauth/sign-up',
    {
      schema: {
        summary: 'The pending sign-up of this browser (for /complete-sign-up)',
        tags: ['federation'],
        response: { 200: PendingSignUp, ...problems('not_found') },
      },
    },
    async (request) => federation.pendingSignUp(request.cookies[cookieName(SIGNUP_COOKIE)], request.cookies[cookieName(BINDING_COOKIE)]),
  );

  app.post(
    '/v1/oauth/sign-up',
    {
      config: { rateLimit },
      schema: {
        summary: 'Complete a sign-up with a provider: the username and date of birth; opens a session in cookie mode',
        tags: ['federation'],
        body: CompleteSignUpBody,
        response: { 201: SignedUp, ...problems('validation_failed', 'not_found', 'username_taken', 'email_taken', 'email_not_verified', 'payload_too_large', 'unsupported_media_type', 'too_many_requests') },
      },
    },
    async (request, reply) => {
      const { pair, returnTo } = await federation.completeSignUp(request.cookies[cookieName(SIGNUP_COOKIE)], request.cookies[cookieName(BINDING_COOKIE)], request.body, clientOf(request));
      reply.setCookie(cookieName(SIGNUP_COOKIE), '', { path: COOKIE_PATH, httpOnly: true, secure, sameSite: 'lax', maxAge: 0 });
      refreshCookie.put(reply, pair);
      return reply.code(201).send({ return_to: returnTo });
    },
  );

  app.get(
    '/v1/users/me/identities',
    {
      onRequest: requireCaller(),
      schema: { summary: "The caller's linked accounts", tags: ['federation'], security: bearerAuth, response: { 200: IdentityList, ...problems('invalid_token') } },
    },
    async (request) => ({ identities: await federation.identities(callerOf(request)) }),
  );

  app.post(
    '/v1/users/me/identities/:name',
    {
      onRequest: requireCaller({ recentSignIn: true }),
      config: { rateLimit },
      schema: {
        summary: 'Link another account: the URL to send the browser to (needs a sign-in in the last 15 minutes)',
        tags: ['federation'],
        security: bearerAuth,
        params: ProviderParams,
        response: { 200: AuthorizeUrl, ...problems('invalid_token', 'reauthentication_required', 'not_found', 'too_many_requests') },
      },
    },
    async (request, reply) => {
      const url = await federation.start(request.params.name, '/security', binding(request, reply), callerOf(request).userId);
      return { authorize_url: url.href };
    },
  );

  app.delete(
    '/v1/users/me/identities/:id',
    {
      onRequest: requireCaller({ recentSignIn: true }),
      schema: {
        summary: 'Unlink an account; never the last way in (needs a sign-in in the last 15 minutes)',
        tags: ['federation'],
        security: bearerAuth,
        params: IdentityParams,
        response: { 204: NoContent, ...problems('invalid_token', 'reauthentication_required', 'not_found', 'last_sign_in_method') },
      },
    },
    async (request, reply) => {
      await federation.unlink(callerOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  );
};

