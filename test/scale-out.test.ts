import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { openDatabase } from '../src/db/create-db.js';
import { createServerDatabase, GOOD_PASSWORD, serverUrl, uniqueName } from './helpers/app.js';
import { startServer, type ServerProcess } from './helpers/processes.js';

/**
 * Three instances (separate processes and ports) on one fresh PostgreSQL or MySQL/MariaDB database, started at
 * once. Needs a server database: runs when TEST_DATABASE_URL is set (as .ci/run does).
 */
describe('scale-out: three instances on one database', { skip: serverUrl ? false : 'needs TEST_DATABASE_URL (a PostgreSQL or MySQL/MariaDB server)' }, () => {
  let database: { url: string; drop: () => Promise<void> };
  let instances: ServerProcess[] = [];
  const PUBLIC_URL = 'http://localhost:3000';

  before(async () => {
    database = await createServerDatabase(serverUrl!);
    instances = await Promise.all(
      [1, 2, 3].map(() => startServer({ DATABASE_URL: database.url, WORKERS: '1', PUBLIC_URL, DATA_DIR: '/nonexistent' }, 60_000)),
    );
  });
  after(async () => {
    const codes = await Promise.all(instances.map((i) => i.stop()));
    assert.deepEqual(codes, [0, 0, 0], 'every instance drains and exits 0 on SIGTERM');
    await database.drop();
  });

  const call = async (i: number, method: string, path: string, body?: unknown, token?: string) => {
    const res = await fetch(instances[i]!.url + path, {
      method,
      headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
  };

  async function newUser(i = 0) {
    const username = uniqueName('scale');
    const res = await call(i, 'POST', '/v1/users', { username, name: 'S', dob: '1990-01-01', email: `${username}@example.com`, password: GOOD_PASSWORD });
    assert.equal(res.status, 201);
    return { username, password: GOOD_PASSWORD };
  }
  async function signIn(i: number, user: { username: string; password: string }) {
    const res = await call(i, 'POST', '/v1/sessions', user);
    assert.equal(res.status, 201);
    return res.json.access_token as string;
  }
  async function refusedWithin(ms: number, i: number, token: string) {
    const start = Date.now();
    while (Date.now() - start < ms) {
      if ((await call(i, 'GET', '/v1/users/me', undefined, token)).status === 401) return Date.now() - start;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`instance ${i} still accepts the token after ${ms} ms`);
  }

  it('when three instances start at once, then the migrations ran once and all serve the same JWKS', async () => {
    const db = await openDatabase({ databaseUrl: database.url });
    const rows = await db.kysely
      .selectFrom('schema_migrations' as 'users')
      .select((eb) => [sql<string>`name`.as('name'), eb.fn.countAll<string>().as('n')])
      .groupBy(sql`name`)
      .execute();
    const keys = await db.kysely.selectFrom('signing_keys').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    await db.close();
    assert.ok(rows.length >= 4 && rows.every((r) => Number(r.n) === 1));
    assert.equal(Number(keys.n), 1, 'one signing key, made once under a lock');
    const jwks = await Promise.all([0, 1, 2].map((i) => call(i, 'GET', '/.well-known/jwks.json')));
    assert.deepEqual(jwks[1]!.json, jwks[0]!.json);
    assert.deepEqual(jwks[2]!.json, jwks[0]!.json);
  });

  it('when a token is issued by A, then B and C accept it', async () => {
    const token = await signIn(0, await newUser(0));
    for (const i of [1, 2]) assert.equal((await call(i, 'GET', '/v1/users/me', undefined, token)).status, 200);
  });

  it('when a session logs out through A, then B and C, which had it cached, refuse it within 1 s', async () => {
    const token = await signIn(0, await newUser(0));
    for (const i of [1, 2]) assert.equal((await call(i, 'GET', '/v1/users/me', undefined, token)).status, 200);
    assert.equal((await call(0, 'DELETE', '/v1/sessions/current', undefined, token)).status, 204);
    assert.equal((await call(0, 'GET', '/v1/users/me', undefined, token)).status, 401, 'at once on A');
    for (const i of [1, 2]) assert.ok((await refusedWithin(1000, i, token)) < 1000);
  });

  it('when failed logins are spread across A, B and C, then the throttle counts them as one instance would', async () => {
    const user = await newUser(1);
    for (let n = 0; n < 5; n++) {
      assert.equal((await call(n % 3, 'POST', '/v1/sessions', { username: user.username, password: 'wrong password here' })).status, 401);
    }
    for (const i of [0, 1, 2]) {
      const res = await call(i, 'POST', '/v1/sessions', user);
      assert.equal(res.status, 429, `instance ${i}`);
      // 30 s from the fifth failure, counted down in whole seconds (29 if a second passed meanwhile).
      assert.ok(['30', '29'].includes(res.headers.get('retry-after') ?? ''), `instance ${i}: Retry-After ${res.headers.get('retry-after')}`);
    }
  });

  it('when the password changes through B, then a session that C is caching is refused within 1 s', async () => {
    const user = await newUser(2);
    const cached = await signIn(2, user);
    assert.equal((await call(2, 'GET', '/v1/users/me', undefined, cached)).status, 200);
    const caller = await signIn(1, user);
    const res = await call(1, 'PUT', '/v1/users/me/password', { current_password: user.password, new_password: 'scale out new passphrase' }, caller);
    assert.equal(res.status, 204);
    assert.ok((await refusedWithin(1000, 2, cached)) < 1000);
    assert.equal((await call(2, 'GET', '/v1/users/me', undefined, caller)).status, 200, 'the caller stays signed in everywhere');
  });
});
