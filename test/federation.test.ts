import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Secret, TOTP } from 'otpauth';
import type { LightMyRequestResponse } from 'fastify';
import { bearer, GOOD_PASSWORD, problem, registerUser, startTestService, uniqueName, type TestService } from './helpers/app.js';
import { providerSettings, startGitHub, startOpenIdProvider, type GitHubForTests, type OpenIdProviderForTests } from './helpers/identity-providers.js';

// API-FEDERATION.md A, against a real OpenID Provider (oidc-provider) and a GitHub-style server.

const PUBLIC_URL = 'http://localhost:3000';
let svc: TestService;
let op: OpenIdProviderForTests;
let gh: GitHubForTests;

before(async () => {
  op = await startOpenIdProvider([`${PUBLIC_URL}/v1/oauth/corp/callback`, `${PUBLIC_URL}/v1/oauth/apple/callback`]);
  gh = await startGitHub();
  svc = await startTestService(
    {},
    {
      IDENTITY_PROVIDERS: 'corp,github,broken,apple',
      ...providerSettings(op, gh),
      // The Apple preset (its scopes, form_post), here at the test provider instead of appleid.apple.com.
      IDP_APPLE_CLIENT_ID: op.clientId,
      IDP_APPLE_CLIENT_SECRET: op.clientSecret,
      IDP_APPLE_ISSUER: op.issuer,
      // Nothing listens there: its discovery fails at start.
      IDP_BROKEN_CLIENT_ID: 'x',
      IDP_BROKEN_CLIENT_SECRET: 'y',
      IDP_BROKEN_ISSUER: 'http://127.0.0.1:1',
    },
  );
});
after(async () => {
  await svc?.close();
  await op?.close();
  await gh?.close();
});

const cookieOf = (res: LightMyRequestResponse, name: string) => res.cookies.find((c) => c.name === name && c.value !== '')?.value;

/** Starts a flow in a "browser": answers the provider's URL and the browser's binding cookie. */
async function start(name: string, returnTo = '/account', binding?: string) {
  const res = await svc.app.inject({ method: 'GET', url: `/v1/oauth/${name}/authorize?return_to=${encodeURIComponent(returnTo)}`, cookies: binding ? { ums_oauth: binding } : {} });
  assert.equal(res.statusCode, 302, res.body);
  const cookie = cookieOf(res, 'ums_oauth');
  assert.ok(cookie);
  return { url: res.headers.location as string, binding: cookie };
}

function callback(url: URL, binding: string | undefined) {
  assert.equal(url.origin, PUBLIC_URL);
  return svc.app.inject({ method: 'GET', url: `${url.pathname}${url.search}`, cookies: binding ? { ums_oauth: binding } : {} });
}

/** A person known to the provider; `id` is their subject there. */
function person(fields: { email?: string; email_verified?: boolean; preferred_username?: string } = {}) {
  const id = uniqueName('sub');
  op.people.set(id, { name: 'Upstream Person', ...fields });
  return id;
}

