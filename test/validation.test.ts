/**
 * How a refused input is answered (API.md, Errors): 400 validation_failed naming the bad fields in
 * plain words.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GOOD_PASSWORD, PROBLEM_TYPE, bearer, login, problem, registerUser, startTestService, uniqueName, type TestService } from './helpers/app.js';

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

  before(async () => {
    svc = await startTestService();
  });
  after(() => svc.close());

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
