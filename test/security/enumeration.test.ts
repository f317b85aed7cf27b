/**
 * Attacks that guess: account enumeration by status, body or headers, brute force, credential
 * stuffing, escaping a throttle with a spoofed X-Forwarded-For, and secrets leaking into answers.
 * OWASP ASVS 5.0 L2: V6.3.1 (brute force, credential stuffing), V6.3.8 (no user enumeration),
 * V15.3.4 (client address from trusted sources only), V15.3.1 / V14.2 (no sensitive data in answers).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { buildApp } from '../../src/app.js';
import type { App } from '../../src/http/types.js';
import { GOOD_PASSWORD, bearer, login, registerUser, startTestService, testConfig, uniqueName, type TestService } from '../helpers/app.js';
import { assertNothingChanged, assertProblem, dbState, registerPayload } from './support.js';

const WRONG = 'a wrong password 77';

/** Header names and values, without the two that differ on every answer. */
function comparableHeaders(res: LightMyRequestResponse): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(res.headers)) {
    if (name === 'x-request-id' || name === 'date') continue;
    out[name] = String(value);
  }
  return out;
}

/** Everything a client can observe of an answer, apart from its request id and date. */
function observable(res: LightMyRequestResponse): { status: number; headers: Record<string, string>; body: string } {
  return { status: res.statusCode, headers: comparableHeaders(res), body: res.body };
}

/** Nothing that is a credential: no hash, no Argon2 string, none of the passwords sent. */
function assertNoSecrets(res: LightMyRequestResponse, passwords: string[], label = ''): void {
  const everything = `${JSON.stringify(res.headers)}\n${res.body}`;
  assert.doesNotMatch(everything, /hashed_password/i, `${label}: no hashed_password`);
  assert.doesNotMatch(everything, /argon2/i, `${label}: no Argon2 string`);
  for (const p of passwords) {
    assert.ok(!everything.includes(p), `${label}: the password ${JSON.stringify(p)} is not echoed`);
    assert.ok(!everything.includes(JSON.stringify(p).slice(1, -1)), `${label}: the password (JSON-escaped) is not echoed`);
  }
}

