import assert from 'node:assert/strict';
import { AdminService } from '../src/admin/service.js';
import { after, before, describe, it } from 'node:test';
import { Readable } from 'node:stream';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import type { App } from '../src/http/types.js';
import {
  GOOD_PASSWORD,
  JSON_TYPE,
  PROBLEM_TYPE,
  bearer,
  login,
  problem,
  registerUser,
  startTestService,
  tableCounts,
  uniqueName,
  type TestService,
} from './helpers/app.js';
import { assertNothingChanged, dbState } from './security/support.js';

/** What a generated or echoed X-Request-Id may look like (printable, no spaces, bounded). */
const WELL_FORMED_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Every response seen in this file, and every password sent, for the "no secret in a body" check. */
const responses: LightMyRequestResponse[] = [];
const passwordsSent = new Set<string>([GOOD_PASSWORD]);

function assertProblem(res: LightMyRequestResponse, status: number, code: string): Record<string, unknown> {
  assert.equal(res.statusCode, status, `${res.statusCode} ${res.body}`);
  assert.equal(res.headers['content-type'], PROBLEM_TYPE);
  const body = problem(res);
  assert.equal(typeof body.type, 'string', 'type');
  assert.equal(typeof body.title, 'string', 'title');
  assert.ok((body.title as string).length > 0, 'title');
  assert.equal(body.status, status, 'status member equals the HTTP status');
  assert.equal(body.code, code);
  assert.equal(typeof body.detail, 'string', 'detail');
  assert.ok(body.detail.length > 0, 'detail');
  return body;
}

function assertSecurityHeaders(res: LightMyRequestResponse, what: string): void {
  assert.equal(res.headers['x-content-type-options'], 'nosniff', what);
  assert.equal(res.headers['x-frame-options'], 'DENY', what);
  assert.match(String(res.headers['content-security-policy'] ?? ''), /frame-ancestors 'none'/, what);
  assert.match(String(res.headers['x-request-id'] ?? ''), WELL_FORMED_REQUEST_ID, what);
  if (res.statusCode !== 204 && res.body.length > 0) {
    assert.match(String(res.headers['content-type'] ?? ''), /;\s*charset=utf-8$/i, `${what}: a Content-Type with its charset`);
  }
}

function registerPayload(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const username = uniqueName('http');
  return { username, name: 'Http Tester', dob: '1990-12-10', email: `${username}@example.com`, password: GOOD_PASSWORD, ...overrides };
}

