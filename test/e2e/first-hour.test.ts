import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ConsoleMessage, Page, Request } from 'playwright-core';
import { registerUser } from '../helpers/app.js';
import { expectHeading, skipWithoutChromium, startBrowserSession } from '../helpers/browser.js';

/** What a careful new user notices in the web app (issues #24 and #17). */
describe('web app: a newcomer\'s first hour (headless Chromium)', { skip: skipWithoutChromium }, () => {
  let session: Awaited<ReturnType<typeof startBrowserSession>>;
  before(async () => {
    // A deployment that asks for longer passwords than the default.
    session = await startBrowserSession({ PASSWORD_MIN_LENGTH: '15' });
  });
  after(() => session?.close());

  /** Console errors and requests of a page, from its first load. */
  function watch(page: Page): { errors: string[]; refreshes: Request[]; finished: Set<Request> } {
    const seen = { errors: [] as string[], refreshes: [] as Request[], finished: new Set<Request>() };
    page.on('console', (m: ConsoleMessage) => {
      if (m.type() === 'error') seen.errors.push(m.text());
    });
    page.on('request', (r) => {
      if (r.url().endsWith('/v1/sessions/refresh')) seen.refreshes.push(r);
    });
    page.on('requestfinished', (r) => seen.finished.add(r));
    return seen;
  }

  async function signIn(page: Page, username: string, password: string): Promise<void> {
    await page.goto(`${session.origin}/sign-in`);
    await expectHeading(page, 'Sign in');
    await page.getByLabel('Username or email', { exact: true }).fill(username);
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await expectHeading(page, 'My profile');
  }

  it('when a signed-out visitor loads pages, then no refresh is asked, no console error shows and the page goes network-idle', async () => {
    const context = await session.browser.newContext();
    const page = await context.newPage();
    const seen = watch(page);
    for (const path of ['/sign-in', '/sign-up', '/profile']) {
      await page.goto(`${session.origin}${path}`, { waitUntil: 'networkidle', timeout: 10_000 });
      await expectHeading(page, path === '/sign-up' ? 'Create an account' : 'Sign in');
    }
    assert.deepEqual(seen.errors, []);
    assert.equal(seen.refreshes.length, 0, 'a browser that never signed in holds no refresh cookie to try');
    await context.close();
  });

  it('when a session ends elsewhere, then the next load asks once, reads the refused answer to its end, shows sign in, and later loads ask no more', async () => {
    const user = await registerUser(session.svc.app, { password: 'violet lantern orbit 4217 x' });
    const context = await session.browser.newContext();
    const page = await context.newPage();
    const seen = watch(page);
    await signIn(page, user.username, user.password);
    // Signed in, a reload keeps the user signed in through one refresh.
    await page.reload({ waitUntil: 'networkidle' });
    await expectHeading(page, 'My profile');
    assert.equal(seen.refreshes.length, 1);

    await session.svc.db.updateTable('user_sessions').set({ is_active: false, end_reason: 'revoked' }).where('user_id', '=', user.id).execute();
    await page.reload({ waitUntil: 'networkidle', timeout: 10_000 });
    await expectHeading(page, 'Sign in');
    assert.equal(seen.refreshes.length, 2);
    const refused = seen.refreshes[1]!;
    assert.equal((await refused.response())?.status(), 401);
    assert.ok(seen.finished.has(refused), 'the refused refresh was read to its end');

    await page.reload({ waitUntil: 'networkidle' });
    await expectHeading(page, 'Sign in');
    assert.equal(seen.refreshes.length, 2, 'once refused, the browser knows it is signed out');
    await context.close();
  });

  it('when the server asks for 15 characters (PASSWORD_MIN_LENGTH), then the new-password fields say so and refuse 14', async () => {
    const context = await session.browser.newContext();
    const page = await context.newPage();
    await page.goto(`${session.origin}/sign-up`);
    await expectHeading(page, 'Create an account');
    const password = page.getByLabel('Password', { exact: true });
    assert.equal(await password.getAttribute('minlength'), '15');
    assert.equal(await password.getAttribute('maxlength'), '128');
    assert.equal(await page.locator('#f-password-hint').innerText(), 'At least 15 characters.');
    await page.getByLabel('Username', { exact: true }).fill('rules_reader');
    await page.getByLabel('Full name', { exact: true }).fill('Rules Reader');
    await page.getByLabel('Date of birth', { exact: true }).fill('1990-12-10');
    await page.getByLabel('Email', { exact: true }).fill('rules@example.com');
    await password.fill('fourteen chars');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.locator('#f-password-error').filter({ hasText: 'Use at least 15 characters.' }).waitFor();
    await context.close();
  });

  it('when the page is not at PUBLIC_URL, then a passkey sign-in says passkeys work only there, and links to the page there', async () => {
    const context = await session.browser.newContext();
    const page = await context.newPage();
    const elsewhere = session.origin.replace('localhost', '127.0.0.1');
    await page.goto(`${elsewhere}/sign-in`);
    await expectHeading(page, 'Sign in');
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    const alert = page.locator('.form-error');
    await alert.waitFor();
    assert.equal(await alert.innerText(), `Passkeys work only at the service's own address, ${session.origin} (its PUBLIC_URL); this page is at ${elsewhere}. Open this page there.`);
    assert.equal(await alert.getByRole('link', { name: 'Open this page there' }).getAttribute('href'), `${session.origin}/sign-in`);
    await context.close();
  });

  it('when the profile shows, then the date of birth and "Member since" read the same way', async () => {
    const user = await registerUser(session.svc.app, { dob: '1985-12-09', password: 'violet lantern orbit 4217 x' });
    const context = await session.browser.newContext({ locale: 'en-US', timezoneId: 'America/Los_Angeles' });
    const page = await context.newPage();
    await signIn(page, user.username, user.password);
    const values = Object.fromEntries(
      await page.locator('#profile dt').evaluateAll((dts) => dts.map((dt) => [dt.textContent, dt.nextElementSibling?.textContent])),
    ) as Record<string, string>;
    assert.equal(values['Date of birth'], 'December 9, 1985', 'a calendar date, not shifted by the time zone');
    assert.match(values['Member since']!, /^[A-Z][a-z]+ \d{1,2}, \d{4}$/);
    await context.close();
  });
});
