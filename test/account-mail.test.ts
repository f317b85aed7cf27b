import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hashSecret } from '../src/sessions/refresh-tokens.js';
import { GOOD_PASSWORD, bearer, login, problem, registerUser, startTestService, uniqueName, type TestService } from './helpers/app.js';
import { mailSettled, Outbox, startSmtpServer, tokenFrom } from './helpers/mail.js';

const verifyEmail = (svc: TestService, token: unknown) => svc.app.inject({ method: 'POST', url: '/v1/email-verifications', payload: { token } });
const resend = (svc: TestService, accessToken: string) => svc.app.inject({ method: 'POST', url: '/v1/users/me/email-verification', headers: bearer(accessToken) });
const me = (svc: TestService, accessToken: string) => svc.app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(accessToken) });

function tokenRows(svc: TestService, userId: string) {
  return svc.db.selectFrom('account_tokens').selectAll().where('user_id', '=', userId).orderBy('token_id').execute();
}

async function userRow(svc: TestService, userId: string) {
  return svc.db.selectFrom('users').selectAll().where('user_id', '=', userId).executeTakeFirst();
}

async function events(svc: TestService, userId: string, event: string) {
  return svc.db.selectFrom('audit_events').selectAll().where('user_id', '=', userId).where('event', '=', event).orderBy('event_id').execute();
}

