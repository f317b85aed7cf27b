import assert from 'node:assert/strict';
import { request } from 'node:http';
import { availableParallelism } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { createServerDatabase, mysqlServer, serverUrl } from './helpers/app.js';
import { startServer, type ServerProcess } from './helpers/processes.js';

/**
 * One `npm start` is one instance, however many workers it runs: what one worker answers, the
 * next request sees, whichever worker it reaches (issue #24: on MariaDB a logged-out token still
 * worked on the other worker until its next poll).
 */

/** A request on a connection of its own, as curl makes them: the supervisor hands each new connection to the next worker. */
function send(url: string, method: string, path: string, { token, body }: { token?: string; body?: unknown } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(`${url}${path}`, {
      method,
      agent: false,
      headers: { connection: 'close', ...(token ? { authorization: `Bearer ${token}` } : {}), ...(payload ? { 'content-type': 'application/json' } : {}) },
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

describe('one instance of several workers', { skip: serverUrl ? false : 'needs TEST_DATABASE_URL (a PostgreSQL or MySQL/MariaDB server)' }, () => {
  let database: { url: string; drop: () => Promise<void> };
  let server: ServerProcess;
  // WORKERS is left to its default (the cores); a one-core machine is given two, so the test means something there too.
  const workers = availableParallelism() >= 2 ? availableParallelism() : 2;
  before(async () => {
    database = await createServerDatabase(serverUrl!);
    server = await startServer({ DATABASE_URL: database.url, DATA_DIR: '/nonexistent', ...(availableParallelism() >= 2 ? {} : { WORKERS: '2' }) }, 60_000);
  });
  after(async () => {
    assert.equal(await server?.stop(), 0);
    await database?.drop();
  });

  it('when started, then the banner leads with PUBLIC_URL and names the database it uses, with no password', () => {
    const lines = server.output().split('\n');
    const first = lines.findIndex((l) => l.startsWith('User management service'));
    assert.match(lines[first]!, /^User management service ready at http:\/\/localhost:\d+\/ \(PUBLIC_URL: the web app, and the one address where passkeys work\)$/);
    assert.match(lines[first + 2]!, /^ {2}listening on http:\/\/127\.0\.0\.1:\d+ \(HOST, PORT\)$/);
    const name = new URL(database.url).pathname.slice(1);
    const product = mysqlServer ? /^ {2}Database: (MariaDB|MySQL) \d+\.\d+\.\d+ at / : /^ {2}Database: PostgreSQL \d+(\.\d+)? at /;
    const dbLine = lines.find((l) => l.startsWith('  Database: '))!;
    assert.match(dbLine, product);
    assert.ok(dbLine.endsWith(`${new URL(database.url).host}, database ${name} (DATABASE_URL)`), dbLine);
    assert.match(server.output(), new RegExp(`Workers: ${workers}\\b`));
    assert.doesNotMatch(server.output(), /:[^@/]*@/, 'no credentials of DATABASE_URL');
    assert.equal(server.output().split('DATA_ENCRYPTION_KEY is not set').length - 1, 1, 'the warning is given once, not once per worker');
  });

  it('when a user logs out, then the very next request refuses the token, whichever worker it reaches (ten tries, no pause)', { timeout: 60_000 }, async () => {
    const password = 'violet lantern orbit 4217';
    const registered = await send(server.url, 'POST', '/v1/users', { body: { username: 'ada_l', name: 'Ada Lovelace', dob: '1990-12-10', email: 'ada@example.com', password } });
    assert.equal(registered.status, 201, registered.body);
    const seen: number[] = [];
    for (let i = 0; i < 10; i++) {
      const login = await send(server.url, 'POST', '/v1/sessions', { body: { username: 'ada_l', password } });
      assert.equal(login.status, 201, login.body);
      const token = (JSON.parse(login.body) as { access_token: string }).access_token;
      // Every worker has the session in its cache before the logout.
      for (let w = 0; w < workers; w++) assert.equal((await send(server.url, 'GET', '/v1/users/me', { token })).status, 200);
      assert.equal((await send(server.url, 'DELETE', '/v1/sessions/current', { token })).status, 204);
      const me = await send(server.url, 'GET', '/v1/users/me', { token });
      seen.push(me.status);
    }
    assert.deepEqual(seen, Array(10).fill(401), 'a logged-out token is refused at once, ten times out of ten');
  });

  it('when a profile changes, then the next request on any worker shows the change', { timeout: 30_000 }, async () => {
    const login = await send(server.url, 'POST', '/v1/sessions', { body: { username: 'ada_l', password: 'violet lantern orbit 4217' } });
    const token = (JSON.parse(login.body) as { access_token: string }).access_token;
    for (let i = 0; i < 5; i++) {
      for (let w = 0; w < workers; w++) await send(server.url, 'GET', '/v1/users/me', { token });
      const name = `Ada ${i}`;
      assert.equal((await send(server.url, 'PATCH', '/v1/users/me', { token, body: { name } })).status, 200);
      const me = await send(server.url, 'GET', '/v1/users/me', { token });
      assert.equal((JSON.parse(me.body) as { name: string }).name, name);
    }
  });
});