async function rows(table: 'users' | 'user_identities' | 'user_sessions') {
  return Number((await svc.db.selectFrom(table).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
}

async function identitiesOf(userId: string) {
  return svc.db.selectFrom('user_identities').selectAll().where('user_id', '=', userId).execute();
}

/** Signs a brand-new person up through /complete-sign-up; answers the user id and the refresh cookie. */
async function signUp(subject: string, username = uniqueName('fed')) {
  const { url, binding } = await start('corp', '/welcome');
  const res = await callback(await op.signIn(url, subject), binding);
  assert.equal(res.statusCode, 302, res.body);
  assert.equal(res.headers.location, '/complete-sign-up');
  const pending = cookieOf(res, 'ums_signup');
  assert.ok(pending);
  const done = await svc.app.inject({ method: 'POST', url: '/v1/oauth/sign-up', cookies: { ums_oauth: binding, ums_signup: pending }, payload: { username, dob: '1990-01-02' } });
  assert.equal(done.statusCode, 201, done.body);
  const user = await svc.db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirstOrThrow();
  return { userId: user.user_id, user, done, binding };
}

async function accessTokenFrom(res: LightMyRequestResponse): Promise<string> {
  const refresh = cookieOf(res, 'ums_refresh');
  assert.ok(refresh, 'a refresh cookie');
  const r = await svc.app.inject({ method: 'POST', url: '/v1/sessions/refresh', headers: { 'x-token-delivery': 'cookie' }, cookies: { ums_refresh: refresh } });
  assert.equal(r.statusCode, 200, r.body);
  return r.json().access_token;
}

describe('providers', () => {
  it('when providers are configured, then the list names each that started, with its label; one whose discovery failed is left out', async () => {
    const res = await svc.app.inject({ method: 'GET', url: '/v1/identity-providers' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { providers: [{ name: 'corp', label: 'Corp SSO' }, { name: 'github', label: 'GitHub' }, { name: 'apple', label: 'Apple' }] });
    assert.equal(problem(await svc.app.inject({ method: 'GET', url: '/v1/oauth/broken/authorize' })).code, 'not_found');
  });

  it('when a flow starts, then the browser goes to the provider with state, nonce and PKCE S256, and gets an HttpOnly binding cookie', async () => {
    const res = await svc.app.inject({ method: 'GET', url: '/v1/oauth/corp/authorize?return_to=/x' });
    assert.equal(res.statusCode, 302);
    const url = new URL(res.headers.location as string);
    assert.equal(url.origin, op.issuer);
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
    assert.ok(url.searchParams.get('state') && url.searchParams.get('nonce') && url.searchParams.get('code_challenge'));
    assert.equal(url.searchParams.get('redirect_uri'), `${PUBLIC_URL}/v1/oauth/corp/callback`);
    const cookie = res.cookies.find((c) => c.name === 'ums_oauth')!;
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.path, '/v1/oauth');
  });
});

describe('sign up and sign in', () => {
  it('when a new person signs in, then /complete-sign-up asks a username and a date of birth, and the account is made with the verified email, and a session opens in cookie mode', async () => {
    const email = `${uniqueName('new')}@example.com`;
    const subject = person({ email, email_verified: true, preferred_username: uniqueName('pref') });
    const { url, binding } = await start('corp', '/welcome');
    const res = await callback(await op.signIn(url, subject), binding);
    assert.equal(res.headers.location, '/complete-sign-up');
    const pending = cookieOf(res, 'ums_signup')!;
    // Nothing is made before the person completes the sign-up.
    assert.equal((await svc.db.selectFrom('users').select('user_id').where('email', '=', email).execute()).length, 0);

    const shown = await svc.app.inject({ method: 'GET', url: '/v1/oauth/sign-up', cookies: { ums_oauth: binding, ums_signup: pending } });
    assert.equal(shown.statusCode, 200);
    assert.equal(shown.json().email, email);
    assert.equal(shown.json().email_verified, true);
    assert.equal(shown.json().username, op.people.get(subject)!.preferred_username);

    // Another browser (another binding cookie) cannot complete it.
    const foreign = await svc.app.inject({ method: 'POST', url: '/v1/oauth/sign-up', cookies: { ums_oauth: 'other-browser', ums_signup: pending }, payload: { username: uniqueName('x'), dob: '1990-01-02' } });
    assert.equal(problem(foreign).code, 'not_found');
    const noDob = await svc.app.inject({ method: 'POST', url: '/v1/oauth/sign-up', cookies: { ums_oauth: binding, ums_signup: pending }, payload: { username: uniqueName('x') } });
    assert.equal(problem(noDob).code, 'validation_failed');

    const username = uniqueName('fed');
    const done = await svc.app.inject({ method: 'POST', url: '/v1/oauth/sign-up', cookies: { ums_oauth: binding, ums_signup: pending }, payload: { username, dob: '1990-01-02' } });
    assert.equal(done.statusCode, 201, done.body);
    assert.deepEqual(done.json(), { return_to: '/welcome' });
    const user = await svc.db.selectFrom('users').selectAll().where('email', '=', email).executeTakeFirstOrThrow();
    assert.equal(user.username, username);
    assert.equal(user.email_verified, true);
    assert.equal(user.dob, '1990-01-02');
    const identities = await identitiesOf(user.user_id);
    assert.deepEqual(identities.map((i) => [i.provider, i.subject, i.email_verified]), [['corp', subject, true]]);
    // No password: the account has none.
    assert.equal((await svc.db.selectFrom('user_credentials').select('user_id').where('user_id', '=', user.user_id).execute()).length, 0);

    const token = await accessTokenFrom(done);
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
    assert.deepEqual(claims.amr, ['fed']);
    // The pending sign-up was single use.
    const again = await svc.app.inject({ method: 'POST', url: '/v1/oauth/sign-up', cookies: { ums_oauth: binding, ums_signup: pending }, payload: { username: uniqueName('x'), dob: '1990-01-02' } });
    assert.equal(problem(again).code, 'not_found');
  });

  it('when a provider does not vouch for the email, then the new account starts unverified', async () => {
    const email = `${uniqueName('unv')}@example.com`;
    const { user } = await signUp(person({ email, email_verified: false }));
    assert.equal(user.email_verified, false);
  });

  it('when a known person signs in again, then their user signs in (302 to return_to, a refresh cookie), and last_used_at moves', async () => {
    const subject = person({ email: `${uniqueName('again')}@example.com`, email_verified: true });
    const { userId } = await signUp(subject);
    const before = await rows('users');
    const { url, binding } = await start('corp', '/account/security');
    const res = await callback(await op.signIn(url, subject), binding);
    assert.equal(res.statusCode, 302);
    assert.equal(res.headers.location, '/account/security');
    const token = await accessTokenFrom(res);
    const me = await svc.app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(token) });
    assert.equal(me.json().id, userId);
    assert.equal(await rows('users'), before);
    assert.ok((await identitiesOf(userId))[0]!.last_used_at);
  });

  it('when return_to points elsewhere, then the sign-in lands on / instead', async () => {
    const subject = person({ email: `${uniqueName('ret')}@example.com`, email_verified: true });
    await signUp(subject);
    for (const elsewhere of ['https://evil.example/', '//evil.example/x', '/\\evil.example', 'javascript:alert(1)']) {
      const { url, binding } = await start('corp', elsewhere);
      const res = await callback(await op.signIn(url, subject), binding);
      assert.equal(res.headers.location, '/', elsewhere);
    }
  });
});

