/**
 * How a refused input is answered (API.md, Errors): one 400 validation_failed that names every bad
 * field at once, in plain words; the password rules (length included) as 400 weak_password, judged
 * once the rest of the body is valid and before the password is ever hashed.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { PasswordHasher } from '../src/credentials/hashing.js';
import { GOOD_PASSWORD, PROBLEM_TYPE, bearer, login, problem, registerUser, startTestService, tableCounts, uniqueName, type TestService } from './helpers/app.js';
import { mailSettled, Outbox, tokenFrom } from './helpers/mail.js';

/** 5000 characters: over the 128 of the password rules, well under the 16 KiB body limit. */
const LONG_PASSWORD = 'p'.repeat(5000);

function registerPayload(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const username = uniqueName('val');
  return { username, name: 'Valid Name', dob: '1990-12-10', email: `${username}@example.com`, password: GOOD_PASSWORD, ...overrides };
}

/** A 400 problem+json with `code`; answers its `errors`, sorted by field. */
function assert400(res: { statusCode: number; headers: Record<string, unknown>; body: string; json(): any }, code: string, label: string): Array<{ field: string; message: string }> {
  assert.equal(res.statusCode, 400, `${label}: ${res.body}`);
  assert.equal(res.headers['content-type'], PROBLEM_TYPE, label);
  const body = problem(res as never);
  assert.equal(body.code, code, `${label}: ${res.body}`);
  assert.ok(Array.isArray(body.errors), `${label}: errors is a list`);
  return [...body.errors!].sort((a, b) => a.field.localeCompare(b.field));
}

