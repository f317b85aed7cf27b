import { Transform, type Readable } from 'node:stream';
import { Type } from 'typebox';
import { callerOf, type RequireCaller } from '../auth/guard.js';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import { bearerAuth, problems } from '../http/schemas.js';
import type { App } from '../http/types.js';
import { Matching } from '../http/validation.js';
import { FORMATS, type Format } from './readers/index.js';
import { ON_CONFLICT, type ImportService, type OnConflict } from './service.js';

const ImportQuery = Type.Object(
  {
    format: Type.Optional(Type.Union(FORMATS.filter((f) => f !== 'firebase').map((f) => Type.Literal(f)), { description: 'ndjson by default. (A Firebase export needs the project parameters: the command line takes them.)' })),
    on_conflict: Type.Optional(Type.Union(ON_CONFLICT.map((c) => Type.Literal(c)), { description: 'skip by default.' })),
    dry_run: Type.Optional(Matching('^(true|false)$', 'must be true or false')),
  },
  { additionalProperties: false },
);

const ImportReport = Type.Object({
  created: Type.Integer(),
  updated: Type.Integer(),
  skipped: Type.Integer(),
  failed: Type.Integer(),
  errors: Type.Array(Type.Object({ line: Type.Integer(), field: Type.Union([Type.String(), Type.Null()]), message: Type.String() }), { description: 'At most 1000.' }),
});

/** Counts the bytes going through, and fails the stream past `max` (the body limit of a streamed body). */
function limited(body: Readable, max: number): Readable {
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length;
      done(seen > max ? new AppError('payload_too_large') : null, chunk);
    },
  });
  body.on('error', (err) => counter.destroy(err));
  return body.pipe(counter);
}

/** The admin endpoint this feature adds, with its permission (the admin API's tests check every admin route's). */
export const IMPORT_ENDPOINT = { 'POST /v1/admin/users/import': 'users:write' } as const;

/**
 * POST /v1/admin/users/import (API-MIGRATION.md): the body is read as a stream, never whole, and
 * handed to the same import the command line runs; the answer is its report.
 */
export function adminImportRoute(app: App, deps: { service: ImportService; requireCaller: RequireCaller; config: Pick<Config, 'importMaxBytes'> }): void {
  // This plugin's own parser: the body stays a stream (the service reads it record by record).
  app.addContentTypeParser('application/x-ndjson', (_request, payload, done) => done(null, payload));
  app.post(
    '/v1/admin/users/import',
    {
      onRequest: deps.requireCaller({ permission: IMPORT_ENDPOINT['POST /v1/admin/users/import'] }),
      bodyLimit: deps.config.importMaxBytes,
      schema: {
        summary: 'Import users with the password hashes they have (the body is the export file, streamed)',
        description: 'Needs the permission `users:write`. The body is `application/x-ndjson` (or the export of `format`), up to IMPORT_MAX_BYTES.',
        tags: ['admin'],
        security: bearerAuth,
        consumes: ['application/x-ndjson'],
        querystring: ImportQuery,
        // The body is the raw stream; its records are checked one by one by the import.
        body: Type.Unknown(),
        response: { 200: ImportReport, ...problems('validation_failed', 'invalid_token', 'forbidden', 'payload_too_large', 'unsupported_media_type', 'too_many_requests') },
      },
    },
    async (request) => {
      const caller = callerOf(request);
      if (request.body === undefined || request.body === null || typeof (request.body as Readable).pipe !== 'function') throw new AppError('unsupported_media_type');
      const query = request.query;
      return deps.service.run(limited(request.body as Readable, deps.config.importMaxBytes), {
        format: (query.format ?? 'ndjson') as Format,
        onConflict: (query.on_conflict ?? 'skip') as OnConflict,
        dryRun: query.dry_run === 'true',
        // Each event is the imported user's; actor_id names the administrator who imported them.
        context: { actorId: caller.userId, ip: caller.ip, userAgent: caller.userAgent },
      });
    },
  );
}
