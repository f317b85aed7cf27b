import { randomUUID } from 'node:crypto';
import cookiePlugin from '@fastify/cookie';
import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { AccessTokens } from './auth/access-tokens.js';
import { bearerGuard } from './auth/guard.js';
import { KeyStore } from './auth/keys.js';
import { loadOrCreateSecret } from './auth/secrets.js';
import { loadDataCipher } from './crypto/data-encryption.js';
import { mfaRoutes } from './mfa/routes.js';
import { MfaService } from './mfa/service.js';
import { pruneMfaTokens } from './mfa/repository.js';
import type { Config } from './config.js';
import { PasswordHasher, pepperFrom } from './credentials/hashing.js';
import { credentialsRoutes } from './credentials/routes.js';
import { passwordPolicyRoutes } from './credentials/policy-routes.js';
import { CredentialsService } from './credentials/service.js';
import type { Db } from './db/create-db.js';
import { registerBodyRules } from './http/body.js';
import { registerMetrics } from './http/metrics.js';
import { openapiInfo } from './http/openapi-info.js';
import { opsRoutes } from './http/ops-routes.js';
import { registerProblemHandlers, sendProblem, toAppError } from './http/problem-handler.js';
import { fieldChecks } from './http/validation.js';
import { AppError } from './errors.js';
import type { App } from './http/types.js';
import { RefreshChain } from './sessions/refresh-tokens.js';
import { RefreshCookie } from './sessions/refresh-cookie.js';
import { webAppRoutes } from './http/web-app.js';
import { sessionsRoutes } from './sessions/routes.js';
import { LastUseRecorder } from './sessions/last-use.js';
import { SessionRevocation } from './sessions/revocation.js';
import { SessionsService } from './sessions/service.js';
import { InvalidatedCache } from './cache/invalidated-cache.js';
import { Invalidation } from './cache/invalidation.js';
import { pruneEndedSessions, type SessionState } from './sessions/repository.js';
import type { User } from './users/schemas.js';
import { usersRoutes } from './users/routes.js';
import { UsersService } from './users/service.js';
import { LoginThrottle } from './throttling/login-throttle.js';
import { AuditLog } from './audit/audit-log.js';
import { auditRoutes } from './audit/routes.js';
import { pruneRateLimitHits, registerRateLimit } from './throttling/rate-limit.js';
import { pruneChallenges } from './passkeys/repository.js';
import { passkeysRoutes } from './passkeys/routes.js';
import { PasskeysService } from './passkeys/service.js';
import { Mailer, mailTransport } from './mail/mailer.js';
import { BackgroundJobs } from './account/background.js';
import { SecurityNotices } from './account/security-notices.js';
import { EmailVerification } from './account/email-verification.js';
import { PasswordReset } from './account/password-reset.js';
import { AccountDeletion } from './account/deletion.js';
import { pruneTokens } from './account/tokens.js';
import { accountRoutes } from './account/routes.js';

export interface BuildAppOptions {
  config: Config;
  /** The open database (see db/create-db.ts); the app does not close it. */
  db: Db;
  /** Fastify's logger option: pino settings, or false for none (tests). */
  logger?: FastifyServerOptions['logger'];
  /** Tests only: expose the caches, to drive the fast path's edge cases. */
  testHooks?: boolean;
  /** A worker of several: the supervisor gives the start's warnings once (server.ts). */
  quietStartWarnings?: boolean;
}

/** The most a request body may be (API.md): 16 KiB. */
export const BODY_LIMIT = 16 * 1024;

/** A client's own request id is echoed back only when it looks like one. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The URL of a request as the log shows it. Query values are logged only for the API's own
 * parameters and only when they look like one (digits); every other value, a bare query item, a
 * fragment (a client may send one) and a path segment too long to be an id show as [Redacted]:
 * a token put in a URL by mistake stays out of the log.
 */
const LOGGED_QUERY_PARAMS = new Set(['limit', 'before']);
const LOGGED_QUERY_VALUE = /^[0-9]{1,20}$/;
const LONGEST_LOGGED_SEGMENT = 40;
const REDACTED = '[Redacted]';

