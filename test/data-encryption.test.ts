import { reencryptSecrets } from '../src/reencryption.js';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { calculateJwkThumbprint, decodeProtectedHeader, exportJWK, generateKeyPair } from 'jose';
import type { Kysely } from 'kysely';
import { Secret, TOTP } from 'otpauth';
import { buildApp } from '../src/app.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { DataCipher, DecryptionError, GENERATED_KEY_NAME, keyId, loadDataCipher } from '../src/crypto/data-encryption.js';
import { openDatabase } from '../src/db/create-db.js';
import { migrateToLatest } from '../src/db/migrate.js';
import type { Database } from '../src/db/schema.js';
import type { App } from '../src/http/types.js';
import { bearer, createServerDatabase, login, problem, registerUser, serverUrl, startTestService, testConfig, type RegisteredUser, type TestService } from './helpers/app.js';
import { insertUser } from '../src/users/repository.js';

const run = promisify(execFile);

const newKey = () => randomBytes(32);
const b64 = (key: Buffer) => key.toString('base64');

function codeFor(secret: string, offsetS = 0): string {
  return new TOTP({ secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30 }).generate({ timestamp: Date.now() + offsetS * 1000 });
}

/** An Ed25519 signing key row as it was stored before private keys were encrypted: plain JWK JSON. */
async function plainKeyRow() {
  const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { kid, alg: 'EdDSA', public_jwk: JSON.stringify(publicJwk), private_jwk: JSON.stringify(await exportJWK(privateKey)), activates_at: new Date(Date.now() - 1000), retired_at: null };
}

describe('data encryption: the envelope', () => {
  it('when a value is encrypted, then it is a versioned envelope naming the key, it decrypts only in its own context, and tampering is detected', () => {
    const key = newKey();
    const cipher = new DataCipher([key]);
    const sealed = cipher.encrypt('JBSWY3DPEHPK3PXP', 'totp:1');
    assert.match(sealed, /^v1\.[A-Za-z0-9_-]{11}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
    assert.equal(sealed.split('.')[1], keyId(key));
    assert.ok(!sealed.includes('JBSWY3DPEHPK3PXP'));
    assert.notEqual(cipher.encrypt('JBSWY3DPEHPK3PXP', 'totp:1'), sealed, 'a fresh nonce each time');
    assert.equal(cipher.decrypt(sealed, 'totp:1'), 'JBSWY3DPEHPK3PXP');
    assert.throws(() => cipher.decrypt(sealed, 'totp:2'), DecryptionError, 'bound to its row');
    const parts = sealed.split('.');
    const body = Buffer.from(parts[3]!, 'base64url');
    body[0]! ^= 1;
    assert.throws(() => cipher.decrypt([...parts.slice(0, 3), body.toString('base64url')].join('.'), 'totp:1'), DecryptionError);
    assert.throws(() => cipher.decrypt('{"d":"plain"}', 'totp:1'), DecryptionError);
    assert.throws(() => new DataCipher([newKey()]).decrypt(sealed, 'totp:1'), /no key with id/);
  });

  it('when several keys are given, then the first encrypts and all decrypt', () => {
    const [k1, k2] = [newKey(), newKey()];
    const old = new DataCipher([k1]).encrypt('secret', 'ctx');
    const rotated = new DataCipher([k2, k1]);
    assert.equal(rotated.decrypt(old, 'ctx'), 'secret');
    assert.equal(rotated.isCurrent(old), false);
    const fresh = rotated.encrypt('secret', 'ctx');
    assert.equal(rotated.isCurrent(fresh), true);
    assert.equal(fresh.split('.')[1], keyId(k2));
    assert.throws(() => new DataCipher([k1]).decrypt(fresh, 'ctx'), DecryptionError);
  });

  it('when DATA_ENCRYPTION_KEY is set, then base64 32-byte keys are read, comma-separated; anything else stops the start naming the variable', () => {
    const [k1, k2] = [newKey(), newKey()];
    const config = loadConfig({ DATA_ENCRYPTION_KEY: `${b64(k1)}, ${k2.toString('base64url')}` });
    assert.deepEqual(config.dataEncryptionKeys.map((k) => k.toString('hex')), [k1.toString('hex'), k2.toString('hex')]);
    assert.deepEqual(loadConfig({}).dataEncryptionKeys, []);
    for (const bad of ['not-a-key', b64(randomBytes(16)), `${b64(k1)},${b64(randomBytes(31))}`]) {
      assert.throws(() => loadConfig({ DATA_ENCRYPTION_KEY: bad }), (err: unknown) => err instanceof ConfigError && /^DATA_ENCRYPTION_KEY /.test(err.message) && !err.message.includes(b64(k1)));
    }
  });
});

describe('data encryption: keys kept by the service', () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService();
  });
  after(() => svc.close());

  it('when DATA_ENCRYPTION_KEY is unset, then a key is generated once, kept in the database, and a warning says a dump reveals the secrets', async () => {
    const warnings: string[] = [];
    const first = await loadDataCipher(svc.db, [], (m) => warnings.push(m));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /DATA_ENCRYPTION_KEY is not set.*dump/);
    const second = await loadDataCipher(svc.db, []);
    assert.equal(second.decrypt(first.encrypt('x', 'c'), 'c'), 'x', 'the same key every time');
    const rows = await svc.db.selectFrom('service_secrets').select('name').where('name', '=', GENERATED_KEY_NAME).execute();
    assert.equal(rows.length, 1);

    // Set later, the configured key encrypts and the generated one still decrypts what it wrote.
    const configured = await loadDataCipher(svc.db, [newKey()], (m) => warnings.push(m));
    assert.equal(warnings.length, 1, 'no warning with a key set');
    assert.equal(configured.decrypt(first.encrypt('y', 'c'), 'c'), 'y');
    assert.equal(configured.isCurrent(first.encrypt('y', 'c')), false);
  });

  it('when the service runs, then private signing keys are stored encrypted, never as plain JWK', async () => {
    await login(svc.app, await registerUser(svc.app));
    const rows = await svc.db.selectFrom('signing_keys').select(['kid', 'private_jwk']).execute();
    assert.ok(rows.length >= 1);
    for (const row of rows) {
      assert.ok(row.private_jwk.startsWith('v1.'), row.private_jwk.slice(0, 10));
      assert.ok(!row.private_jwk.includes('"d"'));
    }
  });
});

