import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { problem, startTestService, type TestService } from './helpers/app.js';

/** Small things a careful new user notices (issue #24), and the password rules a client shows (#17). */
describe('a newcomer\'s first hour: the API', () => {
  let svc: TestService;
  let strict: TestService;
  before(async () => {
    svc = await startTestService();
    strict = await startTestService({}, { PASSWORD_MIN_LENGTH: '15' });
  });
  after(async () => {
    await svc?.close();
    await strict?.close();
  });

  it('when a registration has no body, or fields of the wrong JSON type, then each message is in plain words, never a schema keyword', async () => {
    for (const payload of [undefined, '', 'null', '[]']) {
      const res = await svc.app.inject({ method: 'POST', url: '/v1/users', ...(payload === undefined ? {} : { payload, headers: { 'content-type': 'application/json' } }) });
      assert.equal(res.statusCode, 400);
      assert.deepEqual(problem(res).errors, [{ field: '(body)', message: 'must be a JSON object' }], JSON.stringify(payload));
    }
    const res = await svc.app.inject({ method: 'POST', url: '/v1/users', payload: { username: 5, name: true, dob: [], email: {}, password: null } });
    assert.deepEqual(problem(res).errors, [
      { field: 'username', message: 'must be text (a JSON string)' },
      { field: 'name', message: 'must be text (a JSON string)' },
      { field: 'dob', message: 'must be text (a JSON string)' },
      { field: 'email', message: 'must be text (a JSON string)' },
      { field: 'password', message: 'must be text (a JSON string)' },
    ]);
  });

  it('when a client asks for the password rules, then it gets the server\'s PASSWORD_MIN_LENGTH and the longest length, with no token', async () => {
    const normal = await svc.app.inject({ method: 'GET', url: '/v1/password-policy' });
    assert.equal(normal.statusCode, 200);
    assert.deepEqual(normal.json(), { min_length: 8, max_length: 128 });
    const longer = await strict.app.inject({ method: 'GET', url: '/v1/password-policy' });
    assert.deepEqual(longer.json(), { min_length: 15, max_length: 128 });
    // The rule it names is the rule the server applies.
    const weak = await strict.app.inject({ method: 'POST', url: '/v1/users', payload: { username: 'rules_14', name: 'R', dob: '1990-12-10', email: 'r14@example.com', password: 'fourteen chars' } });
    assert.equal(weak.statusCode, 400);
    assert.equal(problem(weak).code, 'weak_password');
    assert.equal(problem(weak).detail, 'Use at least 15 characters.');
  });

  it('when /openapi.json is read, then its version is the package\'s and its description names the features', async () => {
    const doc = (await svc.app.inject({ method: 'GET', url: '/openapi.json' })).json() as { info: { version: string; description: string } };
    assert.equal(doc.info.version, (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version);
    for (const feature of ['registration', 'password', 'email verification', 'sessions', 'refresh-token rotation', 'JWKS', 'TOTP', 'recovery codes', 'passkeys', 'security event log', 'deletion']) {
      assert.ok(doc.info.description.includes(feature), `the description names ${feature}`);
    }
  });

  it('when the package is packed, then it carries the built web app (dist/web) beside dist/src', { skip: existsSync('dist/web/index.html') ? false : 'the web app is not built (npm test builds it)' }, () => {
    const [pack] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as Array<{ files: Array<{ path: string }> }>;
    const files = pack!.files.map((f) => f.path);
    for (const file of ['dist/web/index.html', 'dist/web/assets/app.js', 'dist/web/assets/app.css', 'resources/common-passwords.txt']) assert.ok(files.includes(file), `${file} is in the package`);
  });
});
