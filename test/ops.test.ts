import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { LightMyRequestResponse } from 'fastify';
import { decodeProtectedHeader } from 'jose';
import { sql } from 'kysely';
import { buildApp } from '../src/app.js';
import { freePort } from './helpers/processes.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { PROBLEMS, publicCode, type ProblemName } from '../src/errors.js';
import { JSON_TYPE, bearer, login, problem, registerUser, startTestService, uniqueName, type TestService } from './helpers/app.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

function assertProblem(res: LightMyRequestResponse, status: number, code: string): void {
  assert.equal(res.statusCode, status, `${res.statusCode} ${res.body}`);
  const body = problem(res);
  assert.equal(body.status, status);
  assert.equal(body.code, code);
  assert.equal(typeof body.type, 'string');
  assert.equal(typeof body.title, 'string');
  assert.equal(typeof body.detail, 'string');
}

describe('operations endpoints', () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService();
  });
  after(() => svc.close());

  it('when /healthz is asked, then 200 {status: "ok"}', async () => {
    const res = await svc.app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], JSON_TYPE);
    assert.deepEqual(res.json(), { status: 'ok' });
  });

  it('when the database is migrated, then /readyz answers 200', async () => {
    const res = await svc.app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers['content-type'], JSON_TYPE);
  });

  it('when a migration is not recorded as applied, then /readyz answers 503 unavailable', async () => {
    const unready = await startTestService();
    try {
      assert.equal((await unready.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
      await sql`delete from schema_migrations`.execute(unready.db);
      const res = await unready.app.inject({ method: 'GET', url: '/readyz' });
      assertProblem(res, 503, 'unavailable');
      const health = await unready.app.inject({ method: 'GET', url: '/healthz' });
      assert.equal(health.statusCode, 200, 'the process is still alive');
    } finally {
      await unready.close();
    }
  });

  it('when /metrics is asked, then Prometheus text with request durations labelled by route pattern, and process metrics', async () => {
    const user = await registerUser(svc.app);
    const { accessToken } = await login(svc.app, user);
    assert.equal((await svc.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    assert.equal((await svc.app.inject({ method: 'DELETE', url: '/v1/sessions/987654321', headers: bearer(accessToken) })).statusCode, 404);
    assert.equal((await svc.app.inject({ method: 'GET', url: '/no-such-route-q7x' })).statusCode, 404);

    const res = await svc.app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(res.statusCode, 200);
    const type = String(res.headers['content-type']);
    assert.match(type, /^text\/plain\b/);
    assert.match(type, /version=0\.0\.4/);
    assert.match(type, /charset=utf-8/i);
    assert.match(res.body, /^# TYPE http_request_duration_seconds histogram$/m);
    assert.match(res.body, /^http_request_duration_seconds_bucket\{[^}]*route="\/healthz"[^}]*\} \d+/m);
    assert.match(res.body, /^http_request_duration_seconds_count\{[^}]*route="\/v1\/sessions"[^}]*\} [1-9]/m, 'the login was counted');
    assert.match(res.body, /^http_request_duration_seconds_count\{[^}]*route="\/v1\/sessions\/:id"[^}]*\} [1-9]/m, 'a route pattern, not the URL');
    assert.doesNotMatch(res.body, /987654321|no-such-route-q7x/, 'no raw URL or id becomes a label value');
    assert.match(res.body, /^process_cpu_user_seconds_total \d/m);
    assert.match(res.body, /^process_start_time_seconds \d/m);
    assert.match(res.body, /^nodejs_heap_size_used_bytes \d/m);
  });

  it('when /openapi.json is asked, then an OpenAPI 3.1 document lists every contract operation with its success and error answers', async () => {
    const res = await svc.app.inject({ method: 'GET', url: '/openapi.json' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    const doc = res.json();
    assert.equal(doc.openapi, '3.1.0');
    assert.equal(typeof doc.info?.title, 'string');

    // path → method → [success status, needs a 4xx, protected by a bearer token]
    const expected: Record<string, Record<string, [string, boolean, boolean]>> = {
      '/v1/users': { post: ['201', true, false] },
      '/v1/users/me': { get: ['200', true, true], patch: ['200', true, true] },
      '/v1/users/me/password': { put: ['204', true, true] },
      '/v1/sessions': { post: ['201', true, false], get: ['200', true, true], delete: ['204', true, true] },
      '/v1/sessions/current': { delete: ['204', true, true] },
      '/v1/sessions/refresh': { post: ['200', true, false] },
      '/v1/sessions/{id}': { delete: ['204', true, true] },
      '/.well-known/jwks.json': { get: ['200', false, false] },
      '/healthz': { get: ['200', false, false] },
      '/readyz': { get: ['200', false, false] },
    };
    const problems: string[] = [];
    for (const [path, methods] of Object.entries(expected)) {
      const item = doc.paths?.[path];
      if (!item) {
        problems.push(`${path} is missing`);
        continue;
      }
      for (const [method, [success, needs4xx, isProtected]] of Object.entries(methods)) {
        const op = item[method];
        if (!op) {
          problems.push(`${method.toUpperCase()} ${path} is missing`);
          continue;
        }
        const statuses = Object.keys(op.responses ?? {});
        if (!statuses.includes(success)) problems.push(`${method.toUpperCase()} ${path} lacks its ${success}: ${statuses}`);
        if (needs4xx && !statuses.some((s) => /^4\d\d$/.test(s))) problems.push(`${method.toUpperCase()} ${path} lists no 4xx: ${statuses}`);
        const secured = Array.isArray(op.security) && op.security.some((s: Record<string, unknown>) => 'bearerAuth' in s);
        if (secured !== isProtected) problems.push(`${method.toUpperCase()} ${path} security is ${JSON.stringify(op.security)}`);
        if (isProtected && !statuses.includes('401')) problems.push(`${method.toUpperCase()} ${path} (protected) lists no 401`);
      }
    }
    assert.deepEqual(problems, []);
    assert.ok(Object.keys(doc.paths['/readyz'].get.responses).includes('503'), '/readyz documents its 503');
    assert.ok(Object.keys(doc.paths['/v1/sessions/{id}'].delete.responses).includes('404'), 'a session that is not the caller\'s');
    const idParam = (doc.paths['/v1/sessions/{id}'].delete.parameters ?? []).find((p: { name: string; in: string }) => p.name === 'id');
    assert.equal(idParam?.in, 'path');
    assert.equal(doc.components?.securitySchemes?.bearerAuth?.scheme, 'bearer');
  });

  it('when the OpenAPI document describes an error status, then it names every code the operation can answer with it, and only codes of that status', async () => {
    const doc = (await svc.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const codesOf = (path: string, method: string, status: string): string[] =>
      String(doc.paths?.[path]?.[method]?.responses?.[status]?.description ?? '')
        .split(',')
        .map((c) => c.trim())
        .filter(Boolean);

    // Codes the contract says these operations answer; every way of signing in may answer
    // 403 email_not_verified (REQUIRE_EMAIL_VERIFICATION), a register or profile update either 409.
    const expected: Array<[string, string, string, string[]]> = [
      ['post', '/v1/sessions', '401', ['invalid_credentials']],
      ['post', '/v1/sessions', '403', ['mfa_required', 'email_not_verified']],
      ['post', '/v1/sessions/mfa', '401', ['invalid_mfa_token', 'invalid_mfa_code']],
      ['post', '/v1/sessions/mfa', '403', ['email_not_verified']],
      ['post', '/v1/sessions/passkey', '401', ['invalid_credentials']],
      ['post', '/v1/sessions/passkey', '403', ['email_not_verified']],
      ['post', '/v1/users', '409', ['username_taken', 'email_taken']],
      ['patch', '/v1/users/me', '409', ['username_taken', 'email_taken']],
      ['patch', '/v1/users/me', '403', ['reauthentication_required']],
      ['put', '/v1/users/me/password', '403', ['invalid_credentials']],
      ['delete', '/v1/users/me', '403', ['invalid_credentials']],
      ['post', '/v1/users/me/mfa/totp/confirm', '401', ['invalid_token', 'invalid_mfa_code']],
    ];
    const missing: string[] = [];
    for (const [method, path, status, codes] of expected) {
      const listed = codesOf(path, method, status);
      for (const code of codes) if (!listed.includes(code)) missing.push(`${method.toUpperCase()} ${path} ${status} lacks ${code} (lists: ${listed.join(', ') || 'nothing'})`);
    }
    assert.deepEqual(missing, []);

    // Each code named under a status is a code the service answers with that status.
    const answered = new Set(Object.entries(PROBLEMS).map(([name, p]) => `${p.status} ${publicCode(name as ProblemName)}`));
    const misplaced: string[] = [];
    for (const [path, item] of Object.entries<Record<string, { responses?: Record<string, unknown> }>>(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        for (const status of Object.keys(op.responses ?? {})) {
          if (Number(status) < 400) continue;
          for (const code of codesOf(path, method, status)) {
            if (!answered.has(`${status} ${code}`)) misplaced.push(`${method.toUpperCase()} ${path} ${status}: ${code}`);
          }
        }
      }
    }
    assert.deepEqual(misplaced, []);
  });

  it('when the OpenAPI document describes an error answer, then as application/problem+json, the media type the service sends', async () => {
    const doc = (await svc.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const wrong: string[] = [];
    for (const [path, item] of Object.entries<Record<string, { responses?: Record<string, { content?: Record<string, unknown> }> }>>(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        for (const [status, response] of Object.entries(op.responses ?? {})) {
          if (Number(status) < 400 || !response.content) continue;
          const types = Object.keys(response.content);
          if (!types.includes('application/problem+json')) wrong.push(`${method.toUpperCase()} ${path} ${status}: ${types.join(', ')}`);
        }
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('when /docs is asked, then an HTML page (after at most one redirect)', async () => {
    let res = await svc.app.inject({ method: 'GET', url: '/docs' });
    if (res.statusCode >= 300 && res.statusCode < 400) {
      const location = String(res.headers.location);
      res = await svc.app.inject({ method: 'GET', url: new URL(location, 'http://localhost/docs').pathname });
    }
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/html;\s*charset=utf-8/i);
    assert.match(res.body, /<html/i);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers['x-frame-options'], 'DENY');
    assert.ok(res.headers['content-security-policy'], 'the docs page has a CSP (it may be wider)');
  });

  it('when /.well-known/jwks.json is asked, then public Ed25519 keys only, including the kid tokens are signed with', async () => {
    const res = await svc.app.inject({ method: 'GET', url: '/.well-known/jwks.json' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], JSON_TYPE);
    const { keys } = res.json() as { keys: Array<Record<string, unknown>> };
    assert.ok(Array.isArray(keys) && keys.length >= 1);
    for (const key of keys) {
      assert.equal(key.kty, 'OKP');
      assert.equal(key.crv, 'Ed25519');
      assert.equal(key.alg, 'EdDSA');
      assert.equal(key.use, 'sig');
      assert.match(String(key.x), /^[A-Za-z0-9_-]{43}$/);
      assert.equal(typeof key.kid, 'string');
      for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) assert.equal(key[secret], undefined, `no private member "${secret}"`);
    }
    assert.equal(new Set(keys.map((k) => k.kid)).size, keys.length, 'kids are unique');

    const user = await registerUser(svc.app);
    const { accessToken } = await login(svc.app, user);
    const header = decodeProtectedHeader(accessToken);
    assert.ok(header.alg === 'EdDSA' || header.alg === 'Ed25519', String(header.alg));
    assert.equal(header.typ, 'at+jwt');
    assert.ok(keys.some((k) => k.kid === header.kid), `kid ${header.kid} is in the JWKS`);
  });

  it('when a second instance is built on the same database, then it serves the same JWKS and accepts the first one\'s tokens', async () => {
    const first = (await svc.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json();
    const user = await registerUser(svc.app);
    const { accessToken } = await login(svc.app, user);
    const second = await buildApp({ config: svc.config, db: svc.handle });
    try {
      const res = await second.inject({ method: 'GET', url: '/.well-known/jwks.json' });
      assert.equal(res.statusCode, 200);
      assert.deepEqual(res.json(), first);
      const me = await second.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(accessToken) });
      assert.equal(me.statusCode, 200, me.body);
      assert.equal(me.json().id, user.id);
      const count = await svc.db.selectFrom('signing_keys').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
      assert.equal(Number(count.n), first.keys.length, 'no key was added by the second instance');
    } finally {
      await second.close();
    }
  });
});

describe('configuration', () => {
  it('when a setting is bad, then loadConfig throws a ConfigError naming the variable', () => {
    const cases: Array<[string, string]> = [
      ['PORT', 'abc'],
      ['PORT', '70000'],
      ['PORT', '-1'],
      ['ACCESS_TOKEN_TTL_S', '30'],
      ['ACCESS_TOKEN_TTL_S', '3601'],
      ['ACCESS_TOKEN_TTL_S', '15m'],
      ['PASSWORD_MIN_LENGTH', '7'],
      ['PASSWORD_MIN_LENGTH', '65'],
      ['REFRESH_RETRY_S', '61'],
      ['REFRESH_RETRY_S', '-1'],
      ['DATABASE_URL', 'sqlite://x'],
      ['CORS_ORIGINS', '*'],
      ['CORS_ORIGINS', 'not a url'],
      ['LOG_LEVEL', 'loud'],
      ['ARGON2_MEMORY_KIB', '19455'],
      ['ARGON2_MEMORY_KIB', '1024'],
      ['ARGON2_TIME_COST', '1'],
    ];
    for (const [name, value] of cases) {
      assert.throws(
        () => loadConfig({ [name]: value }),
        (err: unknown) => err instanceof ConfigError && err.message.includes(name),
        `${name}=${value}`,
      );
    }
  });

  it('when nothing is set, then the defaults are those of the contract\'s "Running" table, and Argon2id is at OWASP\'s cost', () => {
    const config = loadConfig({});
    assert.equal(config.port, 3000);
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.databaseUrl, undefined);
    assert.equal(config.dataDir, './data');
    assert.equal(config.logLevel, 'info');
    assert.equal(config.passwordMinLength, 8);
    assert.equal(config.trustProxy, false);
    assert.equal(config.accessTokenTtlS, 900);
    assert.equal(config.sessionTtlS, 2_592_000);
    assert.equal(config.sessionIdleTtlS, 604_800);
    assert.equal(config.rateLimitPerMinute, 300);
    assert.equal(config.loginMaxFailures, 5);
    assert.deepEqual([...config.corsOrigins], []);
    assert.equal(config.refreshRetryS, 10);
    assert.deepEqual({ ...config.argon2 }, { memoryCost: 19456, timeCost: 2, parallelism: 1 });
  });

  it('when settings are given in range, then they are taken', () => {
    const config = loadConfig({
      PORT: '8080',
      ACCESS_TOKEN_TTL_S: '60',
      PASSWORD_MIN_LENGTH: '15',
      DATABASE_URL: 'postgres://u@db:5432/app',
      CORS_ORIGINS: 'https://app.example, https://admin.example',
      LOG_LEVEL: 'warn',
      REFRESH_RETRY_S: '0',
      ARGON2_MEMORY_KIB: '65536',
    });
    assert.equal(config.port, 8080);
    assert.equal(config.accessTokenTtlS, 60);
    assert.equal(config.passwordMinLength, 15);
    assert.equal(config.databaseUrl, 'postgres://u@db:5432/app');
    assert.deepEqual([...config.corsOrigins], ['https://app.example', 'https://admin.example']);
    assert.equal(config.logLevel, 'warn');
    assert.equal(config.refreshRetryS, 0);
    assert.equal(config.argon2.memoryCost, 65536);
  });
});

// ---------------------------------------------------------------------------------------------
// The server process

/** Settings of the contract that must not leak in from the environment the tests run in. */
const SETTINGS = [
  'PORT', 'HOST', 'DATABASE_URL', 'TEST_DATABASE_URL', 'DATA_DIR', 'LOG_LEVEL', 'PASSWORD_MIN_LENGTH', 'TRUST_PROXY', 'ACCESS_TOKEN_TTL_S',
  'SESSION_TTL_S', 'SESSION_IDLE_TTL_S', 'RATE_LIMIT_PER_MINUTE', 'LOGIN_MAX_FAILURES', 'CORS_ORIGINS', 'WORKERS', 'REFRESH_RETRY_S',
  'PUBLIC_URL', 'JWT_ISSUER', 'JWT_AUDIENCE', 'NODE_TEST_CONTEXT',
];

interface Server {
  child: ChildProcess;
  output(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitFor(pattern: RegExp, ms?: number): Promise<RegExpMatchArray>;
}

const started: ChildProcess[] = [];

function startServer(env: Record<string, string>): Server {
  const base: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !SETTINGS.includes(k)) base[k] = v;
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], { cwd: ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let done = false;
  void exited.then(() => (done = true));
  return {
    child,
    output: () => out + err,
    stderr: () => err,
    exited,
    waitFor: async (pattern, ms = 60_000) => {
      const deadline = Date.now() + ms;
      for (;;) {
        const m = (out + err).match(pattern);
        if (m) return m;
        if (done) throw new Error(`the server exited before printing ${pattern}:\n${out}${err}`);
        if (Date.now() > deadline) throw new Error(`no ${pattern} within ${ms} ms:\n${out}${err}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

async function exitWithin(server: Server, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no exit within ${ms} ms:\n${server.output()}`)), ms);
  });
  try {
    return await Promise.race([server.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function nonEmptyLines(text: string): string[] {
  return text.split('\n').map((l) => l.trim()).filter(Boolean);
}

describe('server process', { timeout: 300_000 }, () => {
  const dirs: string[] = [];
  const dataDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'ums-ops-'));
    dirs.push(dir);
    return dir;
  };

  after(() => {
    for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('when started, then it prints where it listens and its docs, answers, refuses a second process on its DATA_DIR, and exits 0 on SIGTERM', { timeout: 120_000 }, async () => {
    const dir = dataDir();
    const port = await freePort();
    const server = startServer({ PORT: String(port), DATA_DIR: dir, LOG_LEVEL: 'warn' });
    await server.waitFor(new RegExp(`listening on http://127\\.0\\.0\\.1:${port}\\b`));
    // Leads with PUBLIC_URL (a host name, as passkeys want), by default localhost:PORT; names the database.
    assert.match(server.output().split('\n').find((l) => l.startsWith('User management service'))!, new RegExp(`^User management service ready at http://localhost:${port}/ \\(PUBLIC_URL`));
    assert.match(server.output(), new RegExp(`API docs: http://localhost:${port}/docs`));
    assert.ok(server.output().includes(`Database: embedded PGlite in ${join(dir, 'pglite')} (DATA_DIR)`), server.output());

    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });
    assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200);

    const second = startServer({ PORT: String(await freePort()), DATA_DIR: dir, LOG_LEVEL: 'warn' });
    const { code } = await exitWithin(second, 60_000);
    assert.equal(code, 1, second.output());
    const lines = nonEmptyLines(second.output());
    assert.equal(lines.length, 1, `one line:\n${second.output()}`);
    assert.match(lines[0]!, /DATABASE_URL/);
    assert.match(lines[0]!, new RegExp(`in use by process ${server.child.pid}\\b.*stop it first`));

    const stillThere = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(stillThere.status, 200, 'the refused start left the running one alone');

    server.child.kill('SIGTERM');
    const exit = await exitWithin(server, 30_000);
    assert.deepEqual(exit, { code: 0, signal: null }, server.output());
  });

  it('when a setting is bad, then the start stops with exit 1 and one line naming the variable', { timeout: 60_000 }, async () => {
    const server = startServer({ ACCESS_TOKEN_TTL_S: '5', DATA_DIR: dataDir(), PORT: String(await freePort()) });
    const { code } = await exitWithin(server, 30_000);
    assert.equal(code, 1, server.output());
    const lines = nonEmptyLines(server.output());
    assert.equal(lines.length, 1, `one line:\n${server.output()}`);
    assert.match(lines[0]!, /ACCESS_TOKEN_TTL_S/);
  });

  it('when restarted on the same DATA_DIR, then a registered user can still log in, its token still works, and no log line holds a secret', { timeout: 180_000 }, async () => {
    const dir = dataDir();
    // Both runs are the same deployment: PUBLIC_URL (the tokens' issuer and audience) stays put
    // while the port, picked free each time, may change.
    const password = 'saffron beacon thistle 6120';
    const username = uniqueName('restart');

    const port1 = await freePort();
    const first = startServer({ PORT: String(port1), DATA_DIR: dir, LOG_LEVEL: 'info', PUBLIC_URL: 'http://localhost:3000' });
    await first.waitFor(/listening on http:\/\/127\.0\.0\.1:\d+/);
    const registered = await fetch(`http://127.0.0.1:${port1}/v1/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, name: 'Restart Tester', dob: '1990-12-10', email: `${username}@example.com`, password }),
    });
    assert.equal(registered.status, 201, await registered.clone().text());
    const userId = ((await registered.json()) as { id: string }).id;
    const firstLogin = await fetch(`http://127.0.0.1:${port1}/v1/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password }),
    });
    assert.equal(firstLogin.status, 201);
    const tokens = (await firstLogin.json()) as { access_token: string; refresh_token: string };
    first.child.kill('SIGTERM');
    assert.deepEqual(await exitWithin(first, 30_000), { code: 0, signal: null }, first.output());

    const port2 = await freePort();
    const second = startServer({ PORT: String(port2), DATA_DIR: dir, LOG_LEVEL: 'info', PUBLIC_URL: 'http://localhost:3000' });
    await second.waitFor(/listening on http:\/\/127\.0\.0\.1:\d+/);
    try {
      const again = await fetch(`http://127.0.0.1:${port2}/v1/sessions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username, password }),
      });
      assert.equal(again.status, 201, await again.clone().text());
      assert.equal(((await again.json()) as { user: { id: string } }).user.id, userId);
      const me = await fetch(`http://127.0.0.1:${port2}/v1/users/me`, { headers: bearer(tokens.access_token) });
      assert.equal(me.status, 200, 'signing keys are kept in the database, so a token outlives a restart');
    } finally {
      second.child.kill('SIGTERM');
      assert.deepEqual(await exitWithin(second, 30_000), { code: 0, signal: null }, second.output());
    }

    const logs = first.output() + second.output();
    assert.ok(logs.length > 0);
    for (const secret of [password, tokens.access_token, tokens.refresh_token]) assert.ok(!logs.includes(secret), 'a secret reached the log');
    assert.doesNotMatch(logs, /argon2/i);
  });
});
