import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { AdminService } from '../src/admin/service.js';
import { PasswordHasher } from '../src/credentials/hashing.js';
import { SeenKeys } from '../src/import/seen-keys.js';
import { ImportService, type ImportOptions, type ImportReport } from '../src/import/service.js';
import { bearer, login, problem, registerUser, startTestService, TEST_ARGON2, uniqueName, type TestService } from './helpers/app.js';

const FIXTURES = 'test/fixtures/import';
const fixture = (name: string) => readFileSync(`${FIXTURES}/${name}`, 'utf8');
const hashes = JSON.parse(fixture('hashes.json')) as {
  password: string;
  hashes: Record<string, string>;
  firebase: { signer_key: string; salt_separator: string; rounds: number; mem_cost: number; password: string };
  bcrypt_72: { password: string; hash: string; cut_password: string; cut_hash: string };
};
const FIREBASE = { signerKey: hashes.firebase.signer_key, saltSeparator: hashes.firebase.salt_separator, rounds: hashes.firebase.rounds, memCost: hashes.firebase.mem_cost };
const OWN_ARGON2 = `$argon2id$v=19$m=${TEST_ARGON2.memoryCost},t=${TEST_ARGON2.timeCost},p=${TEST_ARGON2.parallelism}$`;
const CLI = { ip: null, userAgent: 'test' };

function importText(svc: TestService, text: string, options: Partial<ImportOptions> = {}): Promise<ImportReport> {
  return new ImportService(svc.db, new PasswordHasher(TEST_ARGON2)).run(Readable.from([text]), { format: 'ndjson', onConflict: 'skip', dryRun: false, context: CLI, ...options });
}
const ndjson = (records: object[]) => records.map((r) => JSON.stringify(r)).join('\n') + '\n';

async function userRow(svc: TestService, email: string) {
  return svc.db.selectFrom('users').selectAll().where('email_key', '=', email.toLowerCase()).executeTakeFirst();
}
async function credentialRows(svc: TestService, userId: string) {
  return svc.db.selectFrom('user_credentials').select(['hashed_password', 'is_current', 'imported']).where('user_id', '=', userId).orderBy('credentials_id').execute();
}
const signIn = (svc: TestService, username: string, password: string) => svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username, password } });
async function failures(svc: TestService, userId: string): Promise<number> {
  const row = await svc.db.selectFrom('login_throttles').select('failures').where('throttle_key', '=', `account:${userId}|127.0.0.1`).executeTakeFirst();
  return row?.failures ?? 0;
}

/**
 * Signs in with a wrong password (401, counted), then the right one (201, amr pwd), and checks
 * that the imported row is history and an Argon2id row of ours is current.
 */
async function assertSignsInAndUpgrades(svc: TestService, username: string, password: string, importedHash: string): Promise<void> {
  const user = await svc.db.selectFrom('users').select('user_id').where('username', '=', username).executeTakeFirstOrThrow();
  const wrong = await signIn(svc, username, `${password}x`);
  assert.equal(wrong.statusCode, 401, `${username}: a wrong password is refused`);
  assert.equal(problem(wrong).code, 'invalid_credentials');
  assert.equal(await failures(svc, user.user_id), 1, `${username}: the wrong password counts toward the throttle`);
  assert.deepEqual(await credentialRows(svc, user.user_id), [{ hashed_password: importedHash, is_current: true, imported: true }], 'a failed sign-in changes no hash');

  const right = await signIn(svc, username, password);
  assert.equal(right.statusCode, 201, `${username}: ${right.body}`);
  assert.deepEqual(decodeJwt(right.json().access_token).amr, ['pwd']);
  const rows = await credentialRows(svc, user.user_id);
  assert.equal(rows.length, 2, `${username}: the imported row stays as history`);
  assert.deepEqual(rows[0], { hashed_password: importedHash, is_current: false, imported: true });
  assert.ok(rows[1]!.is_current && !rows[1]!.imported && rows[1]!.hashed_password.startsWith(OWN_ARGON2), `${username}: the current hash is our Argon2id, got ${rows[1]!.hashed_password}`);
  assert.equal(await failures(svc, user.user_id), 0, 'the sign-in reset the count');
  // And the password still works against the new hash.
  assert.equal((await signIn(svc, username, password)).statusCode, 201);
}

