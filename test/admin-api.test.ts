import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { AdminService } from '../src/admin/service.js';
import { ADMIN_ENDPOINTS as ADMIN_API_ENDPOINTS } from '../src/admin/routes.js';
import { IMPORT_ENDPOINT } from '../src/import/admin-route.js';
import { CLIENT_ENDPOINTS } from '../src/oidc/schemas.js';

/** Every admin route and its permission: the admin API's table, and those other features add under /v1/admin. */
const ADMIN_ENDPOINTS = { ...ADMIN_API_ENDPOINTS, ...IMPORT_ENDPOINT, ...CLIENT_ENDPOINTS };
import { PERMISSIONS } from '../src/admin/permissions.js';
import { buildApp } from '../src/app.js';
import type { App } from '../src/http/types.js';
import { bearer, GOOD_PASSWORD, login, problem, registerUser, startTestService, tableCounts, uniqueName, type RegisteredUser, type TestService } from './helpers/app.js';
import { mailSettled, Outbox } from './helpers/mail.js';

/** API-ADMIN.md, on the database of TEST_DATABASE_URL (PGlite when unset). */

interface Signed extends RegisteredUser {
  token: string;
  sessionId: string;
}

describe('admin API', () => {
  let svc: TestService;
  let cli: AdminService;
  const outbox = new Outbox();
  let admin: Signed;

  before(async () => {
    svc = await startTestService({ outboxDir: outbox.dir });
    cli = new AdminService(svc.db);
    admin = await signedUp(['admin']);
  });
  after(async () => {
    await svc.close();
    outbox.remove();
  });

  const call = (method: string, url: string, token?: string, payload?: unknown, app: App = svc.app) =>
    app.inject({ method: method as 'GET', url, headers: token ? bearer(token) : {}, ...(payload !== undefined ? { payload: payload as object } : {}) });

  /** A registered user holding `roles` (granted as the operator does), signed in after. */
  async function signedUp(roles: string[] = [], fields: Parameters<typeof registerUser>[1] = {}): Promise<Signed> {
    const user = await registerUser(svc.app, fields);
    for (const role of roles) await cli.changeRole(user.username, role, true);
    const session = await login(svc.app, user);
    return { ...user, token: session.accessToken, sessionId: session.sessionId };
  }

  /** Makes the session look opened `minutes` ago (sudo mode reads created_at). */
  const ageSession = (sessionId: string, minutes: number) =>
    svc.db.updateTable('user_sessions').set({ created_at: new Date(Date.now() - minutes * 60_000) }).where('session_id', '=', sessionId).execute();

  const rolesOf = async (userId: string) => (await svc.db.selectFrom('user_roles').select('role_name').where('user_id', '=', userId).orderBy('role_name').execute()).map((r) => r.role_name);

  describe('permissions', () => {
    it('when a caller lacks the permission of an endpoint, then 403 forbidden names it, for every endpoint of the table, and nothing changes', async () => {
      // One user per permission, holding every other one; and one holding none.
      const target = await signedUp();
      const lacking = new Map<string, Signed>();
      for (const permission of new Set(Object.values(ADMIN_ENDPOINTS))) {
        const role = `all_but_${permission.replace(':', '_')}`;
        const made = await call('POST', '/v1/admin/roles', admin.token, { name: role, permissions: PERMISSIONS.filter((p) => p !== permission) });
        assert.equal(made.statusCode, 201, made.body);
        lacking.set(permission, await signedUp([role]));
      }
      const nobody = await signedUp();
      const before = { ...(await tableCounts(svc.db)), roles: (await svc.db.selectFrom('user_roles').selectAll().execute()).length };
      for (const [endpoint, permission] of Object.entries(ADMIN_ENDPOINTS)) {
        const [method, path] = endpoint.split(' ') as [string, string];
        const url = path.replace(':id', target.id).replace(':sid', target.sessionId).replace(':pid', '1').replace(':name', 'support');
        for (const caller of [lacking.get(permission)!, nobody]) {
          const res = await call(method, url, caller.token, method === 'GET' || method === 'DELETE' ? undefined : {});
          assert.equal(res.statusCode, 403, `${endpoint}: ${res.body}`);
          const body = problem(res);
          assert.equal(body.code, 'forbidden', endpoint);
          assert.match(body.detail, new RegExp(permission), endpoint);
          assert.equal(body.permission, permission);
        }
      }
      assert.deepEqual({ ...(await tableCounts(svc.db)), roles: (await svc.db.selectFrom('user_roles').selectAll().execute()).length }, before);
      // The table is every admin route the service has.
      const documented = Object.entries((svc.app.swagger() as { paths: Record<string, Record<string, unknown>> }).paths)
        .filter(([path]) => path.startsWith('/v1/admin'))
        .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`))
        .sort();
      assert.deepEqual(documented, Object.keys(ADMIN_ENDPOINTS).sort());
    });

    it('when no token or a bad one is sent, then 401 invalid_token', async () => {
      assert.equal(problem(await call('GET', '/v1/admin/users')).code, 'invalid_token');
      assert.equal(problem(await call('GET', '/v1/admin/users', 'nonsense')).code, 'invalid_token');
    });

    it('when a role is granted or taken, then the next request follows it, and the token carries roles only when there are some', async () => {
      const user = await signedUp();
      assert.equal(decodeJwt(user.token).roles, undefined);
      assert.equal((await call('GET', '/v1/admin/users', user.token)).statusCode, 403);
      assert.deepEqual((await call('PUT', `/v1/admin/users/${user.id}/roles`, admin.token, { roles: ['support'] })).json(), { roles: ['support'] });
      assert.equal((await call('GET', '/v1/admin/users', user.token)).statusCode, 200, 'the same token, the new role');
      assert.deepEqual(decodeJwt((await login(svc.app, user)).accessToken).roles, ['support']);
      assert.equal((await call('PUT', `/v1/admin/users/${user.id}/roles`, admin.token, { roles: [] })).statusCode, 200);
      const refused = await call('GET', '/v1/admin/users', user.token);
      assert.equal(problem(refused).code, 'forbidden');
    });

    it('when a second instance shares the database, then a role taken through the first is refused there within 1 s', async () => {
      const other = await buildApp({ config: svc.config, db: svc.handle });
      try {
        const user = await signedUp(['support']);
        assert.equal((await call('GET', '/v1/admin/users?limit=1', user.token, undefined, other)).statusCode, 200); // cached there
        assert.equal((await call('PUT', `/v1/admin/users/${user.id}/roles`, admin.token, { roles: [] })).statusCode, 200);
        const start = Date.now();
        while ((await call('GET', '/v1/admin/users?limit=1', user.token, undefined, other)).statusCode !== 403) {
          assert.ok(Date.now() - start < 1000, 'still allowed after 1 s');
          await new Promise((r) => setTimeout(r, 20));
        }
      } finally {
        await other.close();
      }
    });
  });

  describe('users', () => {
    it('when users are searched, then q matches a username or email prefix or a name substring, ignoring case, with the filters, newest first', async () => {
      const tag = uniqueName('srch').replace(/_/g, '');
      const a = await signedUp([], { username: `${tag}_alpha`, name: 'Ingrid Olafsdottir' });
      const b = await signedUp(['support'], { username: `zz${tag}_beta`, email: `${tag}.beta@example.com`, name: 'Someone Else' });
      const c = await signedUp([], { username: `yy${tag}_gamma`, name: `Carla ${tag.toUpperCase()} Mendes` });
      const ids = async (query: string) => {
        const res = await call('GET', `/v1/admin/users?${query}`, admin.token);
        assert.equal(res.statusCode, 200, res.body);
        return res.json().users.map((u: { id: string }) => u.id);
      };
      assert.deepEqual(await ids(`q=${tag.toUpperCase()}`), [c.id, b.id, a.id], 'username prefix, email prefix, name substring; newest first');
      assert.deepEqual(await ids(`q=olafsdot`), [a.id]);
      assert.deepEqual(await ids(`q=${tag}_al`), [a.id]);
      assert.deepEqual(await ids(`q=alpha`), [], 'a username matches from its start only');
      assert.deepEqual(await ids(`q=${tag}&role=support`), [b.id]);
      await call('POST', `/v1/admin/users/${c.id}/disable`, admin.token, {});
      assert.deepEqual(await ids(`q=${tag}&status=disabled`), [c.id]);
      assert.deepEqual(await ids(`q=${tag}&status=active`), [b.id, a.id]);
      assert.deepEqual(await ids(`q=${tag}&email_verified=true`), []);
      const created = (await call('GET', `/v1/admin/users/${b.id}`, admin.token)).json().created_at;
      assert.deepEqual(await ids(`q=${tag}&created_after=${encodeURIComponent(created)}`), [c.id]);
      assert.deepEqual(await ids(`q=${tag}&created_before=${encodeURIComponent(created)}`), [a.id]);
      assert.deepEqual(await ids(`q=%25`), [], 'a LIKE wildcard is matched literally');
      assert.ok((await ids('q=yy')).includes(c.id), 'a query under 3 characters takes the one-scan way');
      assert.deepEqual(await ids('q=%00'), [], 'a NUL matches nothing (and is no error)');
      assert.deepEqual(await ids(`q=${tag}%00`), []);
    });

    it('when a query parameter breaks its rule, then 400 validation_failed names it', async () => {
      for (const [query, field] of [
        ['limit=0', 'limit'],
        ['limit=101', 'limit'],
        ['limit=ten', 'limit'],
        ['status=gone', 'status'],
        ['email_verified=yes', 'email_verified'],
        ['created_after=yesterday', 'created_after'],
        ['role=Not+A+Role', 'role'],
        ['before=%21%21', 'before'],
        [`before=${Buffer.from('u:abc').toString('base64url')}`, 'before'],
        ['sort=name', 'sort'],
      ] as const) {
        const res = await call('GET', `/v1/admin/users?${query}`, admin.token);
        assert.equal(res.statusCode, 400, query);
        const body = problem(res);
        assert.equal(body.code, 'validation_failed');
        assert.ok(body.errors?.some((e) => e.field === field), `${query}: ${res.body}`);
      }
    });

    it('when users are created and deleted between pages, then paging neither repeats nor skips a user that stayed', async () => {
      const tag = uniqueName('page').replace(/_/g, '');
      const made: string[] = [];
      for (let i = 0; i < 17; i++) made.push((await registerUser(svc.app, { username: `${tag}_${i}` })).id);
      const deleted = new Set<string>();
      const seen: string[] = [];
      let next: string | null = null;
      let pages = 0;
      do {
        const res = await call('GET', `/v1/admin/users?q=${tag}&limit=4${next ? `&before=${next}` : ''}`, admin.token);
        assert.equal(res.statusCode, 200, res.body);
        const body = res.json();
        seen.push(...body.users.map((u: { id: string }) => u.id));
        next = body.next;
        // Between pages: two new users come, and one not seen yet goes (through the API).
        await registerUser(svc.app, { username: `${tag}_new${pages}a` });
        await registerUser(svc.app, { username: `${tag}_new${pages}b` });
        const victim = made.find((id) => !seen.includes(id) && !deleted.has(id));
        if (victim) {
          assert.equal((await call('DELETE', `/v1/admin/users/${victim}`, admin.token)).statusCode, 204);
          deleted.add(victim);
        }
        pages++;
      } while (next && pages < 20);
      assert.equal(new Set(seen).size, seen.length, 'no user twice');
      const stayed = made.filter((id) => !deleted.has(id));
      assert.deepEqual(seen.filter((id) => made.includes(id)).sort(), stayed.sort(), 'every user that stayed, once');
      assert.ok(deleted.size >= 3);
    });

    it('when a user is read, then the admin user object shows status, roles, factors, password and last sign-in', async () => {
      const user = await signedUp(['support']);
      await svc.db.insertInto('user_passkeys').values({ user_id: user.id, credential_id: `cred-${user.id}`, public_key: 'pk', name: 'key', device_type: 'singleDevice', backed_up: false }).execute();
      const res = await call('GET', `/v1/admin/users/${user.id}`, admin.token);
      assert.equal(res.statusCode, 200);
      const body = res.json();
      assert.equal(body.username, user.username);
      assert.equal(body.email_verified, false);
      assert.equal(body.disabled_at, null);
      assert.equal(body.disabled_reason, null);
      assert.deepEqual(body.roles, ['support']);
      assert.deepEqual(body.mfa, { totp: false, passkeys: 1 });
      assert.equal(body.has_password, true);
      assert.ok(Date.now() - Date.parse(body.last_sign_in_at) < 60_000);
      assert.ok(!res.body.includes('argon2'));
      assert.equal(problem(await call('GET', '/v1/admin/users/999999999', admin.token)).code, 'not_found');
      assert.equal(problem(await call('GET', '/v1/admin/users/abc', admin.token)).code, 'not_found');
    });

    it('when a user is created, then 201 with Location; without a password they have none, and send_invite mails a 72-hour link', async () => {
      const username = uniqueName('made');
      const res = await call('POST', '/v1/admin/users', admin.token, { username, name: 'Made By Admin', dob: '1980-01-01', email: `${username}@example.com`, email_verified: true, roles: ['support'], send_invite: true });
      assert.equal(res.statusCode, 201, res.body);
      const body = res.json();
      assert.equal(res.headers.location, `/v1/admin/users/${body.id}`);
      assert.equal(body.has_password, false);
      assert.equal(body.email_verified, true);
      assert.deepEqual(body.roles, ['support']);
      await mailSettled(svc.app);
      const [mail] = await outbox.messages(`${username}@example.com`);
      assert.match(mail!.text, /reset-password#token=[A-Za-z0-9_-]{43}/);
      assert.match(mail!.text, /72 hours/);
      const token = await svc.db.selectFrom('account_tokens').select(['expires_at']).where('user_id', '=', body.id).executeTakeFirstOrThrow();
      assert.ok(Math.abs(token.expires_at.getTime() - Date.now() - 72 * 3_600_000) < 60_000);
      const events = (await call('GET', `/v1/admin/events?user_id=${body.id}`, admin.token)).json().events;
      assert.deepEqual(events.map((e: { type: string }) => e.type).sort(), ['password_reset_requested', 'user_created']);
      assert.ok(events.every((e: { actor_id: string }) => e.actor_id === admin.id));

      const withPassword = uniqueName('made');
      const second = await call('POST', '/v1/admin/users', admin.token, { username: withPassword, name: 'P', dob: '1980-01-01', email: `${withPassword}@example.com`, password: GOOD_PASSWORD });
      assert.equal(second.json().has_password, true);
      await login(svc.app, { username: withPassword, password: GOOD_PASSWORD });

      assert.equal(problem(await call('POST', '/v1/admin/users', admin.token, { username, name: 'X', dob: '1980-01-01', email: 'other@example.com' })).code, 'username_taken');
      assert.equal(problem(await call('POST', '/v1/admin/users', admin.token, { username: uniqueName('w'), name: 'X', dob: '1980-01-01', email: 'w@example.com', password: 'short' })).code, 'weak_password');
      const unknownRole = await call('POST', '/v1/admin/users', admin.token, { username: uniqueName('r'), name: 'X', dob: '1980-01-01', email: 'r@example.com', roles: ['no_such_role'] });
      assert.equal(problem(unknownRole).code, 'validation_failed');
      assert.equal(problem(unknownRole).errors?.[0]?.field, 'roles');
      const bad = await call('POST', '/v1/admin/users', admin.token, { username: 'x', name: '', dob: 'soon', email: 'nope', extra: 1 });
      assert.deepEqual(problem(bad).errors?.map((e) => e.field).sort(), ['dob', 'email', 'extra', 'name', 'username']);
    });

    it('when a users:write holder creates a user with roles, then roles:write is needed too', async () => {
      await call('POST', '/v1/admin/roles', admin.token, { name: 'user_maker', permissions: ['users:write', 'users:read'] });
      const maker = await signedUp(['user_maker']);
      const username = uniqueName('m');
      const res = await call('POST', '/v1/admin/users', maker.token, { username, name: 'X', dob: '1980-01-01', email: `${username}@example.com`, roles: ['user_maker'] });
      assert.equal(problem(res).code, 'forbidden');
      assert.match(problem(res).detail, /roles:write/);
      assert.equal(await svc.db.selectFrom('users').select('user_id').where('username', '=', username).executeTakeFirst(), undefined);
    });

    it('when a profile is edited, then 200 with the change, a new email is unverified, and a taken name is 409', async () => {
      const user = await signedUp();
      const other = await signedUp();
      const res = await call('PATCH', `/v1/admin/users/${user.id}`, admin.token, { name: ' New Name ', email: `new.${user.email}` });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json().name, 'New Name');
      assert.equal(res.json().email_verified, false);
      assert.equal((await call('GET', '/v1/users/me', user.token)).json().email, `new.${user.email}`, 'the user sees it at once');
      assert.equal((await call('PATCH', `/v1/admin/users/${user.id}`, admin.token, { email_verified: true })).json().email_verified, true);
      assert.equal(problem(await call('PATCH', `/v1/admin/users/${user.id}`, admin.token, { username: other.username.toUpperCase() })).code, 'username_taken');
      assert.equal(problem(await call('PATCH', `/v1/admin/users/${user.id}`, admin.token, {})).code, 'validation_failed');
      assert.equal(problem(await call('PATCH', '/v1/admin/users/999999999', admin.token, { name: 'X' })).code, 'not_found');
    });

    it('when a user is disabled, then every session ends at once, sign-in is refused like a wrong password, and enabling leaves the sessions ended', async () => {
      const user = await signedUp();
      const res = await call('POST', `/v1/admin/users/${user.id}/disable`, admin.token, { reason: 'stolen laptop' });
      assert.equal(res.statusCode, 200, res.body);
      assert.ok(res.json().disabled_at);
      assert.equal(res.json().disabled_reason, 'stolen laptop');
      assert.equal(problem(await call('GET', '/v1/users/me', user.token)).code, 'invalid_token');
      const signIn = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: user.password } });
      assert.equal(problem(signIn).code, 'invalid_credentials');
      const again = await call('POST', `/v1/admin/users/${user.id}/disable`, admin.token);
      assert.equal(again.statusCode, 200, 'disabling a disabled user changes nothing');
      assert.equal(again.json().disabled_reason, 'stolen laptop');
      const enabled = await call('POST', `/v1/admin/users/${user.id}/enable`, admin.token);
      assert.equal(enabled.json().disabled_at, null);
      assert.equal((await call('POST', `/v1/admin/users/${user.id}/enable`, admin.token)).statusCode, 200);
      assert.equal(problem(await call('GET', '/v1/users/me', user.token)).code, 'invalid_token', 'ended sessions stay ended');
      await login(svc.app, user);
      assert.equal(problem(await call('POST', `/v1/admin/users/${user.id}/disable`, admin.token, { reason: 'x'.repeat(201) })).code, 'validation_failed');
      const types = (await svc.db.selectFrom('audit_events').select(['event', 'actor_id']).where('user_id', '=', user.id).where('event', 'in', ['user_disabled', 'user_enabled']).execute());
      assert.deepEqual(types.map((t) => [t.event, String(t.actor_id)]).sort(), [['user_disabled', admin.id], ['user_enabled', admin.id]]);
    });

    it("when a user's password is set, then the old one stops working and their sessions end unless revoke_sessions is false; the rules of part 1 apply", async () => {
      const user = await signedUp();
      assert.equal(problem(await call('PUT', `/v1/admin/users/${user.id}/password`, admin.token, { new_password: 'short' })).code, 'weak_password');
      assert.equal(problem(await call('PUT', `/v1/admin/users/${user.id}/password`, admin.token, { new_password: user.password })).code, 'password_reused');
      const keep = await call('PUT', `/v1/admin/users/${user.id}/password`, admin.token, { new_password: 'first admin chosen pass 1', revoke_sessions: false });
      assert.equal(keep.statusCode, 204);
      assert.equal((await call('GET', '/v1/users/me', user.token)).statusCode, 200);
      assert.equal((await call('PUT', `/v1/admin/users/${user.id}/password`, admin.token, { new_password: 'second admin chosen pass 2' })).statusCode, 204);
      assert.equal(problem(await call('GET', '/v1/users/me', user.token)).code, 'invalid_token');
      await login(svc.app, { username: user.username, password: 'second admin chosen pass 2' });
      assert.equal(problem(await call('PUT', '/v1/admin/users/999999999/password', admin.token, { new_password: 'whatever it is 12345' })).code, 'not_found');
    });

    it('when a reset is sent, then 202 and the reset mail of part 2 goes to the user', async () => {
      const user = await signedUp();
      assert.equal((await call('POST', `/v1/admin/users/${user.id}/password-reset`, admin.token)).statusCode, 202);
      await mailSettled(svc.app);
      const mail = (await outbox.messages(user.email)).find((m) => m.subject === 'Reset your password');
      assert.match(mail!.text, /reset-password#token=[A-Za-z0-9_-]{43}/);
    });

    it("when a user's TOTP or a passkey is turned off, then the rows go, and an unknown passkey is 404", async () => {
      const user = await signedUp();
      await svc.db.insertInto('user_totp_factors').values({ user_id: user.id, secret_encrypted: 'x', confirmed_at: new Date() }).execute();
      await svc.db.insertInto('user_passkeys').values({ user_id: user.id, credential_id: `c-${user.id}`, public_key: 'pk', name: 'key', device_type: 'singleDevice', backed_up: false }).execute();
      assert.deepEqual((await call('GET', `/v1/admin/users/${user.id}`, admin.token)).json().mfa, { totp: true, passkeys: 1 });
      assert.equal((await call('DELETE', `/v1/admin/users/${user.id}/mfa`, admin.token)).statusCode, 204);
      const pid = (await svc.db.selectFrom('user_passkeys').select('passkey_id').where('user_id', '=', user.id).executeTakeFirstOrThrow()).passkey_id;
      assert.equal(problem(await call('DELETE', `/v1/admin/users/${admin.id}/passkeys/${pid}`, admin.token)).code, 'not_found', "another user's passkey");
      assert.equal((await call('DELETE', `/v1/admin/users/${user.id}/passkeys/${pid}`, admin.token)).statusCode, 204);
      assert.deepEqual((await call('GET', `/v1/admin/users/${user.id}`, admin.token)).json().mfa, { totp: false, passkeys: 0 });
      assert.equal(problem(await call('DELETE', `/v1/admin/users/${user.id}/passkeys/${pid}`, admin.token)).code, 'not_found');
    });

    it("when a user's sessions are listed and ended, then one ends or all do, and someone else's session is 404", async () => {
      const user = await signedUp();
      const second = await login(svc.app, user);
      const list = (await call('GET', `/v1/admin/users/${user.id}/sessions`, admin.token)).json().sessions;
      assert.deepEqual(list.map((s: { id: string }) => s.id), [second.sessionId, user.sessionId]);
      assert.deepEqual(list[0].amr, ['pwd']);
      assert.equal(problem(await call('DELETE', `/v1/admin/users/${user.id}/sessions/${admin.sessionId}`, admin.token)).code, 'not_found');
      assert.equal((await call('DELETE', `/v1/admin/users/${user.id}/sessions/${second.sessionId}`, admin.token)).statusCode, 204);
      assert.equal(problem(await call('GET', '/v1/users/me', second.accessToken)).code, 'invalid_token');
      assert.equal((await call('GET', '/v1/users/me', user.token)).statusCode, 200);
      assert.equal((await call('DELETE', `/v1/admin/users/${user.id}/sessions`, admin.token)).statusCode, 204);
      assert.equal(problem(await call('GET', '/v1/users/me', user.token)).code, 'invalid_token');
      assert.deepEqual((await call('GET', `/v1/admin/users/${user.id}/sessions`, admin.token)).json().sessions, []);
    });

    it('when an administrator acts on a user, then the event has actor_id, the user sees it without the administrator\'s address, and /v1/admin/events filters', async () => {
      const user = await signedUp();
      await call('POST', `/v1/admin/users/${user.id}/password-reset`, admin.token);
      const own = (await call('GET', '/v1/users/me/events', user.token)).json().events;
      const byAdmin = own.find((e: { type: string }) => e.type === 'password_reset_requested');
      assert.equal(byAdmin.actor_id, admin.id);
      assert.equal(byAdmin.ip, null);
      assert.equal(byAdmin.session_id, null);
      const signedIn = own.find((e: { type: string }) => e.type === 'login_succeeded');
      assert.equal(signedIn.actor_id, null, "the user's own doing");
      assert.ok(signedIn.ip);
      const adminView = (await call('GET', `/v1/admin/users/${user.id}/events`, admin.token)).json().events;
      const same = adminView.find((e: { id: string }) => e.id === byAdmin.id);
      assert.equal(same.user_id, user.id);
      assert.ok(same.ip, 'administrators see the address');
      const filtered = (await call('GET', `/v1/admin/events?actor_id=${admin.id}&type=password_reset_requested&limit=100`, admin.token)).json().events;
      assert.ok(filtered.some((e: { id: string }) => e.id === byAdmin.id));
      assert.ok(filtered.every((e: { actor_id: string; type: string }) => e.actor_id === admin.id && e.type === 'password_reset_requested'));
      const page1 = (await call('GET', `/v1/admin/events?user_id=${user.id}&limit=1`, admin.token)).json();
      const page2 = (await call('GET', `/v1/admin/events?user_id=${user.id}&limit=1&before=${page1.next}`, admin.token)).json();
      assert.ok(Number(page2.events[0].id) < Number(page1.events[0].id));
      assert.equal(problem(await call('GET', '/v1/admin/events?user_id=abc', admin.token)).code, 'validation_failed');
    });

    it('when a user is deleted, then 204, the rows go, their tokens die, and the audit keeps the deletion with actor_id', async () => {
      const user = await signedUp(['support']);
      assert.equal((await call('DELETE', `/v1/admin/users/${user.id}`, admin.token)).statusCode, 204);
      assert.equal(await svc.db.selectFrom('users').select('user_id').where('user_id', '=', user.id).executeTakeFirst(), undefined);
      assert.deepEqual(await rolesOf(user.id), []);
      assert.equal(problem(await call('GET', '/v1/users/me', user.token)).code, 'invalid_token');
      const deletion = await svc.db.selectFrom('audit_events').select(['actor_id', 'user_id', 'subject_pseudonym']).where('event', '=', 'account_deleted').orderBy('event_id', 'desc').executeTakeFirstOrThrow();
      assert.equal(String(deletion.actor_id), admin.id);
      assert.equal(deletion.user_id, null);
      assert.match(deletion.subject_pseudonym!, /^deleted:/);
      assert.equal(problem(await call('DELETE', `/v1/admin/users/${user.id}`, admin.token)).code, 'not_found');
    });
  });

  describe('roles', () => {
    it('when roles are listed, then the built-in ones show their permissions from code, admin all of them', async () => {
      const res = await call('GET', '/v1/admin/roles', admin.token);
      assert.equal(res.statusCode, 200);
      const roles = res.json().roles;
      const builtin = roles.filter((r: { builtin: boolean }) => r.builtin);
      assert.deepEqual(builtin.map((r: { name: string }) => r.name), ['admin', 'support']);
      assert.deepEqual(builtin[0].permissions, [...PERMISSIONS]);
      assert.deepEqual(builtin[1].permissions, ['users:read', 'sessions:revoke', 'audit:read']);
      assert.ok(builtin[0].holders >= 1);
    });

    it('when a role is made, changed and deleted, then the holders follow it; names, permissions and built-ins are checked', async () => {
      const made = await call('POST', '/v1/admin/roles', admin.token, { name: 'auditor', description: 'Reads the log', permissions: ['audit:read', 'audit:read'] });
      assert.equal(made.statusCode, 201, made.body);
      assert.deepEqual(made.json(), { name: 'auditor', description: 'Reads the log', permissions: ['audit:read'], builtin: false, holders: 0 });
      assert.equal(problem(await call('POST', '/v1/admin/roles', admin.token, { name: 'auditor', permissions: [] })).code, 'role_exists');
      assert.equal(problem(await call('POST', '/v1/admin/roles', admin.token, { name: 'admin', permissions: [] })).code, 'role_exists');
      const unknown = await call('POST', '/v1/admin/roles', admin.token, { name: 'bad_one', permissions: ['users:fly'] });
      assert.equal(problem(unknown).code, 'validation_failed');
      assert.equal(problem(await call('POST', '/v1/admin/roles', admin.token, { name: 'Bad Name', permissions: [] })).code, 'validation_failed');
      const user = await signedUp(['auditor']);
      assert.equal((await call('GET', '/v1/admin/events?limit=1', user.token)).statusCode, 200);
      assert.equal((await call('GET', '/v1/admin/users', user.token)).statusCode, 403);
      const changed = await call('PATCH', '/v1/admin/roles/auditor', admin.token, { permissions: ['users:read'] });
      assert.deepEqual(changed.json().permissions, ['users:read']);
      assert.equal(changed.json().holders, 1);
      assert.equal((await call('GET', '/v1/admin/users?limit=1', user.token)).statusCode, 200, 'a changed role takes effect on the next request');
      assert.equal((await call('GET', '/v1/admin/events?limit=1', user.token)).statusCode, 403);
      assert.equal(problem(await call('PATCH', '/v1/admin/roles/support', admin.token, { description: 'x' })).code, 'role_builtin');
      assert.equal(problem(await call('DELETE', '/v1/admin/roles/admin', admin.token)).code, 'role_builtin');
      assert.equal(problem(await call('PATCH', '/v1/admin/roles/nobody_here', admin.token, { description: 'x' })).code, 'not_found');
      assert.equal(problem(await call('PATCH', '/v1/admin/roles/auditor', admin.token, {})).code, 'validation_failed');
      assert.equal((await call('DELETE', '/v1/admin/roles/auditor', admin.token)).statusCode, 204);
      assert.deepEqual(await rolesOf(user.id), []);
      assert.equal((await call('GET', '/v1/admin/users?limit=1', user.token)).statusCode, 403);
      assert.equal(problem(await call('DELETE', '/v1/admin/roles/auditor', admin.token)).code, 'not_found');
      const unknownGrant = await call('PUT', `/v1/admin/users/${user.id}/roles`, admin.token, { roles: ['auditor'] });
      assert.equal(problem(unknownGrant).code, 'validation_failed');
    });

    it('when someone grants, makes or changes a role with a permission they lack, then 403 forbidden names it and nothing changes', async () => {
      await call('POST', '/v1/admin/roles', admin.token, { name: 'role_keeper', permissions: ['roles:read', 'roles:write', 'users:read'] });
      await call('POST', '/v1/admin/roles', admin.token, { name: 'reader', permissions: ['users:read'] });
      const keeper = await signedUp(['role_keeper']);
      const target = await signedUp();
      const give = await call('PUT', `/v1/admin/users/${target.id}/roles`, keeper.token, { roles: ['support'] });
      assert.equal(problem(give).code, 'forbidden');
      assert.match(problem(give).detail, /sessions:revoke/);
      assert.deepEqual(await rolesOf(target.id), []);
      assert.deepEqual((await call('PUT', `/v1/admin/users/${target.id}/roles`, keeper.token, { roles: ['reader'] })).json(), { roles: ['reader'] });
      const make = await call('POST', '/v1/admin/roles', keeper.token, { name: 'deleter', permissions: ['users:delete'] });
      assert.match(problem(make).detail, /users:delete/);
      const change = await call('PATCH', '/v1/admin/roles/reader', keeper.token, { permissions: ['users:read', 'audit:read'] });
      assert.match(problem(change).detail, /audit:read/);
      // Taking is held to the same rule: roles:write alone cannot strip an administrator.
      const strip = await call('PUT', `/v1/admin/users/${admin.id}/roles`, keeper.token, { roles: [] });
      assert.equal(problem(strip).code, 'forbidden');
      assert.deepEqual(await rolesOf(admin.id), ['admin']);
    });

    it('when admin is given or taken, or a destructive action runs, on a session older than 15 minutes, then 403 reauthentication_required', async () => {
      const stale = await signedUp(['admin']);
      const target = await signedUp();
      await ageSession(stale.sessionId, 16);
      for (const [method, url, body] of [
        ['PUT', `/v1/admin/users/${target.id}/roles`, { roles: ['admin'] }],
        ['PUT', `/v1/admin/users/${target.id}/password`, { new_password: 'a fresh and long one 77' }],
        ['DELETE', `/v1/admin/users/${target.id}/mfa`, undefined],
        ['DELETE', `/v1/admin/users/${target.id}`, undefined],
      ] as const) {
        assert.equal(problem(await call(method, url, stale.token, body)).code, 'reauthentication_required', url);
      }
      assert.deepEqual(await rolesOf(target.id), []);
      assert.ok(await svc.db.selectFrom('users').select('user_id').where('user_id', '=', target.id).executeTakeFirst());
      // Other roles need no recent sign-in.
      assert.equal((await call('PUT', `/v1/admin/users/${target.id}/roles`, stale.token, { roles: ['support'] })).statusCode, 200);
      await ageSession(stale.sessionId, 14);
      assert.equal((await call('PUT', `/v1/admin/users/${target.id}/roles`, stale.token, { roles: ['admin'] })).statusCode, 200);
    });
  });

  describe('the last admin', () => {
    // A database of its own: here the admins are only the ones each test makes.
    let fresh: TestService;
    let c: AdminService;
    before(async () => {
      fresh = await startTestService();
      c = new AdminService(fresh.db);
    });
    after(() => fresh.close());
    const admins = async () => (await fresh.db.selectFrom('user_roles').select('user_id').where('role_name', '=', 'admin').execute()).map((r) => String(r.user_id));
    /** Makes `users` the only admins (the operator's way). */
    async function onlyAdmins(...users: RegisteredUser[]) {
      for (const u of users) await c.changeRole(u.username, 'admin', true);
      for (const id of await admins()) {
        if (!users.some((u) => u.id === id)) await fresh.db.deleteFrom('user_roles').where('user_id', '=', id).execute();
      }
    }

    it('when the only admin would lose the role, be disabled or be deleted (by anyone, by any way), then 409 last_admin', async () => {
      const only = await registerUser(fresh.app);
      await onlyAdmins(only);
      const token = (await login(fresh.app, only)).accessToken;
      const f = (method: string, url: string, payload?: unknown) => fresh.app.inject({ method: method as 'GET', url, headers: bearer(token), ...(payload !== undefined ? { payload: payload as object } : {}) });
      assert.equal(problem(await f('PUT', `/v1/admin/users/${only.id}/roles`, { roles: [] })).code, 'last_admin');
      assert.equal(problem(await f('POST', `/v1/admin/users/${only.id}/disable`, {})).code, 'last_admin');
      assert.equal(problem(await f('DELETE', `/v1/admin/users/${only.id}`)).code, 'last_admin');
      assert.equal(problem(await f('DELETE', '/v1/users/me', { current_password: only.password })).code, 'last_admin');
      await assert.rejects(c.changeRole(only.username, 'admin', false), /no user holding the admin role/);
      await assert.rejects(c.setDisabled(only.username, true), /no user holding the admin role/);
      assert.deepEqual(await admins(), [only.id]);
      assert.equal((await f('GET', '/v1/users/me')).statusCode, 200, 'still signed in, still enabled');
      // With a second admin, the first may go.
      const second = await registerUser(fresh.app);
      await c.changeRole(second.username, 'admin', true);
      assert.equal((await f('PUT', `/v1/admin/users/${only.id}/roles`, { roles: [] })).statusCode, 200);
    });

    it('when two admins demote each other at the same moment, then exactly one of them stays admin, every time', async () => {
      for (let round = 0; round < 5; round++) {
        const [a, b] = [await registerUser(fresh.app), await registerUser(fresh.app)];
        await onlyAdmins(a, b);
        const [ta, tb] = [(await login(fresh.app, a)).accessToken, (await login(fresh.app, b)).accessToken];
        // Warm both callers' permissions, so both requests pass the guard before either commits.
        await Promise.all([ta, tb].map((t) => fresh.app.inject({ method: 'GET', url: '/v1/admin/roles', headers: bearer(t) })));
        const answers = await Promise.all([
          fresh.app.inject({ method: 'PUT', url: `/v1/admin/users/${b.id}/roles`, headers: bearer(ta), payload: { roles: [] } }),
          fresh.app.inject({ method: 'PUT', url: `/v1/admin/users/${a.id}/roles`, headers: bearer(tb), payload: { roles: [] } }),
        ]);
        const codes = answers.map((r) => (r.statusCode === 200 ? 'ok' : problem(r).code)).sort();
        assert.equal(codes.filter((code) => code === 'ok').length, 1, `round ${round}: ${codes}`);
        assert.equal((await admins()).length, 1, `round ${round}`);
      }
    });
  });
});
