import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { SignJWT, decodeJwt, decodeProtectedHeader, generateKeyPair, importJWK, type JWK } from 'jose';
import { openPrivateJwk } from '../src/auth/keys.js';
import { loadDataCipher } from '../src/crypto/data-encryption.js';
import {
  GOOD_PASSWORD,
  JSON_TYPE,
  PROBLEM_TYPE,
  bearer,
  login,
  problem,
  registerUser,
  serverUrl,
  startTestService,
  tableCounts,
  uniqueName,
  type LoggedIn,
  type RegisteredUser,
  type TestService,
} from './helpers/app.js';

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const TOKEN_PAIR_KEYS = ['access_token', 'expires_in', 'refresh_token', 'session', 'token_type', 'user'];
const SESSION_KEYS = ['created_at', 'current', 'expires_at', 'id', 'ip', 'is_active', 'last_used_at', 'user_agent'];
const USER_KEYS = ['created_at', 'dob', 'email', 'email_verified', 'id', 'name', 'updated_at', 'username'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A 401 invalid_token as the contract has it: problem+json and a Bearer challenge. */
function assertInvalidToken(res: LightMyRequestResponse, label: string): void {
  assert.equal(res.statusCode, 401, `${label}: ${res.body}`);
  assert.equal(res.headers['content-type'], PROBLEM_TYPE, label);
  assert.equal(problem(res).code, 'invalid_token', label);
  const challenge = res.headers['www-authenticate'];
  assert.equal(typeof challenge, 'string', `${label}: WWW-Authenticate is sent`);
  assert.match(String(challenge), /^Bearer\b/, label);
}

function assertInvalidRefreshToken(res: LightMyRequestResponse, label: string): void {
  assert.equal(res.statusCode, 401, `${label}: ${res.body}`);
  assert.equal(problem(res).code, 'invalid_refresh_token', label);
}

function base64urlJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

describe('sessions', () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService();
  });
  after(() => svc.close());

  const me = (token: string) => svc.app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(token) });
  const refresh = (refreshToken: string) => svc.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: refreshToken } });
  const sessionRow = (sessionId: string) => svc.db.selectFrom('user_sessions').selectAll().where('session_id', '=', sessionId).executeTakeFirstOrThrow();

  /** Signs a token with the service's own current private key, read from the signing_keys table. */
  async function signWithServiceKey(claims: { sub: string; sid: string; iat: number; exp: number }): Promise<string> {
    const row = await svc.db.selectFrom('signing_keys').selectAll().where('retired_at', 'is', null).orderBy('created_at', 'desc').executeTakeFirstOrThrow();
    const key = await importJWK(JSON.parse(openPrivateJwk(await loadDataCipher(svc.db, []), row)) as JWK, 'EdDSA');
    return new SignJWT({ sid: claims.sid, client_id: 'user-management' })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: row.kid })
      .setIssuer(svc.config.jwtIssuer)
      .setAudience(svc.config.jwtAudience)
      .setSubject(claims.sub)
      .setIssuedAt(claims.iat)
      .setExpirationTime(claims.exp)
      .setJti(randomBytes(16).toString('hex'))
      .sign(key);
  }

  describe('login', () => {
    it('when a user logs in by username in another case, then 201 with the token pair, the session and the user, no-store, and an active session row', async () => {
      const user = await registerUser(svc.app, { username: uniqueName('MixedCase') });
      const res = await svc.app.inject({
        method: 'POST',
        url: '/v1/sessions',
        headers: { 'user-agent': 'sessions-test/1.0 (login by username)' },
        payload: { username: user.username.toUpperCase(), password: user.password },
      });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.headers['content-type'], JSON_TYPE);
      assert.equal(res.headers['cache-control'], 'no-store');
      const body = res.json();
      assert.deepEqual(Object.keys(body).sort(), TOKEN_PAIR_KEYS);
      assert.equal(typeof body.access_token, 'string');
      assert.equal(body.access_token.split('.').length, 3, 'a compact JWS');
      assert.equal(body.token_type, 'Bearer');
      assert.equal(body.expires_in, 900);
      assert.equal(typeof body.refresh_token, 'string');
      assert.ok(body.refresh_token.length >= 32, 'the refresh token carries enough entropy');
      assert.deepEqual(Object.keys(body.session).sort(), ['created_at', 'expires_at', 'id']);
      assert.match(body.session.id, /^[0-9]+$/);
      assert.match(body.session.created_at, TIMESTAMP);
      assert.match(body.session.expires_at, TIMESTAMP);
      const lifetimeMs = Date.parse(body.session.expires_at) - Date.parse(body.session.created_at);
      assert.ok(Math.abs(lifetimeMs - svc.config.sessionTtlS * 1000) < 5000, `expires_at is SESSION_TTL_S after created_at (${lifetimeMs} ms)`);
      assert.deepEqual(Object.keys(body.user).sort(), USER_KEYS);
      assert.equal(body.user.id, user.id);
      assert.equal(body.user.username, user.username, 'kept as registered, not as typed at login');
      assert.doesNotMatch(res.body, /argon2|hashed_password/i);

      const profile = await me(body.access_token);
      assert.equal(profile.statusCode, 200);
      assert.deepEqual(body.user, profile.json(), 'the user object is the profile');

      const row = await sessionRow(body.session.id);
      assert.equal(String(row.user_id), user.id);
      assert.equal(row.is_active, true);
      assert.equal(row.user_agent, 'sessions-test/1.0 (login by username)');
      assert.equal(row.ip, '127.0.0.1');
      assert.equal(row.created_at.toISOString(), body.session.created_at);
      assert.equal(row.expires_at.toISOString(), body.session.expires_at);
    });

    it('when a user logs in by email in another case, then 201 and a session of that user', async () => {
      const user = await registerUser(svc.app);
      const res = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { email: user.email.toUpperCase(), password: user.password } });
      assert.equal(res.statusCode, 201, res.body);
      const body = res.json();
      assert.equal(body.user.id, user.id);
      assert.equal(body.user.email, user.email);
      const row = await sessionRow(body.session.id);
      assert.equal(String(row.user_id), user.id);
      assert.equal(row.is_active, true);
      assert.equal((await me(body.access_token)).statusCode, 200);
    });

    it('when the password is wrong or the user unknown, then 401 invalid_credentials with identical bodies and no session row', async () => {
      const user = await registerUser(svc.app);
      const countsBefore = await tableCounts(svc.db);
      const attempts = [
        { username: user.username, password: 'wrong password entirely 1' },
        { email: user.email, password: 'wrong password entirely 2' },
        { username: uniqueName('nobody'), password: user.password },
        { email: `${uniqueName('nobody')}@example.com`, password: user.password },
      ];
      const bodies: unknown[] = [];
      for (const payload of attempts) {
        const res = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload });
        assert.equal(res.statusCode, 401, JSON.stringify(payload));
        assert.equal(problem(res).code, 'invalid_credentials', JSON.stringify(payload));
        assert.equal(res.headers['www-authenticate'], undefined, 'a login failure is not a bearer challenge');
        bodies.push(res.json());
      }
      for (const body of bodies.slice(1)) assert.deepEqual(body, bodies[0], 'wrong password and unknown user answer alike');
      assert.deepEqual(await tableCounts(svc.db), countsBefore);
      const rows = await svc.db.selectFrom('user_sessions').select('session_id').where('user_id', '=', user.id).execute();
      assert.equal(rows.length, 0);
    });

    it('when both username and email, or neither, are given, then 400 validation_failed and no session row', async () => {
      const user = await registerUser(svc.app);
      const countsBefore = await tableCounts(svc.db);
      const both = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, email: user.email, password: user.password } });
      assert.equal(both.statusCode, 400, both.body);
      const bothBody = problem(both);
      assert.equal(bothBody.code, 'validation_failed');
      assert.ok((bothBody.errors ?? []).length > 0, 'names a field');
      const neither = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { password: user.password } });
      assert.equal(neither.statusCode, 400, neither.body);
      const neitherBody = problem(neither);
      assert.equal(neitherBody.code, 'validation_failed');
      assert.ok((neitherBody.errors ?? []).length > 0, 'names a field');
      assert.deepEqual(await tableCounts(svc.db), countsBefore);
    });
  });

  describe('access tokens', () => {
    it('when a token is issued, then it is an EdDSA at+jwt whose kid is in the JWKS, with iss, aud, sub, sid, client_id, iat, exp = iat + 900 and jti', async () => {
      const user = await registerUser(svc.app);
      const startedS = Math.floor(Date.now() / 1000);
      const first = await login(svc.app, user);
      const second = await login(svc.app, user);

      const header = decodeProtectedHeader(first.accessToken);
      assert.equal(header.alg, 'EdDSA');
      assert.equal(header.typ, 'at+jwt');
      assert.equal(typeof header.kid, 'string');
      assert.ok(header.kid!.length > 0);

      const jwks = await svc.app.inject({ method: 'GET', url: '/.well-known/jwks.json' });
      assert.equal(jwks.statusCode, 200);
      const keys: Array<Record<string, unknown>> = jwks.json().keys;
      const published = keys.find((k) => k.kid === header.kid);
      assert.ok(published, `kid ${header.kid} is in the JWKS`);
      assert.equal(published.kty, 'OKP');
      assert.equal(published.crv, 'Ed25519');
      for (const k of keys) assert.equal(k.d, undefined, 'the JWKS holds public keys only');

      const claims = decodeJwt(first.accessToken);
      assert.equal(claims.iss, svc.config.jwtIssuer);
      const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
      assert.ok(aud.includes(svc.config.jwtAudience), `aud ${JSON.stringify(claims.aud)}`);
      assert.equal(claims.sub, user.id);
      assert.equal(claims.sid, first.sessionId);
      assert.equal(typeof claims.client_id, 'string');
      assert.ok((claims.client_id as string).length > 0);
      assert.equal(typeof claims.iat, 'number');
      assert.ok(claims.iat! >= startedS - 1 && claims.iat! <= Math.ceil(Date.now() / 1000) + 1, 'iat is now');
      assert.equal(claims.exp, claims.iat! + 900);
      assert.equal(typeof claims.jti, 'string');
      assert.ok(claims.jti!.length > 0);
      assert.deepEqual(claims.amr, ['pwd'], 'a password sign-in says so (RFC 8176 amr)');

      const other = decodeJwt(second.accessToken);
      assert.equal(other.sid, second.sessionId);
      assert.notEqual(other.sid, claims.sid);
      assert.notEqual(other.jti, claims.jti, 'each token has its own jti');
    });

    describe('with ACCESS_TOKEN_TTL_S=120', () => {
      let short: TestService;
      before(async () => {
        short = await startTestService({}, { ACCESS_TOKEN_TTL_S: '120' });
      });
      after(() => short.close());

      it('when a token is issued at login or on refresh, then expires_in is 120 and its exp is iat + 120', async () => {
        const user = await registerUser(short.app);
        const session = await login(short.app, user);
        const refreshed = await short.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: session.refreshToken } });
        assert.equal(refreshed.statusCode, 200, refreshed.body);
        for (const [what, body] of [['login', session.body], ['refresh', refreshed.json()]] as const) {
          assert.equal(body.expires_in, 120, what);
          const claims = decodeJwt(body.access_token);
          assert.equal(claims.exp! - claims.iat!, 120, what);
        }
      });
    });
  });

  describe('protected routes', () => {
    let user: RegisteredUser;
    let session: LoggedIn;
    before(async () => {
      user = await registerUser(svc.app);
      session = await login(svc.app, user);
    });

    it('when the token is missing or the Authorization header malformed, then 401 invalid_token with a Bearer challenge', async () => {
      assertInvalidToken(await svc.app.inject({ method: 'GET', url: '/v1/users/me' }), 'no header');
      assertInvalidToken(await svc.app.inject({ method: 'GET', url: '/v1/sessions' }), 'no header on /v1/sessions');
      const malformed = [
        'Bearer',
        'Bearer ',
        `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}`,
        session.accessToken,
        `Token ${session.accessToken}`,
        `Bearer ${session.accessToken} extra`,
        `Bearer ${session.accessToken}, Bearer ${session.accessToken}`,
      ];
      for (const authorization of malformed) {
        const res = await svc.app.inject({ method: 'GET', url: '/v1/users/me', headers: { authorization } });
        assertInvalidToken(res, `Authorization: ${authorization.slice(0, 30)}`);
      }
      // The genuine token still works (so the refusals above were about the header).
      assert.equal((await me(session.accessToken)).statusCode, 200);
    });

    it('when the token is garbage or has one payload character changed, then 401 invalid_token', async () => {
      for (const token of ['garbage', 'abc.def.ghi', 'eyJhbGciOiJFZERTQSJ9.e30.AAAA', `${session.accessToken}x`]) {
        assertInvalidToken(await me(token), `token ${token.slice(0, 30)}`);
      }
      const [h, p, s] = session.accessToken.split('.') as [string, string, string];
      const i = Math.floor(p.length / 2);
      const changed = p[i] === 'A' ? 'B' : 'A';
      const tampered = `${h}.${p.slice(0, i)}${changed}${p.slice(i + 1)}.${s}`;
      assert.notEqual(tampered, session.accessToken);
      assertInvalidToken(await me(tampered), 'payload changed');
      assert.equal((await me(session.accessToken)).statusCode, 200, 'the untampered token works');
    });

    it('when a token is signed by a foreign key with the service kid, or with alg none, then 401 invalid_token', async () => {
      const realHeader = decodeProtectedHeader(session.accessToken);
      const realClaims = decodeJwt(session.accessToken);
      const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
      const forged = await new SignJWT({ ...realClaims })
        .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: realHeader.kid! })
        .sign(privateKey);
      assert.deepEqual(decodeJwt(forged), realClaims);
      assertInvalidToken(await me(forged), 'foreign key, same kid');

      const unsigned = `${base64urlJson({ alg: 'none', typ: 'at+jwt', kid: realHeader.kid })}.${base64urlJson(realClaims)}.`;
      assertInvalidToken(await me(unsigned), 'alg none');
      const unsignedWithOldSig = `${base64urlJson({ alg: 'none', typ: 'at+jwt', kid: realHeader.kid })}.${base64urlJson(realClaims)}.${session.accessToken.split('.')[2]}`;
      assertInvalidToken(await me(unsignedWithOldSig), 'alg none with a signature');
    });

    it('when a token signed with the service key has expired, then 401 invalid_token (while the same token unexpired works)', async () => {
      const now = Math.floor(Date.now() / 1000);
      const valid = await signWithServiceKey({ sub: user.id, sid: session.sessionId, iat: now, exp: now + 600 });
      assert.equal((await me(valid)).statusCode, 200, 'a token crafted this way is accepted while it is fresh');
      const expired = await signWithServiceKey({ sub: user.id, sid: session.sessionId, iat: now - 1200, exp: now - 300 });
      assertInvalidToken(await me(expired), 'expired');
      assertInvalidToken(await svc.app.inject({ method: 'GET', url: '/v1/sessions', headers: bearer(expired) }), 'expired on /v1/sessions');
    });

    it("when a correctly signed token names another user's session, then 401 invalid_token", async () => {
      const other = await registerUser(svc.app);
      const otherSession = await login(svc.app, other);
      const now = Math.floor(Date.now() / 1000);
      const mixed = await signWithServiceKey({ sub: user.id, sid: otherSession.sessionId, iat: now, exp: now + 600 });
      assertInvalidToken(await me(mixed), "sub of one user, sid of another's session");
      const reversed = await signWithServiceKey({ sub: other.id, sid: session.sessionId, iat: now, exp: now + 600 });
      assertInvalidToken(await me(reversed), 'and the other way round');
      const nonexistent = await signWithServiceKey({ sub: user.id, sid: '999999999', iat: now, exp: now + 600 });
      assertInvalidToken(await me(nonexistent), 'a session that does not exist');
      assert.equal((await sessionRow(otherSession.sessionId)).is_active, true);
      assert.equal((await sessionRow(session.sessionId)).is_active, true);
    });
  });

  describe('logout', () => {
    it('when a user logs out, then 204, the row is inactive, the access token and the refresh token are refused, and other sessions go on', async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      const otherSession = await login(svc.app, user);
      const res = await svc.app.inject({ method: 'DELETE', url: '/v1/sessions/current', headers: bearer(session.accessToken) });
      assert.equal(res.statusCode, 204, res.body);
      assert.equal(res.body, '');
      const row = await sessionRow(session.sessionId);
      assert.equal(row.is_active, false);

      assertInvalidToken(await me(session.accessToken), 'access token after logout');
      assertInvalidToken(await svc.app.inject({ method: 'DELETE', url: '/v1/sessions/current', headers: bearer(session.accessToken) }), 'logout again');
      assertInvalidRefreshToken(await refresh(session.refreshToken), 'refresh token after logout');
      assert.equal((await sessionRow(session.sessionId)).is_active, false);

      assert.equal((await me(otherSession.accessToken)).statusCode, 200, 'the user\'s other session is untouched');
      assert.equal((await sessionRow(otherSession.sessionId)).is_active, true);
    });
  });

  describe('listing sessions', () => {
    it('when a user lists sessions, then only active ones, newest first, current only for the caller\'s, with the contract\'s fields', async () => {
      const user = await registerUser(svc.app);
      const stranger = await registerUser(svc.app);
      const first = await login(svc.app, user, { 'user-agent': 'agent-one' });
      await sleep(15);
      const second = await login(svc.app, user, { 'user-agent': 'agent-two' });
      await sleep(15);
      const third = await login(svc.app, user, { 'user-agent': 'agent-three' });
      await sleep(15);
      const fourth = await login(svc.app, user, { 'user-agent': 'agent-four' });
      await login(svc.app, stranger);
      assert.equal((await svc.app.inject({ method: 'DELETE', url: '/v1/sessions/current', headers: bearer(second.accessToken) })).statusCode, 204);

      const res = await svc.app.inject({ method: 'GET', url: '/v1/sessions', headers: bearer(third.accessToken) });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.headers['content-type'], JSON_TYPE);
      assert.equal(res.headers['cache-control'], 'no-store');
      const body = res.json();
      assert.deepEqual(Object.keys(body), ['sessions']);
      const sessions: Array<Record<string, any>> = body.sessions;
      assert.deepEqual(
        sessions.map((s) => s.id),
        [fourth.sessionId, third.sessionId, first.sessionId],
        'active sessions only, newest first, none of another user',
      );
      for (const s of sessions) {
        assert.deepEqual(Object.keys(s).sort(), SESSION_KEYS);
        assert.match(s.id, /^[0-9]+$/);
        assert.match(s.created_at, TIMESTAMP);
        assert.match(s.last_used_at, TIMESTAMP);
        assert.match(s.expires_at, TIMESTAMP);
        assert.equal(s.is_active, true);
        assert.equal(s.ip, '127.0.0.1');
        assert.equal(s.current, s.id === third.sessionId, `current of ${s.id}`);
      }
      assert.deepEqual(
        sessions.map((s) => s.user_agent),
        ['agent-four', 'agent-three', 'agent-one'],
      );
      const row = await sessionRow(first.sessionId);
      const listedFirst = sessions.find((s) => s.id === first.sessionId)!;
      assert.equal(listedFirst.created_at, row.created_at.toISOString());
      assert.equal(listedFirst.expires_at, row.expires_at.toISOString());
      assert.equal(listedFirst.created_at, first.body.session.created_at);

      const fromFirst = (await svc.app.inject({ method: 'GET', url: '/v1/sessions', headers: bearer(first.accessToken) })).json();
      assert.deepEqual(
        fromFirst.sessions.filter((s: { current: boolean }) => s.current).map((s: { id: string }) => s.id),
        [first.sessionId],
        'current follows the token that asks',
      );
    });
  });

  describe('revoking one session', () => {
    let user: RegisteredUser;
    let caller: LoggedIn;
    let victim: LoggedIn;
    before(async () => {
      user = await registerUser(svc.app);
      caller = await login(svc.app, user);
      victim = await login(svc.app, user);
    });

    it("when a user revokes another of their own sessions, then 204, that session's token is refused and the caller's still works", async () => {
      const res = await svc.app.inject({ method: 'DELETE', url: `/v1/sessions/${victim.sessionId}`, headers: bearer(caller.accessToken) });
      assert.equal(res.statusCode, 204, res.body);
      assert.equal(res.body, '');
      assert.equal((await sessionRow(victim.sessionId)).is_active, false);
      assertInvalidToken(await me(victim.accessToken), 'revoked session');
      assertInvalidRefreshToken(await refresh(victim.refreshToken), 'refresh of the revoked session');
      assert.equal((await me(caller.accessToken)).statusCode, 200);
      assert.equal((await sessionRow(caller.sessionId)).is_active, true);
    });

    it('when a user revokes an own session that has already ended, then 204 again', async () => {
      const res = await svc.app.inject({ method: 'DELETE', url: `/v1/sessions/${victim.sessionId}`, headers: bearer(caller.accessToken) });
      assert.equal(res.statusCode, 204, res.body);
      assert.equal((await sessionRow(victim.sessionId)).is_active, false);
      assert.equal((await me(caller.accessToken)).statusCode, 200);
    });

    it("when a user names another user's session, then 404 not_found and that session stays active", async () => {
      const other = await registerUser(svc.app);
      const otherSession = await login(svc.app, other);
      const res = await svc.app.inject({ method: 'DELETE', url: `/v1/sessions/${otherSession.sessionId}`, headers: bearer(caller.accessToken) });
      assert.equal(res.statusCode, 404, res.body);
      assert.equal(problem(res).code, 'not_found');
      const row = await sessionRow(otherSession.sessionId);
      assert.equal(row.is_active, true);
      assert.equal(row.ended_at, null);
      assert.equal((await me(otherSession.accessToken)).statusCode, 200);
    });

    it('when the id does not exist or is not a number, then 404 not_found', async () => {
      for (const id of ['999999999', '99999999999999999999999', 'abc', '0', '-1', '1.5']) {
        const res = await svc.app.inject({ method: 'DELETE', url: `/v1/sessions/${id}`, headers: bearer(caller.accessToken) });
        assert.equal(res.statusCode, 404, `${id}: ${res.body}`);
        assert.equal(problem(res).code, 'not_found', id);
      }
      assert.equal((await me(caller.accessToken)).statusCode, 200);
    });

    it('when the token is missing, then 401 invalid_token and nothing is revoked', async () => {
      const fresh = await login(svc.app, user);
      assertInvalidToken(await svc.app.inject({ method: 'DELETE', url: `/v1/sessions/${fresh.sessionId}` }), 'no token');
      assert.equal((await sessionRow(fresh.sessionId)).is_active, true);
    });
  });

  describe('revoking all sessions', () => {
    it("when a user logs out everywhere, then 204, all of the user's sessions are inactive and other users' are untouched", async () => {
      const user = await registerUser(svc.app);
      const other = await registerUser(svc.app);
      const a = await login(svc.app, user);
      const b = await login(svc.app, user);
      const c = await login(svc.app, user);
      const otherSession = await login(svc.app, other);

      const res = await svc.app.inject({ method: 'DELETE', url: '/v1/sessions', headers: bearer(a.accessToken) });
      assert.equal(res.statusCode, 204, res.body);
      const rows = await svc.db.selectFrom('user_sessions').select(['session_id', 'is_active']).where('user_id', '=', user.id).execute();
      assert.equal(rows.length, 3);
      for (const row of rows) assert.equal(row.is_active, false, `session ${row.session_id}`);
      for (const s of [a, b, c]) {
        assertInvalidToken(await me(s.accessToken), `session ${s.sessionId}`);
        assertInvalidRefreshToken(await refresh(s.refreshToken), `refresh of ${s.sessionId}`);
      }
      assert.equal((await sessionRow(otherSession.sessionId)).is_active, true);
      assert.equal((await me(otherSession.accessToken)).statusCode, 200);
    });
  });

  describe('refresh', () => {
    it('when a refresh token is traded, then 200 with the same shape, a new refresh token, and an access token that works', async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      const res = await refresh(session.refreshToken);
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.headers['content-type'], JSON_TYPE);
      assert.equal(res.headers['cache-control'], 'no-store');
      const body = res.json();
      assert.deepEqual(Object.keys(body).sort(), TOKEN_PAIR_KEYS);
      assert.equal(body.token_type, 'Bearer');
      assert.equal(body.expires_in, 900);
      assert.equal(typeof body.refresh_token, 'string');
      assert.notEqual(body.refresh_token, session.refreshToken);
      assert.notEqual(body.access_token, session.accessToken);
      assert.deepEqual(Object.keys(body.session).sort(), ['created_at', 'expires_at', 'id']);
      assert.deepEqual(body.session, session.body.session, 'the same session, with the same absolute expiry');
      assert.deepEqual(Object.keys(body.user).sort(), USER_KEYS);
      assert.deepEqual(body.user, session.body.user);

      const claims = decodeJwt(body.access_token);
      assert.equal(claims.sub, user.id);
      assert.equal(claims.sid, session.sessionId);
      assert.equal(claims.exp, claims.iat! + 900);
      const profile = await me(body.access_token);
      assert.equal(profile.statusCode, 200);
      assert.equal(profile.json().id, user.id);
      assert.equal((await sessionRow(session.sessionId)).is_active, true);

      assert.deepEqual(decodeJwt(body.access_token).amr, ['pwd'], 'amr is kept across refreshes');
      const again = await refresh(body.refresh_token);
      assert.equal(again.statusCode, 200, 'the new refresh token works in turn');
      assert.notEqual(again.json().refresh_token, body.refresh_token);
    });

    it('when the rotated token is presented again within the retry window, then 200 with the same new refresh token; after its successor is used, 401 and the session is revoked', async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      const r0 = session.refreshToken;

      const first = await refresh(r0);
      assert.equal(first.statusCode, 200, first.body);
      const r1: string = first.json().refresh_token;

      const retry = await refresh(r0);
      assert.equal(retry.statusCode, 200, retry.body);
      assert.equal(retry.json().refresh_token, r1, 'the same successor, no fork');
      assert.equal(retry.json().session.id, session.sessionId);
      assert.equal((await me(retry.json().access_token)).statusCode, 200, 'the retry\'s access token works');
      assert.equal((await sessionRow(session.sessionId)).refresh_generation, 1, 'a retry mints nothing');

      const second = await refresh(r1);
      assert.equal(second.statusCode, 200, second.body);
      const r2: string = second.json().refresh_token;
      const latestAccess: string = second.json().access_token;
      assert.notEqual(r2, r1);
      assert.equal((await me(latestAccess)).statusCode, 200);

      const replay = await refresh(r0);
      assertInvalidRefreshToken(replay, 'the first token after its successor was used');
      const row = await sessionRow(session.sessionId);
      assert.equal(row.is_active, false, 'reuse revokes the session');
      assertInvalidToken(await me(latestAccess), 'the latest access token after reuse');
      assertInvalidRefreshToken(await refresh(r2), 'the latest refresh token after reuse');
      assertInvalidToken(await me(session.accessToken), 'the first access token after reuse');
    });

    it('when a refresh token replaced a hundred rotations ago is presented again, then 401 invalid_refresh_token and the session is revoked', async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      let latest = session.refreshToken;
      let latestAccess = session.accessToken;
      for (let i = 0; i < 100; i++) {
        const res = await refresh(latest);
        assert.equal(res.statusCode, 200, res.body);
        latest = res.json().refresh_token;
        latestAccess = res.json().access_token;
      }
      assert.equal((await sessionRow(session.sessionId)).refresh_generation, 100);
      assertInvalidRefreshToken(await refresh(session.refreshToken), 'the first token, a hundred rotations on');
      assert.equal((await sessionRow(session.sessionId)).is_active, false, 'the replay revokes the session');
      assertInvalidToken(await me(latestAccess), 'the latest access token');
      assertInvalidRefreshToken(await refresh(latest), 'the latest refresh token');
    });

    it('when a refresh token is stripped to the untagged form of earlier versions, then 401 invalid_refresh_token, even the current one, and the session stays active', async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      const rotated = await refresh(session.refreshToken);
      assert.equal(rotated.statusCode, 200, rotated.body);
      const current: string = rotated.json().refresh_token;
      for (const token of [session.refreshToken, current]) {
        const [sessionId, , secret] = token.split('.') as [string, string, string];
        assertInvalidRefreshToken(await refresh(`${sessionId}.${secret}`), 'untagged');
      }
      assert.equal((await sessionRow(session.sessionId)).is_active, true);
      assert.equal((await refresh(current)).statusCode, 200, 'the tagged current token still works');
    });

    it('when the rotated token is presented again after the retry window, then 401 invalid_refresh_token and the session is revoked', async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      const first = await refresh(session.refreshToken);
      assert.equal(first.statusCode, 200, first.body);
      // Let the retry window pass: the rotation happened REFRESH_RETRY_S + 5 seconds ago.
      await svc.db
        .updateTable('user_sessions')
        .set({ refresh_rotated_at: new Date(Date.now() - (svc.config.refreshRetryS + 5) * 1000) })
        .where('session_id', '=', session.sessionId)
        .execute();
      assertInvalidRefreshToken(await refresh(session.refreshToken), 'the rotated token after the window');
      assert.equal((await sessionRow(session.sessionId)).is_active, false, 'late reuse revokes the session');
      assertInvalidToken(await me(first.json().access_token), 'the latest access token');
      assertInvalidRefreshToken(await refresh(first.json().refresh_token), 'the latest refresh token');
    });

    it("when this process's clock runs ahead of the database's, then a retry within REFRESH_RETRY_S of the rotation (on the database's clock, which stamped it) still answers the same successor", { skip: serverUrl === undefined && "PGlite runs on this process's clock: no skew to make" }, async (t) => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      const first = await refresh(session.refreshToken);
      assert.equal(first.statusCode, 200, first.body);
      // The database stamped the rotation a moment ago by its clock; this process believes it is a minute later.
      const realNow = Date.now;
      t.mock.method(Date, 'now', () => realNow() + (svc.config.refreshRetryS + 60) * 1000);
      const retry = await refresh(session.refreshToken);
      t.mock.restoreAll();
      assert.equal(retry.statusCode, 200, retry.body);
      assert.equal(retry.json().refresh_token, first.json().refresh_token, 'the same successor');
      assert.equal((await sessionRow(session.sessionId)).is_active, true);
    });

    it('when a refresh token is garbage, of the wrong shape, or forged for a real session, then 401 invalid_refresh_token and the session stays active', async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      const rotated = await refresh(session.refreshToken);
      assert.equal(rotated.statusCode, 200);
      const current: string = rotated.json().refresh_token;
      const dot = current.indexOf('.');
      const [, generation, secret, tag] = current.split('.') as [string, string, string, string];
      const forgedTokens = [
        'garbage',
        '',
        'x'.repeat(5000),
        `${session.sessionId}.short`,
        `${session.sessionId}.${'!'.repeat(43)}`,
        `${session.sessionId}`,
        `${session.sessionId}.${randomBytes(32).toString('base64url')}`,
        `${session.sessionId}.${randomBytes(32).toString('base64url')}.extra`,
        dot > 0 ? `${current.slice(0, dot + 1)}${randomBytes(32).toString('base64url')}` : randomBytes(40).toString('base64url'),
        `${current}x`,
        current.slice(0, -1),
        // Of the tagged form, claiming an older generation (which, genuine, would end the session).
        `${session.sessionId}.0.${randomBytes(32).toString('base64url')}.${randomBytes(16).toString('base64url')}`,
        `${session.sessionId}.0.${secret}.${tag}`,
        `${session.sessionId}.${generation}.${secret}.${randomBytes(16).toString('base64url')}`,
        `${session.sessionId}.0.${randomBytes(32).toString('base64url')}.${tag}`,
      ];
      for (const token of forgedTokens) {
        const res = await refresh(token);
        assertInvalidRefreshToken(res, `token ${JSON.stringify(token.slice(0, 40))}`);
        const row = await sessionRow(session.sessionId);
        assert.equal(row.is_active, true, `a forged token ${JSON.stringify(token.slice(0, 40))} revokes nobody`);
      }
      assert.equal((await me(rotated.json().access_token)).statusCode, 200);
      const stillWorks = await refresh(current);
      assert.equal(stillWorks.statusCode, 200, 'the genuine token still works after the forgeries');
    });

    it('when two refreshes of the same token run at once, then both 200 with the same refresh token and one rotation', async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      const [a, b] = await Promise.all([refresh(session.refreshToken), refresh(session.refreshToken)]);
      assert.equal(a.statusCode, 200, a.body);
      assert.equal(b.statusCode, 200, b.body);
      assert.equal(a.json().refresh_token, b.json().refresh_token);
      assert.notEqual(a.json().refresh_token, session.refreshToken);
      const row = await sessionRow(session.sessionId);
      assert.equal(row.refresh_generation, 1);
      assert.equal(row.is_active, true);
      assert.equal((await me(a.json().access_token)).statusCode, 200);
      assert.equal((await me(b.json().access_token)).statusCode, 200);
      assert.equal((await refresh(a.json().refresh_token)).statusCode, 200, 'the shared successor works');

      // A wider burst makes an actual overlap of the reads and the rotation likelier.
      const burstSession = await login(svc.app, user);
      const burst = await Promise.all(Array.from({ length: 8 }, () => refresh(burstSession.refreshToken)));
      assert.deepEqual(burst.map((r) => r.statusCode), Array(8).fill(200), burst.map((r) => r.body).join('\n'));
      assert.equal(new Set(burst.map((r) => r.json().refresh_token)).size, 1, 'one successor for all');
      const burstRow = await sessionRow(burstSession.sessionId);
      assert.equal(burstRow.refresh_generation, 1);
      assert.equal(burstRow.is_active, true);
    });

    describe('with REFRESH_RETRY_S=0', () => {
      let strict: TestService;
      before(async () => {
        strict = await startTestService({ refreshRetryS: 0 });
      });
      after(() => strict.close());

      it('when a just-rotated token is presented again, then 401 invalid_refresh_token and the session is revoked', async () => {
        const user = await registerUser(strict.app);
        const session = await login(strict.app, user);
        const first = await strict.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: session.refreshToken } });
        assert.equal(first.statusCode, 200, first.body);
        const again = await strict.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: session.refreshToken } });
        assertInvalidRefreshToken(again, 'strict single use');
        const row = await strict.db.selectFrom('user_sessions').selectAll().where('session_id', '=', session.sessionId).executeTakeFirstOrThrow();
        assert.equal(row.is_active, false);
        const successor = await strict.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: first.json().refresh_token } });
        assertInvalidRefreshToken(successor, 'the successor after reuse');
        assertInvalidToken(await strict.app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(first.json().access_token) }), 'access token after reuse');
      });

      it("when the database's clock runs ahead of this process's (the rotation stamped in the future), then a replay of the rotated token is still refused and ends the session", async () => {
        const user = await registerUser(strict.app);
        const session = await login(strict.app, user);
        const first = await strict.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: session.refreshToken } });
        assert.equal(first.statusCode, 200, first.body);
        await strict.db
          .updateTable('user_sessions')
          .set({ refresh_rotated_at: new Date(Date.now() + 60_000) })
          .where('session_id', '=', session.sessionId)
          .execute();
        const again = await strict.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: session.refreshToken } });
        assertInvalidRefreshToken(again, 'strict single use, whatever the clocks say');
        const row = await strict.db.selectFrom('user_sessions').selectAll().where('session_id', '=', session.sessionId).executeTakeFirstOrThrow();
        assert.equal(row.is_active, false, 'the replay ends the session');
      });
    });
  });

  describe('password change', () => {
    it("when a user changes their password, then the user's other sessions are revoked and the calling session keeps working", async () => {
      const user = await registerUser(svc.app);
      const stranger = await registerUser(svc.app);
      const strangerSession = await login(svc.app, stranger);
      const calling = await login(svc.app, user);
      const otherA = await login(svc.app, user);
      const otherB = await login(svc.app, user);
      const newPassword = 'copper meadow signal 9351';
      assert.notEqual(newPassword, GOOD_PASSWORD);

      const res = await svc.app.inject({
        method: 'PUT',
        url: '/v1/users/me/password',
        headers: bearer(calling.accessToken),
        payload: { current_password: user.password, new_password: newPassword },
      });
      assert.equal(res.statusCode, 204, res.body);

      for (const s of [otherA, otherB]) {
        assertInvalidToken(await me(s.accessToken), `other session ${s.sessionId}`);
        assertInvalidRefreshToken(await refresh(s.refreshToken), `refresh of other session ${s.sessionId}`);
        assert.equal((await sessionRow(s.sessionId)).is_active, false);
      }
      assert.equal((await me(calling.accessToken)).statusCode, 200, 'the calling session keeps working');
      assert.equal((await sessionRow(calling.sessionId)).is_active, true);
      assert.equal((await refresh(calling.refreshToken)).statusCode, 200, 'and can still refresh');
      assert.equal((await me(strangerSession.accessToken)).statusCode, 200, 'other users are untouched');

      const oldLogin = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: user.password } });
      assert.equal(oldLogin.statusCode, 401);
      assert.equal(problem(oldLogin).code, 'invalid_credentials');
      const newLogin = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: newPassword } });
      assert.equal(newLogin.statusCode, 201, newLogin.body);
    });
  });
});
