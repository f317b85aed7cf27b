import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { Secret, TOTP } from 'otpauth';
import { AdminService } from '../src/admin/service.js';
import { SoftAuthenticator } from './helpers/authenticator.js';
import { bearer, login, problem, registerUser, startTestService, type RegisteredUser, type TestService } from './helpers/app.js';

// API-FEDERATION.md B: the service as an OpenID Provider, with openid-client as the relying party.
// The "browser" is a cookie jar; the web app's part (sign in, answer the request) is its API calls.

const RP = 'http://localhost:4000';
const RESOURCE = 'https://api.example.com';
let svc: TestService;
let adminToken: string;

interface Registered {
  client_id: string;
  client_secret?: string;
  config: oidc.Configuration;
}

/** openid-client's HTTP, answered by the app in-process. */
const inProcess: oidc.CustomFetch = async (url, options) => {
  const target = new URL(url);
  const headers: Record<string, string> = {};
  new Headers(options.headers as ConstructorParameters<typeof Headers>[0]).forEach((value, name) => (headers[name] = value));
  const res = await svc.app.inject({ method: options.method as 'GET', url: `${target.pathname}${target.search}`, headers, ...(options.body ? { payload: String(options.body) } : {}) });
  const out = new Headers();
  for (const [name, value] of Object.entries(res.headers)) for (const v of [value].flat()) if (v !== undefined) out.append(name, String(v));
  return new Response(res.statusCode === 204 || res.statusCode === 304 ? null : res.rawPayload, { status: res.statusCode, headers: out });
};

async function register(body: Record<string, unknown>): Promise<Registered> {
  const res = await svc.app.inject({ method: 'POST', url: '/v1/admin/clients', headers: bearer(adminToken), payload: body });
  assert.equal(res.statusCode, 201, res.body);
  const made = res.json();
  const auth = made.client_secret ? oidc.ClientSecretBasic(made.client_secret) : oidc.None();
  const config = await oidc.discovery(new URL(svc.config.publicUrl), made.client_id, made.client_secret ? {} : { token_endpoint_auth_method: 'none' }, auth, {
    [oidc.customFetch]: inProcess,
    execute: [oidc.allowInsecureRequests],
  });
  config[oidc.customFetch] = inProcess;
  return { client_id: made.client_id, client_secret: made.client_secret, config };
}

/** A browser: its provider cookie, and the web app's sign-in (an access token). */
class Browser {
  cookie: string | undefined;
  webToken: string | undefined;
  webSessionId: string | undefined;

  async signIn(user: RegisteredUser): Promise<void> {
    const session = await login(svc.app, user);
    this.webToken = session.accessToken;
    this.webSessionId = session.sessionId;
  }

  get(url: string) {
    const target = new URL(url, svc.config.publicUrl);
    return svc.app.inject({ method: 'GET', url: `${target.pathname}${target.search}`, cookies: this.cookie ? { ums_op_session: this.cookie } : {} });
  }

  /** The web app's page /authorize-app: reads the request, then answers it. */
  async answer(location: string, decision: 'allow' | 'deny' = 'allow') {
    const id = new URL(location, svc.config.publicUrl).searchParams.get('request')!;
    const pending = await svc.app.inject({ method: 'GET', url: `/v1/authorization-requests/${id}`, headers: bearer(this.webToken!) });
    assert.equal(pending.statusCode, 200, pending.body);
    const res = await svc.app.inject({ method: 'POST', url: `/v1/authorization-requests/${id}`, headers: bearer(this.webToken!), payload: { decision } });
    const set = res.cookies.find((c) => c.name === 'ums_op_session');
    if (set?.value) this.cookie = set.value;
    return { pending: pending.json(), res };
  }
}

interface Flow {
  url: URL;
  verifier: string;
  state: string;
  nonce: string;
}

async function authorizeUrl(client: Registered, extra: Record<string, string> = {}): Promise<Flow> {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(client.config, {
    redirect_uri: `${RP}/cb`,
    scope: 'openid profile email offline_access',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...extra,
  });
  return { url, verifier, state, nonce };
}

/** The code flow with PKCE through our sign-in: the tokens the app gets. */
async function signInFlow(client: Registered, browser: Browser, extra: Record<string, string> = {}) {
  const flow = await authorizeUrl(client, extra);
  let res = await browser.get(flow.url.href);
  assert.equal(res.statusCode, 303, res.body);
  let location = res.headers.location as string;
  if (location.startsWith('/authorize-app')) {
    const { res: answered } = await browser.answer(location);
    assert.equal(answered.statusCode, 200, answered.body);
    location = answered.json().redirect_to;
  }
  assert.ok(location.startsWith(`${RP}/cb?`), location);
  const tokens = await oidc.authorizationCodeGrant(client.config, new URL(location), { pkceCodeVerifier: flow.verifier, expectedState: flow.state, expectedNonce: flow.nonce });
  return { tokens, location, flow };
}

async function jwks() {
  return createLocalJWKSet((await svc.app.inject({ method: 'GET', url: '/oauth/jwks' })).json());
}

const me = (token: string) => svc.app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(token) });

