import { Type } from 'typebox';
import { callerOf, type RequireCaller } from '../auth/guard.js';
import type { Config } from '../config.js';
import type { Clock } from '../core/clock.js';
import { backgroundJob, PRUNE_EVERY_MS } from '../core/jobs.js';
import { bearerAuth, Id, problems, Timestamp } from '../http/schemas.js';
import type { Feature } from '../http/types.js';
import { Matching } from '../http/validation.js';
import { pseudonymFor, pseudonymizeEvents, type AuditLog } from './audit-log.js';
import type { AccountErasure } from '../core/erasure.js';

const EventsQuery = Type.Object(
  {
    // Strings: query parameters are not coerced (coerceTypes is off), so the pattern is the range.
    limit: Type.Optional(Matching('^(?:[1-9]|[1-9][0-9]|100)$', 'must be an integer from 1 to 100', { description: '1 to 100, default 20.' })),
    before: Type.Optional(Matching('^[1-9][0-9]{0,17}$', 'must be the `next` of the previous page, a positive integer', { description: 'The `next` of the previous page.' })),
  },
  { additionalProperties: false },
);

const EventList = Type.Object({
  events: Type.Array(
    Type.Object({
      id: Id,
      type: Type.String(),
      occurred_at: Timestamp,
      session_id: Type.Union([Id, Type.Null()]),
      ip: Type.Union([Type.String(), Type.Null()]),
      user_agent: Type.Union([Type.String(), Type.Null()]),
      details: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
      actor_id: Type.Union([Id, Type.Null()], { description: "The administrator who did it (API-ADMIN.md); null for the user's own doings." }),
    }),
  ),
  next: Type.Union([Id, Type.Null()], { description: 'Pass as `before` for the next page; null on the last page.' }),
});

export interface AuditFeatureDeps {
  audit: AuditLog;
  erasure: AccountErasure;
  requireCaller: RequireCaller;
  config: Pick<Config, 'auditRetentionDays'>;
  clock: Clock;
  /** A secret of the service's (service_secrets), by name. */
  secret(name: string): Promise<Buffer>;
}

/** The caller's own security events; old events leave after AUDIT_RETENTION_DAYS. */
export const auditFeature: Feature<AuditFeatureDeps> = async (app, { audit, erasure, requireCaller, config, secret, clock }) => {
  // A deleted account's events stay, under a pseudonym (see pseudonymFor).
  const pseudonymKey = await secret('audit_pseudonym');
  erasure.add('audit', (trx, userId) => pseudonymizeEvents(trx, userId, pseudonymFor(pseudonymKey, userId)));
  backgroundJob(app, 'pruning the audit log', PRUNE_EVERY_MS, () => audit.prune(config.auditRetentionDays, clock.now()));

  app.get(
    '/v1/users/me/events',
    {
      onRequest: requireCaller(),
      schema: {
        summary: "The caller's own security events, newest first, paged",
        tags: ['users'],
        security: bearerAuth,
        querystring: EventsQuery,
        response: { 200: EventList, ...problems('validation_failed', 'invalid_token') },
      },
    },
    async (request) => {
      const limit = request.query.limit ? Number(request.query.limit) : 20;
      return audit.listForUser(callerOf(request).userId, limit, request.query.before);
    },
  );
};