describe('linking by email (rule 2)', () => {
  it('when the provider vouches for the email and the local account verified it, then the identity is linked, a notice is recorded, and the user signs in', async () => {
    const local = await registerUser(svc.app);
    await svc.db.updateTable('users').set({ email_verified: true }).where('user_id', '=', local.id).execute();
    const subject = person({ email: local.email.toUpperCase(), email_verified: true });
    const usersBefore = await rows('users');
    const { url, binding } = await start('corp', '/account');
    const res = await callback(await op.signIn(url, subject), binding);
    assert.equal(res.headers.location, '/account');
    assert.ok(cookieOf(res, 'ums_refresh'));
    assert.deepEqual((await identitiesOf(local.id)).map((i) => i.subject), [subject]);
    assert.equal(await rows('users'), usersBefore);
    const events = await svc.db.selectFrom('audit_events').select(['event', 'details']).where('user_id', '=', local.id).where('event', '=', 'identity_linked').execute();
    assert.equal(events.length, 1);
  });

  for (const [side, providerVerified, localVerified] of [
    ['the provider', false, true],
    ['the local account', true, false],
  ] as const) {
    it(`when ${side} has not verified the email, then nothing is linked, nobody is made, and the callback redirects to error=account_exists`, async () => {
      const local = await registerUser(svc.app);
      await svc.db.updateTable('users').set({ email_verified: localVerified }).where('user_id', '=', local.id).execute();
      const subject = person({ email: local.email, email_verified: providerVerified });
      const [users, identities, sessions] = [await rows('users'), await rows('user_identities'), await rows('user_sessions')];
      const { url, binding } = await start('corp');
      const res = await callback(await op.signIn(url, subject), binding);
      assert.equal(res.statusCode, 302);
      assert.equal(res.headers.location, '/sign-in?error=account_exists');
      assert.equal(cookieOf(res, 'ums_refresh'), undefined);
      assert.equal(cookieOf(res, 'ums_signup'), undefined);
      assert.deepEqual([await rows('users'), await rows('user_identities'), await rows('user_sessions')], [users, identities, sessions]);
    });
  }
});