async function form(path: string, body: Record<string, string>, headers: Record<string, string> = {}) {
  return svc.app.inject({ method: 'POST', url: path, headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, payload: new URLSearchParams(body).toString() });
}

const basic = (c: Registered) => ({ authorization: `Basic ${Buffer.from(`${c.client_id}:${c.client_secret}`).toString('base64')}` });

async function oauthError(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    const e = err as { error?: string; cause?: { error?: string } };
    return e.error ?? e.cause?.error ?? String(err);
  }
  assert.fail('expected an OAuth error');
}

let firstParty: Registered;
let otherFirstParty: Registered;
let thirdParty: Registered;
let service: Registered;

before(async () => {
  svc = await startTestService({}, { OAUTH_RESOURCES: RESOURCE });
  const admin = await registerUser(svc.app);
  await new AdminService(svc.db).changeRole(admin.username, 'admin', true);
  adminToken = (await login(svc.app, admin)).accessToken;
  const uris = { redirect_uris: [`${RP}/cb`], post_logout_redirect_uris: [`${RP}/bye`] };
  firstParty = await register({ name: 'Our web app', type: 'public', first_party: true, ...uris });
  otherFirstParty = await register({ name: 'Our other app', type: 'confidential', first_party: true, ...uris });
  thirdParty = await register({ name: 'Someone else', type: 'confidential', id_token_signed_response_alg: 'EdDSA', ...uris });
  service = await register({ name: 'Backend', type: 'service', scopes: ['reports:read'], roles: ['support'] });
});
after(async () => svc?.close());