describe('security: guessing, enumeration and leaks', () => {
  let svc: TestService;
  let proxied: App;
  before(async () => {
    svc = await startTestService();
    // The same database behind a proxy at 127.0.0.1 (TRUST_PROXY=127.0.0.1).
    proxied = await buildApp({ config: testConfig({ trustProxy: ['127.0.0.1'] }), db: svc.handle });
  });
  after(async () => {
    await proxied.close();
    await svc.close();
  });

  const attempt = (body: Record<string, unknown>, remoteAddress: string, headers: Record<string, string> = {}, app: App = svc.app) =>
    app.inject({ method: 'POST', url: '/v1/sessions', payload: body, remoteAddress, headers });

  describe('enumeration (V6.3.8)', () => {
    it('V6.3.8: when a login names an unknown user or gives a wrong password, then both answers are 401 invalid_credentials with byte-identical bodies and the same headers', async () => {
      const user = await registerUser(svc.app);
      const before = await dbState(svc.db);
      const wrongPassword = await attempt({ username: user.username, password: WRONG }, '198.51.100.11');
      const unknownUser = await attempt({ username: uniqueName('ghost'), password: WRONG }, '198.51.100.11');
      assertProblem(wrongPassword, 401, 'invalid_credentials');
      assertProblem(unknownUser, 401, 'invalid_credentials');
      assert.deepStrictEqual(observable(unknownUser), observable(wrongPassword));
      await assertNothingChanged(svc.db, before);
    });

    it('V6.3.8: when a login names an unknown email or gives a wrong password by email, then both answers are 401 invalid_credentials and identical', async () => {
      const user = await registerUser(svc.app);
      const before = await dbState(svc.db);
      const wrongPassword = await attempt({ email: user.email, password: WRONG }, '198.51.100.12');
      const unknownEmail = await attempt({ email: `${uniqueName('ghost')}@example.com`, password: WRONG }, '198.51.100.12');
      assertProblem(wrongPassword, 401, 'invalid_credentials');
      assertProblem(unknownEmail, 401, 'invalid_credentials');
      assert.deepStrictEqual(observable(unknownEmail), observable(wrongPassword));
      await assertNothingChanged(svc.db, before);
    });

    it('V6.3.8: when an unknown name and a real account are each tried 6 times from one address, then every step answers alike, including the 429 and its Retry-After', async () => {
      const user = await registerUser(svc.app);
      const ghost = uniqueName('ghost');
      const before = await dbState(svc.db);
      const real: Array<ReturnType<typeof observable>> = [];
      const fake: Array<ReturnType<typeof observable>> = [];
      for (let i = 0; i < 6; i++) {
        real.push(observable(await attempt({ username: user.username, password: WRONG }, '198.51.100.13')));
        fake.push(observable(await attempt({ username: ghost, password: WRONG }, '198.51.100.13')));
      }
      // Retry-After counts down in whole seconds from each pair's own lock: on a slow machine the two
      // may straddle a second. Compared apart, within that one second; everything else byte for byte.
      const retryAfter = (o: ReturnType<typeof observable>) => Number(o.headers['retry-after']);
      const realWait = retryAfter(real[5]!);
      const fakeWait = retryAfter(fake[5]!);
      for (const o of [real[5]!, fake[5]!]) delete o.headers['retry-after'];
      assert.deepStrictEqual(fake, real);
      assert.equal(real[5]!.status, 429);
      assert.ok(realWait >= 28 && realWait <= 30, `Retry-After ${realWait}`);
      assert.ok(Math.abs(realWait - fakeWait) <= 1, `Retry-After ${realWait} (account) vs ${fakeWait} (unknown name)`);
      await assertNothingChanged(svc.db, before);
    });

    it("V6.3.8: when a user revokes another user's existing session id or an id that does not exist, then both answers are the same 404 not_found", async () => {
      const attacker = await registerUser(svc.app);
      const attackerSession = await login(svc.app, attacker);
      const victim = await registerUser(svc.app);
      const victimSession = await login(svc.app, victim);
      const before = await dbState(svc.db);
      const existing = await svc.app.inject({ method: 'DELETE', url: `/v1/sessions/${victimSession.sessionId}`, headers: bearer(attackerSession.accessToken) });
      const missing = await svc.app.inject({ method: 'DELETE', url: '/v1/sessions/987654321', headers: bearer(attackerSession.accessToken) });
      assertProblem(existing, 404, 'not_found');
      assert.deepStrictEqual(observable(missing), observable(existing));
      await assertNothingChanged(svc.db, before);
    });
  });

  describe('brute force and credential stuffing (V6.3.1)', () => {
    it('V6.3.1: when a password is guessed 5 times, then the 6th attempt, even with the right password, is 429 too_many_requests with Retry-After and opens no session', async () => {
      const user = await registerUser(svc.app);
      for (let i = 0; i < 5; i++) assertProblem(await attempt({ username: user.username, password: `${WRONG}${i}` }, '198.51.100.21'), 401, 'invalid_credentials');
      const before = await dbState(svc.db);
      const sixth = await attempt({ username: user.username, password: user.password }, '198.51.100.21');
      assertProblem(sixth, 429, 'too_many_requests');
      const wait = Number(sixth.headers['retry-after']);
      assert.ok(wait >= 28 && wait <= 30, `Retry-After: ${sixth.headers['retry-after']} (30 s from the 5th failure)`);
      await assertNothingChanged(svc.db, before);
    });

    it('V6.3.1: when guessing goes on during the wait, then each attempt is 429, is not counted and does not extend the wait', async () => {
      const user = await registerUser(svc.app);
      for (let i = 0; i < 5; i++) await attempt({ username: user.username, password: WRONG }, '198.51.100.22');
      const key = `account:${user.id}|198.51.100.22`;
      const throttleBefore = await svc.db.selectFrom('login_throttles').select(['failures', 'locked_until']).where('throttle_key', '=', key).executeTakeFirstOrThrow();
      const before = await dbState(svc.db);
      for (let i = 0; i < 3; i++) assertProblem(await attempt({ username: user.username, password: `${WRONG}${i}` }, '198.51.100.22'), 429, 'too_many_requests');
      const throttleAfter = await svc.db.selectFrom('login_throttles').select(['failures', 'locked_until']).where('throttle_key', '=', key).executeTakeFirstOrThrow();
      assert.deepStrictEqual(throttleAfter, throttleBefore);
      await assertNothingChanged(svc.db, before);
    });

    it('V6.3.1: when one address stuffs credentials for many different usernames, then each gets 401 invalid_credentials (each pair is throttled on its own) and no session opens', async () => {
      const real = [await registerUser(svc.app), await registerUser(svc.app), await registerUser(svc.app)];
      const names = [...real.map((u) => u.username), ...Array.from({ length: 9 }, () => uniqueName('stuffed'))];
      const before = await dbState(svc.db);
      const answers: string[] = [];
      for (const username of names) {
        const res = await attempt({ username, password: 'Summer2024!' }, '198.51.100.23');
        answers.push(`${res.statusCode} ${JSON.parse(res.body).code}`);
      }
      assert.deepEqual(answers, names.map(() => '401 invalid_credentials'));
      await assertNothingChanged(svc.db, before);
      // Each pair has one failure: a real user's own login from that address still works.
      const ok = await attempt({ username: real[0]!.username, password: real[0]!.password }, '198.51.100.23');
      assert.equal(ok.statusCode, 201, ok.body);
    });
  });

  describe('client address (V15.3.4)', () => {
    it('V15.3.4: when a guesser varies a spoofed X-Forwarded-For without TRUST_PROXY, then the throttle still catches the real address: 429, no session', async () => {
      const user = await registerUser(svc.app);
      for (let i = 0; i < 5; i++) {
        await attempt({ username: user.username, password: WRONG }, '198.51.100.31', { 'x-forwarded-for': `203.0.113.${i + 1}` });
      }
      const before = await dbState(svc.db);
      const res = await attempt({ username: user.username, password: user.password }, '198.51.100.31', { 'x-forwarded-for': '203.0.113.99' });
      assertProblem(res, 429, 'too_many_requests');
      await assertNothingChanged(svc.db, before);
    });

    it('V15.3.4: when a login sends a spoofed X-Forwarded-For without TRUST_PROXY, then the session records the real address, not the spoofed one', async () => {
      const user = await registerUser(svc.app);
      const res = await attempt({ username: user.username, password: user.password }, '198.51.100.32', { 'x-forwarded-for': '203.0.113.200' });
      assert.equal(res.statusCode, 201, res.body);
      const row = await svc.db.selectFrom('user_sessions').select('ip').where('session_id', '=', res.json().session.id).executeTakeFirstOrThrow();
      assert.equal(row.ip, '198.51.100.32');
    });

    it('V15.3.4: when TRUST_PROXY names the proxy, then its X-Forwarded-For is honoured: a locked-out client waits (429) while another client behind the proxy still gets 401', async () => {
      const user = await registerUser(svc.app);
      for (let i = 0; i < 5; i++) {
        await attempt({ username: user.username, password: WRONG }, '127.0.0.1', { 'x-forwarded-for': '203.0.113.41' }, proxied);
      }
      const before = await dbState(svc.db);
      assertProblem(await attempt({ username: user.username, password: user.password }, '127.0.0.1', { 'x-forwarded-for': '203.0.113.41' }, proxied), 429, 'too_many_requests');
      assertProblem(await attempt({ username: user.username, password: WRONG }, '127.0.0.1', { 'x-forwarded-for': '203.0.113.42' }, proxied), 401, 'invalid_credentials');
      await assertNothingChanged(svc.db, before);
      const throttled = await svc.db.selectFrom('login_throttles').select('throttle_key').where('throttle_key', 'like', `account:${user.id}|%`).execute();
      assert.deepEqual(throttled.map((t) => t.throttle_key).sort(), [`account:${user.id}|203.0.113.41`, `account:${user.id}|203.0.113.42`]);
    });

    it('V15.3.4: when TRUST_PROXY names a proxy but the request comes from elsewhere, then its X-Forwarded-For is ignored and the throttle catches the sender: 429', async () => {
      const user = await registerUser(svc.app);
      for (let i = 0; i < 5; i++) {
        await attempt({ username: user.username, password: WRONG }, '198.51.100.34', { 'x-forwarded-for': `203.0.113.${50 + i}` }, proxied);
      }
      const before = await dbState(svc.db);
      const res = await attempt({ username: user.username, password: user.password }, '198.51.100.34', { 'x-forwarded-for': '203.0.113.60' }, proxied);
      assertProblem(res, 429, 'too_many_requests');
      await assertNothingChanged(svc.db, before);
    });
  });

  describe('no credentials in answers (V15.3.1, V14.2)', () => {
    it('V15.3.1: when a user registers, then the 201 answer holds no hash and not the password', async () => {
      const payload = registerPayload({ password: 'indigo falcon meadow 5531' });
      const res = await svc.app.inject({ method: 'POST', url: '/v1/users', payload });
      assert.equal(res.statusCode, 201, res.body);
      assertNoSecrets(res, ['indigo falcon meadow 5531']);
    });

    it('V15.3.1: when a user logs in, refreshes, reads the profile and lists sessions, then no answer holds a hash or the password', async () => {
      const user = await registerUser(svc.app, { password: 'cobalt harbor lantern 6620' });
      const first = await attempt({ username: user.username, password: user.password }, '198.51.100.41');
      assert.equal(first.statusCode, 201);
      assertNoSecrets(first, [user.password], 'login');
      const refreshed = await svc.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: first.json().refresh_token } });
      assert.equal(refreshed.statusCode, 200);
      assertNoSecrets(refreshed, [user.password], 'refresh');
      const token = refreshed.json().access_token;
      for (const url of ['/v1/users/me', '/v1/sessions', '/v1/users/me/events']) {
        const res = await svc.app.inject({ method: 'GET', url, headers: bearer(token) });
        assert.equal(res.statusCode, 200, url);
        assertNoSecrets(res, [user.password], url);
      }
    });

    it('V15.3.1: when a weak password is refused, then the 400 weak_password answer does not echo it and nothing is written', async () => {
      const before = await dbState(svc.db);
      const res = await svc.app.inject({ method: 'POST', url: '/v1/users', payload: registerPayload({ password: 'Password123' }) });
      assertProblem(res, 400, 'weak_password');
      assertNoSecrets(res, ['Password123']);
      await assertNothingChanged(svc.db, before);
    });

    it('V15.3.1: when a wrong password is refused at login, then the 401 answer does not echo it and nothing is written', async () => {
      const user = await registerUser(svc.app);
      const before = await dbState(svc.db);
      const res = await attempt({ username: user.username, password: 'my "secret" guess\n42' }, '198.51.100.42');
      assertProblem(res, 401, 'invalid_credentials');
      assertNoSecrets(res, ['my "secret" guess\n42', user.password]);
      await assertNothingChanged(svc.db, before);
    });

    it('V15.3.1: when a register body fails validation next to a valid password, then the 400 answer does not echo the password and nothing is written', async () => {
      const before = await dbState(svc.db);
      const res = await svc.app.inject({ method: 'POST', url: '/v1/users', payload: registerPayload({ password: 'tangerine orbit velvet 9090', dob: 'not a date', is_admin: true }) });
      assertProblem(res, 400, 'validation_failed');
      assertNoSecrets(res, ['tangerine orbit velvet 9090']);
      await assertNothingChanged(svc.db, before);
    });

    it('V15.3.1: when a password change is refused for reuse or a wrong current password, then neither answer echoes a password and nothing is written', async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      const before = await dbState(svc.db);
      const reused = await svc.app.inject({
        method: 'PUT',
        url: '/v1/users/me/password',
        headers: bearer(session.accessToken),
        payload: { current_password: user.password, new_password: user.password },
        remoteAddress: '198.51.100.43',
      });
      assertProblem(reused, 422, 'password_reused');
      assertNoSecrets(reused, [user.password]);
      const wrong = await svc.app.inject({
        method: 'PUT',
        url: '/v1/users/me/password',
        headers: bearer(session.accessToken),
        payload: { current_password: 'not my password 31', new_password: 'quiet river stone 5150' },
        remoteAddress: '198.51.100.43',
      });
      assertProblem(wrong, 403, 'invalid_credentials');
      assertNoSecrets(wrong, ['not my password 31', 'quiet river stone 5150', user.password]);
      await assertNothingChanged(svc.db, before);
    });

    it('V16.2.5: when failed logins and a password change are recorded as security events, then the events listed hold no password or hash', async () => {
      const user = await registerUser(svc.app);
      await attempt({ username: user.username, password: 'guessed password one' }, '198.51.100.44');
      const session = await login(svc.app, user);
      const change = await svc.app.inject({
        method: 'PUT',
        url: '/v1/users/me/password',
        headers: bearer(session.accessToken),
        payload: { current_password: user.password, new_password: 'maple thunder quartz 2718' },
      });
      assert.equal(change.statusCode, 204);
      const events = await svc.app.inject({ method: 'GET', url: '/v1/users/me/events?limit=100', headers: bearer(session.accessToken) });
      assert.equal(events.statusCode, 200);
      assert.ok(events.json().events.length >= 4, events.body);
      assertNoSecrets(events, ['guessed password one', user.password, 'maple thunder quartz 2718', GOOD_PASSWORD]);
    });
  });
});
