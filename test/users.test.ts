import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GOOD_PASSWORD, JSON_TYPE, bearer, login, problem, registerUser, startTestService, tableCounts, uniqueName, type TestService } from './helpers/app.js';

describe('users', () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService();
  });
  after(() => svc.close());

  it('when a user registers, then 201 with the profile, a Location, and a profile row plus one current credential', async () => {
    const username = uniqueName('Ada');
    const res = await svc.app.inject({
      method: 'POST',
      url: '/v1/users',
      payload: { username, name: '  Ada Lovelace ', dob: '1990-12-10', email: `${username}@Example.com`, password: GOOD_PASSWORD },
    });
    assert.equal(res.statusCode, 201);
    assert.equal(res.headers.location, '/v1/users/me');
    assert.equal(res.headers['content-type'], JSON_TYPE);
    assert.equal(res.headers['cache-control'], 'no-store');
    const body = res.json();
    assert.deepEqual(Object.keys(body).sort(), ['created_at', 'dob', 'email', 'email_verified', 'id', 'name', 'updated_at', 'username']);
    assert.equal(body.email_verified, false);
    assert.match(body.id, /^[0-9]+$/);
    assert.equal(body.username, username, 'kept as typed');
    assert.equal(body.name, 'Ada Lovelace', 'trimmed');
    assert.equal(body.dob, '1990-12-10');
    assert.match(body.created_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    assert.doesNotMatch(res.body, /argon2|password/i);

    const creds = await svc.db.selectFrom('user_credentials').selectAll().where('user_id', '=', body.id).execute();
    assert.equal(creds.length, 1);
    assert.equal(creds[0]!.is_current, true);
    assert.match(creds[0]!.hashed_password, /^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$/);
  });

  it('when the username or email is taken in another case, then 409 and nothing is written', async () => {
    const user = await registerUser(svc.app);
    const before = await tableCounts(svc.db);
    const dupName = await svc.app.inject({
      method: 'POST',
      url: '/v1/users',
      payload: { username: user.username.toUpperCase(), name: 'X', dob: '1990-01-01', email: `${uniqueName()}@example.com`, password: GOOD_PASSWORD },
    });
    assert.equal(dupName.statusCode, 409);
    assert.equal(problem(dupName).code, 'username_taken');
    const dupEmail = await svc.app.inject({
      method: 'POST',
      url: '/v1/users',
      payload: { username: uniqueName(), name: 'X', dob: '1990-01-01', email: user.email.toUpperCase(), password: GOOD_PASSWORD },
    });
    assert.equal(dupEmail.statusCode, 409);
    assert.equal(problem(dupEmail).code, 'email_taken');
    assert.deepEqual(await tableCounts(svc.db), before);
  });

  it('when fields break their rules, then 400 validation_failed naming each field, and nothing is written', async () => {
    const before = await tableCounts(svc.db);
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ username: 'ab' }, 'username'],
      [{ username: 'a'.repeat(33) }, 'username'],
      [{ username: 'bad name!' }, 'username'],
      [{ name: '   ' }, 'name'],
      [{ name: 'x'.repeat(101) }, 'name'],
      [{ name: 'bell\u0007' }, 'name'],
      [{ dob: '1990-02-30' }, 'dob'],
      [{ dob: '2999-01-01' }, 'dob'],
      [{ dob: '1800-01-01' }, 'dob'],
      [{ dob: '10-12-1990' }, 'dob'],
      [{ email: 'not-an-email' }, 'email'],
      [{ email: `${'a'.repeat(250)}@example.com` }, 'email'],
      [{ username: 42 }, 'username'],
      [{ is_admin: true }, 'is_admin'],
    ];
    for (const [override, field] of cases) {
      const username = uniqueName();
      const payload = { username, name: 'Valid Name', dob: '1990-12-10', email: `${username}@example.com`, password: GOOD_PASSWORD, ...override };
      const res = await svc.app.inject({ method: 'POST', url: '/v1/users', payload });
      assert.equal(res.statusCode, 400, JSON.stringify(override));
      const body = problem(res);
      assert.equal(body.code, 'validation_failed', JSON.stringify(override));
      assert.ok(body.errors?.some((e) => e.field === field), `${JSON.stringify(override)} → ${JSON.stringify(body.errors)}`);
    }
    const missing = await svc.app.inject({ method: 'POST', url: '/v1/users', payload: { username: uniqueName() } });
    assert.equal(missing.statusCode, 400);
    const fields = problem(missing).errors!.map((e) => e.field).sort();
    assert.deepEqual(fields, ['dob', 'email', 'name', 'password']);
    assert.deepEqual(await tableCounts(svc.db), before);
  });

  it('when the password breaks the password rules, then 400 weak_password and nothing is written', async () => {
    const before = await tableCounts(svc.db);
    const username = uniqueName();
    for (const password of ['short7!', 'x'.repeat(129), 'password123', 'iloveyou', username, `${username}@example.com`.toUpperCase()]) {
      const res = await svc.app.inject({
        method: 'POST',
        url: '/v1/users',
        payload: { username, name: 'N', dob: '1990-12-10', email: `${username}@example.com`, password },
      });
      assert.equal(res.statusCode, 400, password);
      const body = problem(res);
      assert.equal(body.code, 'weak_password', password);
      assert.equal(body.errors?.[0]?.field, 'password');
    }
    assert.deepEqual(await tableCounts(svc.db), before);
  });

  it('when a password has 8 code points that are more bytes, or 128 after NFKC, then it is accepted', async () => {
    await registerUser(svc.app, { password: '🔑🔑🔑🔑🔑🔑🔑🔑' });
    await registerUser(svc.app, { password: 'é'.repeat(128) });
  });

  it('when a user reads their profile, then 200 with the same user object', async () => {
    const user = await registerUser(svc.app);
    const { accessToken } = await login(svc.app, user);
    const res = await svc.app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(accessToken) });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(res.json().id, user.id);
    assert.equal(res.json().username, user.username);
  });

  it('when a user updates some fields, then 200, the fields change, the others stay, and updated_at moves', async () => {
    const user = await registerUser(svc.app);
    const { accessToken } = await login(svc.app, user);
    const before = (await svc.app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(accessToken) })).json();
    await new Promise((r) => setTimeout(r, 5));
    const newName = uniqueName('Renamed');
    const res = await svc.app.inject({
      method: 'PATCH',
      url: '/v1/users/me',
      headers: bearer(accessToken),
      payload: { name: 'Grace Hopper', dob: '1906-12-09', username: newName },
    });
    assert.equal(res.statusCode, 200);
    const body = res.json();
    assert.equal(body.name, 'Grace Hopper');
    assert.equal(body.dob, '1906-12-09');
    assert.equal(body.username, newName);
    assert.equal(body.email, before.email);
    assert.equal(body.created_at, before.created_at);
    assert.ok(body.updated_at > before.updated_at, 'updated_at moved');
    const row = await svc.db.selectFrom('users').selectAll().where('user_id', '=', user.id).executeTakeFirstOrThrow();
    assert.equal(row.name, 'Grace Hopper');
    assert.equal(row.username, newName);
  });

  it('when an update is empty, has unknown or bad fields, or takes another user\'s email, then it is refused and nothing changes', async () => {
    const other = await registerUser(svc.app);
    const user = await registerUser(svc.app);
    const { accessToken } = await login(svc.app, user);
    const rowBefore = await svc.db.selectFrom('users').selectAll().where('user_id', '=', user.id).executeTakeFirstOrThrow();
    for (const payload of [{}, { is_admin: true }, { user_id: '1' }, { name: null }, { dob: 'yesterday' }, { password: 'new password here' }]) {
      const res = await svc.app.inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(accessToken), payload });
      assert.equal(res.statusCode, 400, JSON.stringify(payload));
      assert.equal(problem(res).code, 'validation_failed');
    }
    const taken = await svc.app.inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(accessToken), payload: { email: other.email.toUpperCase() } });
    assert.equal(taken.statusCode, 409);
    assert.equal(problem(taken).code, 'email_taken');
    const takenName = await svc.app.inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(accessToken), payload: { username: other.username } });
    assert.equal(takenName.statusCode, 409);
    assert.equal(problem(takenName).code, 'username_taken');
    const rowAfter = await svc.db.selectFrom('users').selectAll().where('user_id', '=', user.id).executeTakeFirstOrThrow();
    assert.deepEqual(rowAfter, rowBefore);
  });

  it('when a user changes only the case of their own username, then it is allowed', async () => {
    const user = await registerUser(svc.app);
    const { accessToken } = await login(svc.app, user);
    const res = await svc.app.inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(accessToken), payload: { username: user.username.toUpperCase() } });
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().username, user.username.toUpperCase());
  });

  it('when two registrations of one username race, then exactly one 201 and one 409', async () => {
    const username = uniqueName('race');
    const attempt = (email: string) =>
      svc.app.inject({ method: 'POST', url: '/v1/users', payload: { username, name: 'R', dob: '1990-12-10', email, password: GOOD_PASSWORD } });
    const results = await Promise.all([attempt(`${username}.a@example.com`), attempt(`${username}.b@example.com`), attempt(`${username}.c@example.com`)]);
    const statuses = results.map((r) => r.statusCode).sort();
    assert.deepEqual(statuses, [201, 409, 409]);
    for (const r of results.filter((r) => r.statusCode === 409)) assert.equal(problem(r).code, 'username_taken');
    const rows = await svc.db.selectFrom('users').select('user_id').where('username_key', '=', username.toLowerCase()).execute();
    assert.equal(rows.length, 1);
    const creds = await svc.db.selectFrom('user_credentials').select('credentials_id').where('user_id', '=', rows[0]!.user_id).execute();
    assert.equal(creds.length, 1, 'the winner has its credential, the losers left nothing');
  });
});
