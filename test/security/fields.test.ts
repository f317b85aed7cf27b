/**
 * Attacks through field values: NUL bytes and control characters, SQL injection, Unicode case
 * and compatibility variants of identifiers, impossible dates, and password edge cases.
 * OWASP ASVS 5.0 L2: V1.2.4 (injection), V2.2.1 (positive input validation), V6.2 (passwords),
 * V8.2.2 (data-specific access), V16.4.1 (log injection).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildApp } from '../../src/app.js';
import type { App } from '../../src/http/types.js';
import { bearer, login, registerUser, startTestService, testConfig, uniqueName, type LoggedIn, type RegisteredUser, type TestService } from '../helpers/app.js';
import { assertNothingChanged, assertProblem, assertValidationFailed, dbState, registerPayload, type DbState } from './support.js';

let ipCounter = 0;
/** A fresh client address per attempt, so failed-login throttling never answers instead of the check under test. */
function nextIp(): string {
  ipCounter += 1;
  return `10.77.${Math.floor(ipCounter / 250)}.${(ipCounter % 250) + 1}`;
}

describe('security: field values', () => {
  let svc: TestService;
  let victim: RegisteredUser;
  let victimSession: LoggedIn;

  before(async () => {
    svc = await startTestService();
    // Letters with tricky Unicode relatives: k (Kelvin sign), i (Turkish İ/ı), ff (ligature ﬀ).
    victim = await registerUser(svc.app, { username: uniqueName('kiffi') });
    victimSession = await login(svc.app, victim);
  });
  after(() => svc.close());

  const register = (payload: Record<string, unknown>) => svc.app.inject({ method: 'POST', url: '/v1/users', payload });
  const attemptLogin = (payload: Record<string, unknown>) => svc.app.inject({ method: 'POST', url: '/v1/sessions', payload, remoteAddress: nextIp() });
  const patchVictim = (payload: Record<string, unknown>) => svc.app.inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(victimSession.accessToken), payload });

  /** A refused login: 401 invalid_credentials and nothing written. */
  async function assertLoginRefused(payload: Record<string, unknown>): Promise<void> {
    const before = await dbState(svc.db);
    assertProblem(await attemptLogin(payload), 401, 'invalid_credentials');
    await assertNothingChanged(svc.db, before, 'no session was opened, nothing else changed');
  }

  /** After a successful register: every row that was there is still there, unchanged, and exactly one user and one credential were added. */
  async function assertOnlyAdded(before: DbState, newUserId: string): Promise<void> {
    const after = await dbState(svc.db);
    assert.deepStrictEqual(
      after.users.filter((u) => (u as { user_id: string }).user_id !== newUserId),
      before.users,
      'every existing user row is intact',
    );
    assert.deepStrictEqual(
      after.credentials.filter((c) => (c as { user_id: string }).user_id !== newUserId),
      before.credentials,
      'every existing credential is intact',
    );
    assert.deepStrictEqual(after.sessions, before.sessions, 'sessions are intact');
    assert.equal(after.counts.users, before.counts.users! + 1);
    assert.equal(after.counts.user_credentials, before.counts.user_credentials! + 1);
  }

  describe('NUL bytes and control characters', () => {
    it('V2.2.1: when a username contains a NUL byte, then 400 validation_failed naming username and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ username: `${uniqueName('nul')}\u0000admin` })), 'username');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when a name contains a NUL byte, then 400 validation_failed naming name and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ name: 'Ada\u0000Lovelace' })), 'name');
      await assertNothingChanged(svc.db, before);
    });

    it('V16.4.1: when a name carries CR LF (log injection), then 400 validation_failed naming name and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ name: 'Ada\r\n{"level":50,"msg":"admin logged in"}' })), 'name');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when a name carries an ANSI escape sequence (ESC), then 400 validation_failed naming name and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ name: '\u001b[2J\u001b[31mAda' })), 'name');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when a name carries DEL (U+007F), then 400 validation_failed naming name and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ name: 'Ada\u007f' })), 'name');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when an email contains a NUL byte before a second address, then 400 validation_failed naming email and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ email: `${uniqueName('nul')}@example.com\u0000@evil.example` })), 'email');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when an email carries CR LF and a Bcc header (header injection), then 400 validation_failed naming email and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ email: `${uniqueName('crlf')}@example.com\r\nBcc: victim@evil.example` })), 'email');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when a PATCH sets a name with a NUL byte, then 400 validation_failed and the profile is unchanged', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await patchVictim({ name: 'Mallory\u0000' }), 'name');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when a PATCH sets a username with a NUL byte, then 400 validation_failed and the profile is unchanged', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await patchVictim({ username: `${victim.username}\u0000` }), 'username');
      await assertNothingChanged(svc.db, before);
    });

    it("V6.2.8: when a login names an existing user followed by a NUL byte (C-string truncation), then 401 invalid_credentials and no session", async () => {
      await assertLoginRefused({ username: `${victim.username}\u0000`, password: victim.password });
    });

    it("V2.2.1: when a login email is the victim's email followed by a NUL byte, then 401 invalid_credentials and no session", async () => {
      await assertLoginRefused({ email: `${victim.email}\u0000`, password: victim.password });
    });

    it('V6.2.8: when a password contains a NUL byte, then it is accepted and verified whole: the part before the NUL does not log in', async () => {
      const password = 'saffron\u0000 lantern orbit 4217';
      const user = await registerUser(svc.app, { password });
      await assertLoginRefused({ username: user.username, password: 'saffron' });
      await assertLoginRefused({ username: user.username, password: 'saffron\u0000' });
      const ok = await attemptLogin({ username: user.username, password });
      assert.equal(ok.statusCode, 201, ok.body);
    });
  });

  describe('SQL injection (V1.2.4)', () => {
    it("V1.2.4: when a username is admin'-- on register, then 400 validation_failed naming username and the tables are intact", async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ username: "admin'--" })), 'username');
      await assertNothingChanged(svc.db, before);
    });

    it("V1.2.4: when a name is Robert'); DROP TABLE users;-- on register, then 201, the name is stored literally and every existing row is intact", async () => {
      const before = await dbState(svc.db);
      const name = "Robert'); DROP TABLE users;--";
      const res = await register(registerPayload({ name }));
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.json().name, name);
      const row = await svc.db.selectFrom('users').select('name').where('user_id', '=', res.json().id).executeTakeFirstOrThrow();
      assert.equal(row.name, name, 'stored as typed');
      await assertOnlyAdded(before, res.json().id);
    });

    it("V1.2.4: when an email that is valid yet full of quotes (x'or'1'='1@…) is registered, then 201, stored literally, every existing row intact", async () => {
      const before = await dbState(svc.db);
      const email = `${uniqueName('q')}'or'1'='1@example.com`;
      const res = await register(registerPayload({ email }));
      assert.equal(res.statusCode, 201, res.body);
      const row = await svc.db.selectFrom('users').select('email').where('user_id', '=', res.json().id).executeTakeFirstOrThrow();
      assert.equal(row.email, email);
      await assertOnlyAdded(before, res.json().id);
    });

    it("V1.2.4: when a login username is ' OR '1'='1 with the victim's password, then 401 invalid_credentials and no session", async () => {
      await assertLoginRefused({ username: "' OR '1'='1", password: victim.password });
    });

    it("V1.2.4: when a login username is the victim's name followed by '-- (comment out the password check), then 401 invalid_credentials and no session", async () => {
      await assertLoginRefused({ username: `${victim.username}'--`, password: 'anything at all here' });
    });

    it("V1.2.4: when a login email is ' OR ''=' , then 401 invalid_credentials and no session", async () => {
      await assertLoginRefused({ email: "' OR ''='", password: victim.password });
    });

    it("V1.2.4: when the victim's username is given with the password ' OR '1'='1, then 401 invalid_credentials and no session", async () => {
      await assertLoginRefused({ username: victim.username, password: "' OR '1'='1" });
    });

    it('V1.2.4: when a login username is a stacked query (x; DROP TABLE user_sessions; --), then 401 invalid_credentials and the table is intact', async () => {
      await assertLoginRefused({ username: "x'; DROP TABLE user_sessions; --", password: 'anything at all here' });
      await svc.db.selectFrom('user_sessions').select('session_id').limit(1).execute();
    });

    it("V1.2.4: when a login username is a LIKE pattern matching the victim (prefix%), then 401 invalid_credentials and no session", async () => {
      await assertLoginRefused({ username: `${victim.username.slice(0, 5)}%`, password: victim.password });
    });

    it("V1.2.4: when a PATCH name is '; UPDATE users SET username='pwned' --, then 200, stored literally, and no other user changes", async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      const before = await dbState(svc.db);
      const name = "'; UPDATE users SET username='pwned' --";
      const res = await svc.app.inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(session.accessToken), payload: { name } });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json().name, name);
      const after = await dbState(svc.db);
      assert.deepStrictEqual(
        after.users.filter((u) => (u as { user_id: string }).user_id !== user.id),
        before.users.filter((u) => (u as { user_id: string }).user_id !== user.id),
        'no other user row changed',
      );
      assert.deepStrictEqual(after.credentials, before.credentials);
    });

    it('V1.2.4: when DELETE /v1/sessions/{id} gets the id "1 OR 1=1", then 404 not_found and no session ends', async () => {
      const before = await dbState(svc.db);
      const res = await svc.app.inject({ method: 'DELETE', url: '/v1/sessions/1%20OR%201%3D1', headers: bearer(victimSession.accessToken) });
      assertProblem(res, 404, 'not_found');
      await assertNothingChanged(svc.db, before);
    });

    it('V1.2.4: when the events query has before=1 OR 1=1, then 400 validation_failed and nothing changes', async () => {
      const before = await dbState(svc.db);
      const res = await svc.app.inject({ method: 'GET', url: '/v1/users/me/events?before=1%20OR%201%3D1', headers: bearer(victimSession.accessToken) });
      assertValidationFailed(res, 'before');
      await assertNothingChanged(svc.db, before);
    });
  });

  describe('Unicode variants of identifiers (V2.2.1, V6.2.8)', () => {
    // The victim is "kiffi_<n>_<m>" (ASCII). Each variant below looks or folds like it.
    const variant = (map: (s: string) => string) => map(victim.username);
    const fullwidth = (s: string) => s.replace(/[a-z]/g, (c) => String.fromCodePoint(c.codePointAt(0)! - 0x61 + 0xff41));
    const kelvin = (s: string) => s.replace('k', '\u212a'); // KELVIN SIGN, lower-cases to ASCII k
    const dottedCapitalI = (s: string) => s.replace('i', '\u0130'); // İ, lower-cases to i + U+0307
    const dotlessI = (s: string) => s.replace('i', '\u0131'); // ı, upper-cases to ASCII I
    const ligature = (s: string) => s.replace('ff', '\ufb00'); // ﬀ, NFKC to ff
    const combining = (s: string) => s.replace('i', 'i\u0301'); // i + COMBINING ACUTE

    it('V2.2.1: when a username in fullwidth letters of an existing one is registered, then 400 validation_failed and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ username: variant(fullwidth) })), 'username');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when a username with a Kelvin sign (U+212A) for k is registered, then 400 validation_failed and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ username: variant(kelvin) })), 'username');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when a username with a Turkish dotted capital İ is registered, then 400 validation_failed and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ username: variant(dottedCapitalI) })), 'username');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when a username with a Turkish dotless ı is registered, then 400 validation_failed and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ username: variant(dotlessI) })), 'username');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when a username with the ligature ﬀ is registered, then 400 validation_failed and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ username: variant(ligature) })), 'username');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when a username with a combining accent is registered, then 400 validation_failed and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ username: variant(combining) })), 'username');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when a username with a zero-width space inside an existing one is registered, then 400 validation_failed and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ username: `${victim.username.slice(0, 3)}\u200b${victim.username.slice(3)}` })), 'username');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when an existing username is registered again in ASCII upper case, then 409 username_taken (case-insensitive) and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertProblem(await register(registerPayload({ username: victim.username.toUpperCase() })), 409, 'username_taken');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when an email in fullwidth letters of an existing one is registered, then 400 validation_failed and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ email: fullwidth(victim.email) })), 'email');
      await assertNothingChanged(svc.db, before);
    });

    it("V2.2.1: when a PATCH changes a username to the Kelvin-sign variant of another user's, then 400 validation_failed and the profile is unchanged", async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      const before = await dbState(svc.db);
      const res = await svc.app.inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(session.accessToken), payload: { username: variant(kelvin) } });
      assertValidationFailed(res, 'username');
      await assertNothingChanged(svc.db, before);
    });

    it("V6.2.8: when someone logs in with the fullwidth variant of the victim's username and the right password, then 401 invalid_credentials and no session", async () => {
      await assertLoginRefused({ username: variant(fullwidth), password: victim.password });
    });

    it("V6.2.8: when someone logs in with the Kelvin-sign variant of the victim's username and the right password, then 401 invalid_credentials and no session", async () => {
      await assertLoginRefused({ username: variant(kelvin), password: victim.password });
    });

    it("V6.2.8: when someone logs in with the Kelvin-sign variant of the victim's email and the right password, then 401 invalid_credentials and no session", async () => {
      await assertLoginRefused({ email: kelvin(victim.email), password: victim.password });
    });

    it("V6.2.8: when someone logs in with the dotted-İ variant of the victim's username and the right password, then 401 invalid_credentials and no session", async () => {
      await assertLoginRefused({ username: variant(dottedCapitalI), password: victim.password });
    });

    it("V6.2.8: when someone logs in with the dotless-ı variant of the victim's username and the right password, then 401 invalid_credentials and no session", async () => {
      await assertLoginRefused({ username: variant(dotlessI), password: victim.password });
    });

    it("V6.2.8: when someone logs in with the ligature variant of the victim's username and the right password, then 401 invalid_credentials and no session", async () => {
      await assertLoginRefused({ username: variant(ligature), password: victim.password });
    });
  });

  describe('dates of birth (V2.2.1)', () => {
    const utcDay = (offsetDays: number, yearsBack = 0) => {
      const now = new Date();
      return new Date(Date.UTC(now.getUTCFullYear() - yearsBack, now.getUTCMonth(), now.getUTCDate() + offsetDays)).toISOString().slice(0, 10);
    };

    for (const [what, dob] of [
      ['29 February of a common year (2023-02-29)', '2023-02-29'],
      ['month 13 (2024-13-01)', '2024-13-01'],
      ['year zero (0000-01-01)', '0000-01-01'],
      ['a time part (1990-12-10T00:00:00Z)', '1990-12-10T00:00:00Z'],
      ['day 00 (1990-12-00)', '1990-12-00'],
      ['a five-digit year (+10000-01-01)', '+10000-01-01'],
    ] as const) {
      it(`V2.2.1: when dob is ${what}, then 400 validation_failed naming dob and nothing is written`, async () => {
        const before = await dbState(svc.db);
        assertValidationFailed(await register(registerPayload({ dob })), 'dob');
        await assertNothingChanged(svc.db, before);
      });
    }

    it('V2.2.1: when dob is tomorrow (UTC), then 400 validation_failed naming dob and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ dob: utcDay(1) })), 'dob');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when dob is 150 years and one day ago, then 400 validation_failed naming dob and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await register(registerPayload({ dob: utcDay(-1, 150) })), 'dob');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when a PATCH sets dob to 2023-02-29, then 400 validation_failed and the profile is unchanged', async () => {
      const before = await dbState(svc.db);
      assertValidationFailed(await patchVictim({ dob: '2023-02-29' }), 'dob');
      await assertNothingChanged(svc.db, before);
    });

    it('V2.2.1: when dob is 29 February of a leap year (2024-02-29), then it is accepted (201): the date check is not over-broad', async () => {
      const res = await register(registerPayload({ dob: '2024-02-29' }));
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.json().dob, '2024-02-29');
    });
  });

  describe('passwords (V6.2)', () => {
    const p128 = 'Ab3 '.repeat(32); // 128 code points, not on any list

    it('V6.2.9: when a password is exactly 128 code points, then it is accepted and logs in', async () => {
      const user = await registerUser(svc.app, { password: p128 });
      const res = await attemptLogin({ username: user.username, password: p128 });
      assert.equal(res.statusCode, 201, res.body);
    });

    it('V6.2.1: when a password is 129 code points, then 400 weak_password and nothing is written', async () => {
      const before = await dbState(svc.db);
      const body = assertProblem(await register(registerPayload({ password: `${p128}x` })), 400, 'weak_password');
      assert.equal(body.errors?.[0]?.field, 'password');
      await assertNothingChanged(svc.db, before);
    });

    it('V6.2.9: when a password is 128 emoji (256 UTF-16 units), then each counts as one character and it is accepted', async () => {
      const password = '🦊'.repeat(127) + '🔑';
      const user = await registerUser(svc.app, { password });
      const res = await attemptLogin({ username: user.username, password });
      assert.equal(res.statusCode, 201, res.body);
    });

    it('V6.2.1: when a password is 7 emoji (14 UTF-16 units), then it is too short: 400 weak_password and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertProblem(await register(registerPayload({ password: '🦊🐙🦉🐢🦋🐝🦔' })), 400, 'weak_password');
      await assertNothingChanged(svc.db, before);
    });

    it('V6.2.8: when a password is set in NFC and typed in NFD, then it logs in (NFKC on both sides)', async () => {
      const nfc = 'crème brûlée à minuit 42'.normalize('NFC');
      const nfd = nfc.normalize('NFD');
      assert.notEqual(nfc, nfd);
      const user = await registerUser(svc.app, { password: nfc });
      const res = await attemptLogin({ username: user.username, password: nfd });
      assert.equal(res.statusCode, 201, res.body);
    });

    it('V6.2.8: when a password with leading and trailing spaces is typed without them, then 401 invalid_credentials and no session (never trimmed)', async () => {
      const password = '  violet lantern orbit 4217  ';
      const user = await registerUser(svc.app, { password });
      await assertLoginRefused({ username: user.username, password: password.trim() });
      assert.equal((await attemptLogin({ username: user.username, password })).statusCode, 201, 'with the spaces it logs in');
    });

    it('V6.2.8: when a password is typed in another case, then 401 invalid_credentials and no session (never case-folded)', async () => {
      const user = await registerUser(svc.app, { password: 'Violet Lantern Orbit 4217' });
      await assertLoginRefused({ username: user.username, password: 'violet lantern orbit 4217' });
    });

    it('V6.2.1: when a register password is 4000 characters, then 400 weak_password, not a 500, and nothing is written', async () => {
      const before = await dbState(svc.db);
      assertProblem(await register(registerPayload({ password: 'q'.repeat(4000) })), 400, 'weak_password');
      await assertNothingChanged(svc.db, before);
    });

    it('V6.2.1: when a password change sets a 4000-character new password, then 400 weak_password, not a 500, and the credentials are unchanged', async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      const before = await dbState(svc.db);
      const res = await svc.app.inject({
        method: 'PUT',
        url: '/v1/users/me/password',
        headers: bearer(session.accessToken),
        payload: { current_password: user.password, new_password: 'w'.repeat(4000) },
      });
      assertProblem(res, 400, 'weak_password');
      await assertNothingChanged(svc.db, before);
    });

    it('V6.3.1: when a login sends a 4000-character password, then 401 invalid_credentials, not a 500, and no session', async () => {
      await assertLoginRefused({ username: victim.username, password: 'z'.repeat(4000) });
    });

    it('V6.2.4: when a common password is typed in fullwidth letters (ｐａｓｓｗｏｒｄ１２３), then NFKC finds it on the list: 400 weak_password, nothing written', async () => {
      const before = await dbState(svc.db);
      assertProblem(await register(registerPayload({ password: 'ｐａｓｓｗｏｒｄ１２３' })), 400, 'weak_password');
      await assertNothingChanged(svc.db, before);
    });

    it('V6.2.11: when the password is the email in upper case, then 400 weak_password and nothing is written', async () => {
      const before = await dbState(svc.db);
      const payload = registerPayload();
      assertProblem(await register({ ...payload, password: String(payload.email).toUpperCase() }), 400, 'weak_password');
      await assertNothingChanged(svc.db, before);
    });

    it('V6.2.8: when a new password is the fullwidth variant of the current one, then 422 password_reused (history compares after NFKC) and the credentials are unchanged', async () => {
      const user = await registerUser(svc.app, { password: 'amber quartz ledger 8642' });
      const session = await login(svc.app, user);
      const before = await dbState(svc.db);
      const fullwidthVariant = 'ａｍｂｅｒ ｑｕａｒｔｚ ｌｅｄｇｅｒ ８６４２';
      assert.equal(fullwidthVariant.normalize('NFKC'), 'amber quartz ledger 8642');
      const res = await svc.app.inject({
        method: 'PUT',
        url: '/v1/users/me/password',
        headers: bearer(session.accessToken),
        payload: { current_password: user.password, new_password: fullwidthVariant },
      });
      assertProblem(res, 422, 'password_reused');
      await assertNothingChanged(svc.db, before);
    });

    describe('with PASSWORD_MIN_LENGTH=15', () => {
      let strict: App;
      before(async () => {
        strict = await buildApp({ config: testConfig({ passwordMinLength: 15 }), db: svc.handle });
      });
      after(() => strict.close());

      it('V6.2.1: when a 14-character password is registered, then 400 weak_password and nothing is written; 15 characters are accepted', async () => {
        const before = await dbState(svc.db);
        const res = await strict.inject({ method: 'POST', url: '/v1/users', payload: registerPayload({ password: 'amber quartz 1' }) });
        const body = assertProblem(res, 400, 'weak_password');
        assert.match(body.detail, /15/);
        await assertNothingChanged(svc.db, before);
        const ok = await strict.inject({ method: 'POST', url: '/v1/users', payload: registerPayload({ password: 'amber quartz 15' }) });
        assert.equal(ok.statusCode, 201, ok.body);
      });
    });
  });

  it('control: the victim still logs in with the genuine username and password, and the profile is as registered', async () => {
    const res = await attemptLogin({ username: victim.username, password: victim.password });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.json().user.name, 'Test User');
    assert.equal(res.json().user.username, victim.username);
  });
});