describe('refusals at the callback', () => {
  const refusedWith = (res: LightMyRequestResponse, code: string) => {
    assert.equal(res.statusCode, 302, res.body);
    assert.equal(res.headers.location, `/sign-in?error=${code}`);
    assert.equal(cookieOf(res, 'ums_refresh'), undefined);
  };

  it('when the state is tampered with, then nobody signs in (error=invalid_state)', async () => {
    const subject = person({ email: `${uniqueName('t')}@example.com`, email_verified: true });
    const { url, binding } = await start('corp');
    const back = await op.signIn(url, subject);
    back.searchParams.set('state', `${back.searchParams.get('state')}x`);
    const usersBefore = await rows('users');
    refusedWith(await callback(back, binding), 'invalid_state');
    assert.equal(await rows('users'), usersBefore);
  });

  it('when a callback is replayed, then the second one signs nobody in (state is single use)', async () => {
    const subject = person({ email: `${uniqueName('r')}@example.com`, email_verified: true });
    await signUp(subject);
    const { url, binding } = await start('corp');
    const back = await op.signIn(url, subject);
    assert.ok(cookieOf(await callback(back, binding), 'ums_refresh'));
    refusedWith(await callback(back, binding), 'invalid_state');
  });

  it('when the callback comes to another browser (no or another binding cookie), then nobody signs in', async () => {
    const subject = person({ email: `${uniqueName('b')}@example.com`, email_verified: true });
    await signUp(subject);
    const first = await start('corp');
    refusedWith(await callback(await op.signIn(first.url, subject), 'another-browser'), 'invalid_state');
    const second = await start('corp');
    refusedWith(await callback(await op.signIn(second.url, subject), undefined), 'invalid_state');
  });

  it('when the state is older than 10 minutes, then nobody signs in', async () => {
    const subject = person({ email: `${uniqueName('e')}@example.com`, email_verified: true });
    await signUp(subject);
    const { url, binding } = await start('corp');
    const back = await op.signIn(url, subject);
    svc.clock.advance(10 * 60_000 + 1000);
    try {
      refusedWith(await callback(back, binding), 'invalid_state');
    } finally {
      svc.clock.advance(-(10 * 60_000 + 1000));
    }
  });

  it('when the ID token carries another nonce, then nobody signs in (error=invalid_response)', async () => {
    const subject = person({ email: `${uniqueName('n')}@example.com`, email_verified: true });
    await signUp(subject);
    const { url, binding } = await start('corp');
    const changed = new URL(url);
    changed.searchParams.set('nonce', 'a-nonce-this-service-never-made');
    refusedWith(await callback(await op.signIn(changed.href, subject), binding), 'invalid_response');
  });

  it('when the ID token is signed by a key the provider does not publish, then nobody signs in', async () => {
    const subject = person({ email: `${uniqueName('k')}@example.com`, email_verified: true });
    await signUp(subject);
    const { url, binding } = await start('corp');
    op.signWithForeignKey = true;
    try {
      refusedWith(await callback(await op.signIn(url, subject), binding), 'invalid_response');
    } finally {
      op.signWithForeignKey = false;
    }
  });

  it('when the provider answers with an error, then nobody signs in (error=provider_error)', async () => {
    const { url, binding } = await start('corp');
    const back = await op.refuse(url);
    assert.equal(back.searchParams.get('error'), 'access_denied');
    refusedWith(await callback(back, binding), 'provider_error');
  });

  it('when the user is disabled, then the provider sign-in is refused like a wrong password (error=invalid_credentials)', async () => {
    const subject = person({ email: `${uniqueName('d')}@example.com`, email_verified: true });
    const { userId } = await signUp(subject);
    await svc.db.updateTable('users').set({ disabled_at: new Date() }).where('user_id', '=', userId).execute();
    const sessions = await rows('user_sessions');
    const { url, binding } = await start('corp');
    refusedWith(await callback(await op.signIn(url, subject), binding), 'invalid_credentials');
    assert.equal(await rows('user_sessions'), sessions);
  });

  it('when the user has TOTP on, then the provider is not enough: the second step is asked, no session opens until it, and then amr is fed, otp, mfa', async () => {
    const subject = person({ email: `${uniqueName('m')}@example.com`, email_verified: true });
    const { userId, done } = await signUp(subject);
    // A user without a password turns TOTP on with a recent sign-in.
    const token = await accessTokenFrom(done);
    const setup = await svc.app.inject({ method: 'POST', url: '/v1/users/me/mfa/totp', headers: bearer(token), payload: {} });
    assert.equal(setup.statusCode, 201, setup.body);
    const totp = new TOTP({ secret: Secret.fromBase32(setup.json().secret), algorithm: 'SHA1', digits: 6, period: 30 });
    const confirm = await svc.app.inject({ method: 'POST', url: '/v1/users/me/mfa/totp/confirm', headers: bearer(token), payload: { code: totp.generate({ timestamp: svc.clock.now() }) } });
    assert.equal(confirm.statusCode, 200, confirm.body);

    const sessions = await rows('user_sessions');
    const { url, binding } = await start('corp', '/account');
    const res = await callback(await op.signIn(url, subject), binding);
    assert.equal(res.statusCode, 302);
    const location = new URL(res.headers.location as string, PUBLIC_URL);
    assert.equal(location.pathname, '/sign-in');
    const fragment = new URLSearchParams(location.hash.slice(1));
    assert.equal(fragment.get('return_to'), '/account');
    assert.equal(cookieOf(res, 'ums_refresh'), undefined);
    assert.equal(await rows('user_sessions'), sessions);

    svc.clock.advance(30_000); // the confirmation used this step's code
    const second = await svc.app.inject({ method: 'POST', url: '/v1/sessions/mfa', payload: { mfa_token: fragment.get('mfa_token'), code: totp.generate({ timestamp: svc.clock.now() }) } });
    assert.equal(second.statusCode, 201, second.body);
    const claims = JSON.parse(Buffer.from(second.json().access_token.split('.')[1], 'base64url').toString());
    assert.deepEqual(claims.amr, ['fed', 'otp', 'mfa']);
    assert.equal(second.json().user.id, userId);
  });
});

