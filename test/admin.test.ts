import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { AdminService } from '../src/admin/service.js';
import { openDatabase } from '../src/db/create-db.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { bearer, createServerDatabase, login, problem, registerUser, serverUrl, startTestService, type TestService } from './helpers/app.js';
import { insertUser } from '../src/users/repository.js';

const run = promisify(execFile);

async function within(ms: number, check: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`not within ${ms} ms`);
}

describe('admin: users and sessions', () => {
  let svc: TestService;
  let admin: AdminService;
  before(async () => {
    svc = await startTestService();
    admin = new AdminService(svc.db);
  });
  after(() => svc.close());

  const me = (token: string) => svc.app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(token) });

  it('when a user is disabled, then their cached sessions are refused within 1 s, they cannot log in, and enabling lets them back', async () => {
    const user = await registerUser(svc.app);
    const { accessToken, refreshToken } = await login(svc.app, user);
    assert.equal((await me(accessToken)).statusCode, 200); // cached now
    assert.deepEqual(await admin.setDisabled(user.username, true), { sessionsEnded: 1 });
    await within(1000, async () => (await me(accessToken)).statusCode === 401);
    const refresh = await svc.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: refreshToken } });
    assert.equal(refresh.statusCode, 401);
    const denied = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: user.password } });
    assert.equal(denied.statusCode, 401);
    assert.equal(problem(denied).code, 'invalid_credentials');
    assert.equal((await svc.db.selectFrom('user_sessions').select('session_id').where('user_id', '=', user.id).where('is_active', '=', true).execute()).length, 0);
    await admin.setDisabled(user.username, false);
    await login(svc.app, user);
    const events = (await svc.db.selectFrom('audit_events').select('event').where('user_id', '=', user.id).execute()).map((e) => e.event);
    assert.ok(events.includes('user_disabled') && events.includes('user_enabled'));
  });

  it('when an administrator revokes a user\'s sessions, then every one of them is refused and other users keep theirs', async () => {
    const user = await registerUser(svc.app);
    const other = await registerUser(svc.app);
    const a = await login(svc.app, user);
    const b = await login(svc.app, user);
    const keep = await login(svc.app, other);
    for (const t of [a, b, keep]) assert.equal((await me(t.accessToken)).statusCode, 200);
    assert.equal(await admin.revokeSessions(user.username.toUpperCase()), 2);
    await within(1000, async () => (await me(a.accessToken)).statusCode === 401 && (await me(b.accessToken)).statusCode === 401);
    assert.equal((await me(keep.accessToken)).statusCode, 200);
    assert.equal(await admin.revokeSessions('no_such_user_here'), undefined);
  });

  it('when users are listed with a filter, then only matching users come back, paged', async () => {
    const a = await registerUser(svc.app, { username: 'filter_me_alpha' });
    await registerUser(svc.app, { username: 'filter_me_beta' });
    await registerUser(svc.app, { username: 'someone_else_1' });
    const all = await admin.listUsers({ limit: 10, offset: 0, filter: 'FILTER_ME' });
    assert.deepEqual(all.map((u) => u.username), ['filter_me_alpha', 'filter_me_beta']);
    const page2 = await admin.listUsers({ limit: 1, offset: 1, filter: 'filter_me' });
    assert.deepEqual(page2.map((u) => u.username), ['filter_me_beta']);
    assert.deepEqual(await admin.listUsers({ limit: 10, offset: 0, filter: '%' }), [], 'a LIKE wildcard is matched literally');
    const shown = await admin.findUser(a.username);
    assert.equal(shown?.id, a.id);
    assert.equal(shown?.disabled, false);
    assert.ok(!JSON.stringify(shown).includes('argon2'));
  });
});