/** No message shows a client a regular expression or a JSON Schema keyword. */
function assertPlain(errors: Array<{ field: string; message: string }>, label: string): void {
  for (const { field, message } of errors) {
    assert.doesNotMatch(message, /pattern|format|\^|\$|\(\?:|\[/, `${label}: ${field}: ${message}`);
  }
}

describe('validation answers', () => {
  let svc: TestService;
  const outbox = new Outbox();
  /** Lengths of the passwords given to Argon2id (hash or verify) while a test runs. */
  let hashed: number[] = [];
  const original = { hash: PasswordHasher.prototype.hash, verify: PasswordHasher.prototype.verify };

  before(async () => {
    svc = await startTestService({ outboxDir: outbox.dir });
  });
  after(async () => {
    await svc.close();
    outbox.remove();
  });
  beforeEach(() => {
    hashed = [];
    PasswordHasher.prototype.hash = function (password: string) {
      hashed.push(password.length);
      return original.hash.call(this, password);
    };
    PasswordHasher.prototype.verify = function (phc: string, password: string) {
      hashed.push(password.length);
      return original.verify.call(this, phc, password);
    };
  });
  afterEach(() => {
    PasswordHasher.prototype.hash = original.hash;
    PasswordHasher.prototype.verify = original.verify;
  });

  describe('every bad field at once', () => {
    it('when a registration breaks the schema (username) and the field rules (name, dob) and the email rule together, then one 400 validation_failed names each of them once, and nothing is written', async () => {
      const before = await tableCounts(svc.db);
      const res = await svc.app.inject({
        method: 'POST',
        url: '/v1/users',
        payload: registerPayload({ username: 'ab', name: '   ', dob: '2999-01-01', email: `${'a'.repeat(65)}@example.com` }),
      });
      const errors = assert400(res, 'validation_failed', 'register');
      assert.deepEqual(errors.map((e) => e.field), ['dob', 'email', 'name', 'username']);
      assert.equal(errors.find((e) => e.field === 'dob')!.message, 'must not be in the future');
      assert.equal(errors.find((e) => e.field === 'name')!.message, 'must be 1 to 100 characters after trimming');
      assertPlain(errors, 'register');
      assert.deepEqual(await tableCounts(svc.db), before);
    });

    it('when a registration has a bad username and a 150-year-old dob, then both are named (the example of the contract)', async () => {
      const before = await tableCounts(svc.db);
      const errors = assert400(await svc.app.inject({ method: 'POST', url: '/v1/users', payload: registerPayload({ username: 'ab', dob: '1800-01-01' }) }), 'validation_failed', 'register');
      assert.deepEqual(errors.map((e) => e.field), ['dob', 'username']);
      assert.deepEqual(await tableCounts(svc.db), before);
    });

    it('when a registration has a bad field and a weak password, then 400 validation_failed names the field only; once the rest is valid the same password is 400 weak_password', async () => {
      const before = await tableCounts(svc.db);
      for (const password of ['short', LONG_PASSWORD]) {
        const errors = assert400(await svc.app.inject({ method: 'POST', url: '/v1/users', payload: registerPayload({ dob: '2999-01-01', password }) }), 'validation_failed', `${password.length}`);
        assert.deepEqual(errors.map((e) => e.field), ['dob']);
        const weak = assert400(await svc.app.inject({ method: 'POST', url: '/v1/users', payload: registerPayload({ password }) }), 'weak_password', `${password.length}`);
        assert.deepEqual(weak.map((e) => e.field), ['password']);
      }
      assert.deepEqual(await tableCounts(svc.db), before);
    });

    it('when a PATCH breaks the schema (username), the field rules (name, dob) and the email rule together, then one 400 validation_failed names each, and the profile is unchanged', async () => {
      const user = await registerUser(svc.app);
      const { accessToken } = await login(svc.app, user);
      const rowBefore = await svc.db.selectFrom('users').selectAll().where('user_id', '=', user.id).executeTakeFirstOrThrow();
      const res = await svc.app.inject({
        method: 'PATCH',
        url: '/v1/users/me',
        headers: bearer(accessToken),
        payload: { username: 'bad name!', name: 'bell\u0007', dob: '1990-02-30', email: `${'b'.repeat(65)}@example.com` },
      });
      const errors = assert400(res, 'validation_failed', 'patch');
      assert.deepEqual(errors.map((e) => e.field), ['dob', 'email', 'name', 'username']);
      assertPlain(errors, 'patch');
      const rowAfter = await svc.db.selectFrom('users').selectAll().where('user_id', '=', user.id).executeTakeFirstOrThrow();
      assert.deepEqual(rowAfter, rowBefore);
    });
  });

  describe('an over-long password', () => {
    it('when a registration password is 5000 characters, then 400 weak_password naming password, it is never hashed, and nothing is written', async () => {
      const before = await tableCounts(svc.db);
      const errors = assert400(await svc.app.inject({ method: 'POST', url: '/v1/users', payload: registerPayload({ password: LONG_PASSWORD }) }), 'weak_password', 'register');
      assert.deepEqual(errors, [{ field: 'password', message: 'Use at most 128 characters.' }]);
      assert.deepEqual(hashed, [], 'Argon2id never saw it');
      assert.deepEqual(await tableCounts(svc.db), before);
    });

    it('when a password change sets a 5000-character new password, then 400 weak_password naming new_password, it is never hashed, and the credentials are unchanged', async () => {
      const user = await registerUser(svc.app);
      const { accessToken } = await login(svc.app, user);
      const credsBefore = await svc.db.selectFrom('user_credentials').selectAll().where('user_id', '=', user.id).orderBy('credentials_id').execute();
      hashed = [];
      const res = await svc.app.inject({ method: 'PUT', url: '/v1/users/me/password', headers: bearer(accessToken), payload: { current_password: user.password, new_password: LONG_PASSWORD } });
      const errors = assert400(res, 'weak_password', 'change');
      assert.deepEqual(errors.map((e) => e.field), ['new_password']);
      assert.ok(!hashed.includes(LONG_PASSWORD.length), 'Argon2id never saw it');
      assert.deepEqual(await svc.db.selectFrom('user_credentials').selectAll().where('user_id', '=', user.id).orderBy('credentials_id').execute(), credsBefore);
    });

    it('when a password reset completes with a 5000-character password, then 400 weak_password, it is never hashed, nothing changes, and the token still works', async () => {
      const user = await registerUser(svc.app);
      assert.equal((await svc.app.inject({ method: 'POST', url: '/v1/password-resets', payload: { email: user.email } })).statusCode, 202);
      await mailSettled(svc.app);
      const mail = (await outbox.messages(user.email)).filter((m) => m.subject === 'Reset your password').at(-1)!;
      const token = tokenFrom(mail, 'reset-password');
      const credsBefore = await svc.db.selectFrom('user_credentials').selectAll().where('user_id', '=', user.id).orderBy('credentials_id').execute();
      hashed = [];
      const res = await svc.app.inject({ method: 'POST', url: '/v1/password-resets/complete', payload: { token, new_password: LONG_PASSWORD } });
      const errors = assert400(res, 'weak_password', 'reset');
      assert.deepEqual(errors.map((e) => e.field), ['new_password']);
      assert.ok(!hashed.includes(LONG_PASSWORD.length), 'Argon2id never saw it');
      assert.deepEqual(await svc.db.selectFrom('user_credentials').selectAll().where('user_id', '=', user.id).orderBy('credentials_id').execute(), credsBefore);
      const done = await svc.app.inject({ method: 'POST', url: '/v1/password-resets/complete', payload: { token, new_password: 'a completely new passphrase 5' } });
      assert.equal(done.statusCode, 204, 'the refused password left the token usable');
    });

    it('when a login or a current_password is 5000 characters, then it is a wrong password (401 / 403 invalid_credentials), not a validation failure', async () => {
      const user = await registerUser(svc.app);
      const { accessToken } = await login(svc.app, user);
      const before = await tableCounts(svc.db);
      const signIn = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: LONG_PASSWORD }, remoteAddress: '10.99.0.1' });
      assert.equal(signIn.statusCode, 401, signIn.body);
      assert.equal(problem(signIn).code, 'invalid_credentials');
      const change = await svc.app.inject({ method: 'PUT', url: '/v1/users/me/password', headers: bearer(accessToken), payload: { current_password: LONG_PASSWORD, new_password: 'another fine passphrase 3' } });
      assert.equal(change.statusCode, 403, change.body);
      assert.equal(problem(change).code, 'invalid_credentials');
      assert.deepEqual(await tableCounts(svc.db), before);
    });
  });

  describe('the email address', () => {
    it('when a new address has 65 characters before the @, then 400 validation_failed naming email at registration and on PATCH; 64 are accepted', async () => {
      const before = await tableCounts(svc.db);
      const tooLong = `${'l'.repeat(65)}@example.com`;
      const errors = assert400(await svc.app.inject({ method: 'POST', url: '/v1/users', payload: registerPayload({ email: tooLong }) }), 'validation_failed', 'register');
      assert.deepEqual(errors, [{ field: 'email', message: 'must have at most 64 characters before the @' }]);
      assert.deepEqual(await tableCounts(svc.db), before);

      const user = await registerUser(svc.app, { email: `${`${uniqueName('x')}${'m'.repeat(64)}`.slice(0, 64)}@example.com` });
      const { accessToken } = await login(svc.app, user);
      const rowBefore = await svc.db.selectFrom('users').selectAll().where('user_id', '=', user.id).executeTakeFirstOrThrow();
      const patch = await svc.app.inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(accessToken), payload: { email: tooLong } });
      assert.deepEqual(assert400(patch, 'validation_failed', 'patch').map((e) => e.field), ['email']);
      assert.deepEqual(await svc.db.selectFrom('users').selectAll().where('user_id', '=', user.id).executeTakeFirstOrThrow(), rowBefore);
    });

    it('when a password reset is asked for an address with a long local part, then the same 202 (it looks an account up, it sets no address)', async () => {
      const res = await svc.app.inject({ method: 'POST', url: '/v1/password-resets', payload: { email: `${'r'.repeat(65)}@example.com` } });
      assert.equal(res.statusCode, 202, res.body);
    });
  });

  describe('plain messages', () => {
    it('when the events page is asked with a limit out of range or a bad cursor, then the message says what is allowed, not a regular expression', async () => {
      const user = await registerUser(svc.app);
      const { accessToken } = await login(svc.app, user);
      for (const query of ['limit=0', 'limit=101', 'limit=abc', 'limit=1.5']) {
        const errors = assert400(await svc.app.inject({ method: 'GET', url: `/v1/users/me/events?${query}`, headers: bearer(accessToken) }), 'validation_failed', query);
        assert.deepEqual(errors, [{ field: 'limit', message: 'must be an integer from 1 to 100' }], query);
      }
      for (const query of ['before=-1', 'before=x']) {
        const errors = assert400(await svc.app.inject({ method: 'GET', url: `/v1/users/me/events?${query}`, headers: bearer(accessToken) }), 'validation_failed', query);
        assert.deepEqual(errors.map((e) => e.field), ['before'], query);
        assertPlain(errors, query);
      }
    });

    it('when a username has characters outside its set, a dob is not a date, or an email is not an address, then each message says what is allowed', async () => {
      const cases: Array<[Record<string, unknown>, string, string]> = [
        [{ username: 'bad name!' }, 'username', 'may contain only letters, digits, "_", "." and "-"'],
        [{ dob: '10-12-1990' }, 'dob', 'must be a real date, YYYY-MM-DD'],
        [{ dob: '1990-02-30' }, 'dob', 'must be a real date, YYYY-MM-DD'],
        [{ email: 'not-an-email' }, 'email', 'must be an email address'],
      ];
      for (const [override, field, message] of cases) {
        const errors = assert400(await svc.app.inject({ method: 'POST', url: '/v1/users', payload: registerPayload(override) }), 'validation_failed', JSON.stringify(override));
        assert.deepEqual(errors, [{ field, message }], JSON.stringify(override));
      }
    });
  });
});