describe('Apple (OpenID, answering by form_post)', () => {
  it('when a person signs in with Apple, then it asks for openid email name by form_post, the posted answer signs them up, and the name Apple posts once is suggested', async () => {
    const email = `${uniqueName('apl')}@privaterelay.example.com`;
    const subject = uniqueName('apple');
    // Apple's ID token has no name, and says email_verified as the string "true".
    op.people.set(subject, { email, email_verified: 'true' as unknown as boolean });
    const { url, binding } = await start('apple', '/account');
    const asked = new URL(url);
    assert.deepEqual([asked.searchParams.get('scope'), asked.searchParams.get('response_mode')], ['openid email name', 'form_post']);
    const { action, fields } = await op.signInFormPost(url, subject);
    assert.equal(`${action.origin}${action.pathname}`, `${PUBLIC_URL}/v1/oauth/apple/callback`);
    const res = await svc.app.inject({
      method: 'POST',
      url: action.pathname,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      cookies: { ums_oauth: binding },
      payload: new URLSearchParams({ ...fields, user: JSON.stringify({ name: { firstName: 'Hedy', lastName: 'Lamarr' }, email }) }).toString(),
    });
    assert.equal(res.headers.location, '/complete-sign-up', res.body);
    const shown = await svc.app.inject({ method: 'GET', url: '/v1/oauth/sign-up', cookies: { ums_oauth: binding, ums_signup: cookieOf(res, 'ums_signup')! } });
    assert.deepEqual([shown.json().email, shown.json().email_verified, shown.json().name], [email, true, 'Hedy Lamarr']);
  });
});

describe('GitHub (OAuth 2.0 with its user and emails API)', () => {
  it('when a GitHub user with a verified primary email signs in, then they sign up, and sign in again by their GitHub id', async () => {
    gh.user = { id: 4242, login: uniqueName('octo'), name: 'Octo Cat' };
    gh.emails = [
      { email: `${uniqueName('unverified')}@example.com`, verified: false, primary: false },
      { email: `${uniqueName('gh')}@example.com`, verified: true, primary: true },
    ];
    const { url, binding } = await start('github', '/home');
    const res = await callback(await gh.signIn(url), binding);
    assert.equal(res.headers.location, '/complete-sign-up');
    const pending = cookieOf(res, 'ums_signup')!;
    const shown = (await svc.app.inject({ method: 'GET', url: '/v1/oauth/sign-up', cookies: { ums_oauth: binding, ums_signup: pending } })).json();
    assert.deepEqual([shown.email, shown.email_verified, shown.username], [gh.emails[1]!.email, true, gh.user.login]);
    const done = await svc.app.inject({ method: 'POST', url: '/v1/oauth/sign-up', cookies: { ums_oauth: binding, ums_signup: pending }, payload: { username: gh.user.login, dob: '1985-05-05' } });
    assert.equal(done.statusCode, 201, done.body);

    const again = await start('github', '/home');
    const res2 = await callback(await gh.signIn(again.url), again.binding);
    assert.equal(res2.headers.location, '/home');
    assert.ok(cookieOf(res2, 'ums_refresh'));
  });

  it('when a GitHub account has an unverified email of a local account, then nothing is linked (error=account_exists)', async () => {
    const local = await registerUser(svc.app);
    await svc.db.updateTable('users').set({ email_verified: true }).where('user_id', '=', local.id).execute();
    gh.user = { id: 5151, login: uniqueName('octo'), name: null };
    gh.emails = [{ email: local.email, verified: false, primary: true }];
    const { url, binding } = await start('github');
    // An unverified address is never used: no email at all, so no sign-up either.
    const res = await callback(await gh.signIn(url), binding);
    assert.equal(res.headers.location, '/sign-in?error=email_required');
    assert.deepEqual(await identitiesOf(local.id), []);
  });
});