describe('OpenID Provider', () => {
  it('when discovery is read, then it names the issuer, the endpoints, S256 only, RS256 and EdDSA, and no client_secret_jwt', async () => {
    const res = await svc.app.inject({ method: 'GET', url: '/.well-known/openid-configuration' });
    assert.equal(res.statusCode, 200);
    const doc = res.json();
    assert.equal(doc.issuer, svc.config.publicUrl);
    assert.deepEqual(doc.code_challenge_methods_supported, ['S256']);
    assert.deepEqual(doc.id_token_signing_alg_values_supported, ['RS256', 'EdDSA']);
    assert.ok(!doc.token_endpoint_auth_methods_supported.includes('client_secret_jwt'));
    const keys = (await svc.app.inject({ method: 'GET', url: '/oauth/jwks' })).json().keys;
    assert.deepEqual(new Set(keys.map((k: { alg: string }) => k.alg)), new Set(['EdDSA', 'RS256']));
    assert.ok(keys.every((k: Record<string, unknown>) => k.d === undefined && k.p === undefined), 'no private part');
  });

  it('when a person signs in to a first-party app through our sign-in, then the app gets an RS256 ID token, an access token of part 1 with sid, and a refresh token, without a consent page', async () => {
    const user = await registerUser(svc.app);
    const browser = new Browser();
    await browser.signIn(user);
    const flow = await authorizeUrl(firstParty);
    const first = await browser.get(flow.url.href);
    assert.equal(first.statusCode, 303);
    assert.match(first.headers.location as string, /^\/authorize-app\?request=/);
    const { pending, res } = await browser.answer(first.headers.location as string);
    assert.equal(pending.consent_required, false);
    assert.equal(pending.login_required, false);
    const tokens = await oidc.authorizationCodeGrant(firstParty.config, new URL(res.json().redirect_to), { pkceCodeVerifier: flow.verifier, expectedState: flow.state, expectedNonce: flow.nonce });
    assert.ok(tokens.refresh_token);
    assert.equal(decodeProtectedHeader(tokens.id_token!).alg, 'RS256');
    const { payload } = await jwtVerify(tokens.id_token!, await jwks(), { issuer: svc.config.publicUrl, audience: firstParty.client_id });
    assert.equal(payload.sub, user.id);
    assert.equal(payload.nonce, flow.nonce);
    assert.equal(payload.sid, browser.webSessionId);
    assert.equal(payload.email, user.email);
    const access = decodeJwt(tokens.access_token);
    assert.equal(access.client_id, firstParty.client_id);
    assert.equal(access.scope, 'openid profile email offline_access');
    assert.ok(access.sid && access.sid !== browser.webSessionId, "the client's own session");
    assert.equal((await me(tokens.access_token)).statusCode, 200, 'it calls the API like any token of part 1');
    const info = await oidc.fetchUserInfo(firstParty.config, tokens.access_token, user.id);
    assert.equal(info.email, user.email);
    assert.equal(info.preferred_username, user.username);
    const row = await svc.db.selectFrom('user_sessions').select(['parent_session_id', 'is_active']).where('session_id', '=', String(access.sid)).executeTakeFirstOrThrow();
    assert.equal(String(row.parent_session_id), browser.webSessionId);
  });

  it('when a second app asks, then the browser session signs the person in without a password (single sign-on), and prompt=none gets a code', async () => {
    const user = await registerUser(svc.app);
    const browser = new Browser();
    await browser.signIn(user);
    await signInFlow(firstParty, browser);
    const flow = await authorizeUrl(otherFirstParty, { prompt: 'none' });
    const res = await browser.get(flow.url.href);
    assert.equal(res.statusCode, 303);
    assert.match(res.headers.location as string, new RegExp(`^${RP}/cb\\?code=`));
    const tokens = await oidc.authorizationCodeGrant(otherFirstParty.config, new URL(res.headers.location as string), { pkceCodeVerifier: flow.verifier, expectedState: flow.state, expectedNonce: flow.nonce });
    assert.equal(decodeJwt(tokens.id_token!).sub, user.id);
  });

  it('when prompt=none comes without a browser session, then login_required; with one but no consent to a third party, then consent_required', async () => {
    const nobody = new Browser();
    const flow = await authorizeUrl(firstParty, { prompt: 'none' });
    const res = await nobody.get(flow.url.href);
    const back = new URL(res.headers.location as string);
    assert.equal(back.searchParams.get('error'), 'login_required');
    assert.equal(back.searchParams.get('state'), flow.state);
    const browser = new Browser();
    await browser.signIn(await registerUser(svc.app));
    await signInFlow(firstParty, browser);
    const third = await browser.get((await authorizeUrl(thirdParty, { prompt: 'none' })).url.href);
    assert.equal(new URL(third.headers.location as string).searchParams.get('error'), 'consent_required');
  });

  it('when max_age has passed since the sign-in, then the person must sign in again (prompt=none: login_required)', async () => {
    const browser = new Browser();
    await browser.signIn(await registerUser(svc.app));
    await signInFlow(firstParty, browser);
    svc.clock.advance(120_000);
    try {
      const none = await browser.get((await authorizeUrl(firstParty, { prompt: 'none', max_age: '60' })).url.href);
      assert.equal(new URL(none.headers.location as string).searchParams.get('error'), 'login_required');
      const asked = await browser.get((await authorizeUrl(firstParty, { max_age: '60' })).url.href);
      assert.match(asked.headers.location as string, /^\/authorize-app/);
      const { pending, res } = await browser.answer(asked.headers.location as string);
      assert.equal(pending.login_required, true);
      assert.equal(problem(res).code, 'reauthentication_required');
      const fresh = await browser.get((await authorizeUrl(firstParty, { max_age: '600' })).url.href);
      assert.match(fresh.headers.location as string, new RegExp(`^${RP}/cb\\?code=`));
      // prompt=login: a sign-in after the request, whatever its age.
      const loginAgain = await browser.get((await authorizeUrl(firstParty, { prompt: 'login' })).url.href);
      assert.match(loginAgain.headers.location as string, /^\/authorize-app/);
      assert.equal((await browser.answer(loginAgain.headers.location as string)).pending.login_required, true);
    } finally {
      svc.clock.advance(-120_000);
    }
  });

  it('when the refresh token is rotated, then a retry within REFRESH_RETRY_S answers the same successor, and an older token is reuse: the session ends', async () => {
    const browser = new Browser();
    await browser.signIn(await registerUser(svc.app));
    const { tokens } = await signInFlow(firstParty, browser);
    const first = await oidc.refreshTokenGrant(firstParty.config, tokens.refresh_token!);
    const retry = await oidc.refreshTokenGrant(firstParty.config, tokens.refresh_token!);
    assert.equal(retry.refresh_token, first.refresh_token, 'the same successor');
    const second = await oidc.refreshTokenGrant(firstParty.config, first.refresh_token!);
    assert.notEqual(second.refresh_token, first.refresh_token);
    assert.equal((await me(second.access_token)).statusCode, 200);
    assert.equal(await oauthError(oidc.refreshTokenGrant(firstParty.config, tokens.refresh_token!)), 'invalid_grant');
    assert.equal((await me(second.access_token)).statusCode, 401, 'reuse ended the session');
    assert.equal(await oauthError(oidc.refreshTokenGrant(firstParty.config, second.refresh_token!)), 'invalid_grant');
  });

  it("when a client presents another client's refresh token, then invalid_grant and the token still works for its own client", async () => {
    const browser = new Browser();
    await browser.signIn(await registerUser(svc.app));
    const { tokens } = await signInFlow(firstParty, browser);
    assert.equal(await oauthError(oidc.refreshTokenGrant(otherFirstParty.config, tokens.refresh_token!)), 'invalid_grant');
    assert.ok((await oidc.refreshTokenGrant(firstParty.config, tokens.refresh_token!)).access_token);
  });

  it('when the app logs the person out (RP-initiated), then the browser session and the sessions of every app opened from it end', async () => {
    const browser = new Browser();
    await browser.signIn(await registerUser(svc.app));
    const a = await signInFlow(firstParty, browser);
    const b = await signInFlow(otherFirstParty, browser);
    const url = oidc.buildEndSessionUrl(firstParty.config, { id_token_hint: a.tokens.id_token!, post_logout_redirect_uri: `${RP}/bye`, state: 'st' });
    const res = await browser.get(url.href);
    assert.equal(res.statusCode, 303);
    assert.equal(res.headers.location, `${RP}/bye?state=st`);
    for (const token of [a.tokens.access_token, b.tokens.access_token, browser.webToken!]) assert.equal((await me(token)).statusCode, 401);
    assert.equal(await oauthError(oidc.refreshTokenGrant(otherFirstParty.config, b.tokens.refresh_token!)), 'invalid_grant');
    const again = await browser.get((await authorizeUrl(firstParty, { prompt: 'none' })).url.href);
    assert.equal(new URL(again.headers.location as string).searchParams.get('error'), 'login_required');
    const wrong = await browser.get(oidc.buildEndSessionUrl(firstParty.config, { post_logout_redirect_uri: `${RP}/elsewhere` }).href);
    assert.equal(wrong.statusCode, 400);
    assert.equal(wrong.json().error, 'invalid_request');
  });

  it('when the person signs out in the account app, then the apps signed in from that browser are signed out too', async () => {
    const browser = new Browser();
    await browser.signIn(await registerUser(svc.app));
    const { tokens } = await signInFlow(firstParty, browser);
    const out = await svc.app.inject({ method: 'DELETE', url: '/v1/sessions/current', headers: bearer(browser.webToken!) });
    assert.equal(out.statusCode, 204);
    assert.equal((await me(tokens.access_token)).statusCode, 401);
    assert.equal(await oauthError(oidc.refreshTokenGrant(firstParty.config, tokens.refresh_token!)), 'invalid_grant');
  });

  it('when the person changes their password, then the apps signed in as them are signed out (their tokens refused)', async () => {
    const user = await registerUser(svc.app);
    const browser = new Browser();
    await browser.signIn(user);
    const { tokens } = await signInFlow(firstParty, browser);
    const changed = await svc.app.inject({ method: 'PUT', url: '/v1/users/me/password', headers: bearer(browser.webToken!), payload: { current_password: user.password, new_password: 'amber compass meadow 9051' } });
    assert.equal(changed.statusCode, 204, changed.body);
    assert.equal((await me(tokens.access_token)).statusCode, 401);
    assert.equal(await oauthError(oidc.refreshTokenGrant(firstParty.config, tokens.refresh_token!)), 'invalid_grant');
  });

  it('when an admin disables the person, then the apps signed in as them are signed out, and a code issued before is refused', async () => {
    const user = await registerUser(svc.app);
    const browser = new Browser();
    await browser.signIn(user);
    const { tokens } = await signInFlow(firstParty, browser);
    const flow = await authorizeUrl(firstParty);
    const code = new URL((await browser.get(flow.url.href)).headers.location as string);
    const disabled = await svc.app.inject({ method: 'POST', url: `/v1/admin/users/${user.id}/disable`, headers: bearer(adminToken), payload: {} });
    assert.equal(disabled.statusCode, 200, disabled.body);
    assert.equal((await me(tokens.access_token)).statusCode, 401);
    assert.equal(await oauthError(oidc.refreshTokenGrant(firstParty.config, tokens.refresh_token!)), 'invalid_grant');
    assert.equal(await oauthError(oidc.authorizationCodeGrant(firstParty.config, code, { pkceCodeVerifier: flow.verifier, expectedState: flow.state, expectedNonce: flow.nonce })), 'invalid_grant');
  });

  it("when the browser cookie names another person's session with a made-up MAC, then nobody is signed in (login_required)", async () => {
    const victim = new Browser();
    await victim.signIn(await registerUser(svc.app));
    await signInFlow(firstParty, victim);
    const [userId, sessionId, mac] = victim.cookie!.split('.');
    const forger = new Browser();
    forger.cookie = `${userId}.${sessionId}.${mac!.slice(1)}A`;
    const res = await forger.get((await authorizeUrl(firstParty, { prompt: 'none' })).url.href);
    assert.equal(new URL(res.headers.location as string).searchParams.get('error'), 'login_required');
    victim.cookie = undefined;
  });

  it('when a token is revoked (RFC 7009), then it and its session are refused; introspection (RFC 7662) says active, then not', async () => {
    const browser = new Browser();
    await browser.signIn(await registerUser(svc.app));
    const { tokens } = await signInFlow(otherFirstParty, browser);
    const live = await oidc.tokenIntrospection(otherFirstParty.config, tokens.access_token);
    assert.equal(live.active, true);
    assert.equal(live.client_id, otherFirstParty.client_id);
    assert.equal(live.scope, 'openid profile email offline_access');
    assert.equal((await oidc.tokenIntrospection(otherFirstParty.config, tokens.refresh_token!)).active, true);
    assert.equal((await oidc.tokenIntrospection(thirdParty.config, tokens.refresh_token!)).active, false, "another client's refresh token is not described");
    await oidc.tokenRevocation(thirdParty.config, tokens.refresh_token!);
    assert.equal((await me(tokens.access_token)).statusCode, 200, "another client cannot revoke this client's token");
    await oidc.tokenRevocation(otherFirstParty.config, tokens.refresh_token!);
    assert.equal((await me(tokens.access_token)).statusCode, 401);
    assert.equal((await oidc.tokenIntrospection(otherFirstParty.config, tokens.access_token)).active, false);
    assert.equal(await oauthError(oidc.refreshTokenGrant(otherFirstParty.config, tokens.refresh_token!)), 'invalid_grant');
    const publicIntrospects = await form('/oauth/introspect', { client_id: firstParty.client_id, token: tokens.access_token });
    assert.equal(publicIntrospects.statusCode, 400);
    assert.equal(publicIntrospects.json().error, 'unauthorized_client');
  });

  it("when an app's refresh token is forged, taken to the service's own refresh, or its session offered as a recent sign-in, then each is refused and the session goes on", async () => {
    const browser = new Browser();
    await browser.signIn(await registerUser(svc.app));
    const { tokens } = await signInFlow(otherFirstParty, browser);
    // A token of the right shape for this session, but made up: revoking with it ends nothing.
    const [sessionId, generation] = tokens.refresh_token!.split('.');
    await oidc.tokenRevocation(otherFirstParty.config, `${sessionId}.${generation}.${'A'.repeat(43)}.${'A'.repeat(22)}`);
    assert.equal((await me(tokens.access_token)).statusCode, 200, 'a made-up token revokes nothing');
    // The app's refresh token is for /oauth/token, where the app authenticates, not for part 1's refresh.
    const own = await svc.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: tokens.refresh_token } });
    assert.equal(own.statusCode, 401);
    assert.equal(own.json().code, 'invalid_refresh_token');
    assert.equal((await me(tokens.access_token)).statusCode, 200, 'and that did not end the session');
    // The app's session was opened by a code exchange, not by the person: no proof of presence.
    const sudo = await svc.app.inject({ method: 'DELETE', url: '/v1/users/me/passkeys/1', headers: { authorization: `Bearer ${tokens.access_token}` } });
    assert.equal(sudo.statusCode, 403);
    assert.equal(sudo.json().code, 'reauthentication_required');
    assert.ok((await oidc.refreshTokenGrant(otherFirstParty.config, tokens.refresh_token!)).access_token, 'the app still refreshes at /oauth/token');
  });

  it('when a third-party app asks, then the consent page lists the scopes; allowed, the grant is listed and remembered, and withdrawn, its tokens end and prompt=none is consent_required', async () => {
    const user = await registerUser(svc.app);
    const browser = new Browser();
    await browser.signIn(user);
    const flow = await authorizeUrl(thirdParty, { scope: 'openid email offline_access' });
    const res = await browser.get(flow.url.href);
    const { pending, res: answered } = await browser.answer(res.headers.location as string);
    assert.deepEqual(pending, { client: { client_id: thirdParty.client_id, name: 'Someone else', first_party: false }, scopes: ['openid', 'email', 'offline_access'], login_required: false, consent_required: true });
    const tokens = await oidc.authorizationCodeGrant(thirdParty.config, new URL(answered.json().redirect_to), { pkceCodeVerifier: flow.verifier, expectedState: flow.state, expectedNonce: flow.nonce });
    assert.equal(decodeProtectedHeader(tokens.id_token!).alg, 'EdDSA');
    await jwtVerify(tokens.id_token!, await jwks(), { issuer: svc.config.publicUrl, audience: thirdParty.client_id });
    const grants = await svc.app.inject({ method: 'GET', url: '/v1/users/me/grants', headers: bearer(browser.webToken!) });
    assert.deepEqual(grants.json().grants.map((g: { client_id: string; name: string; scopes: string[] }) => [g.client_id, g.name, g.scopes]), [[thirdParty.client_id, 'Someone else', ['openid', 'email', 'offline_access']]]);
    const silent = await browser.get((await authorizeUrl(thirdParty, { scope: 'openid email', prompt: 'none' })).url.href);
    assert.match(silent.headers.location as string, /code=/, 'remembered');
    const withdraw = await svc.app.inject({ method: 'DELETE', url: `/v1/users/me/grants/${thirdParty.client_id}`, headers: bearer(browser.webToken!) });
    assert.equal(withdraw.statusCode, 204);
    assert.equal(await oauthError(oidc.refreshTokenGrant(thirdParty.config, tokens.refresh_token!)), 'invalid_grant');
    assert.equal((await me(tokens.access_token)).statusCode, 401);
    const after = await browser.get((await authorizeUrl(thirdParty, { prompt: 'none' })).url.href);
    assert.equal(new URL(after.headers.location as string).searchParams.get('error'), 'consent_required');
    assert.equal((await svc.app.inject({ method: 'DELETE', url: `/v1/users/me/grants/${thirdParty.client_id}`, headers: bearer(browser.webToken!) })).statusCode, 404);
  });

  it('when the person says no, then the app gets access_denied and no grant is kept', async () => {
    const browser = new Browser();
    await browser.signIn(await registerUser(svc.app));
    const flow = await authorizeUrl(thirdParty);
    const res = await browser.get(flow.url.href);
    const { res: answered } = await browser.answer(res.headers.location as string, 'deny');
    const back = new URL(answered.json().redirect_to);
    assert.equal(back.searchParams.get('error'), 'access_denied');
    assert.equal(back.searchParams.get('state'), flow.state);
    assert.deepEqual((await svc.app.inject({ method: 'GET', url: '/v1/users/me/grants', headers: bearer(browser.webToken!) })).json(), { grants: [] });
  });

  it('when a person with TOTP signs in to an app, then the ID token says how (amr pwd otp mfa)', async () => {
    const user = await registerUser(svc.app);
    const setupSession = await login(svc.app, user);
    const setup = await svc.app.inject({ method: 'POST', url: '/v1/users/me/mfa/totp', headers: bearer(setupSession.accessToken), payload: { current_password: user.password } });
    const totp = new TOTP({ secret: Secret.fromBase32(setup.json().secret), algorithm: 'SHA1', digits: 6, period: 30 });
    const confirmed = await svc.app.inject({ method: 'POST', url: '/v1/users/me/mfa/totp/confirm', headers: bearer(setupSession.accessToken), payload: { code: totp.generate({ timestamp: svc.clock.now() }) } });
    assert.equal(confirmed.statusCode, 200, confirmed.body);
    const step = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: user.password } });
    const mfaToken = problem(step).mfa_token as string;
    const signedIn = await svc.app.inject({ method: 'POST', url: '/v1/sessions/mfa', payload: { mfa_token: mfaToken, code: totp.generate({ timestamp: svc.clock.now() + 30_000 }) } });
    assert.equal(signedIn.statusCode, 201, signedIn.body);
    const browser = new Browser();
    browser.webToken = signedIn.json().access_token;
    const { tokens } = await signInFlow(firstParty, browser);
    assert.deepEqual(decodeJwt(tokens.id_token!).amr, ['pwd', 'otp', 'mfa']);
  });

  it('when a person signs in with a passkey, then the app signs them in, and the ID token says how (amr swk)', async () => {
    const user = await registerUser(svc.app);
    const setup = await login(svc.app, user);
    const authenticator = new SoftAuthenticator();
    const creation = await svc.app.inject({ method: 'POST', url: '/v1/users/me/passkeys/options', headers: bearer(setup.accessToken) });
    const added = await svc.app.inject({ method: 'POST', url: '/v1/users/me/passkeys', headers: bearer(setup.accessToken), payload: { name: 'Laptop', response: authenticator.register(creation.json()) } });
    assert.equal(added.statusCode, 201, added.body);
    const options = (await svc.app.inject({ method: 'POST', url: '/v1/sessions/passkey/options' })).json();
    const signedIn = await svc.app.inject({ method: 'POST', url: '/v1/sessions/passkey', payload: { response: authenticator.assert(options) } });
    assert.equal(signedIn.statusCode, 201, signedIn.body);
    const browser = new Browser();
    browser.webToken = signedIn.json().access_token;
    const { tokens } = await signInFlow(firstParty, browser);
    assert.equal(decodeJwt(tokens.id_token!).sub, user.id);
    assert.ok((decodeJwt(tokens.id_token!).amr as string[]).includes('swk'));
  });

  it('when a service client uses client_credentials, then its token has sub = its id, no sid, its roles and scope; a person\'s client may not', async () => {
    const res = await form('/oauth/token', { grant_type: 'client_credentials' }, basic(service));
    assert.equal(res.statusCode, 200, res.body);
    const claims = decodeJwt(res.json().access_token);
    assert.equal(claims.sub, service.client_id);
    assert.equal(claims.sid, undefined);
    assert.deepEqual(claims.roles, ['support']);
    assert.equal(claims.scope, 'reports:read');
    const resource = await form('/oauth/token', { grant_type: 'client_credentials', resource: RESOURCE }, basic(service));
    assert.equal(decodeJwt(resource.json().access_token).aud, RESOURCE);
    const unknownResource = await form('/oauth/token', { grant_type: 'client_credentials', resource: 'https://elsewhere.example' }, basic(service));
    assert.equal(unknownResource.json().error, 'invalid_target');
    const notService = await form('/oauth/token', { grant_type: 'client_credentials' }, basic(otherFirstParty));
    assert.equal(notService.json().error, 'unauthorized_client');
  });
});

