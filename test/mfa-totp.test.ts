import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { Secret, TOTP } from 'otpauth';
import { startOfNextStep, type TestClock } from './helpers/clock.js';

/** The clock of the service under test (set in before()): codes are made at its time. */
let clock: TestClock;
import { bearer, login, problem, registerUser, startTestService, type LoggedIn, type RegisteredUser, type TestService } from './helpers/app.js';

/** The code an authenticator app shows for `secret`, `offsetS` seconds from now. */
function codeFor(secret: string, offsetS = 0): string {
  return new TOTP({ secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30 }).generate({ timestamp: clock.now() + offsetS * 1000 });
}

/** The code of RFC 6238 time step `step` (30 s each) for `secret`. */
function stepCode(secret: string, step: number): string {
  return new TOTP({ secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30 }).generate({ timestamp: step * 30_000 });
}

/** The time step now, once well inside it, so the server checks a code within the step it was made for. */
async function stepNow(): Promise<number> {
  startOfNextStep(clock);
  return Math.floor(clock.now() / 30_000);
}

/** A 6-digit code that is none of the codes of the accepted window. */
function wrongCode(secret: string): string {
  const valid = new Set([-30, 0, 30].map((o) => codeFor(secret, o)));
  for (let n = 0; ; n++) {
    const candidate = String((Number(codeFor(secret)) + 1 + n) % 1_000_000).padStart(6, '0');
    if (!valid.has(candidate)) return candidate;
  }
}

