import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AdminService } from '../src/admin/service.js';
import { buildApp } from '../src/app.js';
import { loadDataCipher } from '../src/crypto/data-encryption.js';
import type { App } from '../src/http/types.js';
import { claimDue, finishAttempt } from '../src/webhooks/repository.js';
import { SECRET_CONTEXT } from '../src/webhooks/sender.js';
import { newEndpointSecret } from '../src/webhooks/signing.js';
import { bearer, GOOD_PASSWORD, login, problem, registerUser, startTestService, type TestService } from './helpers/app.js';
import { Secret, TOTP } from 'otpauth';
import { SoftAuthenticator } from './helpers/authenticator.js';
import { startReceiver, verifyDelivery } from './helpers/webhooks.js';

/** API-INTEGRATION.md, Webhooks, on the database of TEST_DATABASE_URL (PGlite when unset). */

describe('webhooks', () => {
  let svc: TestService;
  let admin: Awaited<ReturnType<typeof registerUser>>;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

  before(async () => {
    // The receiver is on 127.0.0.1: the tests allow private addresses (one test turns it off).
    // A timeout with room for a loaded machine: a slow local answer must not count as a hang.
    svc = await startTestService({}, { WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_TIMEOUT_MS: '2000' });
    admin = await registerUser(svc.app);
    await new AdminService(svc.db).changeRole(admin.username, 'admin', true);
    receiver = await startReceiver();
  });
  after(async () => {
    await svc.close();
    await receiver.close();
  });

  /** An administrator's request, signed in afresh (the tests move the clock by days). */
  const call = async (method: string, url: string, payload?: unknown) =>
    svc.app.inject({ method: method as 'GET', url, headers: bearer((await login(svc.app, admin)).accessToken), ...(payload !== undefined ? { payload: payload as object } : {}) });

  async function endpoint(events: string[], url = receiver.url): Promise<{ id: string; secret: string }> {
    const res = await call('POST', '/v1/admin/webhooks', { url, events, description: 'test' });
    assert.equal(res.statusCode, 201, res.body);
    return res.json();
  }

  const outboxRows = (endpointId: string) => svc.db.selectFrom('outbox').selectAll().where('endpoint_id', '=', endpointId).orderBy('outbox_id').execute();

  it('when an endpoint is created, then 201 shows its secret once, stored encrypted, and reading it back shows no secret', async () => {
    const res = await call('POST', '/v1/admin/webhooks', { url: receiver.url, events: ['user.created'] });
    assert.equal(res.statusCode, 201, res.body);
    const body = res.json();
    assert.match(body.secret, /^whsec_[A-Za-z0-9+/]{32}$/);
    assert.equal(body.enabled, true);
    assert.deepEqual(body.events, ['user.created']);
    assert.equal(res.headers.location, `/v1/admin/webhooks/${body.id}`);
    const row = await svc.db.selectFrom('webhook_endpoints').select('secret').where('endpoint_id', '=', body.id).executeTakeFirstOrThrow();
    assert.ok(!row.secret.includes(body.secret.slice(6)), 'the secret is not stored as it is');
    const read = await call('GET', `/v1/admin/webhooks/${body.id}`);
    assert.equal(read.statusCode, 200);
    assert.equal(read.json().secret, undefined);
    assert.ok(!read.body.includes(body.secret));
    const list = await call('GET', '/v1/admin/webhooks');
    assert.ok(!list.body.includes('whsec_'));
    assert.equal((await call('DELETE', `/v1/admin/webhooks/${body.id}`)).statusCode, 204);
  });

  it('when a user registers and signs in, then the endpoint gets user.created and session.created, signed (Standard Webhooks library verifies), with no secret in data', async () => {
    const hook = await endpoint(['user.created', 'session.created']);
    const before = receiver.received.length;
    const user = await registerUser(svc.app);
    const session = await login(svc.app, user);
    await svc.app.outbox.drain();
    const got = receiver.received.slice(before);
    assert.deepEqual(
      got.map((r) => r.json.type),
      ['user.created', 'session.created'],
    );
    for (const delivery of got) {
      assert.deepEqual(verifyDelivery(hook.secret, delivery, svc.clock.now()), delivery.json);
      assert.equal(delivery.headers['content-type'], 'application/json');
      assert.match(String(delivery.headers['webhook-id']), /^msg_/);
      assert.equal(delivery.json.data.user_id, user.id);
      assert.ok(!/password|hash|secret|token/i.test(JSON.stringify(delivery.json.data)), delivery.body);
    }
    assert.equal(got[1]!.json.data.session_id, session.sessionId);
    assert.equal(got[0]!.json.data.username, user.username);
    const rows = await outboxRows(hook.id);
    assert.deepEqual(
      rows.map((r) => [r.event_type, r.status, r.attempts]),
      [
        ['user.created', 'delivered', 1],
        ['session.created', 'delivered', 1],
      ],
    );
    await call('DELETE', `/v1/admin/webhooks/${hook.id}`);
  });

  it('when each action of the contract happens, then its event goes out after it, in order, each with user_id and no secret', async () => {
    const hook = await endpoint(['*']);
    const before = receiver.received.length;
    const user = await registerUser(svc.app);
    const session = await login(svc.app, user);
    const other = await login(svc.app, user);
    const as = (method: string, url: string, payload?: unknown, token = session.accessToken) =>
      svc.app.inject({ method: method as 'GET', url, headers: bearer(token), ...(payload !== undefined ? { payload: payload as object } : {}) });
    const expect = async (action: Promise<{ statusCode: number; body: string }>, status: number) => {
      const res = await action;
      assert.equal(res.statusCode, status, res.body);
    };
    await expect(as('PATCH', '/v1/users/me', { name: 'Ada' }), 200);
    await expect(call('PATCH', `/v1/admin/users/${user.id}`, { email_verified: true }), 200);
    await expect(as('PUT', '/v1/users/me/password', { current_password: user.password, new_password: 'copper kettle meadow 9381' }), 204);
    await expect(call('PUT', `/v1/admin/users/${user.id}/roles`, { roles: ['support'] }), 200);
    const setup = (await as('POST', '/v1/users/me/mfa/totp', { current_password: 'copper kettle meadow 9381' })).json();
    const code = new TOTP({ secret: Secret.fromBase32(setup.secret), algorithm: 'SHA1', digits: 6, period: 30 }).generate({ timestamp: svc.clock.now() });
    await expect(as('POST', '/v1/users/me/mfa/totp/confirm', { code }), 200);
    await expect(as('DELETE', '/v1/users/me/mfa/totp', { current_password: 'copper kettle meadow 9381' }), 204);
    const auth = new SoftAuthenticator();
    const options = (await as('POST', '/v1/users/me/passkeys/options')).json();
    const added = await as('POST', '/v1/users/me/passkeys', { name: 'Laptop', response: auth.register(options) });
    assert.equal(added.statusCode, 201, added.body);
    await expect(as('DELETE', `/v1/users/me/passkeys/${added.json().id}`), 204);
    await expect(call('POST', `/v1/admin/users/${user.id}/disable`, { reason: 'test' }), 200);
    await expect(call('POST', `/v1/admin/users/${user.id}/enable`), 200);
    const last = await login(svc.app, { username: user.username, password: 'copper kettle meadow 9381' });
    await expect(as('DELETE', '/v1/sessions/current', undefined, last.accessToken), 204);
    const again = await login(svc.app, { username: user.username, password: 'copper kettle meadow 9381' });
    await expect(as('DELETE', '/v1/users/me', { current_password: 'copper kettle meadow 9381' }, again.accessToken), 204);
    await svc.app.outbox.drain();

    const mine = receiver.received.slice(before).filter((r) => r.json.data.user_id === user.id);
    const types = mine.map((r) => r.json.type);
    assert.deepEqual(types, [
      'user.created',
      'session.created',
      'session.created',
      'user.updated',
      'user.email_verified',
      'user.password_changed',
      'session.ended', // the other session, at the password change
      'user.roles_changed',
      'mfa.enabled',
      'mfa.disabled',
      'passkey.added',
      'passkey.removed',
      'user.disabled',
      'session.ended', // the session left, at the disable
      'user.enabled',
      'session.created',
      'session.ended', // logout
      'session.created',
      'session.ended', // the deletion
      'user.deleted',
    ]);
    assert.equal(mine.find((r) => r.json.type === 'session.ended')!.json.data.session_id, other.sessionId);
    assert.deepEqual(mine.find((r) => r.json.type === 'user.roles_changed')!.json.data, { user_id: user.id, roles: ['support'], given: ['support'], taken: [] });
    assert.equal(mine.find((r) => r.json.type === 'user.disabled')!.json.data.reason, 'test');
    for (const delivery of mine) {
      verifyDelivery(hook.secret, delivery, svc.clock.now());
      assert.ok(!/password"|hash|secret|token|copper|violet/i.test(JSON.stringify(delivery.json.data)), delivery.body);
      assert.match(delivery.json.timestamp, /^\d{4}-\d\d-\d\dT/);
    }
    await call('DELETE', `/v1/admin/webhooks/${hook.id}`);
  });

  it('when no endpoint is subscribed to a type, then nothing is written to the outbox for it', async () => {
    const hook = await endpoint(['user.deleted']);
    const count = async () => Number((await svc.db.selectFrom('outbox').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
    const before = await count();
    const user = await registerUser(svc.app);
    await login(svc.app, user);
    assert.equal(await count(), before);
    await call('DELETE', `/v1/admin/webhooks/${hook.id}`);
  });

  it('when a wrong body is sent, then 400 names each field and nothing is stored', async () => {
    const before = (await call('GET', '/v1/admin/webhooks')).json().webhooks.length;
    for (const [body, field] of [
      [{ url: 'ftp://example.com/x', events: ['user.created'] }, 'url'],
      [{ url: 'not a url', events: ['user.created'] }, 'url'],
      [{ url: 'https://user:pw@example.com/x', events: ['user.created'] }, 'url'],
      [{ url: 'https://example.com/x', events: ['user.nope'] }, 'events'],
      [{ url: 'https://example.com/x', events: [] }, 'events'],
      [{ url: 'https://example.com/x', events: ['*', 'user.created'] }, 'events'],
      [{ url: 'https://example.com/x', events: ['user.created'], secret: 'whsec_x' }, 'secret'],
    ] as const) {
      const res = await call('POST', '/v1/admin/webhooks', body);
      assert.equal(res.statusCode, 400, JSON.stringify(body));
      const p = problem(res);
      assert.equal(p.code, 'validation_failed');
      assert.ok(p.errors!.some((e) => e.field.startsWith(field)), `${JSON.stringify(body)}: ${res.body}`);
    }
    assert.equal((await call('GET', '/v1/admin/webhooks')).json().webhooks.length, before);
    assert.equal((await call('GET', '/v1/admin/webhooks/999999')).statusCode, 404);
    assert.equal(problem(await call('GET', '/v1/admin/webhooks/abc')).code, 'not_found');
  });

  it('when the receiver answers 500 then 200, then the event is retried on the schedule with the same webhook-id and delivered once', async () => {
    const hook = await endpoint(['user.updated']);
    const user = await registerUser(svc.app);
    const token = (await login(svc.app, user)).accessToken;
    receiver.answer(500);
    const before = receiver.received.length;
    const res = await svc.app.inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(token), payload: { name: 'Renamed' } });
    assert.equal(res.statusCode, 200);
    await svc.app.outbox.drain();
    assert.equal(receiver.received.length, before + 1);
    let [row] = await outboxRows(hook.id);
    assert.equal(row!.status, 'pending');
    assert.equal(row!.last_status, 500);
    // Not before its time: 5 s after the attempt.
    svc.clock.advance(4_000);
    await svc.app.outbox.drain();
    assert.equal(receiver.received.length, before + 1);
    svc.clock.advance(1_500);
    await svc.app.outbox.drain();
    assert.equal(receiver.received.length, before + 2);
    const [first, second] = receiver.received.slice(before);
    assert.equal(first!.headers['webhook-id'], second!.headers['webhook-id']);
    assert.deepEqual(second!.json.data, { user_id: user.id, fields: ['name'], name: 'Renamed' });
    verifyDelivery(hook.secret, second!, svc.clock.now());
    [row] = await outboxRows(hook.id);
    assert.equal(row!.status, 'delivered');
    assert.equal(row!.attempts, 2);
    const log = await call('GET', `/v1/admin/webhooks/${hook.id}/deliveries`);
    assert.equal(log.statusCode, 200);
    const [delivery] = log.json().deliveries;
    assert.equal(delivery.status, 'delivered');
    assert.deepEqual(
      delivery.attempts.map((a: { status_code: number }) => a.status_code),
      [500, 200],
    );
    await call('DELETE', `/v1/admin/webhooks/${hook.id}`);
  });

  it('when the receiver keeps failing, then the delays are 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, then failed; the retry button sends it again', async () => {
    const hook = await endpoint(['user.updated']);
    const user = await registerUser(svc.app);
    const token = (await login(svc.app, user)).accessToken;
    receiver.answer(503, 503, 503, 503, 503, 503, 503, 503);
    const before = receiver.received.length;
    await svc.app.inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(token), payload: { name: 'Again' } });
    await svc.app.outbox.drain();
    for (const delay of [5, 300, 1800, 7200, 18000, 36000, 36000]) {
      svc.clock.advance(delay * 1000 - 1000);
      await svc.app.outbox.drain();
      const [waiting] = await outboxRows(hook.id);
      assert.equal(waiting!.status, 'pending', `not yet after ${delay} s less one`);
      svc.clock.advance(1500);
      await svc.app.outbox.drain();
    }
    assert.equal(receiver.received.length, before + 8);
    let [row] = await outboxRows(hook.id);
    assert.equal(row!.status, 'failed');
    assert.equal(row!.attempts, 8);
    svc.clock.advance(100 * 3_600_000);
    await svc.app.outbox.drain();
    assert.equal(receiver.received.length, before + 8, 'a failed delivery is not tried again by itself');
    // The retry button.
    const retried = await call('POST', `/v1/admin/webhooks/${hook.id}/deliveries/${row!.outbox_id}/retry`);
    assert.equal(retried.statusCode, 202, retried.body);
    assert.equal(retried.json().status, 'pending');
    await svc.app.outbox.drain();
    assert.equal(receiver.received.length, before + 9);
    [row] = await outboxRows(hook.id);
    assert.equal(row!.status, 'delivered');
    assert.equal((await call('POST', `/v1/admin/webhooks/${hook.id}/deliveries/99999999/retry`)).statusCode, 404);
    await call('DELETE', `/v1/admin/webhooks/${hook.id}`);
  });

  it('when the receiver hangs, then the attempt times out and is retried', async () => {
    const hook = await endpoint(['user.updated']);
    const user = await registerUser(svc.app);
    const token = (await login(svc.app, user)).accessToken;
    receiver.answer('hang');
    await svc.app.inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(token), payload: { name: 'Slow' } });
    await svc.app.outbox.drain();
    let [row] = await outboxRows(hook.id);
    assert.equal(row!.status, 'pending');
    assert.equal(row!.last_status, null);
    assert.match(row!.last_error!, /no answer within 2000 ms/);
    svc.clock.advance(6_000);
    await svc.app.outbox.drain();
    [row] = await outboxRows(hook.id);
    assert.equal(row!.status, 'delivered');
    await call('DELETE', `/v1/admin/webhooks/${hook.id}`);
  });

  it('when the receiver answers 410, then the endpoint is disabled and gets nothing more', async () => {
    const hook = await endpoint(['user.updated']);
    const user = await registerUser(svc.app);
    const token = (await login(svc.app, user)).accessToken;
    receiver.answer(410);
    const before = receiver.received.length;
    await svc.app.inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(token), payload: { name: 'Gone' } });
    await svc.app.outbox.drain();
    const read = (await call('GET', `/v1/admin/webhooks/${hook.id}`)).json();
    assert.equal(read.enabled, false);
    assert.equal(read.disabled_reason, 'gone');
    const [row] = await outboxRows(hook.id);
    assert.equal(row!.status, 'failed');
    await svc.app.inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(token), payload: { name: 'Gone again' } });
    svc.clock.advance(3_600_000);
    await svc.app.outbox.drain();
    assert.equal(receiver.received.length, before + 1);
    assert.equal((await outboxRows(hook.id)).length, 1, 'a disabled endpoint is not written to');
    await call('DELETE', `/v1/admin/webhooks/${hook.id}`);
  });

  it('when a user has several events and the first is being retried, then the later ones wait, and go in order once it is delivered', async () => {
    const hook = await endpoint(['user.updated']);
    const user = await registerUser(svc.app);
    const token = (await login(svc.app, user)).accessToken;
    receiver.answer(500);
    const before = receiver.received.length;
    for (const name of ['One', 'Two', 'Three']) await svc.app.inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(token), payload: { name } });
    await svc.app.outbox.drain();
    assert.equal(receiver.received.length, before + 1);
    svc.clock.advance(6_000);
    await svc.app.outbox.drain();
    assert.deepEqual(
      receiver.received.slice(before).map((r) => r.json.data.name),
      ['One', 'One', 'Two', 'Three'],
    );
    await call('DELETE', `/v1/admin/webhooks/${hook.id}`);
  });

  it('when the secret is rotated, then both secrets sign for 24 hours, then only the new one', async () => {
    const hook = await endpoint(['user.updated']);
    const rotated = await call('POST', `/v1/admin/webhooks/${hook.id}/rotate-secret`);
    assert.equal(rotated.statusCode, 200);
    const { secret } = rotated.json();
    assert.notEqual(secret, hook.secret);
    const user = await registerUser(svc.app);
    const token = (await login(svc.app, user)).accessToken;
    const before = receiver.received.length;
    await svc.app.inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(token), payload: { name: 'Rotated' } });
    await svc.app.outbox.drain();
    const during = receiver.received[before]!;
    assert.equal(String(during.headers['webhook-signature']).split(' ').length, 2);
    verifyDelivery(secret, during, svc.clock.now());
    verifyDelivery(hook.secret, during, svc.clock.now());
    svc.clock.advance(24 * 3_600_000 + 1000);
    const laterToken = (await login(svc.app, user)).accessToken;
    await svc.app.inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(laterToken), payload: { name: 'Later' } });
    await svc.app.outbox.drain();
    const later = receiver.received[before + 1]!;
    assert.equal(String(later.headers['webhook-signature']).split(' ').length, 1);
    verifyDelivery(secret, later, svc.clock.now());
    assert.throws(() => verifyDelivery(hook.secret, later, svc.clock.now()));
    await call('DELETE', `/v1/admin/webhooks/${hook.id}`);
  });

  it('when the password is right, then GOOD_PASSWORD is never in a delivery', () => {
    assert.ok(!receiver.received.some((r) => r.body.includes(GOOD_PASSWORD)));
  });
});

