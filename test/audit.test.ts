import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { bearer, login, problem, registerUser, startTestService, type TestService } from './helpers/app.js';

describe('audit log', () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService();
  });
  after(() => svc.close());

  async function events(userId: string) {
    return svc.db.selectFrom('audit_events').selectAll().where('user_id', '=', userId).orderBy('event_id').execute();
  }

  it('when a user goes through the seed services, then each security event is recorded with time, user, session, address and agent', async () => {
    const user = await registerUser(svc.app);
    await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: 'wrong password here' }, headers: { 'user-agent': 'audit-test' } });
    const first = await login(svc.app, user, { 'user-agent': 'audit-test' });
    const second = await login(svc.app, user);
    await svc.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: first.refreshToken } });
    await svc.app.inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(first.accessToken), payload: { name: 'New Name' } });
    await svc.app.inject({ method: 'PUT', url: '/v1/users/me/password', headers: bearer(first.accessToken), payload: { current_password: 'nope nope nope', new_password: 'x' } });
    await svc.app.inject({ method: 'PUT', url: '/v1/users/me/password', headers: bearer(first.accessToken), payload: { current_password: user.password, new_password: 'an entirely new passphrase' } });
    const third = await login(svc.app, { username: user.username, password: 'an entirely new passphrase' });
    await svc.app.inject({ method: 'DELETE', url: `/v1/sessions/${third.sessionId}`, headers: bearer(first.accessToken) });
    await svc.app.inject({ method: 'DELETE', url: '/v1/sessions/current', headers: bearer(first.accessToken) });

    const all = await events(user.id);
    assert.equal(all[1]!.event, 'email_verification_sent', 'registration sends the verification mail');
    const rows = all.filter((r) => r.event !== 'email_verification_sent');
    assert.deepEqual(
      rows.map((r) => r.event),
      ['user_registered', 'login_failed', 'login_succeeded', 'login_succeeded', 'refresh', 'profile_updated', 'password_change_failed', 'password_changed', 'login_succeeded', 'session_revoked', 'logout'],
    );
    const failed = rows[1]!;
    assert.equal(failed.ip, '127.0.0.1');
    assert.equal(failed.user_agent, 'audit-test');
    assert.equal(failed.session_id, null);
    assert.equal(rows[2]!.session_id, first.sessionId);
    assert.equal(rows[3]!.session_id, second.sessionId);
    assert.deepEqual(JSON.parse(rows[7]!.details!), { revoked_sessions: 1 });
    assert.ok(rows.every((r) => r.occurred_at instanceof Date));
    const everything = JSON.stringify(rows);
    for (const secret of [user.password, 'an entirely new passphrase', first.accessToken, first.refreshToken, 'argon2']) {
      assert.ok(!everything.includes(secret), `no secret in the audit log: ${secret.slice(0, 12)}`);
    }
  });

  it('when a refresh token is reused, then refresh_reuse is recorded', async () => {
    const user = await registerUser(svc.app);
    const { refreshToken } = await login(svc.app, user);
    const next = (await svc.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: refreshToken } })).json();
    await svc.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: next.refresh_token } });
    const reuse = await svc.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: refreshToken } });
    assert.equal(reuse.statusCode, 401);
    assert.deepEqual((await events(user.id)).map((r) => r.event).slice(-3), ['refresh', 'refresh', 'refresh_reuse']);
  });

  it('when an unknown name fails to log in, then the event has no user and no name', async () => {
    const before = await svc.db.selectFrom('audit_events').select('event_id').where('event', '=', 'login_failed').where('user_id', 'is', null).execute();
    await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: 'nobody_here_at_all', password: 'maybe a password' } });
    const rows = await svc.db.selectFrom('audit_events').selectAll().where('event', '=', 'login_failed').where('user_id', 'is', null).execute();
    assert.equal(rows.length, before.length + 1);
    assert.ok(!JSON.stringify(rows).includes('nobody_here_at_all'));
    assert.ok(!JSON.stringify(rows).includes('maybe a password'));
  });

  it('when a user reads /v1/users/me/events, then they see only their own events, newest first, paged', async () => {
    const user = await registerUser(svc.app);
    const other = await registerUser(svc.app);
    await login(svc.app, other);
    const { accessToken } = await login(svc.app, user);
    for (let i = 0; i < 3; i++) await login(svc.app, user);
    const page1 = await svc.app.inject({ method: 'GET', url: '/v1/users/me/events?limit=2', headers: bearer(accessToken) });
    assert.equal(page1.statusCode, 200);
    assert.equal(page1.headers['cache-control'], 'no-store');
    const body1 = page1.json();
    assert.equal(body1.events.length, 2);
    assert.deepEqual(body1.events.map((e: { type: string }) => e.type), ['login_succeeded', 'login_succeeded']);
    assert.ok(Number(body1.events[0].id) > Number(body1.events[1].id));
    assert.ok(body1.next);
    const all: Array<{ type: string }> = [];
    let next: string | null = null;
    do {
      const res: { json(): any } = await svc.app.inject({ method: 'GET', url: `/v1/users/me/events?limit=2${next ? `&before=${next}` : ''}`, headers: bearer(accessToken) });
      const body: { events: Array<{ type: string }>; next: string | null } = res.json();
      all.push(...body.events);
      next = body.next;
    } while (next);
    assert.deepEqual(all.map((e: { type: string }) => e.type), ['login_succeeded', 'login_succeeded', 'login_succeeded', 'login_succeeded', 'email_verification_sent', 'user_registered']);
    const ownRows = await events(user.id);
    assert.equal(all.length, ownRows.length, 'exactly the rows of this user');
  });

  it('when the events page is asked with a bad limit or cursor, then 400 validation_failed', async () => {
    const user = await registerUser(svc.app);
    const { accessToken } = await login(svc.app, user);
    for (const query of ['limit=0', 'limit=101', 'limit=abc', 'before=-1', 'before=x', 'extra=1']) {
      const res = await svc.app.inject({ method: 'GET', url: `/v1/users/me/events?${query}`, headers: bearer(accessToken) });
      assert.equal(res.statusCode, 400, query);
      assert.equal(problem(res).code, 'validation_failed');
    }
  });

  it('when events are older than the retention period, then pruning removes them and keeps the rest', async () => {
    const user = await registerUser(svc.app);
    await svc.db.updateTable('audit_events').set({ occurred_at: new Date(Date.now() - 100 * 86_400_000) }).where('user_id', '=', user.id).execute();
    await login(svc.app, user);
    const { AuditLog } = await import('../src/audit/audit-log.js');
    await new AuditLog(svc.db).prune(90, Date.now());
    assert.deepEqual((await events(user.id)).map((r) => r.event), ['login_succeeded']);
  });

  it('when sessions ended longer ago than the retention period, then pruning removes them and keeps the rest', async () => {
    const user = await registerUser(svc.app);
    const old = await login(svc.app, user);
    const recent = await login(svc.app, user);
    const active = await login(svc.app, user);
    for (const s of [old, recent]) await svc.app.inject({ method: 'DELETE', url: '/v1/sessions/current', headers: bearer(s.accessToken) });
    await svc.db.updateTable('user_sessions').set({ ended_at: new Date(Date.now() - 100 * 86_400_000) }).where('session_id', '=', old.sessionId).execute();
    const { pruneEndedSessions } = await import('../src/sessions/repository.js');
    await pruneEndedSessions(svc.db, 90, Date.now());
    const left = (await svc.db.selectFrom('user_sessions').select('session_id').where('user_id', '=', user.id).orderBy('session_id').execute()).map((r) => r.session_id);
    assert.deepEqual(left, [recent.sessionId, active.sessionId]);
  });
});