describe('TOTP second factor', () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService();
    clock = svc.clock;
  });
  after(() => svc.close());

  const inject = (method: 'GET' | 'POST' | 'DELETE', url: string, token: string | null, payload?: unknown, extra: { remoteAddress?: string } = {}) =>
    svc.app.inject({ method, url, payload: payload as Record<string, unknown> | undefined, headers: token ? bearer(token) : {}, ...extra });
  const passwordLogin = (user: RegisteredUser, remoteAddress?: string) =>
    svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: user.password }, ...(remoteAddress ? { remoteAddress } : {}) });
  const secondStep = (mfaToken: string, code: string, remoteAddress?: string) =>
    svc.app.inject({ method: 'POST', url: '/v1/sessions/mfa', payload: { mfa_token: mfaToken, code }, ...(remoteAddress ? { remoteAddress } : {}) });
  const me = (token: string) => inject('GET', '/v1/users/me', token);
  const failures = async (userId: string, ip = '127.0.0.1') =>
    (await svc.db.selectFrom('login_throttles').select(['failures', 'locked_until']).where('throttle_key', '=', `account:${userId}|${ip}`).executeTakeFirst()) ?? { failures: 0, locked_until: null };
  const factorRow = (userId: string) => svc.db.selectFrom('user_totp_factors').selectAll().where('user_id', '=', userId).executeTakeFirst();
  const events = async (userId: string) =>
    svc.db.selectFrom('audit_events').select(['event', 'details']).where('user_id', '=', userId).orderBy('event_id').execute();
  const activeSessions = async (userId: string) =>
    (await svc.db.selectFrom('user_sessions').select('session_id').where('user_id', '=', userId).where('is_active', '=', true).execute()).length;

  /** A user with TOTP on: their secret, recovery codes and the session that set it up. */
  async function userWithTotp(): Promise<{ user: RegisteredUser; secret: string; recoveryCodes: string[]; session: LoggedIn; confirmedAtMs: number }> {
    const user = await registerUser(svc.app);
    const session = await login(svc.app, user);
    const setup = await inject('POST', '/v1/users/me/mfa/totp', session.accessToken, { current_password: user.password });
    assert.equal(setup.statusCode, 201, setup.body);
    const { secret } = setup.json();
    const confirmedAtMs = clock.now(); // the step of this code is used up by the confirmation
    const confirm = await inject('POST', '/v1/users/me/mfa/totp/confirm', session.accessToken, { code: codeFor(secret, (confirmedAtMs - clock.now()) / 1000) });
    assert.equal(confirm.statusCode, 200, confirm.body);
    return { user, secret, recoveryCodes: confirm.json().recovery_codes, session, confirmedAtMs };
  }

  /** The password step of a sign-in with TOTP on: 403 mfa_required with an mfa_token. */
  async function mfaToken(user: RegisteredUser, remoteAddress?: string): Promise<string> {
    const res = await passwordLogin(user, remoteAddress);
    assert.equal(res.statusCode, 403, res.body);
    const body = problem(res);
    assert.equal(body.code, 'mfa_required');
    return body.mfa_token as string;
  }

  describe('setting TOTP up', () => {
    it('when TOTP is set up and confirmed, then the secret is shown once, stored encrypted, 10 recovery codes come back as hashes only, and every other session ends', async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      const other = await login(svc.app, user);

      const setup = await inject('POST', '/v1/users/me/mfa/totp', session.accessToken, { current_password: user.password });
      assert.equal(setup.statusCode, 201);
      assert.equal(setup.headers['cache-control'], 'no-store');
      const { secret, otpauth_url: url, qr_svg: svg } = setup.json();
      assert.match(secret, /^[A-Z2-7]{32}$/);
      assert.match(url, /^otpauth:\/\/totp\//);
      assert.ok(url.includes(`secret=${secret}`) && url.includes('algorithm=SHA1') && url.includes('digits=6') && url.includes('period=30'));
      assert.ok(url.includes(encodeURIComponent(user.username)));
      assert.match(svg, /^<svg[\s\S]*<\/svg>\s*$/);

      // Pending: stored encrypted, not on yet.
      const pending = await factorRow(user.id);
      assert.equal(pending?.confirmed_at, null);
      assert.ok(pending!.secret_encrypted.startsWith('v1.'));
      assert.ok(!pending!.secret_encrypted.includes(secret), 'the raw column does not hold the secret');
      assert.deepEqual((await inject('GET', '/v1/users/me/mfa', session.accessToken)).json(), { totp: false, recovery_codes_left: 0, passkeys: 0 });

      const confirm = await inject('POST', '/v1/users/me/mfa/totp/confirm', session.accessToken, { code: codeFor(secret) });
      assert.equal(confirm.statusCode, 200);
      const codes: string[] = confirm.json().recovery_codes;
      assert.equal(codes.length, 10);
      assert.equal(new Set(codes).size, 10);
      for (const c of codes) assert.match(c, /^[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){5}$/, "24 characters of Crockford base32: 120 bits");

      const stored = await svc.db.selectFrom('user_recovery_codes').select(['code_hash', 'used_at']).where('user_id', '=', user.id).execute();
      assert.equal(stored.length, 10);
      for (const row of stored) {
        assert.equal(row.used_at, null);
        assert.ok(!codes.some((c) => row.code_hash.includes(c) || row.code_hash.includes(c.replace(/-/g, ''))), 'hashes only');
      }
      assert.notEqual((await factorRow(user.id))?.confirmed_at, null);

      // Every other session ended; the calling one goes on.
      assert.equal((await me(session.accessToken)).statusCode, 200);
      const refused = await me(other.accessToken);
      assert.equal(refused.statusCode, 401);
      assert.equal(problem(refused).code, 'invalid_token');
      const ended = await svc.db.selectFrom('user_sessions').select('end_reason').where('session_id', '=', other.sessionId).executeTakeFirstOrThrow();
      assert.equal(ended.end_reason, 'mfa_enabled');

      assert.deepEqual((await inject('GET', '/v1/users/me/mfa', session.accessToken)).json(), { totp: true, recovery_codes_left: 10, passkeys: 0 });
      const log = await events(user.id);
      assert.ok(log.some((e) => e.event === 'mfa_enabled'));
      const logText = JSON.stringify(log);
      assert.ok(!logText.includes(secret) && !codes.some((c) => logText.includes(c)), 'no secret or code in the audit log');
    });

    it('when TOTP is already on, then setting it up again is 409 mfa_already_enabled and nothing changes', async () => {
      const { user, session } = await userWithTotp();
      const before = await factorRow(user.id);
      const res = await inject('POST', '/v1/users/me/mfa/totp', session.accessToken, { current_password: user.password });
      assert.equal(res.statusCode, 409);
      assert.equal(problem(res).code, 'mfa_already_enabled');
      assert.deepEqual(await factorRow(user.id), before);
    });

    it('when the current password is wrong, then 403 invalid_credentials, counted as a failed login, and nothing is set up or turned off', async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      const res = await inject('POST', '/v1/users/me/mfa/totp', session.accessToken, { current_password: 'not the password at all' });
      assert.equal(res.statusCode, 403);
      assert.equal(problem(res).code, 'invalid_credentials');
      assert.equal(await factorRow(user.id), undefined);
      assert.equal((await failures(user.id)).failures, 1);

      const on = await userWithTotp();
      const off = await inject('DELETE', '/v1/users/me/mfa/totp', on.session.accessToken, { current_password: 'not the password at all' });
      assert.equal(off.statusCode, 403);
      assert.equal(problem(off).code, 'invalid_credentials');
      assert.notEqual((await factorRow(on.user.id))?.confirmed_at, null);
      assert.equal((await failures(on.user.id)).failures, 1);
      assert.ok((await events(on.user.id)).some((e) => e.event === 'reauthentication_failed'));
    });

    it('when a confirmation code is wrong, then 401 invalid_mfa_code, counted as a failed login, and the set-up stays pending', async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      const { secret } = (await inject('POST', '/v1/users/me/mfa/totp', session.accessToken, { current_password: user.password })).json();
      for (const code of [wrongCode(secret), 'abcdef', '']) {
        const res = await inject('POST', '/v1/users/me/mfa/totp/confirm', session.accessToken, { code });
        assert.equal(res.statusCode, 401, code);
        assert.equal(problem(res).code, 'invalid_mfa_code');
      }
      assert.equal((await factorRow(user.id))?.confirmed_at, null);
      assert.equal((await failures(user.id)).failures, 3);
      assert.equal((await svc.db.selectFrom('user_recovery_codes').select('user_id').where('user_id', '=', user.id).execute()).length, 0);
      assert.ok((await events(user.id)).some((e) => e.event === 'mfa_challenge_failed'));
    });

    it('when a confirmation code is two steps (60 s) before or after the server\'s time, then 401 invalid_mfa_code and the set-up stays pending: one step either way only', async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      const { secret } = (await inject('POST', '/v1/users/me/mfa/totp', session.accessToken, { current_password: user.password })).json();
      const now = await stepNow();
      const accepted = [-1, 0, 1].map((d) => stepCode(secret, now + d));
      for (const d of [-2, 2]) {
        const code = stepCode(secret, now + d);
        if (accepted.includes(code)) continue; // the same six digits as a code of the window: one chance in 300 000
        const res = await inject('POST', '/v1/users/me/mfa/totp/confirm', session.accessToken, { code });
        assert.equal(res.statusCode, 401, `${d} steps: ${res.body}`);
        assert.equal(problem(res).code, 'invalid_mfa_code');
      }
      assert.equal((await factorRow(user.id))?.confirmed_at, null);
      const edge = await inject('POST', '/v1/users/me/mfa/totp/confirm', session.accessToken, { code: stepCode(secret, now - 1) });
      assert.equal(edge.statusCode, 200, `one step before is accepted: ${edge.body}`);
    });

    it('when nothing is pending, then confirming is 409 mfa_not_pending', async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      const res = await inject('POST', '/v1/users/me/mfa/totp/confirm', session.accessToken, { code: '123456' });
      assert.equal(res.statusCode, 409);
      assert.equal(problem(res).code, 'mfa_not_pending');
      const on = await userWithTotp();
      const again = await inject('POST', '/v1/users/me/mfa/totp/confirm', on.session.accessToken, { code: codeFor(on.secret) });
      assert.equal(again.statusCode, 409);
      assert.equal(problem(again).code, 'mfa_not_pending');
    });

    it('when a set-up is started again before confirming, then only the newest secret confirms', async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      const first = (await inject('POST', '/v1/users/me/mfa/totp', session.accessToken, { current_password: user.password })).json().secret;
      const second = (await inject('POST', '/v1/users/me/mfa/totp', session.accessToken, { current_password: user.password })).json().secret;
      assert.notEqual(first, second);
      if (codeFor(first) !== codeFor(second)) {
        const stale = await inject('POST', '/v1/users/me/mfa/totp/confirm', session.accessToken, { code: codeFor(first) });
        assert.equal(stale.statusCode, 401);
      }
      assert.equal((await inject('POST', '/v1/users/me/mfa/totp/confirm', session.accessToken, { code: codeFor(second) })).statusCode, 200);
    });

    it('when bodies are bad or the token is missing, then problem+json answers and nothing is written', async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      for (const [method, url, payload] of [
        ['POST', '/v1/users/me/mfa/totp', {}],
        ['POST', '/v1/users/me/mfa/totp', { current_password: user.password, extra: 1 }],
        ['POST', '/v1/users/me/mfa/totp/confirm', { code: 123456 }],
        ['DELETE', '/v1/users/me/mfa/totp', {}],
        ['POST', '/v1/sessions/mfa', { mfa_token: 'x' }],
      ] as const) {
        const res = await inject(method, url, session.accessToken, payload);
        assert.equal(res.statusCode, 400, `${method} ${url} ${JSON.stringify(payload)}`);
        assert.equal(problem(res).code, 'validation_failed');
      }
      for (const [method, url] of [['GET', '/v1/users/me/mfa'], ['POST', '/v1/users/me/mfa/totp'], ['DELETE', '/v1/users/me/mfa/totp']] as const) {
        const res = await inject(method, url, null, { current_password: user.password });
        assert.equal(res.statusCode, 401);
        assert.equal(problem(res).code, 'invalid_token');
      }
      assert.equal(await factorRow(user.id), undefined);
    });
  });

  describe('signing in with TOTP on', () => {
    it('when the password is right, then 403 mfa_required with an mfa_token and the factors, no session, and the token is stored hashed', async () => {
      const { user } = await userWithTotp();
      const sessionsBefore = await activeSessions(user.id);
      const res = await passwordLogin(user);
      assert.equal(res.statusCode, 403);
      const body = problem(res);
      assert.equal(body.code, 'mfa_required');
      assert.deepEqual(body.factors, ['totp', 'recovery_code']);
      assert.match(body.mfa_token as string, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(await activeSessions(user.id), sessionsBefore);
      const rows = await svc.db.selectFrom('mfa_tokens').selectAll().where('user_id', '=', user.id).execute();
      assert.equal(rows.length, 1);
      assert.notEqual(rows[0]!.token_hash, body.mfa_token);
      assert.equal(rows[0]!.ip, '127.0.0.1');
      const ttl = rows[0]!.expires_at.getTime() - clock.now();
      assert.ok(ttl > 290_000 && ttl <= 300_000, 'five minutes');

      // A wrong password is still 401 invalid_credentials, with no token.
      const wrong = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: 'wrong password here' } });
      assert.equal(wrong.statusCode, 401);
      assert.equal(problem(wrong).mfa_token, undefined);
    });

    it('when the second step has the right code, then 201 with the login body, amr pwd otp mfa kept across refresh, and the token is used up', async () => {
      const { user, secret } = await userWithTotp();
      const token = await mfaToken(user);
      const res = await secondStep(token, codeFor(secret, 30));
      assert.equal(res.statusCode, 201, res.body);
      const body = res.json();
      assert.equal(body.token_type, 'Bearer');
      assert.equal(body.user.id, user.id);
      assert.deepEqual(decodeJwt(body.access_token).amr, ['pwd', 'otp', 'mfa']);
      const session = await svc.db.selectFrom('user_sessions').select('amr').where('session_id', '=', body.session.id).executeTakeFirstOrThrow();
      assert.equal(session.amr, 'pwd otp mfa');
      assert.equal((await me(body.access_token)).statusCode, 200);
      const refreshed = await svc.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: body.refresh_token } });
      assert.deepEqual(decodeJwt(refreshed.json().access_token).amr, ['pwd', 'otp', 'mfa']);

      const again = await secondStep(token, codeFor(secret, 30));
      assert.equal(again.statusCode, 401);
      assert.equal(problem(again).code, 'invalid_mfa_token');
      assert.notEqual((await svc.db.selectFrom('mfa_tokens').select('used_at').where('user_id', '=', user.id).executeTakeFirstOrThrow()).used_at, null);
      assert.ok((await events(user.id)).some((e) => e.event === 'login_succeeded' && e.details?.includes('totp')));
    });

    it('when a code is used again, or a code of an earlier step, then 401 invalid_mfa_code (replay), counted as a failed login', async () => {
      const { user, secret, confirmedAtMs } = await userWithTotp();
      // Codes by their step relative to the confirmation's, wherever the clock has moved since.
      const stepCode = (steps: number) => codeFor(secret, (confirmedAtMs + steps * 30_000 - clock.now()) / 1000);
      const replay = await secondStep(await mfaToken(user), stepCode(0));
      assert.equal(replay.statusCode, 401);
      assert.equal(problem(replay).code, 'invalid_mfa_code');
      assert.equal((await failures(user.id)).failures, 1);

      assert.equal((await secondStep(await mfaToken(user), stepCode(1))).statusCode, 201);
      for (const offset of [1, 0, -1]) {
        const res = await secondStep(await mfaToken(user), stepCode(offset));
        assert.equal(res.statusCode, 401, `offset ${offset}`);
        assert.equal(problem(res).code, 'invalid_mfa_code');
      }
    });

    it("when a code is two steps (60 s) before or after the server's time, then 401 invalid_mfa_code: one step either way only", async () => {
      const { user, secret } = await userWithTotp();
      const now = await stepNow();
      // Forget the confirmation's step, so a code of an earlier step is refused for the window alone, not as a replay.
      await svc.db.updateTable('user_totp_factors').set({ last_used_step: now - 10 }).where('user_id', '=', user.id).execute();
      const accepted = [-1, 0, 1].map((d) => stepCode(secret, now + d));
      for (const d of [-2, 2]) {
        const code = stepCode(secret, now + d);
        if (accepted.includes(code)) continue; // the same six digits as a code of the window: one chance in 300 000
        const res = await secondStep(await mfaToken(user), code);
        assert.equal(res.statusCode, 401, `${d} steps: ${res.body}`);
        assert.equal(problem(res).code, 'invalid_mfa_code');
      }
      const edge = await secondStep(await mfaToken(user), stepCode(secret, now - 1));
      assert.equal(edge.statusCode, 201, `one step before is accepted: ${edge.body}`);
    });

    it('when the mfa_token is unknown, malformed, expired or used from another address, then 401 invalid_mfa_token before the code is looked at', async () => {
      const { user, secret } = await userWithTotp();
      for (const bad of ['', 'short', 'A'.repeat(43), `${'A'.repeat(42)}!`]) {
        const res = await secondStep(bad, codeFor(secret, 30));
        assert.equal(res.statusCode, 401, bad);
        assert.equal(problem(res).code, 'invalid_mfa_token');
      }
      const elsewhere = await secondStep(await mfaToken(user), codeFor(secret, 30), '203.0.113.7');
      assert.equal(elsewhere.statusCode, 401);
      assert.equal(problem(elsewhere).code, 'invalid_mfa_token');

      const token = await mfaToken(user);
      await svc.db.updateTable('mfa_tokens').set({ expires_at: new Date(clock.now() - 1000) }).where('user_id', '=', user.id).where('used_at', 'is', null).execute();
      const expired = await secondStep(token, codeFor(secret, 30));
      assert.equal(expired.statusCode, 401);
      assert.equal(problem(expired).code, 'invalid_mfa_token');
      assert.equal((await failures(user.id)).failures, 0, 'no code was tried');
      assert.equal(await activeSessions(user.id), 1, 'only the session that set TOTP up');
    });

    it("when one user's mfa_token is used with another user's code, then 401 invalid_mfa_code and no session", async () => {
      const a = await userWithTotp();
      const b = await userWithTotp();
      const res = await secondStep(await mfaToken(a.user), codeFor(b.secret, 30));
      if (codeFor(b.secret, 30) === codeFor(a.secret, 30)) return; // one chance in a million
      assert.equal(res.statusCode, 401);
      assert.equal(problem(res).code, 'invalid_mfa_code');
      assert.equal(await activeSessions(a.user.id), 1);
      assert.equal(await activeSessions(b.user.id), 1);
      // b's code is still good for b.
      assert.equal((await secondStep(await mfaToken(b.user), codeFor(b.secret, 30))).statusCode, 201);
    });

    it('when 5 wrong codes are tried, then the mfa_token is dead, the account and address wait like after 5 failed logins, and a right password alone did not reset the count', async () => {
      const { user, secret } = await userWithTotp();
      const ip = '198.51.100.23';
      const token = await mfaToken(user, ip);
      for (let i = 0; i < 2; i++) assert.equal((await secondStep(token, wrongCode(secret), ip)).statusCode, 401);
      // The password step again: the count stays.
      const token2 = await mfaToken(user, ip);
      assert.equal((await failures(user.id, ip)).failures, 2);
      for (let i = 0; i < 3; i++) {
        const res = await secondStep(token, wrongCode(secret), ip);
        assert.equal(res.statusCode, 401);
        assert.equal(problem(res).code, 'invalid_mfa_code');
      }
      const dead = await secondStep(token, codeFor(secret, 30), ip);
      assert.equal(dead.statusCode, 401);
      assert.equal(problem(dead).code, 'invalid_mfa_token');
      assert.equal((await svc.db.selectFrom('mfa_tokens').select('failures').where('token_hash', '!=', '').where('user_id', '=', user.id).where('ip', '=', ip).orderBy('created_at').executeTakeFirstOrThrow()).failures, 5);

      const state = await failures(user.id, ip);
      assert.equal(state.failures, 5);
      assert.ok(state.locked_until && state.locked_until.getTime() > Date.now());
      const waiting = await secondStep(token2, codeFor(secret, 30), ip);
      assert.equal(waiting.statusCode, 429);
      assert.ok(Number(waiting.headers['retry-after']) >= 1);
      const login429 = await passwordLogin(user, ip);
      assert.equal(login429.statusCode, 429);
      assert.equal(await activeSessions(user.id), 1);
      const failed = (await events(user.id)).filter((e) => e.event === 'mfa_challenge_failed');
      assert.equal(failed.length, 5);
    });

    it('when the same code is sent at once with two mfa_tokens, or one token twice, then exactly one session opens', async () => {
      const { user, secret } = await userWithTotp();
      const before = await activeSessions(user.id);
      const [t1, t2] = [await mfaToken(user), await mfaToken(user)];
      const code = codeFor(secret, 30);
      const answers = await Promise.all([secondStep(t1, code), secondStep(t2, code), secondStep(t1, code)]);
      assert.deepEqual(answers.map((r) => r.statusCode).sort(), [201, 401, 401]);
      for (const r of answers.filter((a) => a.statusCode === 401)) assert.ok(['invalid_mfa_code', 'invalid_mfa_token'].includes(problem(r).code));
      assert.equal(await activeSessions(user.id), before + 1);
    });

    it('when a completed second step follows failures, then the count resets', async () => {
      const { user, secret } = await userWithTotp();
      const token = await mfaToken(user);
      assert.equal((await secondStep(token, wrongCode(secret))).statusCode, 401);
      assert.equal((await failures(user.id)).failures, 1);
      assert.equal((await secondStep(token, codeFor(secret, 30))).statusCode, 201);
      assert.equal((await failures(user.id)).failures, 0);
    });

    it('when a recovery code is used, then it works once, in any case and spacing, and the count left goes down', async () => {
      const { user, recoveryCodes, session } = await userWithTotp();
      const code = recoveryCodes[3]!;
      const res = await secondStep(await mfaToken(user), ` ${code.toUpperCase().replace(/-/g, ' ')} `);
      assert.equal(res.statusCode, 201, res.body);
      assert.deepEqual(decodeJwt(res.json().access_token).amr, ['pwd', 'otp', 'mfa']);
      assert.equal((await inject('GET', '/v1/users/me/mfa', session.accessToken)).json().recovery_codes_left, 9);
      const used = await svc.db.selectFrom('user_recovery_codes').select('used_at').where('user_id', '=', user.id).where('used_at', 'is not', null).execute();
      assert.equal(used.length, 1);
      const log = await events(user.id);
      const entry = log.find((e) => e.event === 'recovery_code_used');
      assert.deepEqual(JSON.parse(entry!.details!), { left: 9 });
      assert.ok(!JSON.stringify(log).includes(code.replace(/-/g, '')) && !JSON.stringify(log).includes(code));

      const again = await secondStep(await mfaToken(user), code);
      assert.equal(again.statusCode, 401);
      assert.equal(problem(again).code, 'invalid_mfa_code');
      const unknown = await secondStep(await mfaToken(user), 'zzzz-zzzz-zzzz-zzzz');
      assert.equal(problem(unknown).code, 'invalid_mfa_code');
      assert.equal((await secondStep(await mfaToken(user), recoveryCodes[4]!)).statusCode, 201);
    });

    it('when the user is disabled between the two steps, then the mfa_token is refused', async () => {
      const { user, secret } = await userWithTotp();
      const token = await mfaToken(user);
      await svc.db.updateTable('users').set({ disabled_at: new Date() }).where('user_id', '=', user.id).execute();
      const res = await secondStep(token, codeFor(secret, 30));
      assert.equal(res.statusCode, 401);
      assert.equal(problem(res).code, 'invalid_mfa_token');
      await svc.db.updateTable('users').set({ disabled_at: null }).where('user_id', '=', user.id).execute();
      assert.equal((await secondStep(token, codeFor(secret, 30))).statusCode, 401, 'the token died with it');
    });
  });

  describe('turning TOTP off', () => {
    it('when TOTP is turned off with the password, then 204, the secret, codes and tokens are deleted, and the password alone signs in', async () => {
      const { user, session } = await userWithTotp();
      await mfaToken(user);
      const res = await inject('DELETE', '/v1/users/me/mfa/totp', session.accessToken, { current_password: user.password });
      assert.equal(res.statusCode, 204);
      assert.equal(res.body, '');
      assert.equal(await factorRow(user.id), undefined);
      assert.equal((await svc.db.selectFrom('user_recovery_codes').select('user_id').where('user_id', '=', user.id).execute()).length, 0);
      assert.equal((await svc.db.selectFrom('mfa_tokens').select('user_id').where('user_id', '=', user.id).execute()).length, 0);
      const plain = await login(svc.app, user);
      assert.deepEqual(decodeJwt(plain.accessToken).amr, ['pwd']);
      assert.deepEqual((await inject('GET', '/v1/users/me/mfa', plain.accessToken)).json(), { totp: false, recovery_codes_left: 0, passkeys: 0 });
      assert.ok((await events(user.id)).some((e) => e.event === 'mfa_disabled'));

      const again = await inject('DELETE', '/v1/users/me/mfa/totp', session.accessToken, { current_password: user.password });
      assert.equal(again.statusCode, 409);
      assert.equal(problem(again).code, 'mfa_not_enabled');
    });

    it('when only a set-up is pending, then turning off is 409 mfa_not_enabled and login needs no second step', async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      await inject('POST', '/v1/users/me/mfa/totp', session.accessToken, { current_password: user.password });
      const res = await inject('DELETE', '/v1/users/me/mfa/totp', session.accessToken, { current_password: user.password });
      assert.equal(res.statusCode, 409);
      assert.equal(problem(res).code, 'mfa_not_enabled');
      assert.equal((await passwordLogin(user)).statusCode, 201);
    });
  });

  describe('while the account waits after failed logins', () => {
    it('when the account waits, then turning TOTP on, confirming it and turning it off answer 429 too_many_requests with Retry-After, even with the right password or code, and change nothing', async () => {
      // One user with a set-up pending, one with TOTP on; each then fails 5 logins from this address.
      const pending = await registerUser(svc.app);
      const pendingSession = await login(svc.app, pending);
      const setup = await inject('POST', '/v1/users/me/mfa/totp', pendingSession.accessToken, { current_password: pending.password });
      assert.equal(setup.statusCode, 201, setup.body);
      const { secret } = setup.json();
      const on = await userWithTotp();
      for (const user of [pending, on.user]) {
        for (let i = 0; i < 5; i++) {
          const res = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: 'wrong password here' } });
          assert.equal(res.statusCode, 401, res.body);
        }
      }
      const recoveryCodes = async (userId: string) => (await svc.db.selectFrom('user_recovery_codes').select('code_hash').where('user_id', '=', userId).execute()).length;
      const before = { pending: await factorRow(pending.id), on: await factorRow(on.user.id), onCodes: await recoveryCodes(on.user.id) };

      const answers = {
        'POST /v1/users/me/mfa/totp': await inject('POST', '/v1/users/me/mfa/totp', pendingSession.accessToken, { current_password: pending.password }),
        'POST /v1/users/me/mfa/totp/confirm': await inject('POST', '/v1/users/me/mfa/totp/confirm', pendingSession.accessToken, { code: codeFor(secret) }),
        'DELETE /v1/users/me/mfa/totp': await inject('DELETE', '/v1/users/me/mfa/totp', on.session.accessToken, { current_password: on.user.password }),
      };
      for (const [what, res] of Object.entries(answers)) {
        assert.equal(res.statusCode, 429, `${what}: ${res.body}`);
        assert.equal(problem(res).code, 'too_many_requests', what);
        const retryAfter = Number(res.headers['retry-after']);
        assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 30, `${what}: Retry-After ${res.headers['retry-after']}`);
      }

      assert.deepEqual(await factorRow(pending.id), before.pending, 'the set-up is neither started again nor confirmed');
      assert.equal(await recoveryCodes(pending.id), 0);
      assert.deepEqual(await factorRow(on.user.id), before.on, 'TOTP stays on');
      assert.equal(await recoveryCodes(on.user.id), before.onCodes);
      for (const user of [pending, on.user]) assert.equal((await failures(user.id)).failures, 5, 'attempts during the wait are not counted');
    });
  });

  it('when the user is deleted, then their factor, codes and tokens go with them (ON DELETE CASCADE)', async () => {
    const { user } = await userWithTotp();
    await mfaToken(user);
    await svc.db.deleteFrom('users').where('user_id', '=', user.id).execute();
    for (const table of ['user_totp_factors', 'user_recovery_codes', 'mfa_tokens'] as const) {
      assert.equal((await svc.db.selectFrom(table).select('user_id').where('user_id', '=', user.id).execute()).length, 0, table);
    }
  });

  it('when the OpenAPI document is read, then it lists the new operations', async () => {
    const doc = (await svc.app.inject({ method: 'GET', url: '/openapi.json' })).json() as { paths: Record<string, Record<string, unknown>> };
    assert.ok(doc.paths['/v1/users/me/mfa']?.get);
    assert.ok(doc.paths['/v1/users/me/mfa/totp']?.post && doc.paths['/v1/users/me/mfa/totp']?.delete);
    assert.ok(doc.paths['/v1/users/me/mfa/totp/confirm']?.post);
    assert.ok(doc.paths['/v1/sessions/mfa']?.post);
  });
});

