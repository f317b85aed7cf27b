import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import type { AccessTokens } from '../auth/access-tokens.js';
import { callerOf, type RequireCaller } from '../auth/guard.js';
import type { KeyStore } from '../auth/keys.js';
import type { Config } from '../config.js';
import { clientOf } from '../core/caller.js';
import type { Clock } from '../core/clock.js';
import type { AccountErasure } from '../core/erasure.js';
import { backgroundJob, PRUNE_EVERY_MS } from '../core/jobs.js';
import type { Revocation } from '../core/revocation.js';
import type { DataCipher } from '../crypto/data-encryption.js';
import type { Database } from '../db/schema.js';
import { bearerAuth, NoContent, problems } from '../http/schemas.js';
import type { Feature } from '../http/types.js';
import type { SessionsService } from '../sessions/service.js';
import { perMinute } from '../throttling/rate-limit.js';
import { OAuthClients } from './clients.js';
import { IdTokenKeys, ID_TOKEN_ALGS } from './keys.js';
import { eraseOAuthRows, pruneOAuthFlows } from './repository.js';
import {
  CLIENT_ENDPOINTS,
  ClientList,
  ClientParams,
  ClientWithSecret,
  Client,
  GrantList,
  GrantParams,
  NewClientBody,
  PendingRequest,
  RedirectTo,
  RequestAnswer,
  RequestParams,
} from './schemas.js';
import { OAuthError, OidcService, OPENID_SCOPES, type AuthorizeParams, type BrowserSession } from './service.js';

export interface OidcFeatureDeps {
  db: Kysely<Database>;
  clock: Clock;
  config: Pick<Config, 'publicUrl' | 'jwtIssuer' | 'rateLimitPerMinute' | 'oauthResources'>;
  tokens: AccessTokens;
  keys: KeyStore;
  cipher: DataCipher;
  sessions: SessionsService;
  revocation: Revocation;
  erasure: AccountErasure;
  requireCaller: RequireCaller;
  secret(name: string): Promise<Buffer>;
}

/** The browser session at the provider (API-FEDERATION.md B): HttpOnly, sent on top-level navigations from the apps (Lax). */
const SESSION_COOKIE = 'ums_op_session';
const SESSION_COOKIE_PATH = '/oauth';

/** The OAuth endpoints (where discovery points); outside /v1, since their errors are RFC 6749's, not problem+json. */
export const OAUTH_PATHS = {
  authorize: '/oauth/authorize',
  token: '/oauth/token',
  userinfo: '/oauth/userinfo',
  revoke: '/oauth/revoke',
  introspect: '/oauth/introspect',
  logout: '/oauth/logout',
  jwks: '/oauth/jwks',
} as const;

type Form = Record<string, string | undefined>;

/** client_secret_basic (RFC 6749 2.3.1: both parts form-encoded before base64). */
function basicCredentials(request: FastifyRequest): { id: string; secret: string } | undefined {
  const header = request.headers.authorization;
  const match = header ? /^Basic ([A-Za-z0-9+/]+=*)$/i.exec(header) : null;
  if (!header) return undefined;
  if (!match) throw new OAuthError('invalid_client', 'The Authorization header is not Basic credentials.', 401);
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw new OAuthError('invalid_client', 'The Basic credentials have no colon.', 401);
  try {
    return { id: decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' ')), secret: decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' ')) };
  } catch {
    throw new OAuthError('invalid_client', 'The Basic credentials are not form-encoded.', 401);
  }
}

/** A form body, each parameter at most once (RFC 6749 3.1, 3.2: parameters MUST NOT repeat). */
function formOf(params: URLSearchParams): Form {
  const form: Form = {};
  for (const [name, value] of params) {
    if (Object.hasOwn(form, name)) throw new OAuthError('invalid_request', `${name} is given twice.`);
    if (value !== '') form[name] = value; // RFC 6749 3.1: an empty parameter is as if omitted
  }
  return form;
}