describe('email verification (mail written to the outbox)', () => {
  let svc: TestService;
  const outbox = new Outbox();
  before(async () => {
    svc = await startTestService({ outboxDir: outbox.dir });
  });
  after(async () => {
    await svc.close();
    outbox.remove();
  });

  it('when a user registers, then email_verified is false and one .eml with a 24-hour verification link (token in the fragment, stored only hashed) goes to the address', async () => {
    const user = await registerUser(svc.app);
    const profile = await svc.app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer((await login(svc.app, user)).accessToken) });
    assert.equal(profile.json().email_verified, false);
    await mailSettled(svc.app);
    const [mail, ...more] = await outbox.messages(user.email);
    assert.ok(mail);
    assert.equal(more.length, 0);
    assert.equal(mail.subject, 'Confirm your email address');
    assert.match(mail.from, /no-reply@localhost/);
    const token = tokenFrom(mail, 'verify-email');
    assert.match(token, /^[A-Za-z0-9_-]{43}$/, '256 bits, base64url');
    assert.ok(mail.html.includes(token), 'the HTML part has the link too');
    assert.doesNotMatch(mail.html, /<img/i, 'no remote images');
    assert.doesNotMatch(mail.raw, /argon2|violet lantern/, 'no password, no hash');

    const rows = await tokenRows(svc, user.id);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.kind, 'verify_email');
    assert.equal(rows[0]!.email, user.email);
    assert.equal(rows[0]!.token_hash, hashSecret(token));
    assert.ok(!JSON.stringify(rows).includes(token), 'the token itself is not stored');
    const ttl = rows[0]!.expires_at.getTime() - rows[0]!.created_at.getTime();
    assert.ok(Math.abs(ttl - 24 * 3600_000) < 5000, `24 hours, got ${ttl} ms`);
    const sent = await events(svc, user.id, 'email_verification_sent');
    assert.equal(sent.length, 1);
    assert.ok(!sent[0]!.details?.includes(token));
  });

  it('when the link token is posted, then 204, the email is verified in the row and the user object, and the token is used up (a second use is 400 invalid_verification_token)', async () => {
    const user = await registerUser(svc.app);
    const { accessToken } = await login(svc.app, user);
    assert.equal((await me(svc, accessToken)).json().email_verified, false); // cached now
    await mailSettled(svc.app);
    const token = tokenFrom((await outbox.messages(user.email))[0]!, 'verify-email');

    const res = await verifyEmail(svc, token);
    assert.equal(res.statusCode, 204);
    assert.equal(res.body, '');
    assert.equal((await userRow(svc, user.id))!.email_verified, true);
    assert.equal((await me(svc, accessToken)).json().email_verified, true, 'the cached profile was dropped');
    assert.ok((await tokenRows(svc, user.id))[0]!.used_at);
    assert.equal((await events(svc, user.id, 'email_verified')).length, 1);

    const again = await verifyEmail(svc, token);
    assert.equal(again.statusCode, 400);
    assert.equal(problem(again).code, 'invalid_verification_token');
  });

  it('when the token is unknown, of the wrong shape, expired or missing, then 400 invalid_verification_token (or validation_failed without one) and nothing changes', async () => {
    const user = await registerUser(svc.app);
    await mailSettled(svc.app);
    const token = tokenFrom((await outbox.messages(user.email))[0]!, 'verify-email');
    for (const bad of ['x', 'A'.repeat(43), `${token}x`, token.slice(1), 'not a token at all!', '']) {
      const res = await verifyEmail(svc, bad);
      assert.equal(res.statusCode, 400, bad);
      assert.equal(problem(res).code, 'invalid_verification_token', bad);
    }
    const missing = await svc.app.inject({ method: 'POST', url: '/v1/email-verifications', payload: {} });
    assert.equal(missing.statusCode, 400);
    assert.equal(problem(missing).code, 'validation_failed');
    const wrongType = await verifyEmail(svc, 42);
    assert.equal(problem(wrongType).code, 'validation_failed');

    await svc.db.updateTable('account_tokens').set({ expires_at: new Date(Date.now() - 1000) }).where('user_id', '=', user.id).execute();
    const expired = await verifyEmail(svc, token);
    assert.equal(expired.statusCode, 400);
    assert.equal(problem(expired).code, 'invalid_verification_token');
    assert.equal((await userRow(svc, user.id))!.email_verified, false);
    assert.equal((await tokenRows(svc, user.id))[0]!.used_at, null);
  });

  it('when a new verification mail is asked for, then 202 and the older link is superseded', async () => {
    const user = await registerUser(svc.app);
    const { accessToken } = await login(svc.app, user);
    const res = await resend(svc, accessToken);
    assert.equal(res.statusCode, 202);
    assert.deepEqual(res.json(), { status: 'accepted' });
    await mailSettled(svc.app);
    const mails = await outbox.messages(user.email);
    assert.equal(mails.length, 2);
    const [first, second] = mails.map((m) => tokenFrom(m, 'verify-email'));
    assert.notEqual(first, second);
    const old = await verifyEmail(svc, first);
    assert.equal(old.statusCode, 400);
    assert.equal(problem(old).code, 'invalid_verification_token');
    assert.equal((await verifyEmail(svc, second)).statusCode, 204);
  });

  it('when a sixth verification mail is asked for within the hour (registration counts), then 429 too_many_requests with Retry-After, and no sixth token', async () => {
    const user = await registerUser(svc.app);
    const { accessToken } = await login(svc.app, user);
    for (let i = 2; i <= 5; i++) assert.equal((await resend(svc, accessToken)).statusCode, 202, `mail ${i}`);
    const sixth = await resend(svc, accessToken);
    assert.equal(sixth.statusCode, 429);
    assert.equal(problem(sixth).code, 'too_many_requests');
    const retryAfter = Number(sixth.headers['retry-after']);
    assert.ok(retryAfter > 3000 && retryAfter <= 3600, `Retry-After ${retryAfter}`);
    assert.equal((await tokenRows(svc, user.id)).length, 5);
    await mailSettled(svc.app);
    assert.equal((await outbox.messages(user.email)).length, 5);
  });

  it('when the email is changed, then it is unverified again, the old address gets a notice, the new one a link, and the old link no longer verifies', async () => {
    const user = await registerUser(svc.app);
    const { accessToken } = await login(svc.app, user);
    await mailSettled(svc.app);
    const oldToken = tokenFrom((await outbox.messages(user.email))[0]!, 'verify-email');
    // Verified first, so the change visibly unverifies it.
    const other = await registerUser(svc.app);
    await mailSettled(svc.app);
    assert.equal((await verifyEmail(svc, tokenFrom((await outbox.messages(other.email))[0]!, 'verify-email'))).statusCode, 204);
    await svc.db.updateTable('users').set({ email_verified: true }).where('user_id', '=', user.id).execute();

    const newEmail = `${uniqueName('moved')}@example.org`;
    const res = await svc.app.inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(accessToken), payload: { email: newEmail } });
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().email_verified, false);
    assert.equal((await userRow(svc, user.id))!.email_verified, false);
    await mailSettled(svc.app);

    const notices = (await outbox.messages(user.email)).filter((m) => m.subject === 'Your email address was changed');
    assert.equal(notices.length, 1);
    assert.ok(notices[0]!.text.includes(newEmail));
    assert.doesNotMatch(notices[0]!.text, /token=/, 'the notice carries no link token');
    const [toNew] = await outbox.messages(newEmail);
    assert.ok(toNew);
    const stale = await verifyEmail(svc, oldToken);
    assert.equal(problem(stale).code, 'invalid_verification_token');
    assert.equal((await verifyEmail(svc, tokenFrom(toNew, 'verify-email'))).statusCode, 204);
    assert.equal((await userRow(svc, user.id))!.email_verified, true);
  });

  it('when only the case of the email changes, then it stays verified and no mail is sent', async () => {
    const user = await registerUser(svc.app);
    const { accessToken } = await login(svc.app, user);
    await mailSettled(svc.app);
    await svc.db.updateTable('users').set({ email_verified: true }).where('user_id', '=', user.id).execute();
    const res = await svc.app.inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(accessToken), payload: { email: user.email.toUpperCase() } });
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().email_verified, true);
    await mailSettled(svc.app);
    assert.equal((await outbox.messages(user.email)).length, 1, 'only the registration mail');
  });
});