describe('data encryption: what the logs say', () => {
  it('when the service starts without DATA_ENCRYPTION_KEY, then it warns that a dump reveals the secrets, and no secret, code or token of a TOTP flow reaches a log line', async () => {
    const lines: string[] = [];
    const db = await openDatabase({ databaseUrl: undefined, pgliteDir: 'memory://' });
    await migrateToLatest(db.kysely);
    const app = await buildApp({ config: testConfig(), db, logger: { level: 'trace', stream: { write: (line: string) => lines.push(line) } } });
    try {
      assert.ok(lines.some((l) => JSON.parse(l).level === 40 && /DATA_ENCRYPTION_KEY is not set.*dump alone reveals/.test(JSON.parse(l).msg)), 'the warning');

      const user = await registerUser(app);
      const session = await login(app, user);
      const setup = (await app.inject({ method: 'POST', url: '/v1/users/me/mfa/totp', headers: bearer(session.accessToken), payload: { current_password: user.password } })).json();
      const codes: string[] = (await app.inject({ method: 'POST', url: '/v1/users/me/mfa/totp/confirm', headers: bearer(session.accessToken), payload: { code: codeFor(setup.secret) } })).json().recovery_codes;
      const first = await app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: user.password } });
      const token = problem(first).mfa_token as string;
      const wrong = await app.inject({ method: 'POST', url: '/v1/sessions/mfa', payload: { mfa_token: token, code: '000000' } });
      assert.equal(wrong.statusCode, 401);
      const done = await app.inject({ method: 'POST', url: '/v1/sessions/mfa', payload: { mfa_token: token, code: codes[0] } });
      assert.equal(done.statusCode, 201);

      const text = lines.join('\n');
      assert.ok(lines.length > 10, 'requests were logged');
      for (const secret of [setup.secret, token, codes[0]!, codes[0]!.replace(/-/g, ''), user.password, done.json().refresh_token]) {
        assert.ok(!text.includes(secret), `a secret reached the log: ${secret.slice(0, 4)}…`);
      }
    } finally {
      await app.close();
      await db.close();
    }
  });

  it('when DATA_ENCRYPTION_KEY is set, then there is no such warning', async () => {
    const lines: string[] = [];
    const db = await openDatabase({ databaseUrl: undefined, pgliteDir: 'memory://' });
    await migrateToLatest(db.kysely);
    const app = await buildApp({ config: testConfig({}, { DATA_ENCRYPTION_KEY: b64(newKey()) }), db, logger: { level: 'warn', stream: { write: (line: string) => lines.push(line) } } });
    await app.close();
    await db.close();
    assert.ok(!lines.some((l) => l.includes('DATA_ENCRYPTION_KEY')));
  });
});

