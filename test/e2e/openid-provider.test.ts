import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import * as oidc from 'openid-client';
import { AdminService } from '../../src/admin/service.js';
import { bearer, login, registerUser, type RegisteredUser } from '../helpers/app.js';
import { expectHeading, skipWithoutChromium, startBrowserSession } from '../helpers/browser.js';
import { freePort } from '../helpers/processes.js';

/**
 * Two relying-party apps on another port, written with openid-client as any app would: the first
 * signs in through our sign-in page, the second without a password (single sign-on), and a logout
 * from one ends both.
 */
describe('the service as an OpenID Provider (headless Chromium)', { skip: skipWithoutChromium }, () => {
  let session: Awaited<ReturnType<typeof startBrowserSession>>;
  let rpServer: Server;
  let rp: string;
  let user: RegisteredUser;
  const apps = new Map<string, oidc.Configuration>();
  const pending = new Map<string, { app: string; verifier: string; nonce: string }>();
  const signedIn = new Map<string, Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>>();

  before(async () => {
    session = await startBrowserSession();
    const { svc, origin } = session;
    const rpPort = await freePort();
    rp = `http://localhost:${rpPort}`;
    const admin = await registerUser(svc.app);
    await new AdminService(svc.db).changeRole(admin.username, 'admin', true);
    const adminToken = (await login(svc.app, admin)).accessToken;
    for (const name of ['a', 'b', 'c']) {
      const res = await svc.app.inject({
        method: 'POST',
        url: '/v1/admin/clients',
        headers: bearer(adminToken),
        payload: { name: `App ${name.toUpperCase()}`, type: 'confidential', first_party: name !== 'c', redirect_uris: [`${rp}/${name}/cb`], post_logout_redirect_uris: [`${rp}/bye`] },
      });
      assert.equal(res.statusCode, 201, res.body);
      const { client_id, client_secret } = res.json();
      apps.set(name, await oidc.discovery(new URL(origin), client_id, {}, oidc.ClientSecretBasic(client_secret), { execute: [oidc.allowInsecureRequests] }));
    }
    user = await registerUser(svc.app);

    // The relying parties: /<app>/login, /<app>/cb, /<app>/logout, /bye.
    rpServer = createServer((req, res) => {
      void (async () => {
        const url = new URL(req.url!, rp);
        const [, app, action] = url.pathname.split('/');
        const config = apps.get(app!);
        const page = (title: string) => res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><title>${title}</title><h1>${title}</h1>`);
        if (url.pathname === '/bye') return page('Signed out of the apps');
        if (!config) return res.writeHead(404).end();
        if (action === 'login') {
          const verifier = oidc.randomPKCECodeVerifier();
          const state = oidc.randomState();
          const nonce = oidc.randomNonce();
          pending.set(state, { app: app!, verifier, nonce });
          const to = oidc.buildAuthorizationUrl(config, { redirect_uri: `${rp}/${app}/cb`, scope: 'openid profile', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state, nonce });
          return res.writeHead(302, { location: to.href }).end();
        }
        if (action === 'cb') {
          const state = url.searchParams.get('state') ?? '';
          const flow = pending.get(state);
          if (!flow) return res.writeHead(400).end('unknown state');
          const tokens = await oidc.authorizationCodeGrant(config, url, { pkceCodeVerifier: flow.verifier, expectedState: state, expectedNonce: flow.nonce });
          signedIn.set(app!, tokens);
          return page(`App ${app!.toUpperCase()}: signed in as ${tokens.claims()!.preferred_username}`);
        }
        if (action === 'logout') {
          const to = oidc.buildEndSessionUrl(config, { id_token_hint: signedIn.get(app!)!.id_token!, post_logout_redirect_uri: `${rp}/bye` });
          return res.writeHead(302, { location: to.href }).end();
        }
        res.writeHead(404).end();
      })().catch((err: unknown) => res.writeHead(500).end(String(err)));
    });
    await new Promise<void>((resolve) => rpServer.listen(rpPort, '127.0.0.1', resolve));
  });
  after(async () => {
    rpServer?.closeAllConnections();
    await new Promise((resolve) => rpServer?.close(resolve));
    await session?.close();
  });

  it('when a person signs in to app A through our sign-in page, then app B signs them in without a password, app C asks for consent (withdrawn under Connected apps), and logging out of A signs them out of both', async () => {
    const { svc, browser } = session;
    const context = await browser.newContext();
    const page = await context.newPage();

    await page.goto(`${rp}/a/login`);
    await expectHeading(page, 'Sign in');
    await page.getByLabel('Username or email').fill(user.username);
    await page.getByLabel('Password', { exact: true }).fill(user.password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await expectHeading(page, `App A: signed in as ${user.username}`);

    await page.goto(`${rp}/b/login`);
    await expectHeading(page, `App B: signed in as ${user.username}`);
    const a = signedIn.get('a')!;
    const b = signedIn.get('b')!;
    assert.equal(a.claims()!.sid, b.claims()!.sid, 'one browser session');
    for (const tokens of [a, b]) assert.equal((await svc.app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(tokens.access_token) })).statusCode, 200);

    // An app that is not ours asks first; the consent is listed under Connected apps, and withdrawn there.
    await page.goto(`${rp}/c/login`);
    await expectHeading(page, 'App C wants to use your account');
    await page.getByRole('button', { name: 'Allow' }).click();
    await expectHeading(page, `App C: signed in as ${user.username}`);
    await page.goto(`${session.origin}/connected-apps`);
    await expectHeading(page, 'Connected apps');
    await page.getByRole('button', { name: 'Withdraw App C' }).click();
    await page.getByRole('button', { name: 'Withdraw App C' }).waitFor({ state: 'detached' });
    assert.equal((await svc.app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(signedIn.get('c')!.access_token) })).statusCode, 401, "withdrawn: App C's tokens end");

    await page.goto(`${rp}/a/logout`);
    await expectHeading(page, 'Signed out of the apps');
    for (const tokens of [a, b]) assert.equal((await svc.app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(tokens.access_token) })).statusCode, 401);
    // Signing in to B again asks for the password.
    await page.goto(`${rp}/b/login`);
    await expectHeading(page, 'Sign in');
    await context.close();
  });
});