describe('OpenID Provider: attacks, refused as the RFCs say', () => {
  let browser: Browser;
  before(async () => {
    browser = new Browser();
    await browser.signIn(await registerUser(svc.app));
    await signInFlow(firstParty, browser);
  });

  /** A code for `client`, straight from the browser session. */
  async function codeFor(client: Registered, extra: Record<string, string> = {}) {
    const flow = await authorizeUrl(client, extra);
    const res = await browser.get(flow.url.href);
    const location = new URL(res.headers.location as string);
    return { flow, location, code: location.searchParams.get('code')! };
  }
  const exchange = (client: Registered, code: string, verifier: string, redirectUri = `${RP}/cb`, headers = client.client_secret ? basic(client) : {}) =>
    form('/oauth/token', { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: redirectUri, ...(client.client_secret ? {} : { client_id: client.client_id }) }, headers);

  it('when the redirect URI is not registered exactly, then 400 and no redirect', async () => {
    for (const uri of [`${RP}/cb/`, `${RP}/cb?x=1`, `${RP}/CB`, 'https://evil.example/cb']) {
      const res = await browser.get((await authorizeUrl(firstParty, { redirect_uri: uri })).url.href);
      assert.equal(res.statusCode, 400, uri);
      assert.equal(res.headers.location, undefined);
      assert.equal(res.json().error, 'invalid_request');
    }
    assert.equal((await browser.get('/oauth/authorize?client_id=nope&response_type=code')).json().error, 'invalid_client');
  });

  it('when PKCE is missing or plain, then invalid_request at the app, and no code', async () => {
    const missing = await browser.get((await authorizeUrl(firstParty)).url.href.replace(/&?code_challenge=[^&]+/, ''));
    assert.equal(new URL(missing.headers.location as string).searchParams.get('error'), 'invalid_request');
    const verifier = oidc.randomPKCECodeVerifier();
    const plain = await browser.get((await authorizeUrl(firstParty, { code_challenge: verifier, code_challenge_method: 'plain' })).url.href);
    const back = new URL(plain.headers.location as string);
    assert.equal(back.searchParams.get('error'), 'invalid_request');
    assert.equal(back.searchParams.get('code'), null);
  });

  it('when the code_verifier is wrong or missing, then invalid_grant, and the code is spent', async () => {
    const { code, flow } = await codeFor(firstParty);
    const wrong = await exchange(firstParty, code, oidc.randomPKCECodeVerifier());
    assert.equal(wrong.statusCode, 400);
    assert.equal(wrong.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(wrong.json().error, 'invalid_grant');
    assert.equal((await exchange(firstParty, code, flow.verifier)).json().error, 'invalid_grant');
  });

  it('when a code is used twice, then invalid_grant, and the tokens of the first use are revoked', async () => {
    const { code, flow } = await codeFor(firstParty);
    const first = await exchange(firstParty, code, flow.verifier);
    assert.equal(first.statusCode, 200, first.body);
    assert.equal((await me(first.json().access_token)).statusCode, 200);
    const replay = await exchange(firstParty, code, flow.verifier);
    assert.equal(replay.json().error, 'invalid_grant');
    assert.equal((await me(first.json().access_token)).statusCode, 401);
  });

  it('when another client presents the code, then invalid_grant; the code still works for its own client', async () => {
    const { code, flow } = await codeFor(firstParty);
    assert.equal((await exchange(otherFirstParty, code, flow.verifier)).json().error, 'invalid_grant');
    assert.equal((await exchange(firstParty, code, flow.verifier)).statusCode, 200);
  });

  it('when the code has expired, or the redirect_uri differs, then invalid_grant', async () => {
    const late = await codeFor(firstParty);
    svc.clock.advance(61_000);
    try {
      assert.equal((await exchange(firstParty, late.code, late.flow.verifier)).json().error, 'invalid_grant');
    } finally {
      svc.clock.advance(-61_000);
    }
    const other = await codeFor(firstParty);
    assert.equal((await exchange(firstParty, other.code, other.flow.verifier, `${RP}/other`)).json().error, 'invalid_grant');
  });

  it('when a confidential client gives a wrong secret, then 401 invalid_client; the token endpoint takes form bodies only', async () => {
    const res = await form('/oauth/token', { grant_type: 'client_credentials' }, { authorization: `Basic ${Buffer.from(`${service.client_id}:wrong`).toString('base64')}` });
    assert.equal(res.statusCode, 401);
    assert.equal(res.json().error, 'invalid_client');
    const json = await svc.app.inject({ method: 'POST', url: '/oauth/token', headers: basic(service), payload: { grant_type: 'client_credentials' } });
    assert.equal(json.statusCode, 400);
    assert.equal(json.json().error, 'invalid_request');
    const grant = await form('/oauth/token', { grant_type: 'password', username: 'a', password: 'b' }, basic(service));
    assert.equal(grant.json().error, 'unsupported_grant_type');
  });
});

describe('OpenID Provider: bad input', () => {
  it('when the OAuth endpoints get malformed input, then each answers an RFC 6749 error as JSON, never a 500 and never problem+json', async () => {
    const garbageBasic = { authorization: 'Basic !!!' };
    const cases: Array<[string, () => Promise<{ statusCode: number; headers: Record<string, unknown>; json(): { error: string } }>, number, string]> = [
      ['token, no body', () => svc.app.inject({ method: 'POST', url: '/oauth/token' }), 401, 'invalid_client'],
      ['token, bad Basic', () => form('/oauth/token', { grant_type: 'client_credentials' }, garbageBasic), 401, 'invalid_client'],
      ['token, repeated parameter', () => svc.app.inject({ method: 'POST', url: '/oauth/token', headers: { 'content-type': 'application/x-www-form-urlencoded', ...basic(service) }, payload: 'grant_type=client_credentials&grant_type=client_credentials' }), 400, 'invalid_request'],
      ['token, garbage refresh token', () => form('/oauth/token', { grant_type: 'refresh_token', refresh_token: 'x'.repeat(5000), client_id: firstParty.client_id }), 400, 'invalid_grant'],
      ['token, garbage code', () => form('/oauth/token', { grant_type: 'authorization_code', code: '\u0000\u00ff', code_verifier: '!', redirect_uri: 'x', client_id: firstParty.client_id }), 400, 'invalid_grant'],
      ['token, no grant_type', () => form('/oauth/token', { client_id: firstParty.client_id }), 400, 'invalid_request'],
      ['token, too large', () => form('/oauth/token', { grant_type: 'client_credentials', pad: 'x'.repeat(20_000) }, basic(service)), 400, 'invalid_request'],
      ['userinfo, garbage token', () => svc.app.inject({ method: 'GET', url: '/oauth/userinfo', headers: { authorization: 'Bearer abc.def.ghi' } }), 401, 'invalid_token'],
      ['userinfo, no token', () => svc.app.inject({ method: 'GET', url: '/oauth/userinfo' }), 401, 'invalid_token'],
      ['logout, garbage id_token_hint', () => svc.app.inject({ method: 'GET', url: '/oauth/logout?id_token_hint=abc' }), 400, 'invalid_request'],
      ['revoke, no token', () => form('/oauth/revoke', {}, basic(otherFirstParty)), 400, 'invalid_request'],
      ['authorize, unknown client', () => svc.app.inject({ method: 'GET', url: '/oauth/authorize?client_id=%00' }), 400, 'invalid_client'],
      ['authorize, a service client', () => svc.app.inject({ method: 'GET', url: `/oauth/authorize?client_id=${service.client_id}&redirect_uri=x` }), 400, 'invalid_client'],
    ];
    for (const [label, send, status, error] of cases) {
      const res = await send();
      assert.equal(res.statusCode, status, label);
      assert.equal(res.headers['content-type'], 'application/json; charset=utf-8', label);
      assert.equal(res.json().error, error, label);
    }
    // A NUL in state would not fit a text column: refused at the app, before anything is stored.
    const nul = await authorizeUrl(firstParty, { state: 'a\u0000b' });
    const refused = await new Browser().get(nul.url.href);
    assert.equal(refused.statusCode, 303);
    assert.equal(new URL(refused.headers.location as string).searchParams.get('error'), 'invalid_request');
    const introspected = await form('/oauth/introspect', { token: 'garbage' }, basic(otherFirstParty));
    assert.deepEqual(introspected.json(), { active: false });
  });
});

describe('clients in the admin API', () => {
  it('when a client is registered, then its secret is shown once and stored hashed; rotation gives a new one and the old stops working; deletion ends it', async () => {
    const res = await svc.app.inject({ method: 'POST', url: '/v1/admin/clients', headers: bearer(adminToken), payload: { name: 'Rotating', type: 'service', scopes: ['a:b'] } });
    assert.equal(res.statusCode, 201);
    const made = res.json();
    assert.match(made.client_secret, /^[A-Za-z0-9_-]{43}$/);
    const row = await svc.db.selectFrom('oauth_clients').selectAll().where('client_id', '=', made.client_id).executeTakeFirstOrThrow();
    assert.notEqual(row.secret_hash, made.client_secret);
    assert.ok(!JSON.stringify(row).includes(made.client_secret));
    const shown = await svc.app.inject({ method: 'GET', url: `/v1/admin/clients/${made.client_id}`, headers: bearer(adminToken) });
    assert.equal(shown.json().client_secret, undefined);
    const listed = await svc.app.inject({ method: 'GET', url: '/v1/admin/clients', headers: bearer(adminToken) });
    assert.ok(!listed.body.includes(made.client_secret));
    const rotated = (await svc.app.inject({ method: 'POST', url: `/v1/admin/clients/${made.client_id}/secret`, headers: bearer(adminToken) })).json();
    const auth = (secret: string) => ({ authorization: `Basic ${Buffer.from(`${made.client_id}:${secret}`).toString('base64')}` });
    assert.equal((await form('/oauth/token', { grant_type: 'client_credentials' }, auth(made.client_secret))).statusCode, 401);
    assert.equal((await form('/oauth/token', { grant_type: 'client_credentials' }, auth(rotated.client_secret))).statusCode, 200);
    assert.equal((await svc.app.inject({ method: 'DELETE', url: `/v1/admin/clients/${made.client_id}`, headers: bearer(adminToken) })).statusCode, 204);
    assert.equal((await form('/oauth/token', { grant_type: 'client_credentials' }, auth(rotated.client_secret))).statusCode, 401);
  });

  it('when a client is registered with a bad redirect URI or without the permission, then 400 naming it, or 403', async () => {
    const bad = await svc.app.inject({ method: 'POST', url: '/v1/admin/clients', headers: bearer(adminToken), payload: { name: 'x', type: 'public', redirect_uris: ['http://evil.example/cb', 'https://ok.example/cb#frag'] } });
    assert.deepEqual(problem(bad).errors!.map((e) => e.field), ['redirect_uris/0', 'redirect_uris/1']);
    const nobody = await login(svc.app, await registerUser(svc.app));
    const refused = await svc.app.inject({ method: 'POST', url: '/v1/admin/clients', headers: bearer(nobody.accessToken), payload: { name: 'x', type: 'service' } });
    assert.equal(problem(refused).code, 'forbidden');
  });
});
