import type { Kysely } from 'kysely';
import { ADMIN_ENDPOINTS } from '../admin/routes.js';
import type { RequireCaller } from '../auth/guard.js';
import type { Config } from '../config.js';
import type { Clock } from '../core/clock.js';
import { backgroundJob, PRUNE_EVERY_MS } from '../core/jobs.js';
import type { DataCipher } from '../crypto/data-encryption.js';
import type { Database } from '../db/schema.js';
import type { ProblemName } from '../errors.js';
import { bearerAuth, NoContent, problems } from '../http/schemas.js';
import type { Feature } from '../http/types.js';
import { pruneFinished } from './repository.js';
import { DeliveriesQuery, Delivery, DeliveryList, DeliveryParams, NewWebhookBody, UpdateWebhookBody, Webhook, WebhookList, WebhookParams, WebhookWithSecret } from './schemas.js';
import { WebhooksService } from './service.js';

/** What the feature uses of the shared dependencies. */
export interface WebhooksFeatureDeps {
  db: Kysely<Database>;
  clock: Clock;
  cipher: DataCipher;
  config: Config;
  requireCaller: RequireCaller;
}

type Endpoint = keyof typeof ADMIN_ENDPOINTS & `${string} /v1/admin/webhooks${string}`;

const COMMON: ProblemName[] = ['invalid_token', 'forbidden', 'mfa_setup_required', 'too_many_requests'];
const WITH_BODY: ProblemName[] = ['validation_failed', 'payload_too_large', 'unsupported_media_type'];

/** Finished deliveries are kept this long for the log, then pruned. */
const DELIVERY_LOG_DAYS = 30;

/** Webhooks (API-INTEGRATION.md): endpoints, their deliveries and the retry button, under /v1/admin/webhooks. */
export const webhooksFeature: Feature<WebhooksFeatureDeps> = async (app, { db, clock, cipher, config, requireCaller }) => {
  const service = new WebhooksService({ db, clock, cipher, allowPrivate: config.webhookAllowPrivate });
  backgroundJob(app, 'pruning the outbox', PRUNE_EVERY_MS, () => pruneFinished(db, new Date(clock.now() - DELIVERY_LOG_DAYS * 86_400_000)));

  const options = <E extends object, S extends object>(endpoint: Endpoint, summary: string, errors: ProblemName[], extra: E, success: S) => ({
    onRequest: requireCaller({ permission: ADMIN_ENDPOINTS[endpoint] }),
    schema: {
      summary,
      description: `Needs the permission \`${ADMIN_ENDPOINTS[endpoint]}\`.`,
      tags: ['webhooks'],
      security: bearerAuth,
      ...extra,
      response: { ...success, ...problems(...COMMON, ...errors) },
    },
  });

  app.get('/v1/admin/webhooks', options('GET /v1/admin/webhooks', 'Webhook endpoints', [], {}, { 200: WebhookList }), async () => ({ webhooks: await service.list() }));

  app.post(
    '/v1/admin/webhooks',
    options('POST /v1/admin/webhooks', 'Register an endpoint: it receives the events that happen from now on; the answer shows its secret once', WITH_BODY, { body: NewWebhookBody }, { 201: WebhookWithSecret }),
    async (request, reply) => {
      const created = await service.create(request.body);
      return reply.code(201).header('location', `/v1/admin/webhooks/${created.id}`).send(created);
    },
  );

  app.get('/v1/admin/webhooks/:id', options('GET /v1/admin/webhooks/:id', 'A webhook endpoint', ['not_found'], { params: WebhookParams }, { 200: Webhook }), async (request) =>
    service.get(request.params.id),
  );

  app.patch(
    '/v1/admin/webhooks/:id',
    options('PATCH /v1/admin/webhooks/:id', 'Change an endpoint: url, events, description, enabled', [...WITH_BODY, 'not_found'], { params: WebhookParams, body: UpdateWebhookBody }, { 200: Webhook }),
    async (request) => service.update(request.params.id, request.body),
  );

  app.delete('/v1/admin/webhooks/:id', options('DELETE /v1/admin/webhooks/:id', 'Delete an endpoint and its deliveries', ['not_found'], { params: WebhookParams }, { 204: NoContent }), async (request, reply) => {
    await service.remove(request.params.id);
    return reply.code(204).send(null);
  });

  app.post(
    '/v1/admin/webhooks/:id/rotate-secret',
    options('POST /v1/admin/webhooks/:id/rotate-secret', 'A new secret, shown once; the old one also signs for 24 hours', ['not_found'], { params: WebhookParams }, { 200: WebhookWithSecret }),
    async (request) => service.rotateSecret(request.params.id),
  );

  app.get(
    '/v1/admin/webhooks/:id/deliveries',
    options('GET /v1/admin/webhooks/:id/deliveries', "An endpoint's deliveries, newest first, with every attempt", ['validation_failed', 'not_found'], { params: WebhookParams, querystring: DeliveriesQuery }, { 200: DeliveryList }),
    async (request) => service.deliveries(request.params.id, request.query.limit === undefined ? 50 : Number(request.query.limit), request.query.before),
  );

  app.post(
    '/v1/admin/webhooks/:id/deliveries/:did/retry',
    options('POST /v1/admin/webhooks/:id/deliveries/:did/retry', 'Send a delivery again now (the same webhook-id)', ['not_found'], { params: DeliveryParams }, { 202: Delivery }),
    async (request, reply) => reply.code(202).send(await service.retry(request.params.id, request.params.did)),
  );
};
