import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PasswordHasher } from '../src/credentials/hashing.js';
import { OWASP_ARGON2 } from '../src/config.js';
import { GOOD_PASSWORD, bearer, login, problem, registerUser, startTestService, type TestService } from './helpers/app.js';
import { uniqueViolation } from '../src/db/errors.js';

const changePassword = (svc: TestService, token: string, current_password: string, new_password: string) =>
  svc.app.inject({ method: 'PUT', url: '/v1/users/me/password', headers: bearer(token), payload: { current_password, new_password } });

async function credentialRows(svc: TestService, userId: string) {
  return svc.db.selectFrom('user_credentials').selectAll().where('user_id', '=', userId).orderBy('credentials_id').execute();
}

describe('credentials', () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService();
  });
  after(() => svc.close());

  it('when a user changes password, then 204, a new current row, the old one kept as history, and only the new password logs in', async () => {
    const user = await registerUser(svc.app);
    const { accessToken } = await login(svc.app, user);
    const res = await changePassword(svc, accessToken, user.password, 'a brand new passphrase 1');
    assert.equal(res.statusCode, 204);
    assert.equal(res.body, '');
    const rows = await credentialRows(svc, user.id);
    assert.equal(rows.length, 2);
    assert.deepEqual(rows.map((r) => r.is_current), [false, true]);
    assert.notEqual(rows[0]!.hashed_password, rows[1]!.hashed_password);

    const old = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: user.password } });
    assert.equal(old.statusCode, 401);
    assert.equal(problem(old).code, 'invalid_credentials');
    await login(svc.app, { username: user.username, password: 'a brand new passphrase 1' });
  });

  it('when the current password is wrong, then 403 invalid_credentials and nothing changes', async () => {
    const user = await registerUser(svc.app);
    const { accessToken } = await login(svc.app, user);
    const before = await credentialRows(svc, user.id);
    const res = await changePassword(svc, accessToken, 'not my password at all', 'a brand new passphrase 2');
    assert.equal(res.statusCode, 403);
    assert.equal(problem(res).code, 'invalid_credentials');
    assert.deepEqual(await credentialRows(svc, user.id), before);
  });

  it('when the new password is weak, then 400 weak_password naming new_password, and nothing changes', async () => {
    const user = await registerUser(svc.app);
    const { accessToken } = await login(svc.app, user);
    const before = await credentialRows(svc, user.id);
    for (const weak of ['short', 'password1', user.username, user.email]) {
      const res = await changePassword(svc, accessToken, user.password, weak);
      assert.equal(res.statusCode, 400, weak);
      const body = problem(res);
      assert.equal(body.code, 'weak_password');
      assert.equal(body.errors?.[0]?.field, 'new_password');
    }
    assert.deepEqual(await credentialRows(svc, user.id), before);
  });

  it('when the new password is one of the last 5, then 422 password_reused; the 6th back is allowed again', async () => {
    const user = await registerUser(svc.app, { password: 'passphrase number 0' });
    const { accessToken } = await login(svc.app, user);
    let current = 'passphrase number 0';
    for (let i = 1; i <= 5; i++) {
      const next = `passphrase number ${i}`;
      assert.equal((await changePassword(svc, accessToken, current, next)).statusCode, 204);
      current = next;
    }
    // The last 5 are 1..5; the current one (5) and older ones (1) are refused.
    for (const reused of ['passphrase number 5', 'passphrase number 1', 'passphrase number 3']) {
      const res = await changePassword(svc, accessToken, current, reused);
      assert.equal(res.statusCode, 422, reused);
      assert.equal(problem(res).code, 'password_reused');
    }
    assert.equal((await credentialRows(svc, user.id)).length, 6);
    assert.equal((await changePassword(svc, accessToken, current, 'passphrase number 0')).statusCode, 204);
  });

  it('when two password changes race, then exactly one current row remains', async () => {
    const user = await registerUser(svc.app);
    const { accessToken } = await login(svc.app, user);
    const results = await Promise.all([
      changePassword(svc, accessToken, user.password, 'racing passphrase one'),
      changePassword(svc, accessToken, user.password, 'racing passphrase two'),
    ]);
    const statuses = results.map((r) => r.statusCode).sort();
    assert.ok(statuses.includes(204), JSON.stringify(statuses));
    const rows = await credentialRows(svc, user.id);
    assert.equal(rows.filter((r) => r.is_current).length, 1);
    assert.equal(rows.length, 1 + statuses.filter((s) => s === 204).length);
  });

  it('when the database is asked for a second current row, then it refuses (partial unique index; a unique generated column on MySQL)', async () => {
    const user = await registerUser(svc.app);
    await assert.rejects(
      svc.db.insertInto('user_credentials').values({ user_id: user.id, hashed_password: 'x', is_current: true }).execute(),
      (err) => uniqueViolation(err) === 'user_credentials_one_current',
    );
  });

  it('when a login uses a hash weaker than the configured one, then the hash is replaced by one at the configured cost', async () => {
    const user = await registerUser(svc.app);
    const weak = await new PasswordHasher({ memoryCost: 512, timeCost: 1, parallelism: 1 }).hash(user.password);
    await svc.db.updateTable('user_credentials').set({ hashed_password: weak }).where('user_id', '=', user.id).execute();
    await login(svc.app, user);
    const [row] = await credentialRows(svc, user.id);
    assert.notEqual(row!.hashed_password, weak);
    const { memoryCost, timeCost, parallelism } = svc.config.argon2;
    assert.ok(row!.hashed_password.startsWith(`$argon2id$v=19$m=${memoryCost},t=${timeCost},p=${parallelism}$`));
    await login(svc.app, user);
  });

  it('when a password arrives in another Unicode normal form, then it still matches (NFKC)', async () => {
    const nfc = 'caf\u00e9 au lait sans sucre';
    const nfd = nfc.normalize('NFD');
    const user = await registerUser(svc.app, { password: nfc });
    await login(svc.app, { username: user.username, password: nfd });
    // …but spaces are never trimmed.
    const trimmed = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: ` ${nfc} ` } });
    assert.equal(trimmed.statusCode, 401);
  });

  it('when hashing with the default settings, then it is Argon2id at m=19456, t=2, p=1 (OWASP)', async () => {
    const phc = await new PasswordHasher(OWASP_ARGON2).hash(GOOD_PASSWORD);
    assert.match(phc, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    assert.equal(new PasswordHasher(OWASP_ARGON2).needsRehash(phc), false);
  });
});

