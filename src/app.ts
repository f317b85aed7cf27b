import { randomUUID } from 'node:crypto';
import cookiePlugin from '@fastify/cookie';
import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { accountFeature } from './account/routes.js';
import { adminFeature } from './admin/routes.js';
import { auditFeature } from './audit/routes.js';
import type { Config } from './config.js';
import type { Clock } from './core/clock.js';
import type { PermissionSource } from './core/permissions.js';
import { credentialsFeature } from './credentials/routes.js';
import { federationFeature } from './federation/routes.js';
import type { Db } from './db/create-db.js';
import { sharedDependencies, type AppDependencies } from './dependencies.js';
import { AppError } from './errors.js';
import { registerBodyRules } from './http/body.js';
import { registerMetrics } from './http/metrics.js';
import { openapiInfo } from './http/openapi-info.js';
import { opsFeature } from './http/ops-routes.js';
import { registerProblemHandlers, sendProblem, toAppError } from './http/problem-handler.js';
import type { App, Feature } from './http/types.js';
import { fieldChecks } from './http/validation.js';
import { importFeature } from './import/routes.js';
import { instancesFeature } from './instances/heartbeat.js';
import { webAppFeature } from './http/web-app.js';
import { mfaFeature } from './mfa/routes.js';
import { oidcFeature } from './oidc/routes.js';
import { orgsFeature } from './orgs/routes.js';
import { passkeysFeature } from './passkeys/routes.js';
import { sessionsFeature } from './sessions/routes.js';
import { throttlingFeature } from './throttling/rate-limit.js';
import { usersFeature } from './users/routes.js';
import { webhooksFeature } from './webhooks/routes.js';

export interface BuildAppOptions {
  config: Config;
  /** The open database (see db/create-db.ts); the app does not close it. */
  db: Db;
  /** Fastify's logger option: pino settings, or false for none (tests). */
  logger?: FastifyServerOptions['logger'];
  /** Tests only: expose the caches, to drive the fast path's edge cases. */
  testHooks?: boolean;
  /** The clock every time rule reads; the system clock unless a test passes a ManualClock. */
  clock?: Clock;
  /** Where requireCaller({ permission }) learns what a user may do; nobody has any permission by default. */
  permissions?: PermissionSource;
  /** More features, registered after the service's own (with the same dependencies). */
  features?: ReadonlyArray<Feature<AppDependencies>>;
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
 * listens itself and never migrates: server.ts (and the tests) do that. The service is a list
 * of features, each an encapsulated plugin built from the one object of shared dependencies.
 */
export async function buildApp(options: BuildAppOptions): Promise<App> {
  const app = await createServer(options);
  const deps = await sharedDependencies(app, options);

  await app.register(throttlingFeature, deps);
  await app.register(opsFeature, deps);
  await app.register(instancesFeature, deps);
  await app.register(usersFeature, deps);
  await app.register(credentialsFeature, deps);
  await app.register(sessionsFeature, deps);
  await app.register(auditFeature, deps);
  await app.register(accountFeature, deps);
  await app.register(mfaFeature, deps);
  await app.register(passkeysFeature, deps);
  await app.register(adminFeature, deps);
  await app.register(importFeature, deps);
  await app.register(federationFeature, deps);
  await app.register(oidcFeature, deps);
  await app.register(orgsFeature, deps);
  await app.register(webhooksFeature, deps);
  await app.register(webAppFeature, deps);
  for (const feature of options.features ?? []) await app.register(feature, deps);

  await app.ready();
  return app;
}

/**
 * The Fastify instance and what applies to every route of every feature: logging, the standard
 * headers, JSON bodies only, problem+json errors, cookies, CORS, the OpenAPI document, metrics.
 * A feature may set its own body parsers and error handler inside its plugin (docs/architecture.md).
 */
async function createServer({ config, logger = false }: BuildAppOptions): Promise<App> {

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
  registerMetrics(app);
  return app;
}
