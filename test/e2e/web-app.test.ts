import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { WEB_CSP } from '../../src/http/web-app.js';
import { GOOD_PASSWORD, registerUser, uniqueName } from '../helpers/app.js';
import { expectHeading, screenshotDir, skipWithoutChromium, startBrowserSession } from '../helpers/browser.js';

/** The account web app in a real browser, as a new user goes through it. */
describe('account web app (headless Chromium)', { skip: skipWithoutChromium }, () => {
  let session: Awaited<ReturnType<typeof startBrowserSession>>;
  let shots: string;
  before(async () => {
    session = await startBrowserSession();
    shots = await screenshotDir();
  });
  after(() => session?.close());

  const shot = (page: Page, name: string) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  const fill = async (page: Page, label: string, value: string) => page.getByLabel(label, { exact: true }).fill(value);

  async function signIn(context: BrowserContext, login: string, password: string): Promise<Page> {
    const page = await context.newPage();
    await page.goto(`${session.origin}/sign-in`);
    await expectHeading(page, 'Sign in');
    await fill(page, 'Username or email', login);
    await fill(page, 'Password', password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await expectHeading(page, 'My profile');
    return page;
  }

  it('when a new user signs up, edits the profile, changes the password, revokes another session and signs out, then every step shows and the database agrees', async () => {
    const { svc, origin, browser } = session;
    const taken = await registerUser(svc.app);
    const username = uniqueName('web');
    const laptop = await browser.newContext({ viewport: { width: 1100, height: 800 } });
    const page = await laptop.newPage();

    // Sign up, with a field rule broken on the client and one refused by the server on the way.
    await page.goto(`${origin}/sign-up`);
    await expectHeading(page, 'Create an account');
    await shot(page, 'sign-up');
    await fill(page, 'Username', 'no spaces allowed');
    await fill(page, 'Full name', 'Ada Lovelace');
    await fill(page, 'Date of birth', '1990-12-10');
    await fill(page, 'Email', `${username}@example.com`);
    await fill(page, 'Password', GOOD_PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    const usernameError = page.locator('#f-username-error');
    await usernameError.filter({ hasText: 'letters, digits' }).waitFor();
    assert.equal(await page.getByLabel('Username', { exact: true }).getAttribute('aria-invalid'), 'true');
    assert.equal(await page.evaluate('document.activeElement?.id'), 'f-username', 'focus moves to the field in error');

    await fill(page, 'Username', taken.username);
    await page.getByRole('button', { name: 'Create account' }).click();
    await usernameError.filter({ hasText: 'already taken' }).waitFor(); // the server's 409, next to its field
    await shot(page, 'sign-up-error');

    // A rule only the server checks (a name of spaces): its validation_failed names the field.
    await fill(page, 'Username', username);
    await fill(page, 'Full name', '   ');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.locator('#f-name-error').filter({ hasText: /\w/ }).waitFor();
    assert.equal(await page.getByLabel('Full name', { exact: true }).getAttribute('aria-invalid'), 'true');
    assert.equal(await page.locator('#f-username-error').innerText(), '', 'the fixed field is no longer in error');

    await fill(page, 'Full name', 'Ada Lovelace');
    await page.getByRole('button', { name: 'Create account' }).click();
    await expectHeading(page, 'My profile');
    const user = await svc.db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirstOrThrow();
    assert.equal(user.name, 'Ada Lovelace');
    assert.equal(user.dob, '1990-12-10');

    // The access token lives in memory only: no token in storage (only a flag that this browser
    // may hold a refresh cookie, so a signed-out load asks for no refresh), the refresh token out of reach.
    assert.deepEqual(await page.evaluate('({ ...localStorage, ...sessionStorage })'), { 'ums-may-be-signed-in': '1' });
    assert.equal(await page.evaluate('document.cookie'), '', 'the refresh cookie is HttpOnly');
    const cookies = await laptop.cookies();
    assert.deepEqual(cookies.map((c) => [c.name, c.httpOnly, c.sameSite, c.path]), [['ums_refresh', true, 'Strict', '/v1/sessions']]);

    // Edit the profile.
    await fill(page, 'Full name', 'Ada King');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.locator('#main').getByText('Saved.').waitFor();
    assert.match(await page.locator('#profile').innerText(), /Ada King/);
    const edited = await svc.db.selectFrom('users').select('name').where('user_id', '=', user.user_id).executeTakeFirstOrThrow();
    assert.equal(edited.name, 'Ada King');
    await shot(page, 'profile');

    // A new email from a session opened more than 15 minutes ago asks for the password (API.md).
    await svc.db.updateTable('user_sessions').set({ created_at: new Date(Date.now() - 20 * 60_000) }).where('user_id', '=', user.user_id).execute();
    await fill(page, 'Email', `${username}.new@example.com`);
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.locator('#main').getByText('Sign in again: this needs a session opened in the last 15 minutes.').first().waitFor();
    assert.equal((await svc.db.selectFrom('users').select('email').where('user_id', '=', user.user_id).executeTakeFirstOrThrow()).email, `${username}@example.com`);
    await fill(page, 'Current password', GOOD_PASSWORD);
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.locator('#main').getByText('Saved.').waitFor();
    assert.equal((await svc.db.selectFrom('users').select('email').where('user_id', '=', user.user_id).executeTakeFirstOrThrow()).email, `${username}.new@example.com`);

    // A reload keeps the user signed in (the cookie buys a new access token).
    await page.reload();
    await expectHeading(page, 'My profile');

    // Change the password.
    await page.getByRole('link', { name: 'Password' }).click();
    await expectHeading(page, 'Change password');
    const newPassword = 'copper meadow lantern 9031';
    await fill(page, 'Current password', GOOD_PASSWORD);
    await fill(page, 'New password', newPassword);
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.locator('#main').getByText('Password changed.').waitFor();
    await shot(page, 'password');
    const credentials = await svc.db.selectFrom('user_credentials').select('is_current').where('user_id', '=', user.user_id).execute();
    assert.equal(credentials.length, 2);

    // A second sign-in elsewhere: two sessions, this one marked; revoke the other.
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'dark', isMobile: true });
    const phonePage = await signIn(phone, username, newPassword);
    await shot(phonePage, 'profile-phone-dark');
    assert.ok((await phonePage.evaluate('document.documentElement.scrollWidth')) as number <= 390, 'nothing scrolls sideways on a phone');
    assert.equal(await phonePage.evaluate('getComputedStyle(document.body).backgroundColor'), 'rgb(13, 17, 23)', 'dark by the system setting');
    assert.equal(await page.evaluate('getComputedStyle(document.body).backgroundColor'), 'rgb(246, 247, 249)', 'light by the system setting');

    await page.getByRole('link', { name: 'Sessions' }).click();
    await expectHeading(page, 'My sessions');
    const items = page.locator('ul.sessions > li');
    await page.locator('#main').getByText('2 active sessions.').waitFor();
    assert.equal(await items.count(), 2);
    assert.equal(await page.locator('.badge', { hasText: 'This device' }).count(), 1);
    await shot(page, 'sessions');
    const other = items.filter({ has: page.getByRole('button', { name: /^Revoke/ }) });
    const otherId = await other.getAttribute('data-session-id');
    await other.getByRole('button', { name: /^Revoke/ }).click();
    await other.waitFor({ state: 'detached' });
    const revoked = await svc.db.selectFrom('user_sessions').select(['is_active', 'end_reason']).where('session_id', '=', otherId!).executeTakeFirstOrThrow();
    assert.deepEqual(revoked, { is_active: false, end_reason: 'revoked' });
    await phonePage.reload();
    await expectHeading(phonePage, 'Sign in'); // the revoked device is signed out

    // Sign out: the profile cannot be reached any more, not even after a reload.
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await expectHeading(page, 'Sign in');
    await shot(page, 'sign-in');
    await page.goto(`${origin}/profile`);
    await expectHeading(page, 'Sign in');
    assert.equal(new URL(page.url()).pathname, '/sign-in');
    const active = await svc.db.selectFrom('user_sessions').select('session_id').where('user_id', '=', user.user_id).where('is_active', '=', true).execute();
    assert.deepEqual(active, []);
    await phone.close();
    await laptop.close();
  });

  it('when each page loads, signed out and signed in, then it carries the strict CSP, breaks none of its rules and makes no request outside the service', async () => {
    const user = await registerUser(session.svc.app);
    const context = await session.browser.newContext();
    // Runs through the DevTools protocol, so the page's own CSP does not stop it.
    await context.addInitScript('window.__violations = []; document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(e.violatedDirective + " " + e.blockedURI));');
    const page = await context.newPage();
    const outside: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(session.origin)) outside.push(r.url());
    });
    const visit = async (path: string, title: string) => {
      const res = await page.goto(`${session.origin}${path}`);
      assert.equal(res?.headers()['content-security-policy'], WEB_CSP, path);
      await expectHeading(page, title);
      assert.deepEqual(await page.evaluate('window.__violations'), [], `${path}: no CSP violation`);
    };
    await visit('/sign-up', 'Create an account');
    await visit('/forgot-password', 'Forgot password');
    await visit('/sign-in', 'Sign in');
    await page.getByLabel('Username or email', { exact: true }).fill(user.username);
    await page.getByLabel('Password', { exact: true }).fill(user.password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await expectHeading(page, 'My profile');
    for (const [path, title] of [['/profile', 'My profile'], ['/password', 'Change password'], ['/sessions', 'My sessions']] as const) await visit(path, title);
    assert.deepEqual(outside, []);
    await context.close();
  });
});
