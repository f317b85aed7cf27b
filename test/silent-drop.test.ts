import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { buildApp } from '../src/app.js';
import { openDatabase, type Db } from '../src/db/create-db.js';
import type { App } from '../src/http/types.js';
import { bearer, currentDatabaseName, login, mysqlServer, registerUser, serverUrl, startTestService, type TestService } from './helpers/app.js';

/** A TCP relay to the database server that can go silent: data stops both ways, and nothing is closed. */
async function relay(target: URL) {
  const pairs: Array<[Socket, Socket]> = [];
  let frozen = false;
  const server = createServer((inbound) => {
    const outbound = connect(Number(target.port || (mysqlServer ? 3306 : 5432)), target.hostname);
    pairs.push([inbound, outbound]);
    inbound.on('data', (d) => frozen || outbound.write(d));
    outbound.on('data', (d) => frozen || inbound.write(d));
    inbound.on('error', () => outbound.destroy());
    outbound.on('error', () => inbound.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    freeze: () => (frozen = true),
    close: async () => {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      await new Promise((r) => server.close(r));
    },
  };
}

describe('a notification channel that dies without a word', { skip: serverUrl ? false : 'needs TEST_DATABASE_URL (a PostgreSQL or MySQL/MariaDB server)' }, () => {
  let svc: TestService;
  let proxied: { app: App; db: Db; relay: Awaited<ReturnType<typeof relay>> };
  before(async () => {
    svc = await startTestService({ dbTimeoutMs: 1000 });
    const dbName = await currentDatabaseName(svc.db);
    const target = new URL(serverUrl!);
    const r = await relay(target);
    const url = new URL(serverUrl!);
    url.host = `127.0.0.1:${r.port}`;
    url.pathname = `/${dbName}`;
    const db = await openDatabase({ databaseUrl: url.toString(), timeoutMs: 1000 });
    proxied = { app: await buildApp({ config: svc.config, db }), db, relay: r };
  });
  after(async () => {
    await proxied.relay.close();
    await proxied.app.close();
    await proxied.db.close();
    await svc.close();
  });

  it('when the LISTEN connection goes silent, then the instance stops answering from its cache within 3 s (a heartbeat a second, each given 1.5 s)', async () => {
    const user = await registerUser(svc.app);
    const { accessToken } = await login(svc.app, user);
    assert.equal((await proxied.app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(accessToken) })).statusCode, 200); // cached there
    proxied.relay.freeze();
    // At worst 2.5 s (a heartbeat just answered, the next sent 1 s later and given 1.5 s); 3 s leaves timers room to run late.
    await new Promise((r) => setTimeout(r, 3000));
    // Revoked through the other instance while the channel is silent: no notification can arrive.
    assert.equal((await svc.app.inject({ method: 'DELETE', url: '/v1/sessions/current', headers: bearer(accessToken) })).statusCode, 204);
    const res = await proxied.app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(accessToken) });
    assert.notEqual(res.statusCode, 200, 'a revoked session is never accepted from a cache that cannot hear revocations');
    assert.equal(res.statusCode, 503);
  });
});
