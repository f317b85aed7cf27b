import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Secret, TOTP } from 'otpauth';
import { startOfNextStep } from './helpers/clock.js';
import { SoftAuthenticator } from './helpers/authenticator.js';
import { bearer, login, problem, registerUser, startTestService, type RegisteredUser, type TestService } from './helpers/app.js';
import { mailSettled, Outbox, tokenFrom, type ReceivedMail } from './helpers/mail.js';

describe('security notices by mail', () => {
  let svc: TestService;
  const outbox = new Outbox();
  before(async () => {
    svc = await startTestService({ outboxDir: outbox.dir, refreshRetryS: 0 });
  });
  after(async () => {
    await svc.close();
    outbox.remove();
  });

  const ADDRESS = '203.0.113.50';
  const inject = (method: 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, token: string, payload?: Record<string, unknown>) =>
    svc.app.inject({ method, url, headers: bearer(token), payload, remoteAddress: ADDRESS });
  /** What the user got besides the registration's verification mail. */
  const notices = async (user: RegisteredUser): Promise<ReceivedMail[]> => {
    await mailSettled(svc.app);
    return (await outbox.messages(user.email)).filter((m) => m.subject !== 'Confirm your email address');
  };
  const totpCode = (secret: string, offsetS: number) =>
    new TOTP({ secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30 }).generate({ timestamp: svc.clock.now() + offsetS * 1000 });

  it('when the password is changed, then the owner gets one notice: what, when, from which address, and never a password', async () => {
    const user = await registerUser(svc.app);
    const session = await login(svc.app, user);
    const newPassword = 'a fresh passphrase 4455';
    const res = await inject('PUT', '/v1/users/me/password', session.accessToken, { current_password: user.password, new_password: newPassword });
    assert.equal(res.statusCode, 204, res.body);
    const [notice, ...more] = await notices(user);
    assert.equal(more.length, 0);
    assert.equal(notice!.subject, 'Your password was changed');
    assert.ok(notice!.text.includes(ADDRESS), notice!.text);
    assert.match(notice!.text, /When: \w{3}, \d{2} \w{3} \d{4}/);
    for (const secret of [user.password, newPassword]) assert.ok(!notice!.raw.includes(secret), 'no password in the mail');
  });

  it('when a change is refused (a wrong current password), or nothing that guards the account changes, then no notice', async () => {
    const user = await registerUser(svc.app);
    const session = await login(svc.app, user);
    assert.equal((await inject('PUT', '/v1/users/me/password', session.accessToken, { current_password: 'not the password at all', new_password: 'a fresh passphrase 4455' })).statusCode, 403);
    assert.equal((await inject('PATCH', '/v1/users/me', session.accessToken, { name: 'Another Name' })).statusCode, 200);
    assert.equal((await svc.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: session.refreshToken } })).statusCode, 200);
    assert.equal((await inject('DELETE', `/v1/sessions/${session.sessionId}`, session.accessToken)).statusCode, 204);
    assert.deepEqual(await notices(user), []);
  });

  it('when the authenticator app is turned on, a recovery code signs in, and the app is turned off, then a notice for each, the recovery one with the codes left', async () => {
    const user = await registerUser(svc.app);
    const session = await login(svc.app, user);
    const { secret } = (await inject('POST', '/v1/users/me/mfa/totp', session.accessToken, { current_password: user.password })).json();
    startOfNextStep(svc.clock); // the code of the step before is checked while it is still within one step
    const confirm = await inject('POST', '/v1/users/me/mfa/totp/confirm', session.accessToken, { code: totpCode(secret, -30) });
    assert.equal(confirm.statusCode, 200, confirm.body);
    const first = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: user.password } });
    const second = await svc.app.inject({ method: 'POST', url: '/v1/sessions/mfa', payload: { mfa_token: problem(first).mfa_token, code: confirm.json().recovery_codes[0] } });
    assert.equal(second.statusCode, 201, second.body);
    const off = await inject('DELETE', '/v1/users/me/mfa/totp', second.json().access_token, { current_password: user.password });
    assert.equal(off.statusCode, 204, off.body);
    // Each notice goes out in the background, side by side with the next request's: compare as sets.
    const got = await notices(user);
    assert.deepEqual(
      got.map((m) => m.subject).sort(),
      ['A recovery code was used', 'Two-step sign-in was turned off', 'Two-step sign-in was turned on'],
    );
    const recovery = got.find((m) => m.subject === 'A recovery code was used')!;
    assert.ok(recovery.text.includes('9 of your recovery codes are left'), recovery.text);
    assert.ok(!got.some((m) => m.raw.includes(confirm.json().recovery_codes[0]) || m.raw.includes(secret)), 'no code and no secret in a notice');
  });

  it('when a passkey is added and removed, then a notice for each, without the name its adder chose', async () => {
    const user = await registerUser(svc.app);
    const session = await login(svc.app, user);
    const authenticator = new SoftAuthenticator();
    const options = (await inject('POST', '/v1/users/me/passkeys/options', session.accessToken)).json();
    const name = 'Visit http://evil.example now';
    const added = await inject('POST', '/v1/users/me/passkeys', session.accessToken, { name, response: authenticator.register(options) });
    assert.equal(added.statusCode, 201, added.body);
    assert.equal((await inject('DELETE', `/v1/users/me/passkeys/${added.json().id}`, session.accessToken)).statusCode, 204);
    const got = await notices(user);
    assert.deepEqual(
      got.map((m) => m.subject).sort(),
      ['A passkey was added', 'A passkey was removed'],
    );
    assert.ok(!got.some((m) => m.raw.includes('evil.example')), 'client-chosen text stays out of our mail');
  });

  it('when a password reset completes, then a notice follows the reset link', async () => {
    const user = await registerUser(svc.app);
    await svc.app.inject({ method: 'POST', url: '/v1/password-resets', payload: { email: user.email } });
    await mailSettled(svc.app);
    const link = (await outbox.messages(user.email)).find((m) => m.subject === 'Reset your password')!;
    const done = await svc.app.inject({ method: 'POST', url: '/v1/password-resets/complete', payload: { token: tokenFrom(link, 'reset-password'), new_password: 'a fresh passphrase 4455' } });
    assert.equal(done.statusCode, 204, done.body);
    assert.deepEqual(
      (await notices(user)).map((m) => m.subject),
      ['Reset your password', 'Your password was reset'],
    );
  });

  it('when an old refresh token comes back and its session is ended, then the owner is told', async () => {
    const user = await registerUser(svc.app);
    const session = await login(svc.app, user);
    const refresh = () => svc.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: session.refreshToken } });
    assert.equal((await refresh()).statusCode, 200);
    assert.equal((await refresh()).statusCode, 401);
    assert.deepEqual(
      (await notices(user)).map((m) => m.subject),
      ['A session of your account was ended'],
    );
  });

  it('when one account makes many changes of one kind within an hour, then its address gets 5 notices of that kind, and a change of another kind is still told', async () => {
    const user = await registerUser(svc.app);
    const session = await login(svc.app, user);
    let current = user.password;
    for (let i = 0; i < 7; i++) {
      const next = `another passphrase number ${i} here`;
      assert.equal((await inject('PUT', '/v1/users/me/password', session.accessToken, { current_password: current, new_password: next })).statusCode, 204);
      current = next;
      await mailSettled(svc.app); // one at a time, as a person would
    }
    assert.equal((await notices(user)).length, 5);
    // Whoever used up the password notices cannot hide what comes next: a stolen session's end.
    const other = await login(svc.app, { ...user, password: current });
    const refresh = () => svc.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: other.refreshToken } });
    assert.equal((await refresh()).statusCode, 200);
    assert.equal((await refresh()).statusCode, 401);
    const subjects = (await notices(user)).map((m) => m.subject);
    assert.deepEqual([subjects.length, subjects.at(-1)], [6, 'A session of your account was ended']);
  });

  it('when an account had 15 notices of other kinds within the hour, then a 16th change of yet another kind is not mailed (the cap of all kinds)', async () => {
    const user = await registerUser(svc.app);
    const session = await login(svc.app, user);
    // As if passkeys, the authenticator app and stolen sessions had come and gone: 5 of each.
    const kinds = ['passkey_added', 'mfa_enabled', 'refresh_reuse'];
    await svc.db.insertInto('audit_events').values(kinds.flatMap((event) => Array.from({ length: 5 }, () => ({ event, user_id: user.id, details: '{}' })))).execute();
    const next = 'yet another passphrase here';
    assert.equal((await inject('PUT', '/v1/users/me/password', session.accessToken, { current_password: user.password, new_password: next })).statusCode, 204);
    assert.deepEqual((await notices(user)).map((m) => m.subject), []);
  });
});

describe('security notices behind a proxy that is believed', () => {
  let svc: TestService;
  const outbox = new Outbox();
  before(async () => {
    svc = await startTestService({ outboxDir: outbox.dir, refreshRetryS: 0, trustProxy: true });
  });
  after(async () => {
    await svc.close();
    outbox.remove();
  });

  it('when the client address a proxy passed on is no IP address, then the notice says "unknown", not the text', async () => {
    const user = await registerUser(svc.app);
    const session = await login(svc.app, user);
    const replay = () =>
      svc.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: session.refreshToken }, headers: { 'x-forwarded-for': 'call +1 555 0100 now' } });
    assert.equal((await replay()).statusCode, 200);
    assert.equal((await replay()).statusCode, 401);
    await mailSettled(svc.app);
    const [notice] = (await outbox.messages(user.email)).filter((m) => m.subject === 'A session of your account was ended');
    assert.ok(notice!.text.includes('From the address: unknown.'), notice!.text);
    assert.ok(!notice!.raw.includes('555 0100'));
  });
});
