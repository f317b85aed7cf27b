import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildApp } from '../src/app.js';
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

  it('when a client puts a token in a query string by mistake, then the log shows the parameter but not its value', async () => {
    const user = await registerUser(app);
    const session = await login(app, user);
    await app.inject({ method: 'GET', url: `/v1/users/me?access_token=${session.accessToken}` });
    await app.inject({ method: 'GET', url: '/reset-password?token=SECRET-RESET-TOKEN&x' });
    const text = lines.join('\n');
    assert.ok(!text.includes(session.accessToken), 'the access token is not in the log');
    assert.ok(!text.includes('SECRET-RESET-TOKEN'), 'the reset token is not in the log');
    const urls = loggedUrls();
    assert.ok(urls.includes('/v1/users/me?access_token=[Redacted]'), urls.join('\n'));
    assert.ok(urls.includes('/reset-password?token=[Redacted]&x'), urls.join('\n'));
  });

  it('when a request has only the parameters of the API (limit, before), then the log shows them whole', async () => {
    const user = await registerUser(app);
    const session = await login(app, user);
    const res = await app.inject({ method: 'GET', url: '/v1/users/me/events?limit=5', headers: bearer(session.accessToken) });
    assert.equal(res.statusCode, 200);
    assert.ok(loggedUrls().includes('/v1/users/me/events?limit=5'));
  });
});