describe('http layer', () => {
  let svc: TestService;

  /** app.inject that remembers the response and any password sent, for the last test. */
  async function inject(opts: InjectOptions, app: App = svc.app): Promise<LightMyRequestResponse> {
    const payload = opts.payload;
    if (payload && typeof payload === 'object' && !Buffer.isBuffer(payload)) {
      for (const key of ['password', 'current_password', 'new_password']) {
        const value = (payload as Record<string, unknown>)[key];
        if (typeof value === 'string') passwordsSent.add(value);
      }
    }
    const res = await app.inject(opts);
    responses.push(res);
    return res;
  }

  before(async () => {
    svc = await startTestService();
  });
  after(() => svc.close());

  it('when a route does not exist, then 404 not_found problem for GET and POST', async () => {
    for (const [method, url] of [
      ['GET', '/nope'],
      ['POST', '/nope'],
      ['GET', '/v1/nope'],
      ['POST', '/v1/nope'],
      ['GET', '/v1/users/me/extra'],
      ['GET', '/v1/users/'],
      ['POST', '/v2/users'],
    ] as const) {
      const res = await inject({ method, url, ...(method === 'POST' ? { payload: {} } : {}) });
      assertProblem(res, 404, 'not_found');
      assertSecurityHeaders(res, `${method} ${url}`);
    }
  });

  it('when a known path is called with a method it does not have, then 404 not_found problem', async () => {
    for (const [method, url] of [
      ['PUT', '/v1/users'],
      ['GET', '/v1/users'],
      ['POST', '/v1/users/me'],
      ['PUT', '/v1/users/me'], // DELETE /v1/users/me exists since self-service deletion (API-ACCOUNT.md)
      ['GET', '/v1/users/me/password'],
      ['GET', '/v1/sessions/current'],
      ['PATCH', '/v1/sessions'],
      ['GET', '/v1/sessions/refresh'],
      ['DELETE', '/healthz'],
      ['POST', '/.well-known/jwks.json'],
    ] as const) {
      const res = await inject({ method, url });
      assertProblem(res, 404, 'not_found');
    }
  });

  it('when a body is over 16 KiB, then 413 payload_too_large and nothing is written; 16 KiB itself is not refused for size', async () => {
    const before = await tableCounts(svc.db);
    const big = await inject({ method: 'POST', url: '/v1/users', payload: registerPayload({ name: 'x'.repeat(17 * 1024) }) });
    assertProblem(big, 413, 'payload_too_large');
    assertSecurityHeaders(big, '413');

    // Exactly 16384 bytes, and one more.
    const base = JSON.stringify({ ...registerPayload(), name: '' });
    const exact = base.replace('"name":""', `"name":"${'n'.repeat(16 * 1024 - Buffer.byteLength(base))}"`);
    assert.equal(Buffer.byteLength(exact), 16 * 1024);
    const atLimit = await inject({ method: 'POST', url: '/v1/users', payload: exact, headers: { 'content-type': 'application/json' } });
    assert.notEqual(atLimit.statusCode, 413, '16 KiB is within the limit');
    assertProblem(atLimit, 400, 'validation_failed');
    const overByOne = exact.replace('"name":"n', '"name":"nn');
    assert.equal(Buffer.byteLength(overByOne), 16 * 1024 + 1);
    const over = await inject({ method: 'POST', url: '/v1/users', payload: overByOne, headers: { 'content-type': 'application/json' } });
    assertProblem(over, 413, 'payload_too_large');
    assert.deepEqual(await tableCounts(svc.db), before);
  });

  it('when the body is text/plain, form-encoded or has no Content-Type, then 415 unsupported_media_type and nothing is written', async () => {
    const before = await tableCounts(svc.db);
    const json = JSON.stringify(registerPayload());
    const cases: Array<[string, string, Record<string, string>]> = [
      ['text/plain', json, { 'content-type': 'text/plain' }],
      ['text/plain; charset=utf-8', json, { 'content-type': 'text/plain; charset=utf-8' }],
      ['application/x-www-form-urlencoded', 'username=ada_l&password=violet+lantern', { 'content-type': 'application/x-www-form-urlencoded' }],
      ['no Content-Type', json, {}],
    ];
    const answers: Array<[string, LightMyRequestResponse]> = [];
    for (const [what, payload, headers] of cases) {
      answers.push([what, await inject({ method: 'POST', url: '/v1/users', payload, headers })]);
    }
    // All cases at once, so that one failure does not hide the others.
    assert.deepEqual(
      Object.fromEntries(answers.map(([what, res]) => [what, `${res.statusCode} ${problem(res).code}`])),
      Object.fromEntries(cases.map(([what]) => [what, '415 unsupported_media_type'])),
    );
    for (const [what, res] of answers) {
      assertProblem(res, 415, 'unsupported_media_type');
      assertSecurityHeaders(res, what);
    }
    assert.deepEqual(await tableCounts(svc.db), before);
  });

  it('when the body is not JSON, not an object, null or empty, then 400 validation_failed and nothing is written', async () => {
    const before = await tableCounts(svc.db);
    for (const payload of ['{"username": "ada_l",', '{username: 1}', '[]', `[${JSON.stringify(registerPayload())}]`, '"hello"', '42', 'true', 'null', '']) {
      const res = await inject({ method: 'POST', url: '/v1/users', payload, headers: { 'content-type': 'application/json' } });
      const body = assertProblem(res, 400, 'validation_failed');
      assert.ok(Array.isArray(body.errors), `errors for ${JSON.stringify(payload)}`);
    }
    assert.deepEqual(await tableCounts(svc.db), before);
  });

  it('when a body carries __proto__ or constructor.prototype keys, then 400 validation_failed and nothing is written', async () => {
    const before = await tableCounts(svc.db);
    for (const extra of ['"__proto__": {"is_admin": true}', '"constructor": {"prototype": {"is_admin": true}}']) {
      const valid = JSON.stringify(registerPayload());
      const payload = `{${extra},${valid.slice(1)}`;
      const res = await inject({ method: 'POST', url: '/v1/users', payload, headers: { 'content-type': 'application/json' } });
      assertProblem(res, 400, 'validation_failed');
      assert.equal(({} as Record<string, unknown>).is_admin, undefined, 'no prototype was polluted');
    }
    const loginRes = await inject({
      method: 'POST',
      url: '/v1/sessions',
      payload: '{"__proto__": {"x": 1}, "username": "someone", "password": "whatever password"}',
      headers: { 'content-type': 'application/json' },
    });
    assertProblem(loginRes, 400, 'validation_failed');
    assert.deepEqual(await tableCounts(svc.db), before);
  });

  it('when a body carries a __proto__ or constructor.prototype key, then 400 validation_failed says that key is not allowed, naming it, and nothing is written', async () => {
    const session = await login(svc.app, await registerUser(svc.app));
    const before = await dbState(svc.db);
    const valid = JSON.stringify(registerPayload());
    const cases: Array<[string, InjectOptions['method'], string, string, string]> = [
      ['__proto__', 'POST', '/v1/users', `{"__proto__":{"is_admin":true},${valid.slice(1)}`, '__proto__'],
      ['constructor.prototype', 'POST', '/v1/users', `{"constructor":{"prototype":{"is_admin":true}},${valid.slice(1)}`, 'constructor.prototype'],
      ['__proto__ spelt with escapes', 'POST', '/v1/sessions', '{"\\u005f_pr\\u006fto__":{"x":1},"username":"someone","password":"whatever password"}', '__proto__'],
      ['nested __proto__', 'PATCH', '/v1/users/me', '{"name":{"__proto__":{"polluted":"yes"}}}', 'name.__proto__'],
      ['__proto__ in an array', 'POST', '/v1/sessions/passkey', '{"response":[{"__proto__":{}}]}', 'response.0.__proto__'],
      ['__proto__ on a route that takes no input', 'DELETE', '/v1/sessions/current', '{"__proto__":{}}', '__proto__'],
    ];
    for (const [what, method, url, payload, field] of cases) {
      const res = await inject({ method, url, payload, headers: { ...bearer(session.accessToken), 'content-type': 'application/json' } });
      const body = assertProblem(res, 400, 'validation_failed');
      assert.equal(body.detail, 'The body has a key that is not allowed (__proto__ or constructor.prototype).', `${what}: ${res.body}`);
      assert.deepEqual(problem(res).errors, [{ field, message: 'is not allowed' }], what);
      assert.equal(({} as Record<string, unknown>).is_admin, undefined, 'no prototype was polluted');
      assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was polluted');
    }
    await assertNothingChanged(svc.db, before);
    // A key named constructor whose value is no object with a prototype is just an unknown field.
    const plain = await inject({ method: 'PATCH', url: '/v1/users/me', payload: '{"constructor":"x"}', headers: { ...bearer(session.accessToken), 'content-type': 'application/json' } });
    assertProblem(plain, 400, 'validation_failed');
    assert.deepEqual(problem(plain).errors, [{ field: 'constructor', message: 'is not a known field' }]);
    // Broken JSON still says so.
    const broken = await inject({ method: 'POST', url: '/v1/users', payload: '{"__proto__":', headers: { 'content-type': 'application/json' } });
    assert.equal(assertProblem(broken, 400, 'validation_failed').detail, 'The body is not valid JSON.');
  });

  it('when a JSON string holds a lone UTF-16 surrogate (an escape in the raw text), then 400 validation_failed naming the field and nothing is written', async () => {
    const user = await registerUser(svc.app);
    const session = await login(svc.app, user);
    const json = { 'content-type': 'application/json' };
    const before = await dbState(svc.db);
    // Raw JSON text: JSON.stringify would escape a lone surrogate the same way.
    const valid = JSON.stringify(registerPayload());
    const cases: Array<[string, string, string, Record<string, string>, string]> = [
      ['register, name', 'POST', '/v1/users', {}, `{"name":"a\\ud800b",${valid.slice(1).replace(/"name":"[^"]*",/, '')}`],
      ['register, password (low surrogate)', 'POST', '/v1/users', {}, valid.replace(`"password":"${GOOD_PASSWORD}"`, '"password":"violet lantern orbit \\udc00"')],
      ['register, password (pair reversed)', 'POST', '/v1/users', {}, valid.replace(`"password":"${GOOD_PASSWORD}"`, '"password":"violet lantern \\udc00\\ud800"')],
      ['login, password', 'POST', '/v1/sessions', {}, `{"username":"${user.username}","password":"${GOOD_PASSWORD}\\ud800"}`],
      ['profile, name', 'PATCH', '/v1/users/me', bearer(session.accessToken), '{"name":"a\\ud800b"}'],
      ['password change, new_password', 'PUT', '/v1/users/me/password', bearer(session.accessToken), `{"current_password":"${GOOD_PASSWORD}","new_password":"orbit lantern \\udbff violet"}`],
      ['passkey sign-in, nested', 'POST', '/v1/sessions/passkey', {}, '{"response":{"id":"\\udfff","rawId":"x"}}'],
    ];
    const expected: Record<string, string> = {
      'register, name': 'name',
      'register, password (low surrogate)': 'password',
      'register, password (pair reversed)': 'password',
      'login, password': 'password',
      'profile, name': 'name',
      'password change, new_password': 'new_password',
      'passkey sign-in, nested': 'response.id',
    };
    for (const [what, method, url, headers, payload] of cases) {
      const res = await inject({ method: method as InjectOptions['method'], url, payload, headers: { ...headers, ...json } });
      assertProblem(res, 400, 'validation_failed');
      assert.deepEqual(problem(res).errors?.map((e) => e.field), [expected[what]], `${what}: ${res.body}`);
    }
    await assertNothingChanged(svc.db, before);

    // A surrogate pair written as two escapes is one well-formed character, and is kept as such.
    const emoji = await inject({ method: 'PATCH', url: '/v1/users/me', payload: '{"name":"Ada \\ud83d\\ude00"}', headers: { ...bearer(session.accessToken), ...json } });
    assert.equal(emoji.statusCode, 200, emoji.body);
    assert.equal(emoji.json().name, 'Ada \u{1F600}');
  });

  it('when a small body holds deeply nested or countless bad fields, then the 400 lists at most 20 of them, each name at most 100 characters, in an answer smaller than the body', async () => {
    const json = { 'content-type': 'application/json' };
    // ~16 KiB: 1,400 levels, each with a lone surrogate; and 1,500 unknown fields.
    let nested = '"\\ud800"';
    while (nested.length < 15_000) nested = `["\\ud800",${nested}]`;
    const deep = await inject({ method: 'POST', url: '/v1/users', payload: nested, headers: json });
    const unknown = await inject({ method: 'PATCH', url: '/v1/users/me', payload: JSON.stringify(Object.fromEntries(Array.from({ length: 1500 }, (_, i) => [`f${i}`, 1]))), headers: { ...json, ...bearer((await login(svc.app, await registerUser(svc.app))).accessToken) } });
    for (const [what, res, sent] of [['nested surrogates', deep, nested.length], ['unknown fields', unknown, 1500 * 8]] as const) {
      assertProblem(res, 400, 'validation_failed');
      const errors = problem(res).errors ?? [];
      assert.ok(errors.length > 0 && errors.length <= 20, `${what}: ${errors.length} entries`);
      assert.ok(errors.every((e) => e.field.length <= 100), `${what}: a field name of ${Math.max(...errors.map((e) => e.field.length))} characters`);
      assert.ok(res.body.length < sent, `${what}: an answer of ${res.body.length} bytes to a body of ${sent}`);
    }
  });

  it('when a JSON key holds a lone surrogate, then 400 validation_failed naming it, on a route that takes input and on one that takes none', async () => {
    const session = await login(svc.app, await registerUser(svc.app));
    const before = await dbState(svc.db);
    for (const [method, url] of [['PATCH', '/v1/users/me'], ['POST', '/v1/users/me/email-verification']] as const) {
      const res = await inject({ method, url, payload: '{"a\\ud800":1}', headers: { ...bearer(session.accessToken), 'content-type': 'application/json' } });
      assertProblem(res, 400, 'validation_failed');
      assert.deepEqual(problem(res).errors?.map((e) => e.field), ['a\ud800'], `${method} ${url}: ${res.body}`);
    }
    await assertNothingChanged(svc.db, before);
  });

  it('when a JSON body is not valid UTF-8 (Latin-1 bytes, a surrogate encoded as UTF-8), then 400 validation_failed and nothing is written', async () => {
    const before = await dbState(svc.db);
    const valid = registerPayload();
    const text = JSON.stringify({ ...valid, password: 'violet lantern orbit %BYTES%' });
    for (const [what, bytes] of [
      ['0xff', [0xff]],
      ['Latin-1 é', [0xe9]],
      ['CESU-8 surrogate', [0xed, 0xa0, 0x80]],
      ['overlong /', [0xc0, 0xaf]],
    ] as const) {
      const [head, tail] = text.split('%BYTES%') as [string, string];
      const payload = Buffer.concat([Buffer.from(head), Buffer.from(bytes), Buffer.from(tail)]);
      const res = await inject({ method: 'POST', url: '/v1/users', payload, headers: { 'content-type': 'application/json' } });
      const body = assertProblem(res, 400, 'validation_failed');
      assert.equal(body.detail, 'The body is not valid UTF-8.', what);
      assert.deepEqual(problem(res).errors, [{ field: '(body)', message: 'is not valid UTF-8' }], what);
    }
    await assertNothingChanged(svc.db, before);
    // UTF-8 itself, with or without a byte order mark, is fine.
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify({ ...valid, name: 'Zoë Ådå' }))]);
    const created = await inject({ method: 'POST', url: '/v1/users', payload: bom, headers: { 'content-type': 'application/json' } });
    assert.equal(created.statusCode, 201, created.body);
    assert.equal(created.json().name, 'Zoë Ådå');
  });

  it('when a DELETE that takes no input has an empty body, with Content-Type application/json or without any, then 204', async () => {
    const user = await registerUser(svc.app);
    for (const headers of [{ 'content-type': 'application/json' }, { 'content-type': 'application/json; charset=utf-8' }, {}]) {
      const session = await login(svc.app, user);
      const res = await inject({ method: 'DELETE', url: '/v1/sessions/current', payload: '', headers: { ...bearer(session.accessToken), ...headers } });
      assert.equal(res.statusCode, 204, `${JSON.stringify(headers)}: ${res.body}`);
      assert.equal(res.body, '');
      const row = await svc.db.selectFrom('user_sessions').select('is_active').where('session_id', '=', session.sessionId).executeTakeFirstOrThrow();
      assert.equal(row.is_active, false, 'the session ended');
    }
    const session = await login(svc.app, user);
    const all = await inject({ method: 'DELETE', url: '/v1/sessions', payload: '', headers: { ...bearer(session.accessToken), 'content-type': 'application/json' } });
    assert.equal(all.statusCode, 204, all.body);
    const other = await login(svc.app, user);
    const current = await login(svc.app, user);
    const one = await inject({ method: 'DELETE', url: `/v1/sessions/${other.sessionId}`, payload: '', headers: { ...bearer(current.accessToken), 'content-type': 'application/json' } });
    assert.equal(one.statusCode, 204, one.body);
  });

  it('when a POST, PUT or DELETE that takes no input gets a body with a field, then 400 validation_failed naming it and nothing changes', async () => {
    const user = await registerUser(svc.app);
    // An administrator, so that the admin API's routes reach their body rules instead of 403 forbidden.
    await new AdminService(svc.db).changeRole(user.username, 'admin', true);
    const session = await login(svc.app, user);
    const other = await login(svc.app, user);
    // Every operation of the OpenAPI document that writes and declares no request body: the ones known today, and any added later.
    const paths = (svc.app.swagger() as { paths: Record<string, Record<string, { requestBody?: unknown }>> }).paths;
    const noInput = Object.entries(paths).flatMap(([path, operations]) =>
      Object.entries(operations)
        .filter(([method, operation]) => ['post', 'put', 'patch', 'delete'].includes(method) && operation.requestBody === undefined)
        .map(([method]) => `${method.toUpperCase()} ${path}`),
    );
    for (const known of [
      'POST /v1/users/me/email-verification',
      'POST /v1/users/me/passkeys/options',
      'POST /v1/sessions/passkey/options',
      'DELETE /v1/sessions/current',
      'DELETE /v1/sessions',
      'DELETE /v1/sessions/{id}',
      'DELETE /v1/users/me/passkeys/{id}',
    ]) {
      assert.ok(noInput.includes(known), `${known} is among ${JSON.stringify(noInput)}`);
    }
    // An organization of the caller's: its routes answer a non-member 404 before reading the body.
    const org = await inject({ method: 'POST', url: '/v1/orgs', payload: { name: 'Body rules', slug: 'body-rules' }, headers: bearer(session.accessToken) });
    assert.equal(org.statusCode, 201, org.body);
    const before = await dbState(svc.db);
    for (const operation of noInput) {
      const [method, path] = operation.split(' ') as [InjectOptions['method'], string];
      const url = path.replace(/^\/v1\/orgs\/\{id\}/, `/v1/orgs/${org.json().id}`).replace(/\{[a-z_]+\}/g, other.sessionId);
      for (const payload of ['{"x":1}', '{"x":1,"user_id":"1"}']) {
        const res = await inject({ method, url, payload, headers: { ...bearer(session.accessToken), 'content-type': 'application/json' } });
        const body = assertProblem(res, 400, 'validation_failed');
        assert.ok(body.errors && (body.errors as Array<{ field: string }>).some((e) => e.field === 'x'), `${operation} ${payload}: errors name x: ${res.body}`);
      }
    }
    await assertNothingChanged(svc.db, before);
    const verification = await inject({ method: 'POST', url: '/v1/users/me/email-verification', payload: '[]', headers: { ...bearer(session.accessToken), 'content-type': 'application/json' } });
    assertProblem(verification, 400, 'validation_failed');
  });

  it('when a POST or DELETE that takes no input gets {} or an empty body, then it is answered as usual', async () => {
    const user = await registerUser(svc.app);
    const session = await login(svc.app, user);
    for (const [payload, headers] of [['{}', { 'content-type': 'application/json' }], ['', { 'content-type': 'application/json' }], ['', {}]] as const) {
      const res = await inject({ method: 'POST', url: '/v1/users/me/email-verification', payload, headers: { ...bearer(session.accessToken), ...headers } });
      assert.equal(res.statusCode, 202, `${JSON.stringify(payload)} ${JSON.stringify(headers)}: ${res.body}`);
      const options = await inject({ method: 'POST', url: '/v1/sessions/passkey/options', payload, headers });
      assert.equal(options.statusCode, 200, `${JSON.stringify(payload)} ${JSON.stringify(headers)}: ${options.body}`);
    }
    const logout = await inject({ method: 'DELETE', url: '/v1/sessions/current', payload: '{}', headers: { ...bearer(session.accessToken), 'content-type': 'application/json' } });
    assert.equal(logout.statusCode, 204, logout.body);
    const row = await svc.db.selectFrom('user_sessions').select('is_active').where('session_id', '=', session.sessionId).executeTakeFirstOrThrow();
    assert.equal(row.is_active, false, 'the session ended');
  });

  it('when a POST or DELETE that takes no input has an empty body of any media type, then it is answered as usual; a non-empty one is 415 unsupported_media_type', async () => {
    const user = await registerUser(svc.app);
    const session = await login(svc.app, user);
    const types = ['text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/octet-stream'];
    for (const type of types) {
      // A user of its own each time: 5 verification mails an hour (registration's included).
      const caller = await login(svc.app, await registerUser(svc.app));
      const verification = await inject({ method: 'POST', url: '/v1/users/me/email-verification', payload: '', headers: { ...bearer(caller.accessToken), 'content-type': type } });
      assert.equal(verification.statusCode, 202, `${type}: ${verification.body}`);
      const options = await inject({ method: 'POST', url: '/v1/sessions/passkey/options', payload: '', headers: { 'content-type': type } });
      assert.equal(options.statusCode, 200, `${type}: ${options.body}`);
    }
    // Without a Content-Length (a chunked body that turns out empty).
    const streamed = await inject({ method: 'POST', url: '/v1/sessions/passkey/options', payload: Readable.from([]), headers: { 'content-type': 'text/plain' } });
    assert.equal(streamed.statusCode, 200, streamed.body);

    const before = await dbState(svc.db);
    for (const [type, payload] of [['text/plain', '{}'], ['application/x-www-form-urlencoded', 'x=1'], ['application/octet-stream', 'x']]) {
      const res = await inject({ method: 'POST', url: '/v1/users/me/email-verification', payload, headers: { ...bearer(session.accessToken), 'content-type': type } });
      assertProblem(res, 415, 'unsupported_media_type');
      assertProblem(await inject({ method: 'DELETE', url: '/v1/sessions/current', payload, headers: { ...bearer(session.accessToken), 'content-type': type } }), 415, 'unsupported_media_type');
    }
    const noType = await inject({ method: 'POST', url: '/v1/users/me/email-verification', payload: '{}', headers: bearer(session.accessToken) });
    assertProblem(noType, 415, 'unsupported_media_type');
    const chunked = await inject({ method: 'POST', url: '/v1/sessions/passkey/options', payload: Readable.from([Buffer.from('x')]), headers: { 'content-type': 'text/plain' } });
    assertProblem(chunked, 415, 'unsupported_media_type');
    await assertNothingChanged(svc.db, before);

    const logout = await inject({ method: 'DELETE', url: '/v1/sessions/current', payload: '', headers: { ...bearer(session.accessToken), 'content-type': 'text/plain' } });
    assert.equal(logout.statusCode, 204, logout.body);
  });

  it('when a route that takes JSON gets an empty body of another media type, then 400 validation_failed as for no body, and nothing is written', async () => {
    const before = await dbState(svc.db);
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/octet-stream']) {
      for (const url of ['/v1/users', '/v1/sessions']) {
        const res = await inject({ method: 'POST', url, payload: '', headers: { 'content-type': type } });
        const body = assertProblem(res, 400, 'validation_failed');
        assert.deepEqual(body.errors, [{ field: '(body)', message: 'must be a JSON object' }], `${url} ${type}`);
        const missing = await inject({ method: 'POST', url, payload: '' });
        assert.deepEqual(problem(missing), body, `${url} ${type}: answered as a missing body`);
      }
    }
    await assertNothingChanged(svc.db, before);
  });

  it('when any kind of answer is given (200, 201, 204, 400, 401, 404, 413, 415), then it carries the security headers and an X-Request-Id', async () => {
    const payload = registerPayload();
    const answers: Array<[number, LightMyRequestResponse]> = [];
    const created = await inject({ method: 'POST', url: '/v1/users', payload });
    answers.push([201, created]);
    const session = await login(svc.app, { username: payload.username as string, password: GOOD_PASSWORD });
    answers.push([200, await inject({ method: 'GET', url: '/v1/users/me', headers: bearer(session.accessToken) })]);
    answers.push([200, await inject({ method: 'GET', url: '/healthz' })]);
    answers.push([400, await inject({ method: 'POST', url: '/v1/users', payload: { username: 'x' } })]);
    const unauth = await inject({ method: 'GET', url: '/v1/users/me' });
    answers.push([401, unauth]);
    answers.push([404, await inject({ method: 'GET', url: '/nowhere' })]);
    answers.push([413, await inject({ method: 'POST', url: '/v1/sessions', payload: { username: 'x', password: 'y'.repeat(20_000) } })]);
    answers.push([415, await inject({ method: 'POST', url: '/v1/sessions', payload: 'username=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } })]);
    answers.push([204, await inject({ method: 'DELETE', url: '/v1/sessions/current', headers: bearer(session.accessToken) })]);
    for (const [status, res] of answers) {
      assert.equal(res.statusCode, status, `${status}: ${res.body}`);
      assertSecurityHeaders(res, String(status));
    }
    assert.match(String(unauth.headers['www-authenticate'] ?? ''), /^Bearer\b/, '401 sends WWW-Authenticate: Bearer');
    const ids = answers.map(([, res]) => res.headers['x-request-id']);
    assert.equal(new Set(ids).size, ids.length, 'each response has its own request id');
  });

  it('when a client sends a well-formed X-Request-Id, then it is echoed; a malformed one is replaced by a generated one', async () => {
    for (const [method, url] of [['GET', '/healthz'], ['GET', '/v1/users/me'], ['GET', '/missing']] as const) {
      const echoed = await inject({ method, url, headers: { 'x-request-id': 'abc-123' } });
      assert.equal(echoed.headers['x-request-id'], 'abc-123', `${method} ${url}`);
    }
    for (const given of ['has spaces in it', 'a'.repeat(300), '<script>alert(1)</script>', 'abc\u00e9']) {
      const res = await inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': given } });
      assert.equal(res.statusCode, 200);
      const id = String(res.headers['x-request-id'] ?? '');
      assert.notEqual(id, given);
      assert.match(id, WELL_FORMED_REQUEST_ID, `generated in place of ${JSON.stringify(given.slice(0, 20))}`);
    }
  });

  it('when a response carries tokens or personal data (register, login, refresh, profile), then Cache-Control: no-store', async () => {
    const payload = registerPayload();
    const register = await inject({ method: 'POST', url: '/v1/users', payload });
    assert.equal(register.statusCode, 201);
    const loginRes = await inject({ method: 'POST', url: '/v1/sessions', payload: { username: payload.username, password: payload.password } });
    assert.equal(loginRes.statusCode, 201);
    const tokens = loginRes.json();
    const me = await inject({ method: 'GET', url: '/v1/users/me', headers: bearer(tokens.access_token) });
    assert.equal(me.statusCode, 200);
    const patch = await inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(tokens.access_token), payload: { name: 'Renamed' } });
    assert.equal(patch.statusCode, 200);
    const list = await inject({ method: 'GET', url: '/v1/sessions', headers: bearer(tokens.access_token) });
    assert.equal(list.statusCode, 200);
    const refresh = await inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: tokens.refresh_token } });
    assert.equal(refresh.statusCode, 200, refresh.body);
    for (const [what, res] of [['register', register], ['login', loginRes], ['me', me], ['patch', patch], ['sessions', list], ['refresh', refresh]] as const) {
      assert.match(String(res.headers['cache-control'] ?? ''), /\bno-store\b/, what);
      assert.equal(res.headers['content-type'], JSON_TYPE, what);
    }
  });

  it('when CORS is not configured, then a request from any origin gets no Access-Control-Allow-Origin', async () => {
    const simple = await inject({ method: 'GET', url: '/healthz', headers: { origin: 'https://evil.example' } });
    assert.equal(simple.statusCode, 200);
    assert.equal(simple.headers['access-control-allow-origin'], undefined);
    const post = await inject({ method: 'POST', url: '/v1/sessions', headers: { origin: 'https://evil.example' }, payload: { username: 'nobody_here', password: 'not the password' } });
    assert.equal(post.headers['access-control-allow-origin'], undefined);
    const preflight = await inject({
      method: 'OPTIONS',
      url: '/v1/users',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    assert.equal(preflight.headers['access-control-allow-origin'], undefined);
    assertSecurityHeaders(preflight, 'preflight');
  });

  it('when CORS origins are configured, then only those origins are allowed, for every method the API uses', async () => {
    const cors = await startTestService({ corsOrigins: ['https://app.example'] });
    try {
      const ok = await inject(
        {
          method: 'OPTIONS',
          url: '/v1/users',
          headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
        },
        cors.app,
      );
      assert.ok(ok.statusCode >= 200 && ok.statusCode < 300, `preflight ${ok.statusCode}`);
      assert.equal(ok.headers['access-control-allow-origin'], 'https://app.example');
      assertSecurityHeaders(ok, 'preflight');

      const evil = await inject(
        {
          method: 'OPTIONS',
          url: '/v1/users',
          headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
        },
        cors.app,
      );
      assert.equal(evil.headers['access-control-allow-origin'], undefined);

      const simpleOk = await inject({ method: 'GET', url: '/healthz', headers: { origin: 'https://app.example' } }, cors.app);
      assert.equal(simpleOk.headers['access-control-allow-origin'], 'https://app.example');
      const simpleEvil = await inject({ method: 'GET', url: '/healthz', headers: { origin: 'https://evil.example' } }, cors.app);
      assert.equal(simpleEvil.headers['access-control-allow-origin'], undefined);

      // A browser app calls GET, PATCH, PUT and DELETE with a bearer token too.
      const refused: string[] = [];
      for (const [method, url] of [['GET', '/v1/users/me'], ['PATCH', '/v1/users/me'], ['PUT', '/v1/users/me/password'], ['DELETE', '/v1/sessions/current'], ['DELETE', '/v1/sessions/7']] as const) {
        const res = await inject(
          {
            method: 'OPTIONS',
            url,
            headers: { origin: 'https://app.example', 'access-control-request-method': method, 'access-control-request-headers': 'authorization, content-type' },
          },
          cors.app,
        );
        const origin = res.headers['access-control-allow-origin'];
        const methods = String(res.headers['access-control-allow-methods'] ?? '').toUpperCase().split(/\s*,\s*/);
        const allowed = String(res.headers['access-control-allow-headers'] ?? '').toLowerCase();
        if (origin !== 'https://app.example' || !methods.includes(method) || !(allowed === '*' || allowed.split(/\s*,\s*/).includes('authorization'))) {
          refused.push(`${method} ${url}: allow-origin ${origin}, allow-methods "${res.headers['access-control-allow-methods']}", allow-headers "${allowed}"`);
        }
      }
      assert.deepEqual(refused, [], 'preflights the configured origin needs');
    } finally {
      await cors.close();
    }
  });

  it('when something unexpected breaks inside, then 500 internal_error that says nothing internal', async () => {
    const broken = await startTestService();
    try {
      const user = await registerUser(broken.app, { password: 'amber kettle harbor 9931' });
      passwordsSent.add(user.password);
      const session = await login(broken.app, user);
      // MariaDB ignores CASCADE: the one table referring to the sessions goes first.
      await sql`drop table oauth_sessions`.execute(broken.db);
      await sql`drop table user_sessions cascade`.execute(broken.db);

      const loginRes = await inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: user.password } }, broken.app);
      const meRes = await inject({ method: 'GET', url: '/v1/users/me', headers: bearer(session.accessToken) }, broken.app);
      for (const res of [loginRes, meRes]) {
        const body = assertProblem(res, 500, 'internal_error');
        assertSecurityHeaders(res, '500');
        assert.deepEqual(
          Object.keys(body).filter((k) => !['type', 'title', 'status', 'code', 'detail'].includes(k)),
          [],
          `no other members: ${res.body}`,
        );
        assert.doesNotMatch(res.body, /user_sessions|relation|does not exist|\bsql\b|select |insert |stack|node_modules|\.ts:|\.js:|\bat async\b|kysely|pglite|postgres/i);
      }
    } finally {
      await broken.close();
    }
  });

  it('when anything at all is answered, then no body contains an Argon2 hash or a password that was sent', async () => {
    const password = 'quartz meadow signal 5521';
    const newPassword = 'copper lantern valley 8803';
    const payload = registerPayload({ password });
    await inject({ method: 'POST', url: '/v1/users', payload });
    await inject({ method: 'POST', url: '/v1/users', payload: registerPayload({ password: 'password123' }) });
    await inject({ method: 'POST', url: '/v1/sessions', payload: { username: payload.username, password: 'wrong password given' } });
    const loginRes = await inject({ method: 'POST', url: '/v1/sessions', payload: { username: payload.username, password } });
    assert.equal(loginRes.statusCode, 201);
    const { access_token: accessToken, refresh_token: refreshToken } = loginRes.json();
    await inject({ method: 'GET', url: '/v1/users/me', headers: bearer(accessToken) });
    await inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(accessToken), payload: { password: 'sneaky new password' } });
    await inject({ method: 'PUT', url: '/v1/users/me/password', headers: bearer(accessToken), payload: { current_password: 'not my password', new_password: newPassword } });
    await inject({ method: 'PUT', url: '/v1/users/me/password', headers: bearer(accessToken), payload: { current_password: password, new_password: 'short' } });
    const changed = await inject({ method: 'PUT', url: '/v1/users/me/password', headers: bearer(accessToken), payload: { current_password: password, new_password: newPassword } });
    assert.equal(changed.statusCode, 204, changed.body);
    await inject({ method: 'PUT', url: '/v1/users/me/password', headers: bearer(accessToken), payload: { current_password: newPassword, new_password: password } });
    await inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: refreshToken } });
    await inject({ method: 'GET', url: '/v1/sessions', headers: bearer(accessToken) });

    assert.ok(responses.length > 50, `${responses.length} responses checked`);
    for (const res of responses) {
      assert.doesNotMatch(res.body, /argon2/i, res.body.slice(0, 200));
      // Passwords shorter than the minimum are words that a message may well contain ("short").
      for (const sent of [...passwordsSent].filter((p) => p.length >= 8)) assert.ok(!res.body.includes(sent), `a body contains the password ${JSON.stringify(sent)}: ${res.body.slice(0, 200)}`);
    }
  });
});

describe('URLs Fastify cannot route', () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService();
  });
  after(() => svc.close());

  it('when a URL carries a broken %-escape, then 404 not_found as problem+json with the standard headers', async () => {
    const res = await svc.app.inject({ method: 'DELETE', url: '/v1/sessions/%E0%A4%A' });
    assert.equal(res.statusCode, 404);
    assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
    assert.equal(res.json().code, 'not_found');
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers['cache-control'], 'no-store');
  });
});
