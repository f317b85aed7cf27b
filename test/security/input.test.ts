/**
 * Attacks on the request as a whole: the body's syntax, media type and size, header size,
 * request smuggling, mass assignment, prototype pollution and type confusion.
 * OWASP ASVS 5.0 L2: V2.2 (input validation), V4.1/V4.2 (HTTP messages), V15.3 (defensive coding).
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { GOOD_PASSWORD, bearer, login, registerUser, startTestService, uniqueName, type LoggedIn, type RegisteredUser, type TestService } from '../helpers/app.js';
import { assertNothingChanged, assertProblem, assertValidationFailed, dbState, rawInject, registerPayload, sessionRow } from './support.js';

describe('security: request bodies and headers', () => {
  let svc: TestService;
  let user: RegisteredUser;
  let session: LoggedIn;
  let baseUrl: string | undefined;

  before(async () => {
    svc = await startTestService();
    user = await registerUser(svc.app, { username: uniqueName('victim') });
    session = await login(svc.app, user);
  });
  after(() => svc.close());

  /** The app on a real port, for what app.inject cannot reproduce (Node's own parser limits). */
  async function listening(): Promise<URL> {
    if (!baseUrl) {
      await svc.app.listen({ port: 0, host: '127.0.0.1' });
      const address = svc.app.server.address() as AddressInfo;
      baseUrl = `http://127.0.0.1:${address.port}`;
    }
    return new URL(baseUrl);
  }

  const register = (payload: unknown) => svc.app.inject({ method: 'POST', url: '/v1/users', payload: payload as Record<string, unknown> });
  const patchMe = (payload: unknown) => svc.app.inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(session.accessToken), payload: payload as Record<string, unknown> });
  const loginWith = (payload: unknown) => svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: payload as Record<string, unknown>, remoteAddress: '198.51.100.201' });
  const changePassword = (payload: unknown) =>
    svc.app.inject({ method: 'PUT', url: '/v1/users/me/password', headers: bearer(session.accessToken), payload: payload as Record<string, unknown>, remoteAddress: '198.51.100.202' });

  describe('body syntax and media type', () => {
    it('V2.2.1: when a register body is truncated JSON, then 400 validation_failed and nothing is written', async () => {
      const before = await dbState(svc.db);
      const json = JSON.stringify(registerPayload());
      assertValidationFailed(await rawInject(svc.app, 'POST', '/v1/users', json.slice(0, -5)), '(body)');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when a login body is JavaScript-style JSON (unquoted keys, single quotes), then 400 validation_failed and no session', async () => {
      const before = await dbState(svc.db);
      const res = await rawInject(svc.app, 'POST', '/v1/sessions', `{username: '${user.username}', password: '${user.password}'}`);
      assertValidationFailed(res, '(body)');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when the register body is a JSON array holding a valid object, then 400 validation_failed and nothing is written', async () => {
      const before = await dbState(svc.db);
      const res = await rawInject(svc.app, 'POST', '/v1/users', JSON.stringify([registerPayload()]));
      assertProblem(res, 400, 'validation_failed');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when the register body is a JSON string, then 400 validation_failed and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertProblem(await rawInject(svc.app, 'POST', '/v1/users', JSON.stringify(JSON.stringify(registerPayload()))), 400, 'validation_failed');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when the login body is a JSON number, then 400 validation_failed and no session', async () => {
      const before = await dbState(svc.db);
      assertProblem(await rawInject(svc.app, 'POST', '/v1/sessions', '42'), 400, 'validation_failed');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when the PATCH body is JSON null, then 400 validation_failed and the profile is unchanged', async () => {
      const before = await dbState(svc.db);
      assertProblem(await rawInject(svc.app, 'PATCH', '/v1/users/me', 'null', bearer(session.accessToken)), 400, 'validation_failed');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when the password-change body is JSON true, then 400 validation_failed and the credentials are unchanged', async () => {
      const before = await dbState(svc.db);
      assertProblem(await rawInject(svc.app, 'PUT', '/v1/users/me/password', 'true', bearer(session.accessToken)), 400, 'validation_failed');
      await assertNothingChanged(svc.db, before);
    });

    it('V4.1.1: when a valid JSON register body is sent as text/plain (a CORS "simple request"), then 415 unsupported_media_type and nothing is written', async () => {
      const before = await dbState(svc.db);
      const res = await rawInject(svc.app, 'POST', '/v1/users', JSON.stringify(registerPayload()), { 'content-type': 'text/plain' });
      assertProblem(res, 415, 'unsupported_media_type');
      await assertNothingChanged(svc.db, before);
    });

    it('V4.1.1: when a valid JSON login body has no Content-Type at all, then 415 unsupported_media_type and no session', async () => {
      const before = await dbState(svc.db);
      const res = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: JSON.stringify({ username: user.username, password: user.password }) });
      assertProblem(res, 415, 'unsupported_media_type');
      await assertNothingChanged(svc.db, before);
    });

    it('V4.1.1: when a PATCH body is form-encoded (a cross-site form post), then 415 unsupported_media_type and the profile is unchanged', async () => {
      const before = await dbState(svc.db);
      const res = await svc.app.inject({
        method: 'PATCH',
        url: '/v1/users/me',
        payload: 'name=pwned',
        headers: { ...bearer(session.accessToken), 'content-type': 'application/x-www-form-urlencoded' },
      });
      assertProblem(res, 415, 'unsupported_media_type');
      await assertNothingChanged(svc.db, before);
    });

    it('V4.1.1: when an XML body is sent as application/xml, then 415 unsupported_media_type and nothing is written', async () => {
      const before = await dbState(svc.db);
      const xml = `<?xml version="1.0"?><!DOCTYPE u [<!ENTITY x SYSTEM "file:///etc/passwd">]><user><username>&x;</username></user>`;
      assertProblem(await rawInject(svc.app, 'POST', '/v1/users', xml, { 'content-type': 'application/xml' }), 415, 'unsupported_media_type');
      await assertNothingChanged(svc.db, before);
    });

    it('V4.1.1: when a form-encoded body is labelled application/json, then 400 validation_failed and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertProblem(await rawInject(svc.app, 'POST', '/v1/users', 'username=ada&password=x'), 400, 'validation_failed');
      await assertNothingChanged(svc.db, before);
    });

    it('V4.1.1: when the Content-Type only starts like JSON (application/jsonx), then 415 unsupported_media_type and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertProblem(await rawInject(svc.app, 'POST', '/v1/users', JSON.stringify(registerPayload()), { 'content-type': 'application/jsonx' }), 415, 'unsupported_media_type');
      await assertNothingChanged(svc.db, before);
    });

    it('V4.1.1: when the Content-Type hides application/json in a parameter (text/plain; application/json), then 415 unsupported_media_type and nothing is written', async () => {
      const before = await dbState(svc.db);
      const res = await rawInject(svc.app, 'POST', '/v1/users', JSON.stringify(registerPayload()), { 'content-type': 'text/plain; application/json' });
      assertProblem(res, 415, 'unsupported_media_type');
      await assertNothingChanged(svc.db, before);
    });

    it('V15.3.7: when a query parameter is repeated (before=5&before=1 on the events list), then 400 validation_failed and nothing changes', async () => {
      const before = await dbState(svc.db);
      const res = await svc.app.inject({ method: 'GET', url: '/v1/users/me/events?before=5&before=1', headers: bearer(session.accessToken) });
      assertValidationFailed(res, 'before');
      await assertNothingChanged(svc.db, before);
    });

    it('V15.3.7: when a JSON body repeats a key (parameter pollution: a valid then an invalid username), then the last one is judged, 400 validation_failed, nothing written', async () => {
      const before = await dbState(svc.db);
      const p = registerPayload();
      const body = `{"username":"${p.username}","username":"bad name!","name":"N","dob":"1990-12-10","email":"${p.email}","password":"${GOOD_PASSWORD}"}`;
      assertValidationFailed(await rawInject(svc.app, 'POST', '/v1/users', body), 'username');
      await assertNothingChanged(svc.db, before);
    });
  });

  describe('sizes and HTTP framing', () => {
    it('V2.2.1: when a register body is over 16 KiB, then 413 payload_too_large and nothing is written', async () => {
      const before = await dbState(svc.db);
      const res = await svc.app.inject({ method: 'POST', url: '/v1/users', payload: registerPayload({ name: 'x'.repeat(17 * 1024) }) });
      assertProblem(res, 413, 'payload_too_large');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when a PATCH body is over 16 KiB, then 413 payload_too_large and the profile is unchanged', async () => {
      const before = await dbState(svc.db);
      assertProblem(await patchMe({ name: 'y'.repeat(20 * 1024) }), 413, 'payload_too_large');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when a login body is over 16 KiB of multi-byte characters (under 16 Ki characters), then 413 payload_too_large and no session', async () => {
      const before = await dbState(svc.db);
      // 6000 characters of 3 bytes each: 18000 bytes.
      assertProblem(await loginWith({ username: user.username, password: '€'.repeat(6000) }), 413, 'payload_too_large');
      await assertNothingChanged(svc.db, before);
    });

    it('V4.2.5: when a request carries a 20 KB header value, then Node answers 431 before the app and nothing is written', async () => {
      const base = await listening();
      const before = await dbState(svc.db);
      const body = JSON.stringify(registerPayload());
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpRequest(
          { host: base.hostname, port: base.port, method: 'POST', path: '/v1/users', headers: { 'content-type': 'application/json', 'x-padding': 'a'.repeat(20_000) } },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
      assert.equal(status, 431);
      await assertNothingChanged(svc.db, before);
    });

    it('V4.2.1: when a request carries both Content-Length and Transfer-Encoding (request smuggling), then it is refused with 400 and nothing is written', async () => {
      const base = await listening();
      const before = await dbState(svc.db);
      const smuggled = JSON.stringify(registerPayload());
      const chunked = `${Buffer.byteLength(smuggled).toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`;
      const raw =
        `POST /v1/users HTTP/1.1\r\nHost: ${base.host}\r\nContent-Type: application/json\r\n` +
        `Content-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked}`;
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(base.port), base.hostname, () => socket.end(raw));
        let data = '';
        socket.on('data', (d) => (data += d.toString('latin1')));
        socket.on('end', () => resolve(data));
        socket.on('error', reject);
      });
      assert.match(answer.split('\r\n')[0] ?? '', /^HTTP\/1\.1 400 /, answer.slice(0, 200));
      assert.doesNotMatch(answer, /HTTP\/1\.1 201/, 'no request got through');
      await assertNothingChanged(svc.db, before);
    });
  });

  describe('mass assignment (V15.3.3, V8.2.3)', () => {
    for (const [field, value] of [
      ['user_id', '1'],
      ['id', '1'],
      ['created_at', '2000-01-01T00:00:00.000Z'],
      ['is_admin', true],
      ['hashed_password', '$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA'],
      ['is_current', false],
    ] as const) {
      it(`V15.3.3: when a register body also sets ${field}, then 400 validation_failed naming ${field} and nothing is written`, async () => {
        const before = await dbState(svc.db);
        assertValidationFailed(await register(registerPayload({ [field]: value })), field);
        await assertNothingChanged(svc.db, before);
      });
    }

    for (const [field, value] of [
      ['user_id', '1'],
      ['id', '1'],
      ['created_at', '2000-01-01T00:00:00.000Z'],
      ['hashed_password', '$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA'],
      ['is_current', false],
      ['updated_at', '2000-01-01T00:00:00.000Z'],
      ['is_admin', true],
    ] as const) {
      it(`V15.3.3: when a PATCH body sets a permitted field together with ${field}, then 400 validation_failed naming ${field} and the profile is unchanged`, async () => {
        const before = await dbState(svc.db);
        assertValidationFailed(await patchMe({ name: 'Harmless Name', [field]: value }), field);
        await assertNothingChanged(svc.db, before);
      });
    }

    it('V15.3.3: when a login body adds user_id to pick another account, then 400 validation_failed and no session', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await loginWith({ username: user.username, password: 'wrong password here', user_id: '1' }), 'user_id');
      await assertNothingChanged(svc.db, before);
    });

    it("V15.3.3: when a password-change body adds another user's user_id, then 400 validation_failed and no credentials change", async () => {
      const other = await registerUser(svc.app);
      const before = await dbState(svc.db);
      assertValidationFailed(await changePassword({ current_password: user.password, new_password: 'amber quartz ledger 8642', user_id: other.id }), 'user_id');
      await assertNothingChanged(svc.db, before);
    });
  });

  describe('prototype pollution (V15.3.6)', () => {
    it('V15.3.6: when a register body carries __proto__ with is_admin, then 400 validation_failed, Object.prototype is clean and nothing is written', async () => {
      const before = await dbState(svc.db);
      const valid = JSON.stringify(registerPayload());
      const res = await rawInject(svc.app, 'POST', '/v1/users', `{"__proto__":{"is_admin":true,"polluted":"yes"},${valid.slice(1)}`);
      assertProblem(res, 400, 'validation_failed');
      assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is not polluted');
      assert.equal(({} as Record<string, unknown>).is_admin, undefined, 'Object.prototype is not polluted');
      await assertNothingChanged(svc.db, before);
    });

    it('V15.3.6: when a register body carries constructor.prototype, then 400 validation_failed, Object.prototype is clean and nothing is written', async () => {
      const before = await dbState(svc.db);
      const valid = JSON.stringify(registerPayload());
      const res = await rawInject(svc.app, 'POST', '/v1/users', `{"constructor":{"prototype":{"polluted":"yes"}},${valid.slice(1)}`);
      assertProblem(res, 400, 'validation_failed');
      assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is not polluted');
      await assertNothingChanged(svc.db, before);
    });

    it('V15.3.6: when a PATCH body nests __proto__ inside a field value, then 400 validation_failed, Object.prototype is clean and the profile is unchanged', async () => {
      const before = await dbState(svc.db);
      const res = await rawInject(svc.app, 'PATCH', '/v1/users/me', '{"name":{"__proto__":{"polluted":"yes"}}}', bearer(session.accessToken));
      assertProblem(res, 400, 'validation_failed');
      assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is not polluted');
      await assertNothingChanged(svc.db, before);
    });

    it('V15.3.6: when a login body carries __proto__ with a username, then 400 validation_failed and no session', async () => {
      const before = await dbState(svc.db);
      const res = await rawInject(svc.app, 'POST', '/v1/sessions', `{"__proto__":{"username":"${user.username}"},"password":"${user.password}"}`, {});
      assertProblem(res, 400, 'validation_failed');
      await assertNothingChanged(svc.db, before);
    });
  });

  describe('type confusion (V15.3.5)', () => {
    it('V15.3.5: when register sends username as a number, then 400 validation_failed naming username and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ username: 12345 })), 'username');
      await assertNothingChanged(svc.db, before);
    });

    it('V15.3.5: when register sends password as an array of strings, then 400 validation_failed naming password and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ password: [GOOD_PASSWORD] })), 'password');
      await assertNothingChanged(svc.db, before);
    });

    it('V15.3.5: when register sends dob as a number (a timestamp), then 400 validation_failed naming dob and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ dob: 660787200000 })), 'dob');
      await assertNothingChanged(svc.db, before);
    });

    it('V15.3.5: when register sends email as an operator object ({"$ne": null}), then 400 validation_failed naming email and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ email: { $ne: null } })), 'email');
      await assertNothingChanged(svc.db, before);
    });

    it('V15.3.5: when register sends name as a boolean, then 400 validation_failed naming name and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ name: true })), 'name');
      await assertNothingChanged(svc.db, before);
    });

    it('V15.3.5: when login sends username as an array of candidate names, then 400 validation_failed and no session', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await loginWith({ username: ['nobody', user.username], password: user.password }), 'username');
      await assertNothingChanged(svc.db, before);
    });

    it('V15.3.5: when login sends password as an operator object ({"$gt": ""}), then 400 validation_failed and no session', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await loginWith({ username: user.username, password: { $gt: '' } }), 'password');
      await assertNothingChanged(svc.db, before);
    });

    it('V15.3.5: when login sends password as the boolean true, then 400 validation_failed and no session', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await loginWith({ username: user.username, password: true }), 'password');
      await assertNothingChanged(svc.db, before);
    });

    it('V15.3.5: when login sends username null next to an email, then 400 validation_failed and no session', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await loginWith({ username: null, email: user.email, password: user.password }), 'username');
      await assertNothingChanged(svc.db, before);
    });

    it('V15.3.5: when refresh sends refresh_token as a number, then 400 validation_failed and no session rotates', async () => {
      const before = await dbState(svc.db);
      const res = await svc.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: Number(session.sessionId) } });
      assertValidationFailed(res, 'refresh_token');
      await assertNothingChanged(svc.db, before);
    });

    it('V15.3.5: when refresh sends refresh_token as an array holding the genuine token, then 400 validation_failed and the session does not rotate', async () => {
      const before = await dbState(svc.db);
      const res = await svc.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: [session.refreshToken] } });
      assertValidationFailed(res, 'refresh_token');
      assert.equal((await sessionRow(svc.db, session.sessionId)).refresh_generation, 0, 'not rotated');
      await assertNothingChanged(svc.db, before);
    });

    it('V15.3.5: when a password change sends current_password as the boolean true, then 400 validation_failed and the credentials are unchanged', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await changePassword({ current_password: true, new_password: 'amber quartz ledger 8642' }), 'current_password');
      await assertNothingChanged(svc.db, before);
    });

    it('V15.3.5: when a password change sends new_password as a number, then 400 validation_failed and the credentials are unchanged', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await changePassword({ current_password: user.password, new_password: 1234567890123 }), 'new_password');
      await assertNothingChanged(svc.db, before);
    });

    it('V15.3.5: when a PATCH sends dob as an array, then 400 validation_failed naming dob and the profile is unchanged', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await patchMe({ dob: ['1990-12-10'] }), 'dob');
      await assertNothingChanged(svc.db, before);
    });
  });

  it('control: the victim account used above still logs in with its own password, and its session still works', async () => {
    const res = await svc.app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(session.accessToken) });
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().username, user.username);
    assert.equal(res.json().name, 'Test User', 'no PATCH above changed the profile');
    await login(svc.app, user, {});
  });
});