export function urlForLog(url: string): string {
  const hash = url.indexOf('#');
  const beforeHash = hash < 0 ? url : url.slice(0, hash);
  const q = beforeHash.indexOf('?');
  const path = (q < 0 ? beforeHash : beforeHash.slice(0, q))
    .split('/')
    .map((segment) => (segment.length > LONGEST_LOGGED_SEGMENT ? REDACTED : segment))
    .join('/');
  const query =
    q < 0
      ? ''
      : `?${beforeHash
          .slice(q + 1)
          .split('&')
          .map((pair) => {
            const eq = pair.indexOf('=');
            if (eq < 0) return pair === '' ? '' : REDACTED;
            const name = pair.slice(0, eq);
            return LOGGED_QUERY_PARAMS.has(name) && LOGGED_QUERY_VALUE.test(pair.slice(eq + 1)) ? pair : `${name}=${REDACTED}`;
          })
          .join('&')}`;
  return `${path}${query}${hash < 0 ? '' : `#${REDACTED}`}`;
}

/** Fastify's request serializer, with the URL's query values redacted. */
function requestForLog(req: FastifyRequest): Record<string, unknown> {
  return { method: req.method, url: urlForLog(req.url), host: req.host, remoteAddress: req.ip, remotePort: req.socket?.remotePort };
}

// ASVS 5.0 V16.2.5.
/** Secrets never reach a log line, whatever gets logged. */
const LOG_REDACT = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  '*.password',
  '*.current_password',
  '*.new_password',
  '*.refresh_token',
  '*.access_token',
  '*.hashed_password',
  '*.mfa_token',
  '*.secret',
  '*.otpauth_url',
  '*.qr_svg',
  '*.recovery_codes',
];

/** The headers every answer carries (API.md, Headers). */
function setStandardHeaders(request: FastifyRequest, reply: FastifyReply): void {
  reply.header('x-request-id', request.id);
  reply.header('x-content-type-options', 'nosniff');
  reply.header('x-frame-options', 'DENY');
  reply.header('content-security-policy', "frame-ancestors 'none'");
  reply.header('cache-control', 'no-store');
}

/**
 * Builds the service as a Fastify instance, ready to inject into or listen with. It never
 * listens itself and never migrates: server.ts (and the tests) do that.
 */