describe('pepper (PASSWORD_PEPPER)', () => {
  const OLD = 'old-pepper-0123456789abcdef0123456789';
  const NEW = 'new-pepper-abcdef0123456789abcdef0123';
  let svc: TestService;
  before(async () => {
    svc = await startTestService({ passwordPeppers: [OLD] });
  });
  after(() => svc.close());

  it('when a pepper is set, then hashes name it and do not verify without it', async () => {
    const user = await registerUser(svc.app);
    const [row] = await credentialRows(svc, user.id);
    assert.match(row!.hashed_password, /^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+,keyid=[0-9a-f]{8}\$/);
    const unpeppered = new PasswordHasher(svc.config.argon2);
    assert.equal(await unpeppered.verify(row!.hashed_password, user.password), false, 'a database dump alone does not verify');
    await login(svc.app, user);
  });

  it('when the pepper is rotated (new first, old kept), then old hashes still log in and are re-peppered with the new one', async () => {
    const user = await registerUser(svc.app);
    const [before] = await credentialRows(svc, user.id);
    const { buildApp } = await import('../src/app.js');
    const rotated = await buildApp({ config: { ...svc.config, passwordPeppers: [NEW, OLD] }, db: svc.handle });
    try {
      await login(rotated, user);
      const [after] = await credentialRows(svc, user.id);
      assert.notEqual(after!.hashed_password, before!.hashed_password);
      const newOnly = new PasswordHasher(svc.config.argon2, [(await import('../src/credentials/hashing.js')).pepperFrom(NEW)]);
      assert.equal(await newOnly.verify(after!.hashed_password, user.password), true);
    } finally {
      await rotated.close();
    }
  });
});