describe('webhooks: server-side request forgery', () => {
  let svc: TestService;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let token: string;

  before(async () => {
    svc = await startTestService(); // WEBHOOK_ALLOW_PRIVATE is off
    const admin = await registerUser(svc.app);
    await new AdminService(svc.db).changeRole(admin.username, 'admin', true);
    token = (await login(svc.app, admin)).accessToken;
    receiver = await startReceiver();
  });
  after(async () => {
    await svc.close();
    await receiver.close();
  });

  const create = (url: string) => svc.app.inject({ method: 'POST', url: '/v1/admin/webhooks', headers: bearer(token), payload: { url, events: ['*'] } });

  it('when the URL is a loopback, private, link-local, CGNAT or metadata address (or an IPv6 form of one), then 400 names url', async () => {
    for (const url of [
      'http://127.0.0.1:8080/x',
      'http://10.0.0.5/x',
      'http://192.168.1.1/x',
      'http://169.254.169.254/latest/meta-data/',
      'http://100.64.0.1/x',
      'http://0.0.0.0/x',
      'http://[::1]/x',
      'http://[::ffff:127.0.0.1]/x',
      'http://[fd00:ec2::254]/x',
      'http://[fe80::1]/x',
      'http://2130706433/x', // 127.0.0.1 as one number: the URL parser makes it 127.0.0.1
    ]) {
      const res = await create(url);
      assert.equal(res.statusCode, 400, url);
      assert.deepEqual(
        problem(res).errors!.map((e) => e.field),
        ['url'],
        url,
      );
    }
  });

  it('when a name resolves to 127.0.0.1 (localhost), then the delivery is refused at connection time and the receiver gets nothing', async () => {
    const res = await create(`http://localhost:${receiver.port}/hook`);
    assert.equal(res.statusCode, 201, res.body);
    const hook = res.json();
    await registerUser(svc.app);
    await svc.app.outbox.drain();
    assert.equal(receiver.received.length, 0);
    const [row] = await svc.db.selectFrom('outbox').selectAll().where('endpoint_id', '=', hook.id).execute();
    assert.equal(row!.status, 'pending');
    assert.match(row!.last_error!, /localhost resolves to (127\.0\.0\.1|::1), which is not a public address/);
  });

  it('when a name resolves to a public and a private address, or rebinds between lookups, then the socket only ever connects to checked addresses', async () => {
    const { guardedLookup, isForbiddenAddress } = await import('../src/webhooks/address-guard.js');
    const { request } = await import('node:http');
    let lookups = 0;
    // A rebinding name: public at its first resolution, loopback afterwards.
    const rebinding = async () => (++lookups === 1 ? [{ address: '93.184.215.14', family: 4 }] : [{ address: '127.0.0.1', family: 4 }]);
    const mixed = async () => [
      { address: '93.184.215.14', family: 4 },
      { address: '127.0.0.1', family: 4 },
    ];
    const attempt = (resolve: () => Promise<Array<{ address: string; family: number }>>, allowPrivate: boolean) =>
      new Promise<string>((done) => {
        const req = request(`http://rebind.invalid:${receiver.port}/hook`, { method: 'POST', lookup: guardedLookup(resolve, allowPrivate), timeout: 2000 }, (res) => {
          res.resume();
          done(`answered ${res.statusCode}`);
        });
        req.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.end('{}');
      });
    assert.equal(await attempt(mixed, false), 'EFORBIDDENADDRESS');
    lookups = 1; // the "check" already happened: this resolution is the rebound one
    assert.equal(await attempt(rebinding, false), 'EFORBIDDENADDRESS');
    assert.equal(receiver.received.length, 0);
    // Allowed, the socket goes where the lookup said (the name itself resolves nowhere).
    assert.equal(await attempt(async () => [{ address: '127.0.0.1', family: 4 }], true), 'answered 200');
    assert.equal(receiver.received.length, 1);
    for (const address of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.0.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '255.255.255.255', '224.0.0.1', '::1', '::', '::ffff:10.0.0.1', 'fc00::1', 'fe80::1', '64:ff9b::a00:1', '2002:a00:1::1', 'nonsense']) {
      assert.equal(isForbiddenAddress(address), true, address);
    }
    for (const address of ['93.184.215.14', '8.8.8.8', '2606:4700:4700::1111']) assert.equal(isForbiddenAddress(address), false, address);
  });
});