describe('linked accounts', () => {
  it('when a user links another account from the security page, then it is listed and can be unlinked, but never the last way in', async () => {
    const subject = person({ email: `${uniqueName('l')}@example.com`, email_verified: true });
    const { userId, done } = await signUp(subject);
    const token = await accessTokenFrom(done);

    gh.user = { id: 9000 + Number(userId), login: uniqueName('octo'), name: null };
    gh.emails = [];
    const link = await svc.app.inject({ method: 'POST', url: '/v1/users/me/identities/github', headers: bearer(token) });
    assert.equal(link.statusCode, 200, link.body);
    const binding = cookieOf(link, 'ums_oauth')!;
    const back = await callback(await gh.signIn(link.json().authorize_url), binding);
    assert.equal(back.headers.location, '/security');

    const list = await svc.app.inject({ method: 'GET', url: '/v1/users/me/identities', headers: bearer(token) });
    assert.equal(list.statusCode, 200);
    const identities = list.json().identities as Array<{ id: string; provider: string }>;
    assert.deepEqual(identities.map((i) => i.provider), ['corp', 'github']);
    const linkedEvents = await svc.db.selectFrom('audit_events').select('event').where('user_id', '=', userId).where('event', '=', 'identity_linked').execute();
    assert.equal(linkedEvents.length, 1);

    const first = await svc.app.inject({ method: 'DELETE', url: `/v1/users/me/identities/${identities[1]!.id}`, headers: bearer(token) });
    assert.equal(first.statusCode, 204);
    const last = await svc.app.inject({ method: 'DELETE', url: `/v1/users/me/identities/${identities[0]!.id}`, headers: bearer(token) });
    assert.equal(last.statusCode, 409);
    assert.equal(problem(last).code, 'last_sign_in_method');
    assert.equal((await identitiesOf(userId)).length, 1);
    const unlinked = await svc.db.selectFrom('audit_events').select('event').where('user_id', '=', userId).where('event', '=', 'identity_unlinked').execute();
    assert.equal(unlinked.length, 1);
  });

  it('when a user without a password unlinks their last two identities at once, then one goes and the other is refused (never no way in)', async () => {
    const { userId, done } = await signUp(person({ email: `${uniqueName('race')}@example.com`, email_verified: true }));
    const token = await accessTokenFrom(done);
    await svc.db.insertInto('user_identities').values({ user_id: userId, provider: 'github', subject: uniqueName('gh'), email: null, email_verified: false }).execute();
    const ids = (await identitiesOf(userId)).map((i) => String(i.identity_id));
    assert.equal(ids.length, 2);
    const answers = await Promise.all(ids.map((id) => svc.app.inject({ method: 'DELETE', url: `/v1/users/me/identities/${id}`, headers: bearer(token) })));
    assert.deepEqual(answers.map((a) => a.statusCode).sort(), [204, 409]);
    assert.equal((await identitiesOf(userId)).length, 1, 'one way in remains');
  });

  it('when a user with a password unlinks their only identity, then it goes (the password remains a way in)', async () => {
    const local = await registerUser(svc.app);
    await svc.db.updateTable('users').set({ email_verified: true }).where('user_id', '=', local.id).execute();
    const subject = person({ email: local.email, email_verified: true });
    const { url, binding } = await start('corp');
    await callback(await op.signIn(url, subject), binding);
    const loginRes = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: local.username, password: GOOD_PASSWORD } });
    const token = loginRes.json().access_token;
    const [identity] = await identitiesOf(local.id);
    const res = await svc.app.inject({ method: 'DELETE', url: `/v1/users/me/identities/${identity!.identity_id}`, headers: bearer(token) });
    assert.equal(res.statusCode, 204);
    assert.deepEqual(await identitiesOf(local.id), []);
    // Someone else's identity is not found.
    assert.equal(problem(await svc.app.inject({ method: 'DELETE', url: `/v1/users/me/identities/1`, headers: bearer(token) })).code, 'not_found');
  });
});