export async function buildApp({ config, db: handle, logger = false, testHooks = false, quietStartWarnings = false }: BuildAppOptions): Promise<App> {
  const db = handle.kysely;
  const app = Fastify({
    logger: logger === false ? false : { redact: LOG_REDACT, serializers: { req: requestForLog }, ...(logger === true ? { level: config.logLevel } : logger) },
    bodyLimit: BODY_LIMIT,
    // Fastify also takes a hop count here; its types only list the other forms.
    // ASVS 5.0 V15.3.4: the client address comes from TRUST_PROXY proxies only.
    trustProxy: config.trustProxy as string[] | boolean,
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    ajv: {
      // Strict input (ASVS V15 mass assignment, type confusion): no silent stripping or coercion,
      // and every bad field reported at once.
      // ASVS 5.0 V15.3.3, V15.3.5, V2.2.1.
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: true },
      // Field rules beyond JSON Schema run in the same pass (http/validation.ts); ajv-formats is still added.
      plugins: [fieldChecks],
    },
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 100 },
    // A URL Fastify cannot even route (a broken %-escape) is answered like any other error.
    frameworkErrors: (err, request, reply) => {
      setStandardHeaders(request, reply);
      void sendProblem(reply, err.code === 'FST_ERR_BAD_URL' ? new AppError('not_found') : toAppError(err));
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // JSON only; an empty body of any type is no input; a body a route does not take is refused.
  registerBodyRules(app);

  app.decorateRequest('caller', null);
  app.addHook('onRequest', async (request, reply) => setStandardHeaders(request, reply));
  registerProblemHandlers(app);
  await app.register(cookiePlugin);

  if (config.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: [...config.corsOrigins],
      credentials: false,
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
      allowedHeaders: ['authorization', 'content-type', 'x-request-id'],
      exposedHeaders: ['location', 'x-request-id', 'retry-after'],
    });
  }

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: openapiInfo(),
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { summary: 'This OpenAPI 3.1 document', tags: ['operations'] } }, async () => app.swagger());

  const hasher = new PasswordHasher(config.argon2, config.passwordPeppers.map(pepperFrom));
  await hasher.warm();
  // Secrets at rest (TOTP secrets, private signing keys): DATA_ENCRYPTION_KEY, or a generated key with a warning.
  const cipher = await loadDataCipher(db, config.dataEncryptionKeys, (message) => quietStartWarnings || app.log.warn(message));
  const keys = new KeyStore(db, cipher);
  await keys.init();
  app.addHook('onClose', async () => keys.stop());
  app.decorate('keyStore', keys);
  const tokens = new AccessTokens(keys, { issuer: config.jwtIssuer, audience: config.jwtAudience, ttlS: config.accessTokenTtlS });
  const chain = new RefreshChain(await loadOrCreateSecret(db, 'refresh_token_hmac'));
  const throttle = new LoginThrottle(db, {
    maxFailures: config.loginMaxFailures,
    baseWaitS: config.loginLockBaseS,
    maxWaitS: config.loginLockMaxS,
    accountHourlyCeiling: config.loginAccountMaxFailuresPerHour,
  });
  const audit = new AuditLog(db);
  const sessionCache = new InvalidatedCache<SessionState>();
  const userCache = new InvalidatedCache<User>();
  const invalidation = new Invalidation({ session: sessionCache, user: userCache as InvalidatedCache<unknown> });
  await invalidation.start(handle);
  // With WORKERS > 1, a change's answer waits until the other workers have forgotten it.
  app.addHook('onSend', invalidation.awaitWorkers);
  app.addHook('onClose', () => invalidation.stop());
  const revocation = new SessionRevocation(invalidation);
  const lastUse = new LastUseRecorder(db, (err) => app.log.warn({ err }, 'recording last use of sessions failed'), config.sessionIdleTtlS);
  app.addHook('onClose', () => lastUse.close());
  if (testHooks) {
    app.decorate('sessionCacheForTests', sessionCache);
    app.decorate('accessTokensForTests', tokens);
  }
  // Mail leaves through SMTP_URL, or lands in DATA_DIR/outbox; always off the request path.
  const mailer = new Mailer(mailTransport(config), { from: config.mailFrom, retryBaseMs: config.mailRetryBaseMs }, app.log);
  const accountJobs = new BackgroundJobs(app.log);
  app.decorate('mailer', mailer);
  app.decorate('accountJobs', accountJobs);
  app.addHook('onClose', async () => {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([accountJobs.idle(), new Promise<void>((resolve) => (timer = setTimeout(resolve, 5000)))]);
    clearTimeout(timer);
    await mailer.close();
  });
  audit.onRecorded(new SecurityNotices(db, mailer, accountJobs, app.log).recorded);
  const verification = new EmailVerification(db, mailer, audit, invalidation, config.publicUrl, app.log, config.emailChangeNeedsRecentSignIn);
  const users = new UsersService(db, hasher, audit, invalidation, userCache, config.passwordMinLength, verification);
  const mfa = new MfaService(db, hasher, throttle, audit, revocation, cipher, new URL(config.publicUrl).host);
  const sessions = new SessionsService(db, hasher, tokens, chain, throttle, audit, revocation, sessionCache, lastUse, users, config, mfa);
  const credentials = new CredentialsService(db, hasher, throttle, audit, revocation, config.passwordMinLength);
  const reset = new PasswordReset(db, credentials, throttle, mailer, accountJobs, audit, invalidation, config);
  const deletion = new AccountDeletion(db, credentials, revocation, invalidation, throttle, audit, await loadOrCreateSecret(db, 'audit_pseudonym'));
  const guard = bearerGuard(tokens, sessions);
  const refreshCookie = new RefreshCookie(config.publicUrl.startsWith('https:'));
  const passkeys = new PasskeysService(db, sessions, audit, await loadOrCreateSecret(db, 'webauthn_user_handle'), {
    rpId: config.webauthnRpId,
    origin: config.publicUrl,
    rpName: config.webauthnRpId,
  });

  await registerRateLimit(app, db, audit);
  // Throttling state that no longer matters is dropped now and then, off the request path.
  const pruner = setInterval(() => {
    Promise.all([throttle.prune(), pruneRateLimitHits(db), audit.prune(config.auditRetentionDays), pruneEndedSessions(db, config.auditRetentionDays), pruneChallenges(db), pruneMfaTokens(db), pruneTokens(db)]).catch((err) => app.log.warn({ err }, 'pruning throttling state failed'));
  }, 10 * 60_000);
  pruner.unref();
  app.addHook('onClose', async () => clearInterval(pruner));

  registerMetrics(app);
  opsRoutes(app, db, keys);
  usersRoutes(app, users, guard, config.rateLimitPerMinute);
  credentialsRoutes(app, credentials, guard);
  passwordPolicyRoutes(app, config.passwordMinLength);
  sessionsRoutes(app, sessions, guard, refreshCookie, config.rateLimitPerMinute);
  auditRoutes(app, audit, guard);
  accountRoutes(app, { verification, reset, deletion }, guard, config.rateLimitPerMinute);
  mfaRoutes(app, mfa, guard);
  passkeysRoutes(app, passkeys, guard, refreshCookie, config.rateLimitPerMinute);
  webAppRoutes(app, config.publicUrl);

  await app.ready();
  return app;
}
