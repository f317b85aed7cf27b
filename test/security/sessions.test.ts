/**
 * Attacks on sessions: tokens of ended sessions, refresh token theft and replay, expired and idle
 * sessions, and one user reaching for another user's sessions or events.
 * OWASP ASVS 5.0 L2: V7.2 (session basics), V7.3 (timeouts), V7.4 (termination), V7.5 (abuse),
 * V8.2.2 (data-specific access), V10.4.5 (refresh token replay).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { bearer, login, registerUser, startTestService, uniqueName, type LoggedIn, type TestService } from '../helpers/app.js';
import { assertInvalidToken, assertNothingChanged, assertProblem, dbState, sessionRow, userRows } from './support.js';

describe('security: sessions', () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService();
  });
  after(() => svc.close());

  const me = (token: string) => svc.app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(token) });
  const refresh = (refreshToken: string) => svc.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: refreshToken } });
  const logout = (token: string) => svc.app.inject({ method: 'DELETE', url: '/v1/sessions/current', headers: bearer(token) });

  /** The token tries to change the profile: 401 invalid_token and nothing changes. */
  async function assertTokenRefused(token: string): Promise<void> {
    const before = await dbState(svc.db);
    assertInvalidToken(await svc.app.inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(token), payload: { name: 'Pwned By Session' } }));
    assertInvalidToken(await me(token));
    await assertNothingChanged(svc.db, before);
  }

  /** The refresh token is refused with 401 invalid_refresh_token and nothing changes. */
  async function assertRefreshRefused(refreshToken: string): Promise<void> {
    const before = await dbState(svc.db);
    assertProblem(await refresh(refreshToken), 401, 'invalid_refresh_token');
    await assertNothingChanged(svc.db, before);
  }

  async function userWithSessions(count: number): Promise<{ user: Awaited<ReturnType<typeof registerUser>>; sessions: LoggedIn[] }> {
    const user = await registerUser(svc.app, { username: uniqueName('sess') });
    const sessions: LoggedIn[] = [];
    for (let i = 0; i < count; i++) sessions.push(await login(svc.app, user));
    return { user, sessions };
  }

  describe('tokens of ended sessions (V7.4)', () => {
    it('V7.4.1: when the access token of a logged-out session is used, then 401 invalid_token and nothing changes', async () => {
      const { sessions: [s] } = await userWithSessions(1);
      assert.equal((await logout(s!.accessToken)).statusCode, 204);
      await assertTokenRefused(s!.accessToken);
    });

    it('V7.4.1: when the refresh token of a logged-out session is used, then 401 invalid_refresh_token and nothing changes', async () => {
      const { sessions: [s] } = await userWithSessions(1);
      assert.equal((await logout(s!.accessToken)).statusCode, 204);
      await assertRefreshRefused(s!.refreshToken);
    });

    it('V7.4.1: when a just-rotated refresh token is retried after logout (inside the retry window), then 401 invalid_refresh_token and nothing changes', async () => {
      const { sessions: [s] } = await userWithSessions(1);
      const rotated = await refresh(s!.refreshToken);
      assert.equal(rotated.statusCode, 200, rotated.body);
      assert.equal((await logout(rotated.json().access_token)).statusCode, 204);
      await assertRefreshRefused(s!.refreshToken);
      await assertRefreshRefused(rotated.json().refresh_token);
    });

    it('V7.4.1: when the access token of a session revoked from another session is used, then 401 invalid_token and nothing changes', async () => {
      const { sessions: [a, b] } = await userWithSessions(2);
      assert.equal((await svc.app.inject({ method: 'DELETE', url: `/v1/sessions/${b!.sessionId}`, headers: bearer(a!.accessToken) })).statusCode, 204);
      await assertTokenRefused(b!.accessToken);
      assert.equal((await me(a!.accessToken)).statusCode, 200, 'the revoking session goes on');
    });

    it('V7.4.3: when the access token of another session is used after a password change, then 401 invalid_token and nothing changes', async () => {
      const { user, sessions: [calling, stolen] } = await userWithSessions(2);
      const change = await svc.app.inject({
        method: 'PUT',
        url: '/v1/users/me/password',
        headers: bearer(calling!.accessToken),
        payload: { current_password: user.password, new_password: 'amber quartz ledger 8642' },
      });
      assert.equal(change.statusCode, 204, change.body);
      await assertTokenRefused(stolen!.accessToken);
      assert.equal((await me(calling!.accessToken)).statusCode, 200, 'the calling session goes on');
    });

    it('V7.4.3: when the refresh token of another session is used after a password change, then 401 invalid_refresh_token and nothing changes', async () => {
      const { user, sessions: [calling, stolen] } = await userWithSessions(2);
      const change = await svc.app.inject({
        method: 'PUT',
        url: '/v1/users/me/password',
        headers: bearer(calling!.accessToken),
        payload: { current_password: user.password, new_password: 'amber quartz ledger 8642' },
      });
      assert.equal(change.statusCode, 204, change.body);
      await assertRefreshRefused(stolen!.refreshToken);
    });

    it('V7.4.1: when access tokens are used after "log out everywhere", then every session of the user answers 401 invalid_token and nothing changes', async () => {
      const { sessions: [a, b] } = await userWithSessions(2);
      assert.equal((await svc.app.inject({ method: 'DELETE', url: '/v1/sessions', headers: bearer(a!.accessToken) })).statusCode, 204);
      await assertTokenRefused(b!.accessToken);
      await assertTokenRefused(a!.accessToken);
    });

    it('V7.4.1: when a refresh token is used after "log out everywhere", then 401 invalid_refresh_token and nothing changes', async () => {
      const { sessions: [a, b] } = await userWithSessions(2);
      assert.equal((await svc.app.inject({ method: 'DELETE', url: '/v1/sessions', headers: bearer(a!.accessToken) })).statusCode, 204);
      await assertRefreshRefused(b!.refreshToken);
    });

    it('V6.2.3: when a stolen access token changes the password without the right current password, then 403 invalid_credentials and nothing changes', async () => {
      const { sessions: [s] } = await userWithSessions(1);
      const before = await dbState(svc.db);
      const res = await svc.app.inject({
        method: 'PUT',
        url: '/v1/users/me/password',
        headers: bearer(s!.accessToken),
        payload: { current_password: 'a guess at the password', new_password: 'attacker chosen passphrase 1' },
        remoteAddress: '192.0.2.140',
      });
      assertProblem(res, 403, 'invalid_credentials');
      await assertNothingChanged(svc.db, before);
    });
  });

  describe('refresh token theft and replay (V10.4.5)', () => {
    it('V10.4.5: when an old refresh token is replayed after its successor was used, then 401 invalid_refresh_token and the whole session is revoked', async () => {
      const { user, sessions: [s] } = await userWithSessions(1);
      const r1 = await refresh(s!.refreshToken);
      assert.equal(r1.statusCode, 200, r1.body);
      const r2 = await refresh(r1.json().refresh_token);
      assert.equal(r2.statusCode, 200, r2.body);
      const othersBefore = (await dbState(svc.db)).sessions.filter((row) => (row as { user_id: string }).user_id !== user.id);

      assertProblem(await refresh(s!.refreshToken), 401, 'invalid_refresh_token');
      const row = await sessionRow(svc.db, s!.sessionId);
      assert.equal(row.is_active, false, 'the session is revoked');
      assert.equal(row.end_reason, 'refresh_reuse');
      assertInvalidToken(await me(r2.json().access_token));
      assertProblem(await refresh(r2.json().refresh_token), 401, 'invalid_refresh_token');
      const othersAfter = (await dbState(svc.db)).sessions.filter((row) => (row as { user_id: string }).user_id !== user.id);
      assert.deepStrictEqual(othersAfter, othersBefore, "nobody else's session changed");
    });

    it('V10.4.5: when a refresh token two rotations old is replayed, then 401 invalid_refresh_token and the session is revoked', async () => {
      const { sessions: [s] } = await userWithSessions(1);
      let token = s!.refreshToken;
      const chain = [token];
      for (let i = 0; i < 3; i++) {
        const res = await refresh(token);
        assert.equal(res.statusCode, 200, res.body);
        token = res.json().refresh_token;
        chain.push(token);
      }
      assertProblem(await refresh(chain[1]!), 401, 'invalid_refresh_token');
      assert.equal((await sessionRow(svc.db, s!.sessionId)).is_active, false);
      assertProblem(await refresh(chain[3]!), 401, 'invalid_refresh_token');
    });

    it("V10.4.5: when an attacker pairs another user's session id with the secret of their own refresh token, then 401 invalid_refresh_token and neither session changes", async () => {
      const { sessions: [victim] } = await userWithSessions(1);
      const { sessions: [attacker] } = await userWithSessions(1);
      // The attacker's generation, secret and tag, under the victim's session id: the tag names the session.
      const afterId = attacker!.refreshToken.slice(attacker!.refreshToken.indexOf('.') + 1);
      await assertRefreshRefused(`${victim!.sessionId}.${afterId}`);
      assert.equal((await me(victim!.accessToken)).statusCode, 200);
      assert.equal((await me(attacker!.accessToken)).statusCode, 200);
    });

    it("V10.4.5: when a well-formed refresh token with a random secret names the victim's session, then 401 invalid_refresh_token and the session stays active (no revocation by guessing)", async () => {
      const { sessions: [victim] } = await userWithSessions(1);
      const rotated = await refresh(victim!.refreshToken); // generation 1 now: a token of generation 0 would be an older one
      assert.equal(rotated.statusCode, 200, rotated.body);
      await assertRefreshRefused(`${victim!.sessionId}.0.${randomBytes(32).toString('base64url')}.${randomBytes(16).toString('base64url')}`);
      await assertRefreshRefused(`${victim!.sessionId}.${randomBytes(32).toString('base64url')}`);
      const ok = await refresh(rotated.json().refresh_token);
      assert.equal(ok.statusCode, 200, 'the genuine token still works');
    });

    it('V7.2.3: when a refresh token of the wrong shape is sent (too short), then 401 invalid_refresh_token, not 400, and nothing changes', async () => {
      const { sessions: [s] } = await userWithSessions(1);
      await assertRefreshRefused(`${s!.sessionId}.abc`);
    });

    it('V9.2.2: when an access token is sent as a refresh token, then 401 invalid_refresh_token and nothing changes', async () => {
      const { sessions: [s] } = await userWithSessions(1);
      await assertRefreshRefused(s!.accessToken);
    });
  });

  describe('timeouts (V7.3)', () => {
    const past = () => new Date(Date.now() - 60_000);
    const idle = () => new Date(Date.now() - (svc.config.sessionIdleTtlS + 60) * 1000);

    it('V7.3.2: when a session is past its absolute expiry (expires_at set back in the database), then its access token is 401 invalid_token, nothing changes, the row is still there', async () => {
      const { sessions: [s] } = await userWithSessions(1);
      await svc.db.updateTable('user_sessions').set({ expires_at: past() }).where('session_id', '=', s!.sessionId).execute();
      await assertTokenRefused(s!.accessToken);
      assert.equal((await sessionRow(svc.db, s!.sessionId)).session_id, s!.sessionId, 'the row is kept');
    });

    it('V7.3.2: when a session is past its absolute expiry, then its refresh token is 401 invalid_refresh_token, nothing changes, the row is still there', async () => {
      const { sessions: [s] } = await userWithSessions(1);
      await svc.db.updateTable('user_sessions').set({ expires_at: past() }).where('session_id', '=', s!.sessionId).execute();
      await assertRefreshRefused(s!.refreshToken);
      assert.equal((await sessionRow(svc.db, s!.sessionId)).refresh_generation, 0, 'not rotated');
    });

    it('V7.3.1: when a session has been idle longer than SESSION_IDLE_TTL_S (last_used_at set back), then its access token is 401 invalid_token, nothing changes, the row is still there', async () => {
      const { sessions: [s] } = await userWithSessions(1);
      await svc.db.updateTable('user_sessions').set({ last_used_at: idle() }).where('session_id', '=', s!.sessionId).execute();
      await assertTokenRefused(s!.accessToken);
      const row = await sessionRow(svc.db, s!.sessionId);
      assert.ok(row.last_used_at.getTime() < Date.now() - svc.config.sessionIdleTtlS * 1000, 'a refused use does not count as use');
    });

    it('V7.3.1: when a session has been idle longer than SESSION_IDLE_TTL_S, then its refresh token is 401 invalid_refresh_token, nothing changes, the row is still there', async () => {
      const { sessions: [s] } = await userWithSessions(1);
      await svc.db.updateTable('user_sessions').set({ last_used_at: idle() }).where('session_id', '=', s!.sessionId).execute();
      await assertRefreshRefused(s!.refreshToken);
      const row = await sessionRow(svc.db, s!.sessionId);
      assert.equal(row.refresh_generation, 0, 'not rotated');
      assert.ok(row.last_used_at.getTime() < Date.now() - svc.config.sessionIdleTtlS * 1000, 'a refused refresh does not revive it');
    });

    it('V7.5.2: when a user lists sessions, then the expired and the idle ones are not offered as active', async () => {
      const { sessions: [current, expired, idled] } = await userWithSessions(3);
      await svc.db.updateTable('user_sessions').set({ expires_at: past() }).where('session_id', '=', expired!.sessionId).execute();
      await svc.db.updateTable('user_sessions').set({ last_used_at: idle() }).where('session_id', '=', idled!.sessionId).execute();
      const res = await svc.app.inject({ method: 'GET', url: '/v1/sessions', headers: bearer(current!.accessToken) });
      assert.equal(res.statusCode, 200);
      assert.deepEqual(res.json().sessions.map((x: { id: string }) => x.id), [current!.sessionId]);
    });
  });

  describe("other users' sessions and events (V8.2.2)", () => {
    it("V8.2.2: when a user revokes another user's session by id, then 404 not_found and the other user's rows are unchanged", async () => {
      const { sessions: [attacker] } = await userWithSessions(1);
      const { user: victim, sessions: [target] } = await userWithSessions(1);
      const victimBefore = await userRows(svc.db, victim.id);
      const before = await dbState(svc.db);
      const res = await svc.app.inject({ method: 'DELETE', url: `/v1/sessions/${target!.sessionId}`, headers: bearer(attacker!.accessToken) });
      assertProblem(res, 404, 'not_found');
      assert.deepStrictEqual(await userRows(svc.db, victim.id), victimBefore);
      await assertNothingChanged(svc.db, before);
      assert.equal((await me(target!.accessToken)).statusCode, 200, "the victim's session still works");
    });

    it("V8.2.2: when a user lists sessions, then none of another user's sessions is ever listed", async () => {
      const { sessions: [mine] } = await userWithSessions(1);
      const { user: victim } = await userWithSessions(2);
      const victimIds = (await userRows(svc.db, victim.id)).sessions.map((s) => s.session_id);
      const res = await svc.app.inject({ method: 'GET', url: '/v1/sessions', headers: bearer(mine!.accessToken) });
      assert.equal(res.statusCode, 200);
      const listed: string[] = res.json().sessions.map((s: { id: string }) => s.id);
      assert.deepEqual(listed, [mine!.sessionId]);
      for (const id of victimIds) assert.ok(!listed.includes(id));
    });

    it("V8.2.2: when a user reads their security events, then none of another user's events is shown", async () => {
      const { sessions: [mine] } = await userWithSessions(1);
      const { user: victim, sessions: [victimSession] } = await userWithSessions(1);
      await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: victim.username, password: 'a wrong password 1' }, remoteAddress: '192.0.2.141' });
      await refresh(victimSession!.refreshToken);
      const victimEventIds = (await svc.db.selectFrom('audit_events').select('event_id').where('user_id', '=', victim.id).execute()).map((e) => String(e.event_id));
      assert.ok(victimEventIds.length >= 3, 'the victim has events');
      const res = await svc.app.inject({ method: 'GET', url: '/v1/users/me/events?limit=100', headers: bearer(mine!.accessToken) });
      assert.equal(res.statusCode, 200, res.body);
      const events: Array<{ id: string; session_id: string | null }> = res.json().events;
      assert.ok(events.length >= 1, 'the caller sees their own login');
      for (const e of events) {
        assert.ok(!victimEventIds.includes(e.id), `event ${e.id} belongs to another user`);
        assert.notEqual(e.session_id, victimSession!.sessionId);
      }
    });

    it("V8.2.2: when a user pages events with 'before' past another user's newest event, then still only their own events are shown", async () => {
      const { user: me1, sessions: [mine] } = await userWithSessions(1);
      await userWithSessions(1); // another user, whose login is now the newest event
      const newest = await svc.db.selectFrom('audit_events').select('event_id').orderBy('event_id', 'desc').limit(1).executeTakeFirstOrThrow();
      const res = await svc.app.inject({ method: 'GET', url: `/v1/users/me/events?limit=100&before=${Number(newest.event_id) + 1}`, headers: bearer(mine!.accessToken) });
      assert.equal(res.statusCode, 200, res.body);
      const own = (await svc.db.selectFrom('audit_events').select('event_id').where('user_id', '=', me1.id).execute()).map((e) => String(e.event_id)).sort();
      assert.deepEqual(res.json().events.map((e: { id: string }) => e.id).sort(), own);
    });
  });

  describe('session fixation (V7.2.4)', () => {
    it('V7.2.4: when a login is made while presenting an existing session\'s tokens, then a new session with new tokens is created and the old one is not reused', async () => {
      const { user, sessions: [old] } = await userWithSessions(1);
      const res = await svc.app.inject({
        method: 'POST',
        url: '/v1/sessions',
        headers: bearer(old!.accessToken),
        payload: { username: user.username, password: user.password },
      });
      assert.equal(res.statusCode, 201, res.body);
      assert.notEqual(res.json().session.id, old!.sessionId);
      assert.notEqual(res.json().refresh_token, old!.refreshToken);
      assert.notEqual(res.json().access_token, old!.accessToken);
    });
  });
});