describe('users without a password', () => {
  const ageSessions = (userId: string) =>
    svc.db.updateTable('user_sessions').set({ created_at: new Date(Date.now() - 16 * 60_000) }).where('user_id', '=', userId).execute();

  it('when a user who signed up with a provider turns TOTP on or deletes the account, then a sign-in in the last 15 minutes stands in for the password', async () => {
    const { userId, done } = await signUp(person({ email: `${uniqueName('np')}@example.com`, email_verified: true }));
    const token = await accessTokenFrom(done);
    const totp = await svc.app.inject({ method: 'POST', url: '/v1/users/me/mfa/totp', headers: bearer(token), payload: {} });
    assert.equal(totp.statusCode, 201, totp.body);

    await ageSessions(userId);
    const late = await svc.app.inject({ method: 'DELETE', url: '/v1/users/me', headers: bearer(token), payload: {} });
    assert.equal(problem(late).code, 'reauthentication_required');
    assert.ok(await svc.db.selectFrom('users').select('user_id').where('user_id', '=', userId).executeTakeFirst());
  });

  it('when such a user deletes the account on a recent session without a password, then it goes', async () => {
    const { userId, done } = await signUp(person({ email: `${uniqueName('del')}@example.com`, email_verified: true }));
    const token = await accessTokenFrom(done);
    const res = await svc.app.inject({ method: 'DELETE', url: '/v1/users/me', headers: bearer(token), payload: {} });
    assert.equal(res.statusCode, 204, res.body);
    assert.equal(await svc.db.selectFrom('users').select('user_id').where('user_id', '=', userId).executeTakeFirst(), undefined);
    assert.deepEqual(await identitiesOf(userId), []);
  });

  it('when such a user sets a first password on a recent session, then they can sign in with it; on an old session they cannot set it', async () => {
    const { userId, user, done } = await signUp(person({ email: `${uniqueName('pw')}@example.com`, email_verified: true }));
    const token = await accessTokenFrom(done);
    const set = await svc.app.inject({ method: 'PUT', url: '/v1/users/me/password', headers: bearer(token), payload: { new_password: GOOD_PASSWORD } });
    assert.equal(set.statusCode, 204, set.body);
    const signIn = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: GOOD_PASSWORD } });
    assert.equal(signIn.statusCode, 201, signIn.body);
    // Now that a password exists, leaving it out is refused.
    const again = await svc.app.inject({ method: 'PUT', url: '/v1/users/me/password', headers: bearer(token), payload: { new_password: 'another lantern orbit 99' } });
    assert.equal(problem(again).code, 'validation_failed');
    assert.equal((await svc.db.selectFrom('user_credentials').select('user_id').where('user_id', '=', userId).where('is_current', '=', true).execute()).length, 1);

    const other = await signUp(person({ email: `${uniqueName('pw2')}@example.com`, email_verified: true }));
    const otherToken = await accessTokenFrom(other.done);
    await ageSessions(other.userId);
    const late = await svc.app.inject({ method: 'PUT', url: '/v1/users/me/password', headers: bearer(otherToken), payload: { new_password: GOOD_PASSWORD } });
    assert.equal(problem(late).code, 'reauthentication_required');
    assert.equal((await svc.db.selectFrom('user_credentials').select('user_id').where('user_id', '=', other.userId).execute()).length, 0);
  });

  it('when a user with a password leaves current_password out, then 400 validation_failed names it', async () => {
    const local = await registerUser(svc.app);
    const loginRes = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: local.username, password: GOOD_PASSWORD } });
    const token = loginRes.json().access_token;
    for (const [method, url] of [['POST', '/v1/users/me/mfa/totp'], ['DELETE', '/v1/users/me']] as const) {
      const res = await svc.app.inject({ method, url, headers: bearer(token), payload: {} });
      assert.deepEqual(problem(res).errors, [{ field: 'current_password', message: 'is required' }], url);
    }
  });
});