describe('webhooks: many instances', () => {
  let svc: TestService;
  let second: App;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

  before(async () => {
    svc = await startTestService({}, { WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_TIMEOUT_MS: '2000' });
    // A second instance on the same database, with its own dispatcher (and its own connections on a server).
    second = await buildApp({ config: svc.config, db: svc.handle, clock: svc.clock });
    // Only the test's drains dispatch here (each instance's timer would race the "dead" one's claim).
    await svc.app.outbox.stop();
    await second.outbox.stop();
    receiver = await startReceiver();
    const cipher = await loadDataCipher(svc.db, svc.config.dataEncryptionKeys);
    await svc.db.insertInto('webhook_endpoints').values({ url: receiver.url, events: '*', secret: cipher.encrypt(newEndpointSecret(), SECRET_CONTEXT) }).execute();
  });
  after(async () => {
    await second.close();
    await svc.close();
    await receiver.close();
  });

  it('when two instances dispatch at once, then each event is delivered once, and each user\'s in order', async () => {
    const users = [];
    for (let i = 0; i < 6; i++) users.push(await registerUser(i % 2 ? svc.app : second));
    for (const user of users) for (let i = 0; i < 3; i++) await login(i % 2 ? svc.app : second, user);
    await Promise.all([svc.app.outbox.drain(), second.outbox.drain(), svc.app.outbox.drain(), second.outbox.drain()]);
    await Promise.all([svc.app.outbox.drain(), second.outbox.drain()]);
    const mine = new Set(users.map((u) => u.id));
    const ids = receiver.received.filter((r) => mine.has(String(r.json.data.user_id))).map((r) => String(r.headers['webhook-id']));
    assert.equal(ids.length, 6 * 4);
    assert.equal(new Set(ids).size, ids.length, 'no event twice');
    for (const user of users) {
      assert.deepEqual(
        receiver.received.filter((r) => r.json.data.user_id === user.id).map((r) => r.json.type),
        ['user.created', 'session.created', 'session.created', 'session.created'],
      );
    }
    const rows = await svc.db.selectFrom('outbox').select(['status', 'attempts']).where('order_key', 'in', [...mine]).execute();
    assert.equal(rows.length, 6 * 4);
    assert.ok(rows.every((r) => r.status === 'delivered' && r.attempts === 1));
  });

  it('when an instance dies holding a message, then another takes it over once the lease has run out, not before', async () => {
    await Promise.all([svc.app.outbox.drain(), second.outbox.drain()]);
    const before = receiver.received.length;
    const user = await registerUser(svc.app);
    // The dead instance: it took the message and never finished.
    const now = svc.clock.now();
    const taken = await claimDue(svc.db, 'dead-instance', new Date(now), new Date(now + 12_000), 50);
    assert.equal(taken.length, 1);
    await Promise.all([svc.app.outbox.drain(), second.outbox.drain()]);
    assert.equal(receiver.received.length, before, 'leased: left alone');
    svc.clock.advance(12_001);
    await second.outbox.drain();
    assert.equal(receiver.received.length, before + 1);
    assert.equal(receiver.received.at(-1)!.json.data.user_id, user.id);
    assert.equal(receiver.received.at(-1)!.headers['webhook-id'], taken[0]!.message_id);
    // The dead instance's late finish is refused: the message stays delivered, with one attempt logged.
    assert.equal(await finishAttempt(svc.db, taken[0]!.outbox_id, 'dead-instance', { at: new Date(), statusCode: 500, error: 'late', durationMs: 1, status: 'pending', nextAttemptAt: null }), false);
    const row = await svc.db.selectFrom('outbox').selectAll().where('outbox_id', '=', taken[0]!.outbox_id).executeTakeFirstOrThrow();
    assert.equal(row.status, 'delivered');
    assert.equal((await svc.db.selectFrom('outbox_attempts').selectAll().where('outbox_id', '=', row.outbox_id).execute()).length, 1);
  });
});