// One service for the file; the last suite empties the users table between its samples.
let svc: TestService;
before(async () => {
  svc = await startTestService();
});
after(() => svc.close());

describe('import: hashes from other systems', () => {
  it('when a user is imported with a known password in each hash format, then it signs in (amr pwd), a wrong one is 401 and counted, and the current hash is Argon2id afterwards', async () => {
    const formats = Object.entries(hashes.hashes);
    const records = formats.map(([, hash], i) => ({ username: `fmt_${i}`, name: `Format ${i}`, email: `fmt${i}@example.com`, password_hash: hash }));
    const report = await importText(svc, ndjson(records));
    assert.deepEqual(report, { created: formats.length, updated: 0, skipped: 0, failed: 0, errors: [] });
    for (const [i, [name, hash]] of formats.entries()) {
      await it(name, () => assertSignsInAndUpgrades(svc, `fmt_${i}`, hashes.password, hash));
    }
  });

  it("when a Firebase user is imported with the project's parameters, then Firebase's published test vector signs in and becomes Argon2id", async () => {
    const report = await importText(svc, fixture('firebase-users.json'), { format: 'firebase', firebase: FIREBASE });
    assert.equal(report.created, 2);
    const stored = (await svc.db.selectFrom('user_credentials').innerJoin('users', 'users.user_id', 'user_credentials.user_id').select('hashed_password').where('users.username', '=', 'user1').executeTakeFirstOrThrow()).hashed_password;
    assert.match(stored, /^\$firebase-scrypt\$ln=14,r=8\$/);
    await assertSignsInAndUpgrades(svc, 'user1', hashes.firebase.password, stored);
  });

  it('when a Firebase export is imported without the project parameters, then each hashed record is an error naming them', async () => {
    const report = await importText(svc, fixture('firebase-users.json').replace(/example\.com/g, 'nofb.example.com').replace(/"localId": "/g, '"localId": "nofb-'), { format: 'firebase' });
    assert.equal(report.failed, 1);
    assert.equal(report.created, 1, 'the user without a password still comes');
    assert.deepEqual(report.errors.map((e) => [e.line, e.field]), [[1, 'password_hash']]);
    assert.match(report.errors[0]!.message, /--firebase-signer-key/);
  });

  it("when a bcrypt hash is imported, then only the first 72 bytes of the password count, as bcrypt's", async () => {
    const { bcrypt_72: b } = hashes;
    await importText(svc, ndjson([
      { username: 'long_pw', email: 'long@example.com', password_hash: b.hash },
      { username: 'cut_pw', email: 'cut@example.com', password_hash: b.cut_hash },
    ]));
    const user = (name: string) => svc.db.selectFrom('users').select('user_id').where('username', '=', name).executeTakeFirstOrThrow();
    assert.equal((await signIn(svc, 'long_pw', b.password.slice(0, 71))).statusCode, 401, '71 bytes are not enough');
    // The first 72 bytes alone sign in (and make an Argon2id hash of just those).
    assert.equal((await signIn(svc, 'long_pw', b.password.slice(0, 72))).statusCode, 201);
    assert.equal((await credentialRows(svc, (await user('long_pw')).user_id)).length, 2);
    // Cut on bytes, not characters: 71 ASCII bytes and 'è' share the first byte of 'é'.
    assert.equal((await signIn(svc, 'cut_pw', 'a'.repeat(71) + '\u00e8')).statusCode, 201);
  });

  it('when an imported user changes password, then the reuse rule checks the imported hash in its own algorithm', async () => {
    const hash = hashes.hashes['bcrypt-2b (python bcrypt)']!;
    await importText(svc, ndjson([{ username: 'reuser', email: 'reuser@example.com', password_hash: hash }]));
    // A password change checks the current password (the imported bcrypt) and keeps it as history.
    const { accessToken } = await login(svc.app, { username: 'reuser', password: hashes.password });
    const user = await svc.db.selectFrom('users').select('user_id').where('username', '=', 'reuser').executeTakeFirstOrThrow();
    // Sign-in upgraded it: drop our Argon2id copy so only the imported row can remember the password.
    await svc.db.deleteFrom('user_credentials').where('user_id', '=', user.user_id).where('imported', '=', false).execute();
    await svc.db.updateTable('user_credentials').set({ is_current: true }).where('user_id', '=', user.user_id).execute();
    const change = (current: string, next: string) => svc.app.inject({ method: 'PUT', url: '/v1/users/me/password', headers: bearer(accessToken), payload: { current_password: current, new_password: next } });
    assert.equal((await change(hashes.password, 'a brand new passphrase 1')).statusCode, 204, 'the imported hash verifies the current password');
    const again = await change('a brand new passphrase 1', hashes.password);
    assert.equal(again.statusCode, 422);
    assert.equal(problem(again).code, 'password_reused');
  });

  it('when a record has a hash of an unknown format, then that record is an error with its line, and the others come', async () => {
    const report = await importText(svc, ndjson([
      { username: 'unk_ok', email: 'unk_ok@example.com', password_hash: hashes.hashes['bcrypt-2y (htpasswd -B)'] },
      { username: 'unk_md5', email: 'unk_md5@example.com', password_hash: '$1$saltsalt$qjXMvbEw8oaL.CzflDugX/' },
      { username: 'unk_sha', email: 'unk_sha@example.com', password_hash: '{SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=' },
    ]));
    assert.equal(report.created, 1);
    assert.equal(report.failed, 2);
    assert.deepEqual(report.errors.map((e) => [e.line, e.field]), [[2, 'password_hash'], [3, 'password_hash']]);
    assert.match(report.errors[0]!.message, /not a hash format this service accepts/);
    assert.equal(await userRow(svc, 'unk_md5@example.com'), undefined, 'the record is not imported');
  });

  it('when a record has a hash whose cost would tie up the service, then it is refused at import', async () => {
    const report = await importText(svc, ndjson([{ username: 'too_costly', email: 'too_costly@example.com', password_hash: '$pbkdf2-sha256$i=99999999$c2FsdA$aGFzaA' }]));
    assert.equal(report.failed, 1);
    assert.equal(report.errors[0]!.field, 'password_hash');
  });

  it('when a user signs in with an unknown name, then it costs an Argon2id verification as before (the stand-in), and 401', async () => {
    const res = await signIn(svc, 'nobody_here', 'whatever it is 1');
    assert.equal(res.statusCode, 401);
    assert.equal(problem(res).code, 'invalid_credentials');
  });
});

describe('import: records, conflicts and runs', () => {
  it('when a file has a malformed line, then the report names its line (field null) and every other record comes', async () => {
    const text = [JSON.stringify({ username: 'mal_a', email: 'mal_a@example.com' }), '{"username": "mal_b", ', '', JSON.stringify({ username: 'mal_c', email: 'mal_c@example.com', dob: '1990-02-30' }), '[1,2]', JSON.stringify({ username: 'mal_d', email: 'mal_d@example.com' })].join('\n');
    const report = await importText(svc, text);
    assert.equal(report.created, 2);
    assert.equal(report.failed, 3);
    assert.deepEqual(report.errors, [
      { line: 2, field: null, message: 'is not valid JSON' },
      { line: 4, field: 'dob', message: 'must be a real date, YYYY-MM-DD' },
      { line: 5, field: null, message: 'is not a JSON object' },
    ]);
    assert.ok(await userRow(svc, 'mal_d@example.com'));
  });

  it('when a record has no dob, then the user is created without one and the profile says dob null', async () => {
    await importText(svc, ndjson([{ username: 'no_dob', name: 'No Dob', email: 'no_dob@example.com', password: 'plain passphrase to hash 9' }]));
    const row = await userRow(svc, 'no_dob@example.com');
    assert.equal(row?.dob, null);
    const { accessToken } = await login(svc.app, { username: 'no_dob', password: 'plain passphrase to hash 9' });
    const me = await svc.app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(accessToken) });
    assert.equal(me.statusCode, 200);
    assert.equal(me.json().dob, null);
    // A plain password is hashed on import with our Argon2id, not marked imported.
    assert.deepEqual((await credentialRows(svc, row!.user_id)).map((r) => [r.imported, r.hashed_password.startsWith(OWN_ARGON2)]), [[false, true]]);
  });

  it('when records have no username, then one is made from the email local part, unique with a numeric suffix', async () => {
    await registerUser(svc.app, { username: 'sam.k', email: 'sam.k@elsewhere.example' });
    const report = await importText(svc, ndjson([
      { email: 'Sam.K@one.example' },
      { email: 'sam.k@two.example' },
      { email: 'x+tag@three.example' },
      { email: 'a@four.example' },
    ]));
    assert.equal(report.created, 4);
    const names = await svc.db.selectFrom('users').select(['username', 'name', 'email']).where('email', 'in', ['Sam.K@one.example', 'sam.k@two.example', 'x+tag@three.example', 'a@four.example']).orderBy('user_id').execute();
    assert.deepEqual(names.map((n) => n.username), ['Sam.K2', 'sam.k3', 'xtag', 'a_user']);
    assert.equal(names[0]!.name, 'Sam.K2', 'with no name, the username stands in');
  });

  it('when records conflict with existing users, then skip skips them, fail reports them, update changes them', async () => {
    const existing = await registerUser(svc.app, { username: 'conf_ada', email: 'conf_ada@example.com', name: 'Old Name' });
    const hash = hashes.hashes['bcrypt-2y (htpasswd -B)']!;
    const records = [
      { username: 'CONF_ADA', name: 'By Username', email: 'other_conf@example.com' },
      { username: 'conf_new', name: 'New', email: 'CONF_ADA@example.com', password_hash: hash, external_id: 'ext|1' },
    ];
    const before = await credentialRows(svc, existing.id);

    const skip = await importText(svc, ndjson(records), { onConflict: 'skip' });
    assert.deepEqual(skip, { created: 0, updated: 0, skipped: 2, failed: 0, errors: [] });

    const fail = await importText(svc, ndjson(records), { onConflict: 'fail' });
    assert.deepEqual(fail, {
      created: 0,
      updated: 0,
      skipped: 0,
      failed: 2,
      errors: [
        { line: 1, field: 'username', message: 'already belongs to a user (--on-conflict fail)' },
        { line: 2, field: 'email', message: 'already belongs to a user (--on-conflict fail)' },
      ],
    });
    assert.deepEqual(await credentialRows(svc, existing.id), before, 'skip and fail change nothing');

    const update = await importText(svc, ndjson([records[1]!]), { onConflict: 'update' });
    assert.deepEqual(update, { created: 0, updated: 1, skipped: 0, failed: 0, errors: [] });
    const row = await userRow(svc, 'conf_ada@example.com');
    assert.equal(row?.username, 'conf_new');
    assert.equal(row?.name, 'New');
    assert.equal(row?.external_id, 'ext|1');
    assert.equal(row?.dob, '1990-12-10', 'a field the record lacks is kept');
    const rows = await credentialRows(svc, existing.id);
    assert.deepEqual(rows.map((r) => [r.is_current, r.imported]), [[false, false], [true, true]], 'the imported hash is current, the old one history');
    assert.equal((await signIn(svc, 'conf_new', hashes.password)).statusCode, 201);

    // A record matching two different users (username of one, email of another) cannot be an update.
    const other = await registerUser(svc.app);
    const both = await importText(svc, ndjson([{ username: other.username, email: 'conf_ada@example.com' }]), { onConflict: 'update' });
    assert.equal(both.failed, 1);
    assert.match(both.errors[0]!.message, /more than one existing user/);
  });

  it('when the same user appears twice in one file, then the second meets the first as a conflict', async () => {
    const report = await importText(svc, ndjson([{ username: 'twice', email: 'twice@example.com' }, { username: 'twice_b', email: 'TWICE@example.com' }]));
    assert.deepEqual([report.created, report.skipped], [1, 1]);
  });

  it('when a run is a dry run, then it reports what it would do and writes nothing', async () => {
    await registerUser(svc.app, { username: 'dry_existing', email: 'dry_existing@example.com' });
    const count = async () => ({
      users: Number((await svc.db.selectFrom('users').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n),
      credentials: Number((await svc.db.selectFrom('user_credentials').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n),
      events: Number((await svc.db.selectFrom('audit_events').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n),
    });
    const before = await count();
    const report = await importText(svc, ndjson([{ username: 'dry_new', email: 'dry_new@example.com', password: 'not hashed in a dry run' }, { email: 'dry_existing@example.com' }, { email: 'broken' }]), { dryRun: true, onConflict: 'update' });
    assert.deepEqual([report.created, report.updated, report.failed], [1, 1, 1]);
    assert.deepEqual(await count(), before);
  });

  it('when the dry run remembers many keys, then it finds each it was given and none it was not, through its growth', () => {
    const seen = new SeenKeys();
    for (let i = 0; i < 50_000; i++) seen.add(`e:user${i}@example.com`);
    seen.add('e:user7@example.com');
    assert.equal(seen.size, 50_000);
    for (let i = 0; i < 50_000; i++) assert.ok(seen.has(`e:user${i}@example.com`));
    for (let i = 50_000; i < 60_000; i++) assert.ok(!seen.has(`e:user${i}@example.com`));
  });

  it('when a dry run meets, in a later batch, a user an earlier batch would have made, then it reports that conflict as the real run would', async () => {
    // Batches of 2: the third and fourth records repeat the first's email and the second's username.
    const records = ndjson([
      { username: 'dry_batch_a', email: 'dry_batch_a@example.com' },
      { username: 'dry_batch_b', email: 'dry_batch_b@example.com' },
      { username: 'dry_batch_c', email: 'DRY_BATCH_A@example.com' },
      { username: 'DRY_BATCH_B', email: 'dry_batch_d@example.com' },
      { username: 'dry_batch_e', email: 'dry_batch_e@example.com' },
    ]);
    const summary = (r: ImportReport) => [r.created, r.updated, r.skipped, r.failed, r.errors.map((e) => [e.line, e.field])];
    assert.deepEqual(summary(await importText(svc, records, { dryRun: true, batchSize: 2 })), [3, 0, 2, 0, []]);
    assert.deepEqual(summary(await importText(svc, records, { dryRun: true, batchSize: 2, onConflict: 'fail' })), [3, 0, 0, 2, [[3, 'email'], [4, 'username']]]);
    assert.equal(await userRow(svc, 'dry_batch_a@example.com'), undefined, 'still nothing written');
    // The real run, for comparison: the same figures.
    assert.deepEqual(summary(await importText(svc, records, { batchSize: 2, onConflict: 'fail' })), [3, 0, 0, 2, [[3, 'email'], [4, 'username']]]);
  });

  it('when users are imported, then each is a user_imported event and no session', async () => {
    await importText(svc, ndjson([{ username: 'audited', email: 'audited@example.com', external_id: 'src|42' }]), { format: 'ndjson' });
    const row = await userRow(svc, 'audited@example.com');
    const events = await svc.db.selectFrom('audit_events').select(['event', 'details', 'user_agent']).where('user_id', '=', row!.user_id).execute();
    assert.deepEqual(events, [{ event: 'user_imported', details: JSON.stringify({ format: 'ndjson', external_id: 'src|42' }), user_agent: 'test' }]);
    const sessions = await svc.db.selectFrom('user_sessions').select('session_id').where('user_id', '=', row!.user_id).execute();
    assert.equal(sessions.length, 0);
  });

  it('when records carry roles, then the users hold them (an update adds them), and a role this service lacks makes the record an error', async () => {
    const heldRoles = async (email: string) => {
      const user = await userRow(svc, email);
      return user ? (await svc.db.selectFrom('user_roles').select('role_name').where('user_id', '=', user.user_id).orderBy('role_name').execute()).map((r) => r.role_name) : undefined;
    };
    const report = await importText(svc, ndjson([
      { username: 'with_roles', email: 'with_roles@example.com', roles: ['support'] },
      { username: 'bad_role', email: 'bad_role@example.com', roles: ['support', 'wizard'] },
    ]));
    assert.deepEqual(report, { created: 1, updated: 0, skipped: 0, failed: 1, errors: [{ line: 2, field: 'roles', message: 'names no role of this service: wizard' }] });
    assert.deepEqual(await heldRoles('with_roles@example.com'), ['support']);
    assert.equal(await heldRoles('bad_role@example.com'), undefined, 'the record is not imported');
    const update = await importText(svc, ndjson([{ email: 'with_roles@example.com', roles: ['admin', 'support'] }]), { onConflict: 'update' });
    assert.equal(update.updated, 1);
    assert.deepEqual(await heldRoles('with_roles@example.com'), ['admin', 'support']);
  });

  it('when a record has fields that are not in the record, or of the wrong type, then each is named', async () => {
    const report = await importText(svc, ndjson([{ username: 'x', email: 'bad', email_verified: 'yes', password: 'a', password_hash: 'b', admin: true }]));
    assert.deepEqual(report.errors.map((e) => e.field).sort(), ['admin', 'email', 'email_verified', 'password', 'password_hash', 'username']);
    assert.equal(report.failed, 1, 'one record, however many errors');
  });
});

describe('GET /v1/users/me/export', () => {
  it("when a user asks for their data, then 200 with their profile, sessions and events, nobody else's, and no hash or token", async () => {
    const user = await registerUser(svc.app);
    const other = await registerUser(svc.app);
    await login(svc.app, other);
    const first = await login(svc.app, user);
    const { accessToken } = await login(svc.app, user);
    const res = await svc.app.inject({ method: 'GET', url: '/v1/users/me/export', headers: bearer(accessToken) });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-disposition'], 'attachment; filename="my-data.json"');
    const data = res.json();
    assert.equal(data.profile.id, user.id);
    assert.equal(data.profile.username, user.username);
    assert.deepEqual(data.sessions.map((s: { id: string }) => s.id).sort(), [first.sessionId, (decodeJwt(accessToken).sid as string)].sort());
    assert.deepEqual(data.sessions[0].amr, ['pwd']);
    // (the verification mail's event comes when its mail went out: not waited for here)
    assert.deepEqual(data.events.map((e: { type: string }) => e.type).filter((t: string) => t !== 'email_verification_sent'), ['login_succeeded', 'login_succeeded', 'user_registered'], 'newest first');
    assert.deepEqual([data.passkeys, data.authenticator_app, data.recovery_codes_left, data.identities], [[], null, 0, []]);
    assert.ok(!res.body.includes('$argon2id$'), 'no hash');
    assert.ok(!res.body.includes(first.refreshToken.slice(-20)) && !res.body.includes('refresh_token'), 'no refresh token or its hash');
    assert.ok(!res.body.includes(other.username), "nothing of another user's");

    // An account at another provider, linked (as sign-in with another provider links it), is part of the data.
    const linkedAt = new Date('2026-11-02T10:00:00.000Z');
    await svc.db.insertInto('user_identities').values({ user_id: user.id, provider: 'corp', subject: 'corp-subject-7', email: user.email, email_verified: true, created_at: linkedAt, last_used_at: linkedAt }).execute();
    await svc.db.insertInto('user_identities').values({ user_id: other.id, provider: 'corp', subject: 'someone-else', email: other.email, email_verified: true, created_at: linkedAt, last_used_at: linkedAt }).execute();
    const withIdentity = await svc.app.inject({ method: 'GET', url: '/v1/users/me/export', headers: bearer(accessToken) });
    assert.deepEqual(withIdentity.json().identities, [{ provider: 'corp', subject: 'corp-subject-7', email: user.email, email_verified: true, created_at: linkedAt.toISOString(), last_used_at: linkedAt.toISOString() }]);
    const events = await svc.db.selectFrom('audit_events').select('event').where('user_id', '=', user.id).where('event', '=', 'data_exported').execute();
    assert.equal(events.length, 2, 'each export is a security event');
  });

  it('when the export is asked for without a token, then 401 invalid_token', async () => {
    const res = await svc.app.inject({ method: 'GET', url: '/v1/users/me/export' });
    assert.equal(res.statusCode, 401);
    assert.equal(problem(res).code, 'invalid_token');
  });
});

describe('POST /v1/admin/users/import', () => {
  const post = (token: string | undefined, body: string, query = '', type = 'application/x-ndjson') =>
    svc.app.inject({ method: 'POST', url: `/v1/admin/users/import${query}`, headers: { ...(token ? bearer(token) : {}), 'content-type': type }, payload: body });
  async function signedInWith(roles: string[]) {
    const user = await registerUser(svc.app);
    for (const role of roles) await new AdminService(svc.db).changeRole(user.username, role, true);
    return { ...user, token: (await login(svc.app, user)).accessToken };
  }

  it('when an administrator with users:write posts an NDJSON export, then 200 with the report, and the users come with actor_id naming them', async () => {
    const admin = await signedInWith(['admin']);
    const hash = hashes.hashes['bcrypt-2b (python bcrypt)']!;
    const body = ndjson([{ username: 'api_imp', email: 'api_imp@example.com', password_hash: hash }]) + 'not json\n';
    const res = await post(admin.token, body, '?on_conflict=skip');
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json(), { created: 1, updated: 0, skipped: 0, failed: 1, errors: [{ line: 2, field: null, message: 'is not valid JSON' }] });
    const row = await userRow(svc, 'api_imp@example.com');
    const events = await svc.db.selectFrom('audit_events').select(['event', 'actor_id']).where('user_id', '=', row!.user_id).execute();
    assert.deepEqual(events.map((e) => [e.event, String(e.actor_id)]), [['user_imported', admin.id]]);
    assert.equal((await signIn(svc, 'api_imp', hashes.password)).statusCode, 201);

    const dry = await post(admin.token, ndjson([{ email: 'api_dry@example.com' }]), '?dry_run=true');
    assert.deepEqual(dry.json().created, 1);
    assert.equal(await userRow(svc, 'api_dry@example.com'), undefined, 'a dry run writes nothing');
  });

  it('when the caller lacks users:write, has no token, sends JSON, a bad option or too much, then 403, 401, 415, 400 and 413, and nothing is imported', async () => {
    const support = await signedInWith(['support']);
    const admin = await signedInWith(['admin']);
    const body = ndjson([{ email: 'api_refused@example.com' }]);
    const forbidden = await post(support.token, body);
    assert.equal(forbidden.statusCode, 403);
    assert.equal(problem(forbidden).code, 'forbidden');
    assert.equal((await post(undefined, body)).statusCode, 401);
    const json = await post(admin.token, JSON.stringify({ email: 'api_refused@example.com' }), '', 'application/json');
    assert.equal(json.statusCode, 415);
    const option = await post(admin.token, body, '?on_conflict=merge');
    assert.equal(option.statusCode, 400);
    assert.equal(problem(option).code, 'validation_failed');
    assert.equal(await userRow(svc, 'api_refused@example.com'), undefined);
  });

  it('when the body is larger than IMPORT_MAX_BYTES, then 413 payload_too_large', async () => {
    const small = await startTestService({ importMaxBytes: 1024 });
    try {
      const user = await registerUser(small.app);
      await new AdminService(small.db).changeRole(user.username, 'admin', true);
      const { accessToken } = await login(small.app, user);
      const body = ndjson(Array.from({ length: 40 }, (_, i) => ({ email: `big_${i}@example.com` })));
      const res = await small.app.inject({ method: 'POST', url: '/v1/admin/users/import', headers: { ...bearer(accessToken), 'content-type': 'application/x-ndjson' }, payload: body });
      assert.equal(res.statusCode, 413);
      assert.equal(problem(res).code, 'payload_too_large');
    } finally {
      await small.close();
    }
  });
});

describe('import: the sample export of each source', () => {
  const sources: Array<{ file: string; format: ImportOptions['format']; users: Array<Record<string, unknown>>; signIn?: string }> = [
    {
      file: 'users.ndjson',
      format: 'ndjson',
      users: [
        { username: 'ada_l', name: 'Ada Lovelace', dob: '1990-12-10', email: 'ada@example.com', email_verified: true, external_id: 'legacy|1' },
        { username: 'grace_h', name: 'Grace Hopper', dob: null, email: 'grace@example.com', email_verified: false, external_id: 'legacy|2' },
        { username: 'alan.turing', name: 'Alan Turing', dob: '1912-06-23', email: 'alan.turing@example.com', email_verified: false, external_id: null },
        { username: 'edsger', name: 'Edsger Dijkstra', dob: null, email: 'edsger@example.com', email_verified: false, external_id: null },
      ],
      signIn: 'ada_l',
    },
    {
      file: 'users.csv',
      format: 'csv',
      users: [
        { username: 'ada_l', name: 'Lovelace, Ada', dob: '1990-12-10', email: 'ada@example.com', email_verified: true, external_id: 'legacy|1' },
        { username: 'grace_h', name: 'Grace "Amazing" Hopper', dob: null, email: 'grace@example.com', email_verified: false, external_id: null },
      ],
      signIn: 'ada_l',
    },
    {
      file: 'auth0-passwords.ndjson',
      format: 'auth0',
      users: [
        { username: 'ada', name: 'ada', dob: null, email: 'ada@example.com', email_verified: false, external_id: 'auth0|5f1c7a2e9b1d4c0012a3b4c5' },
        { username: 'grace', name: 'grace', dob: null, email: 'grace@example.com', email_verified: false, external_id: 'auth0|60425dc43519d90068f82973' },
      ],
      signIn: 'ada',
    },
    {
      file: 'auth0-users.ndjson',
      format: 'auth0',
      users: [{ username: 'ada', name: 'Ada Lovelace', dob: null, email: 'ada@example.com', email_verified: true, external_id: 'auth0|5f1c7a2e9b1d4c0012a3b4c5' }],
    },
    {
      file: 'supabase-users.csv',
      format: 'supabase',
      users: [
        { username: 'ada', name: 'Ada Lovelace', dob: null, email: 'ada@example.com', email_verified: true, external_id: '8d0fd2b3-9ca7-4d9e-a95f-9e13dded323e' },
        { username: 'ghopper', name: 'Grace Hopper', dob: null, email: 'grace@example.com', email_verified: false, external_id: '2b5c1e7a-0f3d-4c61-9d2e-5a7b8c9d0e1f' },
      ],
      signIn: 'ada',
    },
    {
      file: 'keycloak-realm.json',
      format: 'keycloak',
      users: [
        { username: 'ada_l', name: 'Ada Lovelace', dob: '1990-12-10', email: 'ada@example.com', email_verified: true, external_id: 'b7f1b0a2-3c4d-4e5f-8a9b-0c1d2e3f4a5b' },
        { username: 'grace', name: 'Grace Hopper', dob: null, email: 'grace@example.com', email_verified: false, external_id: 'c8a2c1b3-4d5e-4f60-9bac-1d2e3f4a5b6c' },
      ],
      signIn: 'ada_l',
    },
    {
      file: 'better-auth.csv',
      format: 'better-auth',
      users: [
        { username: 'ada', name: 'Ada Lovelace', dob: null, email: 'ada@example.com', email_verified: true, external_id: 'hN3kQ9xV2mLp7RtY4sW8zA1b' },
        { username: 'grace', name: 'Grace Hopper', dob: null, email: 'grace@example.com', email_verified: false, external_id: 'pR5tU8wX1yZ3aB6cD9eF2gH4' },
      ],
      signIn: 'ada',
    },
  ];

  for (const source of sources) {
    it(`when ${source.file} (--format ${source.format}) is imported, then its users come with their fields${source.signIn ? ' and the known password signs in' : ''}`, async () => {
      await svc.db.deleteFrom('users').execute(); // each sample holds the same people
      const report = await importText(svc, fixture(source.file), { format: source.format });
      assert.deepEqual(report, { created: source.users.length, updated: 0, skipped: 0, failed: 0, errors: [] });
      const rows = await svc.db.selectFrom('users').select(['username', 'name', 'dob', 'email', 'email_verified', 'external_id']).orderBy('user_id').execute();
      assert.deepEqual(rows, source.users);
      if (source.signIn) {
        const res = await signIn(svc, source.signIn, hashes.password);
        assert.equal(res.statusCode, 201, res.body);
      }
    });
  }

  it("when the keycloak realm gives a user a role beyond Keycloak's own defaults, then the user holds it here", async () => {
    await svc.db.deleteFrom('users').execute();
    const report = await importText(svc, fixture('keycloak-realm.json'), { format: 'keycloak' });
    assert.equal(report.created, 2);
    const roles = await svc.db.selectFrom('user_roles').innerJoin('users', 'users.user_id', 'user_roles.user_id').select(['users.username', 'user_roles.role_name']).execute();
    assert.deepEqual(roles, [{ username: 'ada_l', role_name: 'support' }]);
  });

  it('when a CSV row has a quote that never closes or the wrong number of cells, then its line is reported', async () => {
    await svc.db.deleteFrom('users').execute();
    const text = 'username,email\r\ncsv_a,csv_a@example.com\r\ncsv_b\r\n"csv_c\nline two",csv_c@example.com\r\ncsv_d,csv_d@example.com\r\ncsv_e,"csv_e@example.com';
    const report = await importText(svc, text, { format: 'csv' });
    assert.deepEqual(report.errors.map((e) => [e.line, e.field]), [[3, null], [4, 'username'], [7, null]]);
    assert.equal(report.created, 2);
  });
});