describe('data encryption: plain signing keys from before, and key rotation', () => {
  const apps: App[] = [];
  let svc: TestService;
  const [k1, k2] = [newKey(), newKey()];
  before(async () => {
    svc = await startTestService({}, { DATA_ENCRYPTION_KEY: b64(k1) });
  });
  after(async () => {
    for (const app of apps) await app.close();
    await svc.close();
  });

  const appWith = async (keys: string): Promise<App> => {
    const app = await buildApp({ config: testConfig({}, { DATA_ENCRYPTION_KEY: keys }), db: svc.handle });
    apps.push(app);
    return app;
  };

  async function signInWithTotp(app: App, user: RegisteredUser, code: string) {
    const first = await app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: user.password } });
    assert.equal(first.statusCode, 403, first.body);
    return app.inject({ method: 'POST', url: '/v1/sessions/mfa', payload: { mfa_token: problem(first).mfa_token, code } });
  }

  it('when a signing key is stored in plain JSON (from before encryption), then it still signs and is encrypted at start', async () => {
    const db = await openDatabase({ databaseUrl: undefined, pgliteDir: 'memory://' });
    try {
      await migrateToLatest(db.kysely);
      const row = await plainKeyRow();
      await db.kysely.insertInto('signing_keys').values(row).execute();
      const app = await buildApp({ config: testConfig({}, { DATA_ENCRYPTION_KEY: b64(k1) }), db });
      try {
        const stored = await db.kysely.selectFrom('signing_keys').select(['kid', 'private_jwk']).execute();
        assert.deepEqual(stored.map((r) => r.kid), [row.kid], 'the old key is kept, no new one made');
        assert.ok(stored[0]!.private_jwk.startsWith(`v1.${keyId(k1)}.`));
        const user = await registerUser(app);
        const session = await login(app, user);
        assert.equal(decodeProtectedHeader(session.accessToken).kid, row.kid);
        assert.equal((await app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(session.accessToken) })).statusCode, 200);
      } finally {
        await app.close();
      }
    } finally {
      await db.close();
    }
  });

  it('when a new key is put first, then everything still decrypts, re-encrypting moves every secret to it, and the old key can go', async () => {
    // TOTP on, under k1.
    const user = await registerUser(svc.app);
    const session = await login(svc.app, user);
    const { secret } = (await svc.app.inject({ method: 'POST', url: '/v1/users/me/mfa/totp', headers: bearer(session.accessToken), payload: { current_password: user.password } })).json();
    assert.equal((await svc.app.inject({ method: 'POST', url: '/v1/users/me/mfa/totp/confirm', headers: bearer(session.accessToken), payload: { code: codeFor(secret) } })).statusCode, 200);
    const factor = () => svc.db.selectFrom('user_totp_factors').select('secret_encrypted').where('user_id', '=', user.id).executeTakeFirstOrThrow();
    assert.ok((await factor()).secret_encrypted.startsWith(`v1.${keyId(k1)}.`));
    const forgetStep = () => svc.db.updateTable('user_totp_factors').set({ last_used_step: null }).where('user_id', '=', user.id).execute();

    // k2 first, k1 still listed: old values decrypt.
    const rotated = await appWith(`${b64(k2)},${b64(k1)}`);
    await forgetStep();
    const viaRotated = await signInWithTotp(rotated, user, codeFor(secret));
    assert.equal(viaRotated.statusCode, 201, viaRotated.body);

    // Re-encrypt: every secret moves to k2; a second run has nothing to do.
    const cipher = await loadDataCipher(svc.db, [k2, k1]);
    const result = await reencryptSecrets(svc.db, cipher);
    assert.ok(result.totp_secrets >= 1 && result.signing_keys >= 1, JSON.stringify(result));
    assert.equal(result.key_id, keyId(k2));
    assert.deepEqual(await reencryptSecrets(svc.db, cipher), { signing_keys: 0, totp_secrets: 0, webhook_secrets: 0, key_id: keyId(k2) });
    const keyRows = await svc.db.selectFrom('signing_keys').select('private_jwk').execute();
    for (const r of keyRows) assert.ok(r.private_jwk.startsWith(`v1.${keyId(k2)}.`));
    assert.ok((await factor()).secret_encrypted.startsWith(`v1.${keyId(k2)}.`));

    // k1 gone: the service still starts and the second step still works.
    const onlyNew = await appWith(b64(k2));
    await forgetStep();
    const viaNew = await signInWithTotp(onlyNew, user, codeFor(secret));
    assert.equal(viaNew.statusCode, 201, viaNew.body);

    // Only the old key: the service refuses to start rather than sign with nothing.
    await assert.rejects(buildApp({ config: testConfig({}, { DATA_ENCRYPTION_KEY: b64(k1) }), db: svc.handle }), /no key with id/);
  });
});

