import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createServer, connect, type Socket } from 'node:net';
import pg from 'pg';
import { buildApp } from '../src/app.js';
import { openDatabase, type Db } from '../src/db/create-db.js';
import type { App } from '../src/http/types.js';
import { bearer, currentDatabaseName, GOOD_PASSWORD, login, mysqlServer, registerUser, serverUrl, startTestService, uniqueName, type TestService } from './helpers/app.js';

/**
 * MySQL/MariaDB cannot refuse connections to one database: the instance under test reaches the
 * server through this TCP relay, which cuts every connection and refuses new ones while down.
 */
async function cuttableRelay(target: URL) {
  const pairs = new Set<[Socket, Socket]>();
  let down = false;
  const server = createServer((inbound) => {
    if (down) return void inbound.destroy();
    const outbound = connect(Number(target.port || 3306), target.hostname);
    const pair: [Socket, Socket] = [inbound, outbound];
    pairs.add(pair);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
    const end = () => {
      inbound.destroy();
      outbound.destroy();
      pairs.delete(pair);
    };
    inbound.on('error', end).on('close', end);
    outbound.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const cut = () => {
    for (const [a, b] of pairs) {
      a.destroy();
      b.destroy();
    }
    pairs.clear();
  };
  return {
    port: (server.address() as { port: number }).port,
    setDown: (on: boolean) => {
      down = on;
      if (on) cut();
    },
    close: async () => {
      cut();
      await new Promise((r) => server.close(r));
    },
  };
}

/**
 * A database outage under light load: the service answers 503 during it, never hangs past its
 * timeout or crashes, recovers by itself, and loses no write it acknowledged. The outage is made
 * by refusing new connections to this test's database and cutting the open ones
 * (pg_terminate_backend), so other tests on the same server are not touched. On MySQL/MariaDB
 * the instance under test goes through a relay that cuts and refuses its connections.
 */
describe('database outage', { skip: serverUrl ? false : 'needs TEST_DATABASE_URL (a PostgreSQL or MySQL/MariaDB server)' }, () => {
  let svc: TestService;
  /** The instance under test (svc.app on PostgreSQL, the one behind the relay on MySQL). */
  let app: App;
  let admin: pg.Client | undefined;
  let relayed: { db: Db; app: App; relay: Awaited<ReturnType<typeof cuttableRelay>> } | undefined;
  let dbName: string;

  before(async () => {
    svc = await startTestService({ dbTimeoutMs: 1000 });
    dbName = await currentDatabaseName(svc.db);
    if (mysqlServer) {
      const relay = await cuttableRelay(new URL(serverUrl!));
      const url = new URL(serverUrl!);
      url.host = `127.0.0.1:${relay.port}`;
      url.pathname = `/${dbName}`;
      const db = await openDatabase({ databaseUrl: url.toString(), timeoutMs: 1000 });
      relayed = { db, app: await buildApp({ config: svc.config, db }), relay };
      app = relayed.app;
    } else {
      admin = new pg.Client({ connectionString: serverUrl });
      await admin.connect();
      app = svc.app;
    }
  });
  after(async () => {
    await admin?.query(`alter database ${dbName} allow_connections true`).catch(() => {});
    await admin?.end();
    if (relayed) {
      await relayed.relay.close();
      await relayed.app.close();
      await relayed.db.close();
    }
    await svc.close();
  });

  const outage = async (on: boolean) => {
    if (relayed) return relayed.relay.setDown(on);
    await admin!.query(`alter database ${dbName} allow_connections ${on ? 'false' : 'true'}`);
    if (on) await admin!.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [dbName]);
  };

  it('when the database goes away and comes back, then 503 during, recovery after, and every acknowledged write kept', async () => {
    const user = await registerUser(svc.app);
    const { accessToken } = await login(svc.app, user);
    assert.equal((await app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(accessToken) })).statusCode, 200);

    // Light load all along: a registration every 50 ms.
    const acknowledged: string[] = [];
    const statuses = new Set<number>();
    let slowest = 0;
    let running = true;
    const load = (async () => {
      while (running) {
        const username = uniqueName('outage');
        const start = Date.now();
        const res = await app.inject({
          method: 'POST',
          url: '/v1/users',
          payload: { username, name: 'O', dob: '1990-01-01', email: `${username}@example.com`, password: GOOD_PASSWORD },
        });
        slowest = Math.max(slowest, Date.now() - start);
        statuses.add(res.statusCode);
        if (res.statusCode === 201) acknowledged.push(username);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    await new Promise((r) => setTimeout(r, 300));
    await outage(true);
    // Until the instance has noticed (on MariaDB, its revocation poll runs every 200 ms), then on.
    for (const start = Date.now(); Date.now() - start < 5000; await new Promise((r) => setTimeout(r, 50))) {
      if ((await app.inject({ method: 'GET', url: '/readyz' })).statusCode === 503) break;
    }
    await new Promise((r) => setTimeout(r, 300));

    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 503);
    assert.equal(ready.json().code, 'unavailable');
    const me = await app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(accessToken) });
    assert.equal(me.statusCode, 503, 'a protected request cannot be checked: 503, not a stale yes');
    assert.equal(me.headers['content-type'], 'application/problem+json; charset=utf-8');
    const reg = await app.inject({
      method: 'POST',
      url: '/v1/users',
      payload: { username: uniqueName(), name: 'O', dob: '1990-01-01', email: `${uniqueName()}@example.com`, password: GOOD_PASSWORD },
    });
    assert.equal(reg.statusCode, 503);
    assert.equal(reg.json().code, 'unavailable');

    await new Promise((r) => setTimeout(r, 700));
    await outage(false);

    // Recovers by itself, without a restart.
    const start = Date.now();
    while ((await app.inject({ method: 'GET', url: '/readyz' })).statusCode !== 200) {
      assert.ok(Date.now() - start < 10_000, 'ready again within 10 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 1500));
    running = false;
    await load;

    assert.equal((await app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(accessToken) })).statusCode, 200);
    assert.ok(statuses.has(503), 'the load saw the outage');
    assert.ok(statuses.has(201), 'the load saw service');
    assert.deepEqual([...statuses].filter((s) => s !== 201 && s !== 503), [], 'nothing but 201 and 503');
    assert.ok(slowest < 4000, `no request hung past the timeout (slowest ${slowest} ms)`);
    const rows = await svc.db.selectFrom('users').select('username').where('username', 'in', acknowledged).execute();
    assert.equal(rows.length, acknowledged.length, 'every 201 kept its user');
  });
});
