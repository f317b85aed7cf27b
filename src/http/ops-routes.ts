import { sql, type Kysely } from 'kysely';
import { Type } from 'typebox';
import type { KeyStore } from '../auth/keys.js';
import { isMigrated } from '../db/migrate.js';
import type { Database } from '../db/schema.js';
import { AppError } from '../errors.js';
import { problems } from './schemas.js';
import type { App, Feature } from './types.js';

const Status = Type.Object({ status: Type.String() });

const Jwks = Type.Object({
  keys: Type.Array(
    Type.Object({ kty: Type.String(), crv: Type.String(), x: Type.String(), kid: Type.String(), alg: Type.String(), use: Type.String() }),
  ),
});

/** The JWKS, liveness and readiness. */
export const opsFeature: Feature<{ db: Kysely<Database>; keys: KeyStore }> = async (app, { db, keys }) => opsRoutes(app, db, keys);

export function opsRoutes(app: App, db: Kysely<Database>, keys: KeyStore): void {
  app.get(
    '/.well-known/jwks.json',
    { schema: { summary: 'Public signing keys (JWK Set)', tags: ['keys'], response: { 200: Jwks } } },
    async () => keys.jwks(),
  );

  app.get('/healthz', { schema: { summary: 'The process is alive', tags: ['operations'], response: { 200: Status } } }, async () => ({ status: 'ok' }));

  app.get(
    '/readyz',
    { schema: { summary: 'The database is reachable and migrated', tags: ['operations'], response: { 200: Status, ...problems() } } },
    async () => {
      try {
        await sql`select 1`.execute(db);
        if (!(await isMigrated(db))) throw new Error('migrations pending');
      } catch (err) {
        throw new AppError('unavailable', { detail: 'The database is not reachable or not migrated.', cause: err, headers: { 'retry-after': '1' } });
      }
      return { status: 'ready' };
    },
  );
}