/**
 * The service as an OpenID Provider (API-FEDERATION.md B): discovery, the OAuth endpoints under
 * /oauth (form bodies, RFC 6749 errors), the interaction the web app answers, the consents of the
 * account app, and the clients of the admin API.
 */
export const oidcFeature: Feature<OidcFeatureDeps> = async (app, deps) => {
  const { config, requireCaller } = deps;
  const issuer = config.publicUrl;
  const secure = issuer.startsWith('https:');
  const idTokens = new IdTokenKeys(deps.db, deps.cipher, deps.keys);
  await idTokens.init();
  const oidc = new OidcService({
    db: deps.db,
    clock: deps.clock,
    tokens: deps.tokens,
    sessions: deps.sessions,
    revocation: deps.revocation,
    idTokens,
    issuer,
    resources: config.oauthResources,
    cookieKey: await deps.secret('oidc_browser_session'),
  });
  const clients = new OAuthClients(deps.db, deps.clock, deps.revocation);
  deps.erasure.add('oauth', eraseOAuthRows);
  backgroundJob(app, 'pruning authorization requests and codes', PRUNE_EVERY_MS, () => pruneOAuthFlows(deps.db, new Date(deps.clock.now())));
  const rateLimit = perMinute(config.rateLimitPerMinute);
  const url = (path: string) => new URL(path, issuer).toString();

  const browserOf = (request: FastifyRequest) => oidc.browserSession(request.cookies[SESSION_COOKIE]);
  const setBrowser = (reply: FastifyReply, session: BrowserSession | undefined) =>
    reply.setCookie(SESSION_COOKIE, session ? oidc.browserCookie(session) : '', { path: SESSION_COOKIE_PATH, httpOnly: true, secure, sameSite: 'lax', maxAge: session ? undefined : 0 });

  // OpenID Connect Discovery 1.0 §3.
  app.get('/.well-known/openid-configuration', { schema: { summary: 'OpenID Provider metadata (Discovery 1.0)', tags: ['openid'] } }, async () => ({
    issuer,
    authorization_endpoint: url(OAUTH_PATHS.authorize),
    token_endpoint: url(OAUTH_PATHS.token),
    userinfo_endpoint: url(OAUTH_PATHS.userinfo),
    jwks_uri: url(OAUTH_PATHS.jwks),
    revocation_endpoint: url(OAUTH_PATHS.revoke),
    introspection_endpoint: url(OAUTH_PATHS.introspect),
    end_session_endpoint: url(OAUTH_PATHS.logout),
    scopes_supported: [...OPENID_SCOPES],
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [...ID_TOKEN_ALGS],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    code_challenge_methods_supported: ['S256'],
    prompt_values_supported: ['none', 'login', 'consent', 'select_account'],
    claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'auth_time', 'nonce', 'amr', 'sid', 'azp', 'at_hash', 'name', 'preferred_username', 'birthdate', 'updated_at', 'email', 'email_verified'],
    claims_parameter_supported: false,
    request_parameter_supported: false,
    request_uri_parameter_supported: false,
    authorization_response_iss_parameter_supported: true,
    resource_indicators_supported: true,
  }));

  // The OAuth endpoints: form bodies, and RFC 6749's error shape instead of problem+json.
  await app.register(async (oauth) => {
    oauth.removeAllContentTypeParsers();
    oauth.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 16 * 1024 }, (_request, body, done) => done(null, new URLSearchParams(body as string)));
    oauth.setErrorHandler((err: FastifyError | OAuthError, request, reply) => {
      if (err instanceof OAuthError) {
        if (err.status === 401 && request.headers.authorization?.startsWith('Basic')) reply.header('www-authenticate', 'Basic realm="oauth"');
        if (err.error === 'invalid_token' || err.error === 'insufficient_scope') reply.header('www-authenticate', `Bearer error="${err.error}"`);
        return reply.code(err.status).type('application/json').send({ error: err.error, error_description: err.description });
      }
      const status = (err as FastifyError).statusCode;
      if (status === 429) return reply.code(429).send({ error: 'slow_down', error_description: 'Too many requests; try again later.' });
      if (status !== undefined && status >= 400 && status < 500) {
        return reply.code(400).type('application/json').send({ error: 'invalid_request', error_description: status === 415 ? 'The body must be application/x-www-form-urlencoded.' : 'The request is not valid.' });
      }
      request.log.error({ err }, 'oauth endpoint failed');
      return reply.code(500).type('application/json').send({ error: 'server_error', error_description: 'Something went wrong on our side.' });
    });
    const formBody = (request: FastifyRequest): Form => formOf(request.body instanceof URLSearchParams ? request.body : new URLSearchParams());
    const queryOf = (request: FastifyRequest): Form => formOf(new URL(request.url, 'http://service.invalid').searchParams);
    const hidden = { schema: { hide: true } };

    oauth.get(OAUTH_PATHS.jwks, hidden, async () => idTokens.jwks());

    const authorize = async (request: FastifyRequest, reply: FastifyReply, params: Form) => {
      const outcome = await oidc.authorize(params as AuthorizeParams, await browserOf(request));
      if (outcome.kind === 'refused') return reply.code(400).type('application/json').send({ error: outcome.error, error_description: outcome.description });
      return reply.redirect(outcome.location, 303);
    };
    oauth.get(OAUTH_PATHS.authorize, { ...hidden, config: { rateLimit } }, async (request, reply) => authorize(request, reply, queryOf(request)));
    oauth.post(OAUTH_PATHS.authorize, { ...hidden, config: { rateLimit } }, async (request, reply) => authorize(request, reply, formBody(request)));

    oauth.post(OAUTH_PATHS.token, { ...hidden, config: { rateLimit } }, async (request) => {
      const body = formBody(request);
      const client = await oidc.authenticateClient(basicCredentials(request), body);
      return oidc.token(client, body, clientOf(request));
    });

    const userinfo = async (request: FastifyRequest) => {
      const header = request.headers.authorization;
      const match = header ? /^Bearer ([A-Za-z0-9_.~+/-]+=*)$/i.exec(header) : null;
      if (!match) throw new OAuthError('invalid_token', 'An access token is required.', 401);
      return oidc.userinfo(match[1]!);
    };
    oauth.get(OAUTH_PATHS.userinfo, hidden, userinfo);
    oauth.post(OAUTH_PATHS.userinfo, hidden, userinfo);

    oauth.post(OAUTH_PATHS.revoke, { ...hidden, config: { rateLimit } }, async (request, reply) => {
      const body = formBody(request);
      const client = await oidc.authenticateClient(basicCredentials(request), body);
      await oidc.revoke(client, body.token);
      return reply.code(200).send(null);
    });

    oauth.post(OAUTH_PATHS.introspect, { ...hidden, config: { rateLimit } }, async (request) => {
      const body = formBody(request);
      const client = await oidc.authenticateClient(basicCredentials(request), body);
      return oidc.introspect(client, body.token);
    });

    const logout = async (request: FastifyRequest, reply: FastifyReply, params: Form) => {
      const { location } = await oidc.logout(params, await browserOf(request));
      setBrowser(reply, undefined);
      return reply.redirect(location ?? '/sign-in', 303);
    };
    oauth.get(OAUTH_PATHS.logout, hidden, async (request, reply) => logout(request, reply, queryOf(request)));
    oauth.post(OAUTH_PATHS.logout, hidden, async (request, reply) => logout(request, reply, formBody(request)));
  });

  // The interaction: the web app, with the person signed in, reads and answers a waiting request.
  app.get(
    '/v1/authorization-requests/:id',
    {
      onRequest: requireCaller(),
      schema: {
        summary: 'A sign-in request of an app, waiting for the signed-in person (the consent page)',
        tags: ['openid'],
        security: bearerAuth,
        params: RequestParams,
        response: { 200: PendingRequest, ...problems('invalid_token', 'not_found') },
      },
    },
    async (request) => oidc.describeRequest(request.params.id, callerOf(request)),
  );

  app.post(
    '/v1/authorization-requests/:id',
    {
      onRequest: requireCaller(),
      config: { rateLimit },
      schema: {
        summary: "Answer an app's sign-in request: allow (a code for the app; consent remembered) or deny; sets the browser session of single sign-on",
        tags: ['openid'],
        security: bearerAuth,
        params: RequestParams,
        body: RequestAnswer,
        response: { 200: RedirectTo, ...problems('invalid_token', 'not_found', 'reauthentication_required', 'validation_failed', 'payload_too_large', 'unsupported_media_type', 'too_many_requests') },
      },
    },
    async (request, reply) => {
      const caller = callerOf(request);
      const answer = await oidc.answerRequest(request.params.id, caller, request.body.decision === 'allow');
      setBrowser(reply, caller);
      return answer;
    },
  );

  app.get(
    '/v1/users/me/grants',
    {
      onRequest: requireCaller(),
      schema: { summary: 'The apps the caller agreed to (Connected apps)', tags: ['openid'], security: bearerAuth, response: { 200: GrantList, ...problems('invalid_token') } },
    },
    async (request) => oidc.listGrants(callerOf(request).userId),
  );

  app.delete(
    '/v1/users/me/grants/:client_id',
    {
      onRequest: requireCaller(),
      schema: {
        summary: "Withdraw a consent: the app's refresh and access tokens end with it",
        tags: ['openid'],
        security: bearerAuth,
        params: GrantParams,
        response: { 204: NoContent, ...problems('invalid_token', 'not_found', 'validation_failed') },
      },
    },
    async (request, reply) => {
      await oidc.withdrawGrant(callerOf(request).userId, request.params.client_id);
      return reply.code(204).send(null);
    },
  );

  // Clients (admin API).
  const COMMON = ['invalid_token', 'forbidden', 'mfa_setup_required', 'too_many_requests'] as const;
  const admin = <E extends object, S extends object>(endpoint: keyof typeof CLIENT_ENDPOINTS, summary: string, extra: E, success: S, ...errors: Parameters<typeof problems>) => ({
    onRequest: requireCaller({ permission: CLIENT_ENDPOINTS[endpoint] }),
    schema: { summary, description: `Needs the permission \`${CLIENT_ENDPOINTS[endpoint]}\`.`, tags: ['admin'], security: bearerAuth, ...extra, response: { ...success, ...problems(...COMMON, ...errors) } },
  });

  app.get('/v1/admin/clients', admin('GET /v1/admin/clients', 'The registered clients of the OpenID Provider', {}, { 200: ClientList }), async () => ({ clients: await clients.listClients() }));
  app.post(
    '/v1/admin/clients',
    admin('POST /v1/admin/clients', 'Register a client; its secret (confidential, service) is shown once', { body: NewClientBody }, { 201: ClientWithSecret }, 'validation_failed', 'payload_too_large', 'unsupported_media_type'),
    async (request, reply) => reply.code(201).send(await clients.createClient(request.body)),
  );
  app.get('/v1/admin/clients/:client_id', admin('GET /v1/admin/clients/:client_id', 'One client', { params: ClientParams }, { 200: Client }, 'not_found', 'validation_failed'), async (request) =>
    clients.showClient(request.params.client_id),
  );
  app.post(
    '/v1/admin/clients/:client_id/secret',
    admin('POST /v1/admin/clients/:client_id/secret', 'A new secret for a client (the old one stops working); shown once', { params: ClientParams }, { 200: ClientWithSecret }, 'not_found', 'validation_failed'),
    async (request) => clients.rotateSecret(request.params.client_id),
  );
  app.delete(
    '/v1/admin/clients/:client_id',
    admin('DELETE /v1/admin/clients/:client_id', 'Delete a client: its codes, consents and sessions end', { params: ClientParams }, { 204: NoContent }, 'not_found', 'validation_failed'),
    async (request, reply) => {
      await clients.deleteClient(request.params.client_id);
      return reply.code(204).send(null);
    },
  );
};