describe('REQUIRE_EMAIL_VERIFICATION', () => {
  let svc: TestService;
  const outbox = new Outbox();
  before(async () => {
    svc = await startTestService({ outboxDir: outbox.dir }, { REQUIRE_EMAIL_VERIFICATION: 'true' });
  });
  after(async () => {
    await svc.close();
    outbox.remove();
  });
  const attempt = (username: string, password: string) => svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username, password } });

  it('when an unverified user logs in, then a wrong password is still 401 invalid_credentials, the right one 403 email_not_verified with no session, and after verifying 201', async () => {
    assert.equal(svc.config.requireEmailVerification, true);
    const user = await registerUser(svc.app);
    const wrong = await attempt(user.username, 'not the password at all');
    assert.equal(wrong.statusCode, 401);
    assert.equal(problem(wrong).code, 'invalid_credentials');
    const refused = await attempt(user.username, user.password);
    assert.equal(refused.statusCode, 403);
    assert.equal(problem(refused).code, 'email_not_verified');
    const sessions = await svc.db.selectFrom('user_sessions').select('session_id').where('user_id', '=', user.id).execute();
    assert.equal(sessions.length, 0);
    const failed = await events(svc, user.id, 'login_failed');
    assert.deepEqual(failed.map((e) => JSON.parse(e.details!).reason), ['wrong_password', 'email_not_verified']);

    await mailSettled(svc.app);
    assert.equal((await verifyEmail(svc, tokenFrom((await outbox.messages(user.email))[0]!, 'verify-email'))).statusCode, 204);
    assert.equal((await attempt(user.username, user.password)).statusCode, 201);
  });

  it('when the setting is off (the default), then an unverified user logs in', async () => {
    const plain = await startTestService();
    try {
      assert.equal(plain.config.requireEmailVerification, false);
      const user = await registerUser(plain.app);
      const session = await login(plain.app, user);
      assert.equal(session.body.user.email_verified, false);
    } finally {
      await plain.close();
    }
  });
});
