import type { Kysely } from 'kysely';
import type { AuditLog } from '../audit/audit-log.js';
import { callerOf, type RequireCaller } from '../auth/guard.js';
import type { Clock } from '../core/clock.js';
import type { Config } from '../config.js';
import type { PasswordHasher } from '../credentials/hashing.js';
import type { Database } from '../db/schema.js';
import { bearerAuth, problems } from '../http/schemas.js';
import type { Feature } from '../http/types.js';
import { adminImportRoute } from './admin-route.js';
import { exportMyData, MyData } from './my-data.js';
import { ImportService } from './service.js';

export interface ImportFeatureDeps {
  db: Kysely<Database>;
  audit: AuditLog;
  clock: Clock;
  requireCaller: RequireCaller;
  hasher: PasswordHasher;
  config: Pick<Config, 'importMaxBytes'>;
}

/** Bringing users in (POST /v1/admin/users/import) and taking one's data out (GET /v1/users/me/export). */
export const importFeature: Feature<ImportFeatureDeps> = async (app, { db, audit, clock, requireCaller, hasher, config }) => {
  adminImportRoute(app, { service: new ImportService(db, hasher, clock), requireCaller, config });
  app.get(
    '/v1/users/me/export',
    {
      onRequest: requireCaller(),
      schema: { summary: "Download the caller's own data (data portability): profile, sessions, events, passkeys; no secret", tags: ['users'], security: bearerAuth, response: { 200: MyData, ...problems('invalid_token') } },
    },
    async (request, reply) => {
      const data = await exportMyData(db, audit, clock, callerOf(request));
      return reply.header('content-disposition', 'attachment; filename="my-data.json"').send(data);
    },
  );
};
