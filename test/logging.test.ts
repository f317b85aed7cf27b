import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildApp, urlForLog } from '../src/app.js';
import { openDatabase, type Db } from '../src/db/create-db.js';
import { migrateToLatest } from '../src/db/migrate.js';
import type { App } from '../src/http/types.js';
import { bearer, login, registerUser, testConfig } from './helpers/app.js';

describe('request log lines', () => {
  const lines: string[] = [];
  let db: Db;
  let app: App;
  before(async () => {
    db = await openDatabase({ databaseUrl: undefined, pgliteDir: 'memory://' });
    await migrateToLatest(db.kysely);
    app = await buildApp({ config: testConfig(), db, logger: { level: 'info', stream: { write: (line: string) => lines.push(line) } } });
  });
  after(async () => {
    await app.close();
    await db.close();
  });

  const loggedUrls = () => lines.map((l) => JSON.parse(l) as { req?: { url?: string } }).flatMap((l) => (l.req?.url ? [l.req.url] : []));

  it('when a client puts a token in a query string by mistake, then the log shows where it was but not the token', async () => {
    const user = await registerUser(app);
    const session = await login(app, user);
    await app.inject({ method: 'GET', url: `/v1/users/me?access_token=${session.accessToken}` });
    await app.inject({ method: 'GET', url: '/reset-password?token=SECRET-RESET-TOKEN&x' });
    // A bare item, a ';' the server does not split on, a value of an API parameter that is no number, a path segment.
    await app.inject({ method: 'GET', url: `/v1/users/me?${session.refreshToken}` });
    await app.inject({ method: 'GET', url: '/v1/users/me/events?limit=5;access_token=SECRET-AFTER-SEMICOLON' });
    await app.inject({ method: 'GET', url: '/v1/users/me/events?before=SECRET-AS-CURSOR' });
    await app.inject({ method: 'DELETE', url: `/v1/sessions/${session.refreshToken}` });
    const text = lines.join('\n');
    for (const secret of [session.accessToken, session.refreshToken, 'SECRET-RESET-TOKEN', 'SECRET-AFTER-SEMICOLON', 'SECRET-AS-CURSOR']) {
      assert.ok(!text.includes(secret), `a secret reached the log: ${secret.slice(0, 12)}…`);
    }
    const urls = loggedUrls();
    for (const url of [
      '/v1/users/me?access_token=[Redacted]',
      '/reset-password?token=[Redacted]&[Redacted]',
      '/v1/users/me?[Redacted]',
      '/v1/users/me/events?limit=[Redacted]',
      '/v1/users/me/events?before=[Redacted]',
      '/v1/sessions/[Redacted]',
    ]) {
      assert.ok(urls.includes(url), `${url} among:\n${urls.join('\n')}`);
    }
  });

  it('when a request line carries a fragment (inject drops it; a raw HTTP client may send one), then the log line leaves it out', () => {
    assert.equal(urlForLog('/v1/users/me#access_token=SECRET'), '/v1/users/me#[Redacted]');
    assert.equal(urlForLog('/v1/users/me/events?limit=5#x'), '/v1/users/me/events?limit=5#[Redacted]');
  });

  it('when a request has only the parameters of the API (limit, before), then the log shows them whole when they are numbers', async () => {
    const user = await registerUser(app);
    const session = await login(app, user);
    const res = await app.inject({ method: 'GET', url: '/v1/users/me/events?limit=5&before=9007199254740993', headers: bearer(session.accessToken) });
    assert.equal(res.statusCode, 200);
    assert.ok(loggedUrls().includes('/v1/users/me/events?limit=5&before=9007199254740993'));
  });
});
