import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { uniqueName } from '../helpers/app.js';
import { expectHeading, screenshotDir, skipWithoutChromium, startBrowserSession } from '../helpers/browser.js';
import { providerSettings, startGitHub, startOpenIdProvider, type GitHubForTests, type OpenIdProviderForTests } from '../helpers/identity-providers.js';
import { freePort } from '../helpers/processes.js';

/** Signing up with another provider in a real browser, through the provider's own login page. */
describe('sign in with another provider (headless Chromium)', { skip: skipWithoutChromium }, () => {
  let session: Awaited<ReturnType<typeof startBrowserSession>>;
  let op: OpenIdProviderForTests;
  let gh: GitHubForTests;
  before(async () => {
    const port = await freePort();
    op = await startOpenIdProvider([`http://localhost:${port}/v1/oauth/corp/callback`]);
    gh = await startGitHub();
    session = await startBrowserSession(
      {
        IDENTITY_PROVIDERS: 'google,corp,github',
        // Google's real discovery is out of reach here: left out at start, as a failed discovery is.
        IDP_GOOGLE_CLIENT_ID: 'x',
        IDP_GOOGLE_CLIENT_SECRET: 'y',
        ...providerSettings(op, gh),
      },
      {},
      port,
    );
  });
  after(async () => {
    await session?.close();
    await op?.close();
    await gh?.close();
  });

  it('when a new person clicks "Sign in with Corp SSO", signs in at the provider and completes the sign-up, then they land on their profile, and the security page lists the linked account', async () => {
    const { svc, origin, browser } = session;
    const subject = uniqueName('e2e');
    const email = `${subject}@example.com`;
    op.people.set(subject, { email, email_verified: true, name: 'Grace Hopper', preferred_username: subject });
    const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
    const page = await context.newPage();

    await page.goto(`${origin}/sign-in`);
    await expectHeading(page, 'Sign in');
    await page.getByRole('link', { name: 'Sign in with Corp SSO' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'Sign in with GitHub' }).count(), 1);
    await page.screenshot({ path: join(await screenshotDir(), 'sign-in-providers.png'), fullPage: true });

    await page.getByRole('link', { name: 'Sign in with Corp SSO' }).click();
    // The provider's own login page (oidc-provider's).
    await page.locator('input[name=login]').waitFor({ timeout: 15_000 });
    assert.ok(page.url().startsWith(op.issuer));
    await page.locator('input[name=login]').fill(subject);
    await page.locator('input[name=password]').fill('any');
    await page.locator('button[type=submit]').click();

    await expectHeading(page, 'Finish creating your account');
    assert.equal(await page.getByLabel('Username', { exact: true }).inputValue(), subject);
    await page.getByLabel('Date of birth', { exact: true }).fill('1906-12-09');
    await page.getByRole('button', { name: 'Create account' }).click();
    await expectHeading(page, 'My profile');

    const user = await svc.db.selectFrom('users').selectAll().where('username', '=', subject).executeTakeFirstOrThrow();
    assert.equal(user.email, email);
    assert.equal(user.email_verified, true);

    await page.goto(`${origin}/security`);
    await expectHeading(page, 'Security');
    await page.getByRole('heading', { name: 'Linked accounts' }).waitFor();
    await page.getByRole('button', { name: 'Unlink Corp SSO' }).click();
    // The only way in: refused, and said so.
    await page.getByRole('alert').filter({ hasText: 'This is your last way to sign in' }).waitFor();
    await context.close();
  });

  it('when the provider sign-in is refused for an existing account, then the sign-in page says what to do', async () => {
    const { origin, browser } = session;
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${origin}/sign-in?error=account_exists`);
    await expectHeading(page, 'Sign in');
    await page.getByRole('alert').filter({ hasText: 'An account with this email already exists' }).waitFor();
    await context.close();
  });
});