describe('admin command line', () => {
  let env: NodeJS.ProcessEnv;
  let cleanup: () => Promise<void>;

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ums-admin-'));
    const server = serverUrl ? await createServerDatabase(serverUrl) : undefined;
    env = { ...process.env, DATABASE_URL: server?.url ?? '', DATA_DIR: dir, WORKERS: '1' };
    cleanup = async () => {
      rmSync(dir, { recursive: true, force: true });
      await server?.drop();
    };
    // A user to manage, written the way the service writes one.
    const db = await openDatabase({ databaseUrl: server?.url, pgliteDir: dir });
    await migrateToLatest(db.kysely);
    const row = await insertUser(db.kysely, { username: 'Grace_H', name: 'Grace Hopper', dob: '1906-12-09', email: 'grace@example.com' });
    await db.kysely.insertInto('user_credentials').values({ user_id: row!.user_id, hashed_password: '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g', is_current: true }).execute();
    await db.close();
  });
  after(() => cleanup());

  const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { env });
  const fails = (code: number, match: RegExp) => (err: { code: number; stderr: string }) => err.code === code && match.test(err.stderr);

  it('when users are listed and shown, then the output names them, as text and as JSON', { timeout: 120_000 }, async () => {
    const list = JSON.parse((await cli('users', 'list', '--json')).stdout);
    assert.deepEqual(list.users.map((u: { username: string }) => u.username), ['Grace_H']);
    assert.match((await cli('users', 'list', '--filter', 'grace')).stdout, /Grace_H\s+grace@example\.com/);
    const shown = JSON.parse((await cli('users', 'show', 'grace_h', '--json')).stdout);
    assert.equal(shown.email, 'grace@example.com');
    assert.equal(shown.disabled, false);
    assert.equal(shown.active_sessions, 0);
    assert.ok(!JSON.stringify(shown).includes('argon2'));
  });

  it('when a user is disabled and their sessions revoked, then it says so, the database shows it, and the audit tail lists it', { timeout: 120_000 }, async () => {
    assert.match((await cli('users', 'disable', 'Grace_H')).stdout, /Grace_H is disabled; 0 session\(s\) ended\./);
    assert.equal(JSON.parse((await cli('users', 'show', 'Grace_H', '--json')).stdout).disabled, true);
    assert.match((await cli('sessions', 'revoke', '--user', 'Grace_H')).stdout, /0 session\(s\) of Grace_H ended\./);
    const tail = JSON.parse((await cli('audit', 'tail', '--limit', '5', '--json')).stdout);
    assert.deepEqual(tail.events.map((e: { event: string }) => e.event), ['sessions_revoked_all', 'user_disabled']);
    assert.equal(tail.events[0].username, 'Grace_H');
  });

  it('when roles are granted, listed and revoked, then it says so, and the last admin keeps admin and stays enabled', { timeout: 180_000 }, async () => {
    await cli('users', 'enable', 'Grace_H');
    assert.match((await cli('roles', 'grant', 'grace_h', 'admin')).stdout, /grace_h holds admin\./);
    const roles = JSON.parse((await cli('roles', 'list', '--json')).stdout).roles;
    assert.deepEqual(roles.find((r: { name: string }) => r.name === 'admin').users, ['Grace_H']);
    await assert.rejects(cli('roles', 'revoke', 'Grace_H', 'admin'), fails(1, /no user holding the admin role/));
    await assert.rejects(cli('users', 'disable', 'Grace_H'), fails(1, /no user holding the admin role/));
    await assert.rejects(cli('roles', 'grant', 'Grace_H', 'wizard'), fails(1, /No role named wizard/));
  });

  it('when the user does not exist or the options are wrong, then exit 1 or 2 with a clear line', { timeout: 120_000 }, async () => {
    await assert.rejects(cli('users', 'show', 'nobody'), fails(1, /No user named nobody\./));
    await assert.rejects(cli('users', 'list', '--limit', 'lots'), fails(2, /--limit must be a whole number/));
    await assert.rejects(cli('sessions', 'revoke'), fails(2, /needs --user/));
    await assert.rejects(cli('users', 'frobnicate', 'x'), fails(2, /Unknown command/));
    await assert.rejects(cli('roles', 'grant', 'Grace_H'), fails(2, /needs a username and a role/));
  });
});