describe('data encryption and second factors: command line', () => {
  let env: NodeJS.ProcessEnv;
  let cleanup: () => Promise<void>;
  let dir: string;
  let serverDbUrl: string | undefined;
  let userId: string;
  let plainKid: string;
  const k2 = newKey();

  const withDb = async <T>(work: (db: Kysely<Database>) => Promise<T>): Promise<T> => {
    const db = await openDatabase({ databaseUrl: serverDbUrl, pgliteDir: dir });
    try {
      return await work(db.kysely);
    } finally {
      await db.close();
    }
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ums-mfa-cli-'));
    const server = serverUrl ? await createServerDatabase(serverUrl) : undefined;
    serverDbUrl = server?.url;
    env = { ...process.env, DATABASE_URL: server?.url ?? '', DATA_DIR: dir, WORKERS: '1', DATA_ENCRYPTION_KEY: '' };
    cleanup = async () => {
      rmSync(dir, { recursive: true, force: true });
      await server?.drop();
    };
    // A user with TOTP on (under the generated key) and a signing key from before encryption.
    await withDb(async (db) => {
      await migrateToLatest(db);
      const row = await insertUser(db, { username: 'Ada_L', name: 'Ada Lovelace', dob: '1990-12-10', email: 'ada@example.com' });
      userId = row!.user_id;
      await db.insertInto('user_credentials').values({ user_id: userId, hashed_password: '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g', is_current: true }).execute();
      const cipher = await loadDataCipher(db, []);
      await db.insertInto('user_totp_factors').values({ user_id: userId, secret_encrypted: cipher.encrypt('JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP', `totp:${userId}`), confirmed_at: new Date() }).execute();
      await db.insertInto('user_recovery_codes').values({ user_id: userId, code_hash: 'a'.repeat(64) }).execute();
      const key = await plainKeyRow();
      plainKid = key.kid;
      await db.insertInto('signing_keys').values(key).execute();
    });
  });
  after(() => cleanup());

  const cli = (extraEnv: Record<string, string>, ...args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { env: { ...env, ...extraEnv } });
  const fails = (code: number, match: RegExp) => (err: { code: number; stderr: string }) => err.code === code && match.test(err.stderr);

  it('when the help is asked for, then it lists keys re-encrypt and users reset-mfa', { timeout: 120_000 }, async () => {
    const { stdout } = await cli({}, '--help');
    assert.match(stdout, /keys re-encrypt/);
    assert.match(stdout, /users reset-mfa <username>/);
  });

  it('when secrets are re-encrypted, then plain ones are encrypted, a new first key takes every secret over, and a second run has nothing to do', { timeout: 120_000 }, async () => {
    const first = await cli({}, 'keys', 're-encrypt', '--json');
    assert.match(first.stderr, /DATA_ENCRYPTION_KEY is not set/);
    assert.deepEqual(JSON.parse(first.stdout).signing_keys, 1);
    assert.deepEqual(JSON.parse(first.stdout).totp_secrets, 0);
    const keyRow = await withDb((db) => db.selectFrom('signing_keys').select('private_jwk').where('kid', '=', plainKid).executeTakeFirstOrThrow());
    assert.ok(keyRow.private_jwk.startsWith('v1.'));

    const second = await cli({ DATA_ENCRYPTION_KEY: b64(k2) }, 'keys', 're-encrypt');
    assert.match(second.stdout, new RegExp(`Re-encrypted with key ${keyId(k2)}: 1 signing key\\(s\\), 1 TOTP secret\\(s\\)`));
    const rows = await withDb(async (db) => ({
      key: await db.selectFrom('signing_keys').select('private_jwk').where('kid', '=', plainKid).executeTakeFirstOrThrow(),
      totp: await db.selectFrom('user_totp_factors').select('secret_encrypted').where('user_id', '=', userId).executeTakeFirstOrThrow(),
    }));
    assert.ok(rows.key.private_jwk.startsWith(`v1.${keyId(k2)}.`));
    assert.ok(rows.totp.secret_encrypted.startsWith(`v1.${keyId(k2)}.`));
    assert.equal(new DataCipher([k2]).decrypt(rows.totp.secret_encrypted, `totp:${userId}`), 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP');

    const third = JSON.parse((await cli({ DATA_ENCRYPTION_KEY: b64(k2) }, 'keys', 're-encrypt', '--json')).stdout);
    assert.deepEqual(third, { signing_keys: 0, totp_secrets: 0, webhook_secrets: 0, key_id: keyId(k2) });
  });

  it("when support resets a user's second factors, then they are deleted, it is audited, and unknown users or a missing name are refused", { timeout: 120_000 }, async () => {
    const out = JSON.parse((await cli({ DATA_ENCRYPTION_KEY: b64(k2) }, 'users', 'reset-mfa', 'ada_l', '--json')).stdout);
    assert.deepEqual(out, { username: 'ada_l', totp_removed: true, notice_sent: true });
    const left = await withDb(async (db) => ({
      totp: await db.selectFrom('user_totp_factors').select('user_id').where('user_id', '=', userId).execute(),
      codes: await db.selectFrom('user_recovery_codes').select('user_id').where('user_id', '=', userId).execute(),
      events: await db.selectFrom('audit_events').select(['event', 'details']).where('user_id', '=', userId).execute(),
    }));
    assert.deepEqual(left.totp, []);
    assert.deepEqual(left.codes, []);
    assert.deepEqual(left.events.map((e) => [e.event, JSON.parse(e.details!)]), [['mfa_reset_by_admin', { had_totp: true }]]);
    // The owner is told, by the command itself (no SMTP_URL here: DATA_DIR/outbox).
    const { readdirSync, readFileSync } = await import('node:fs');
    const notices = () => readdirSync(join(dir, 'outbox')).map((f) => readFileSync(join(dir, 'outbox', f), 'utf8'));
    const [notice, ...more] = notices();
    assert.equal(more.length, 0);
    assert.match(notice!, /^To: ada@example\.com$/m);
    assert.match(notice!, /^Subject: Your second factors were removed$/m);

    assert.match((await cli({}, 'users', 'reset-mfa', 'Ada_L')).stdout, /Ada_L had no second factor; nothing to remove\./);
    assert.equal(notices().length, 1, 'nothing removed, nothing to tell');

    // When the notice cannot go out (SMTP refuses), support is told to reach the user another way.
    await withDb((db) => db.insertInto('user_totp_factors').values({ user_id: userId, secret_encrypted: 'x', confirmed_at: new Date() }).execute());
    const refused = await cli({ SMTP_URL: 'smtp://127.0.0.1:1', MAIL_RETRY_BASE_MS: '10' }, 'users', 'reset-mfa', 'ada_l', '--json');
    assert.deepEqual(JSON.parse(refused.stdout), { username: 'ada_l', totp_removed: true, notice_sent: false });
    assert.match(refused.stderr, /The notice to ada_l could not be sent: tell them another way/);
    await assert.rejects(cli({}, 'users', 'reset-mfa', 'nobody'), fails(1, /No user named nobody\./));
    await assert.rejects(cli({}, 'users', 'reset-mfa'), fails(2, /users reset-mfa needs a username/));
  });
});
