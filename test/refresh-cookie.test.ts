import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { bearer, problem, registerUser, startTestService, type RegisteredUser, type TestService } from './helpers/app.js';

/** Cookie mode of sign-in, refresh and logout, as the web app uses it. */

const COOKIE_MODE = { 'x-token-delivery': 'cookie' };

function refreshCookie(res: LightMyRequestResponse, name = 'ums_refresh') {
  return res.cookies.find((c) => c.name === name);
}

async function cookieLogin(svc: TestService, user: RegisteredUser) {
  const res = await svc.app.inject({ method: 'POST', url: '/v1/sessions', headers: COOKIE_MODE, payload: { username: user.username, password: user.password } });
  assert.equal(res.statusCode, 201);
  const cookie = refreshCookie(res);
  assert.ok(cookie, 'the refresh token comes in a cookie');
  return { res, cookie, accessToken: res.json().access_token as string, sessionId: res.json().session.id as string };
}

const cookieRefresh = (svc: TestService, value: string | undefined, headers: Record<string, string> = COOKIE_MODE) =>
  svc.app.inject({ method: 'POST', url: '/v1/sessions/refresh', headers, cookies: value === undefined ? {} : { ums_refresh: value } });

describe('refresh token in a cookie (browser apps)', () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService();
  });
  after(() => svc.close());

  it('when a client signs in in cookie mode, then the body has no refresh token and the cookie is HttpOnly, SameSite=Strict, scoped to /v1/sessions, not Secure over http', async () => {
    const user = await registerUser(svc.app);
    const { res, cookie } = await cookieLogin(svc, user);
    const body = res.json();
    assert.equal(body.refresh_token, undefined);
    assert.equal(typeof body.access_token, 'string');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.equal(cookie.path, '/v1/sessions');
    assert.equal(cookie.secure, undefined);
    const untilExpiry = (Date.parse(body.session.expires_at) - Date.now()) / 1000;
    assert.ok(Math.abs(cookie.maxAge! - untilExpiry) <= 2, `Max-Age ${cookie.maxAge} ends with the session (${untilExpiry} s)`);
    assert.match(cookie.value, /^\d+\./, 'the cookie holds the refresh token');
    assert.ok(!res.body.includes(cookie.value), 'the refresh token is not in the body');
  });

  it('when a client signs in without the header, then no cookie is set and the body has the refresh token', async () => {
    const user = await registerUser(svc.app);
    const res = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: user.password } });
    assert.equal(res.statusCode, 201);
    assert.equal(refreshCookie(res), undefined);
    assert.equal(typeof res.json().refresh_token, 'string');
  });

  it('when the cookie is traded with the header and no body, then 200, a rotated cookie, a working access token; replaying the old cookie after its successor ends the session', async () => {
    const user = await registerUser(svc.app);
    const first = await cookieLogin(svc, user);
    const res = await cookieRefresh(svc, first.cookie.value);
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().refresh_token, undefined);
    const next = refreshCookie(res);
    assert.ok(next);
    assert.notEqual(next.value, first.cookie.value);
    const me = await svc.app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(res.json().access_token) });
    assert.equal(me.statusCode, 200);

    assert.equal((await cookieRefresh(svc, next.value)).statusCode, 200, 'the successor is used');
    const replay = await cookieRefresh(svc, first.cookie.value);
    assert.equal(replay.statusCode, 401);
    assert.equal(problem(replay).code, 'invalid_refresh_token');
    const cleared = refreshCookie(replay);
    assert.ok(cleared, 'a refused cookie is dropped');
    assert.equal(cleared.maxAge, 0);
    const row = await svc.db.selectFrom('user_sessions').select(['is_active', 'end_reason']).where('session_id', '=', first.sessionId).executeTakeFirstOrThrow();
    assert.deepEqual(row, { is_active: false, end_reason: 'refresh_reuse' });
  });

  it('when the cookie arrives without the header (a cross-site form post), then it is not used: 400 and the session is untouched', async () => {
    const user = await registerUser(svc.app);
    const { cookie, sessionId } = await cookieLogin(svc, user);
    const res = await cookieRefresh(svc, cookie.value, {});
    assert.equal(res.statusCode, 400);
    assert.equal(problem(res).code, 'validation_failed');
    const row = await svc.db.selectFrom('user_sessions').select(['is_active', 'refresh_generation']).where('session_id', '=', sessionId).executeTakeFirstOrThrow();
    assert.deepEqual(row, { is_active: true, refresh_generation: 0 });
    assert.equal((await cookieRefresh(svc, cookie.value)).statusCode, 200, 'the cookie still works with the header');
  });

  it('when cookie mode is asked with no cookie, then 401 invalid_refresh_token; a refresh token in the body beside it is not used', async () => {
    const user = await registerUser(svc.app);
    const plain = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: user.password } });
    const res = await svc.app.inject({ method: 'POST', url: '/v1/sessions/refresh', headers: COOKIE_MODE, payload: { refresh_token: plain.json().refresh_token } });
    assert.equal(res.statusCode, 401);
    assert.equal(problem(res).code, 'invalid_refresh_token');
  });

  it('when a cookie-mode client logs out, then 204, the cookie is dropped and can no longer refresh', async () => {
    const user = await registerUser(svc.app);
    const { cookie, accessToken } = await cookieLogin(svc, user);
    const res = await svc.app.inject({ method: 'DELETE', url: '/v1/sessions/current', headers: bearer(accessToken), cookies: { ums_refresh: cookie.value } });
    assert.equal(res.statusCode, 204);
    const cleared = refreshCookie(res);
    assert.ok(cleared);
    assert.equal(cleared.value, '');
    assert.equal(cleared.maxAge, 0);
    assert.equal(cleared.path, '/v1/sessions');
    assert.equal((await cookieRefresh(svc, cookie.value)).statusCode, 401);
  });

  it('when the service is reached over https, then the cookie is Secure and named with the __Secure- prefix, and refreshes under that name', async () => {
    const secure = await startTestService({}, { PUBLIC_URL: 'https://id.example.com' });
    try {
      const user = await registerUser(secure.app);
      const res = await secure.app.inject({ method: 'POST', url: '/v1/sessions', headers: COOKIE_MODE, payload: { username: user.username, password: user.password } });
      assert.equal(refreshCookie(res), undefined);
      const cookie = refreshCookie(res, '__Secure-ums_refresh');
      assert.ok(cookie);
      assert.equal(cookie.secure, true);
      const again = await secure.app.inject({ method: 'POST', url: '/v1/sessions/refresh', headers: COOKIE_MODE, cookies: { '__Secure-ums_refresh': cookie.value } });
      assert.equal(again.statusCode, 200);
      assert.equal(refreshCookie(again, '__Secure-ums_refresh')?.secure, true);
    } finally {
      await secure.close();
    }
  });
});
