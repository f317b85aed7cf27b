import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { listKeys, retireKey, rotateKeys } from '../src/auth/keys.js';
import { loadDataCipher } from '../src/crypto/data-encryption.js';
import { bearer, login, problem, registerUser, startTestService, type TestService } from './helpers/app.js';

const run = promisify(execFile);

describe('signing keys', () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService();
  });
  after(() => svc.close());

  const me = (token: string) => svc.app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(token) });
  const jwksKids = async () => (await svc.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json().keys.map((k: { kid: string }) => k.kid);

  it('when keys rotate, then the new key is published, old tokens keep working until the old key retires, and then they are refused', async () => {
    const user = await registerUser(svc.app);
    const old = await login(svc.app, user);
    const oldKid = decodeProtectedHeader(old.accessToken).kid!;

    // Published before it signs: with a delay, the JWKS has it but tokens still use the old key.
    const next = await rotateKeys(svc.db, { publishDelayS: 3600, accessTokenTtlS: svc.config.accessTokenTtlS, cipher: await loadDataCipher(svc.db, []) });
    await svc.app.keyStore.reload();
    assert.deepEqual((await jwksKids()).sort(), [oldKid, next.kid].sort());
    assert.equal(decodeProtectedHeader((await login(svc.app, user)).accessToken).kid, oldKid);
    assert.equal((await listKeys(svc.db)).find((k) => k.kid === next.kid)?.state, 'next');

    // It signs once active; the old key still verifies its tokens.
    await svc.db.updateTable('signing_keys').set({ activates_at: new Date(Date.now() - 1000) }).where('kid', '=', next.kid).execute();
    await svc.app.keyStore.reload();
    const fresh = await login(svc.app, user);
    assert.equal(decodeProtectedHeader(fresh.accessToken).kid, next.kid);
    assert.equal((await me(old.accessToken)).statusCode, 200);
    const oldRow = await svc.db.selectFrom('signing_keys').select('retired_at').where('kid', '=', oldKid).executeTakeFirstOrThrow();
    assert.ok(oldRow.retired_at!.getTime() >= next.activatesAt.getTime() + svc.config.accessTokenTtlS * 1000, 'old key outlives its last token');

    // Retired: out of the JWKS, and its tokens are refused.
    assert.equal(await retireKey(svc.db, oldKid), 'retired');
    await svc.app.keyStore.reload();
    assert.deepEqual(await jwksKids(), [next.kid]);
    const refused = await me(old.accessToken);
    assert.equal(refused.statusCode, 401);
    assert.equal(problem(refused).code, 'invalid_token');
    assert.equal((await me(fresh.accessToken)).statusCode, 200);
  });

  it('when another service checks an access token against the published JWKS with jose, then it verifies, with the RFC 9068 header and claims', async () => {
    const user = await registerUser(svc.app);
    const session = await login(svc.app, user);
    const jwks = createLocalJWKSet((await svc.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json());
    const { payload, protectedHeader } = await jwtVerify(session.accessToken, jwks, {
      algorithms: ['EdDSA'],
      typ: 'at+jwt',
      issuer: svc.config.jwtIssuer,
      audience: svc.config.jwtAudience,
    });
    assert.deepEqual(Object.keys(protectedHeader).sort(), ['alg', 'kid', 'typ']);
    assert.equal(payload.sub, user.id);
    assert.equal(payload.sid, session.sessionId);
    assert.equal(payload.client_id, 'user-management');
    assert.deepEqual(payload.amr, ['pwd']);
    assert.equal(payload.exp! - payload.iat!, svc.config.accessTokenTtlS);
    assert.match(String(payload.jti), /^[0-9a-f-]{36}$/);
    // One changed byte of the signature, and it is refused.
    const [head, body, signature] = session.accessToken.split('.');
    const forged = `${head}.${body}.${signature!.slice(0, -2)}${signature!.endsWith('AA') ? 'BA' : 'AA'}`;
    await assert.rejects(jwtVerify(forged, jwks, { algorithms: ['EdDSA'] }));
  });

  it("when this process's clock steps back before the signing key's activation, then logins still get tokens signed by a published key", async (t) => {
    const user = await registerUser(svc.app);
    const realNow = Date.now;
    t.mock.method(Date, 'now', () => realNow() - 10 * 60_000);
    const res = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: user.password } });
    t.mock.restoreAll();
    assert.equal(res.statusCode, 201, res.body);
    assert.ok((await jwksKids()).includes(decodeProtectedHeader(res.json().access_token).kid));
  });

  it('when the only live key would be retired, then it is refused', async () => {
    const live = (await listKeys(svc.db)).filter((k) => k.state !== 'retired');
    assert.equal(live.length, 1);
    assert.equal(await retireKey(svc.db, live[0]!.kid), 'last_key');
    assert.equal(await retireKey(svc.db, 'no-such-kid'), 'unknown');
  });
});

describe('keys command line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ums-cli-'));
  const env = { ...process.env, DATA_DIR: dir, DATABASE_URL: '' };
  const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { env });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('when keys are rotated from the command line, then the new key is listed as next, with JSON output', { timeout: 120_000 }, async () => {
    const rotated = JSON.parse((await cli('keys', 'rotate', '--json')).stdout);
    assert.match(rotated.kid, /^[A-Za-z0-9_-]{43}$/);
    assert.ok(Date.parse(rotated.activates_at) > Date.now() + 30_000, 'published a minute before it signs');
    const listed = JSON.parse((await cli('keys', 'list', '--json')).stdout);
    assert.deepEqual(listed.keys.map((k: { kid: string; state: string }) => [k.kid, k.state]), [[rotated.kid, 'next']]);
  });

  it('when the command line is used wrongly, then exit code 2 and a usage hint; --help exits 0', { timeout: 120_000 }, async () => {
    await assert.rejects(cli('keys', 'spin'), (err: { code: number; stderr: string }) => err.code === 2 && err.stderr.includes('--help'));
    await assert.rejects(cli('keys', 'rotate', '--publish-delay', 'soon'), (err: { code: number; stderr: string }) => err.code === 2 && err.stderr.includes('--publish-delay'));
    const help = await cli('--help');
    assert.match(help.stdout, /keys rotate/);
  });
});
