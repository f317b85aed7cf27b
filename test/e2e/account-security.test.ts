import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TOTP } from 'otpauth';
import type { BrowserContext, Page } from 'playwright-core';
import { GOOD_PASSWORD, registerUser } from '../helpers/app.js';
import { mailSettled, Outbox, tokenFrom } from '../helpers/mail.js';
import { expectHeading, screenshotDir, skipWithoutChromium, startBrowserSession } from '../helpers/browser.js';

/**
 * Second factors in a real browser: an authenticator app set up from the security page, and a
 * passkey added, used to sign in and removed, with Chromium's virtual authenticator (the
 * DevTools protocol's WebAuthn domain) standing in for Touch ID or a security key.
 */
describe('security page: authenticator app and passkeys (headless Chromium)', { skip: skipWithoutChromium }, () => {
  let session: Awaited<ReturnType<typeof startBrowserSession>>;
  let shots: string;
  const outbox = new Outbox();
  before(async () => {
    session = await startBrowserSession({}, { outboxDir: outbox.dir });
    shots = await screenshotDir();
  });
  after(async () => {
    await session?.close();
    outbox.remove();
  });

  const shot = (page: Page, name: string) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  const fill = (page: Page, label: string, value: string) => page.getByLabel(label, { exact: true }).fill(value);

  async function withVirtualAuthenticator(context: BrowserContext, page: Page): Promise<void> {
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });
  }

  async function passwordSignIn(page: Page, username: string, password: string): Promise<void> {
    await page.goto(`${session.origin}/sign-in`);
    await expectHeading(page, 'Sign in');
    await fill(page, 'Username or email', username);
    await fill(page, 'Password', password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  }

  async function signOut(page: Page): Promise<void> {
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await expectHeading(page, 'Sign in');
  }

  const sessionAmr = async (userId: string) =>
    (await session.svc.db.selectFrom('user_sessions').select('amr').where('user_id', '=', userId).orderBy('session_id', 'desc').executeTakeFirstOrThrow()).amr;

  it('when a user turns on the authenticator app, adds a passkey, signs in with each and removes the passkey, then every step shows and the database agrees', async () => {
    const { svc, browser } = session;
    const user = await registerUser(svc.app);
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
    const page = await context.newPage();
    await withVirtualAuthenticator(context, page);

    await passwordSignIn(page, user.username, user.password);
    await expectHeading(page, 'My profile');
    await page.getByRole('link', { name: 'Security' }).click();
    await expectHeading(page, 'Security');

    // Authenticator app: password, QR code, a code from the app, ten recovery codes shown once.
    await fill(page, 'Password to turn it on', GOOD_PASSWORD);
    await page.getByRole('button', { name: 'Set up' }).click();
    await page.getByRole('img', { name: /QR code/ }).waitFor();
    const secret = (await page.locator('#totp-secret').innerText()).trim();
    await shot(page, 'totp-setup');
    const totp = new TOTP({ secret, digits: 6, period: 30, algorithm: 'SHA1' });
    await fill(page, 'Code from the app', totp.generate());
    await page.getByRole('button', { name: 'Turn on' }).click();
    await page.locator('#recovery-codes').waitFor();
    const codes = (await page.locator('#recovery-codes li').allInnerTexts()).map((c) => c.trim());
    assert.equal(codes.length, 10);
    await shot(page, 'recovery-codes');
    await page.getByRole('button', { name: 'I saved them' }).click();
    await page.locator('#main').getByText('On. 10 recovery codes left.').waitFor();

    // Passkey: added from the security page with the virtual authenticator.
    await fill(page, 'Name of the new passkey', 'Test key');
    await page.getByRole('button', { name: 'Add a passkey' }).click();
    await page.locator('#passkeys li', { hasText: 'Test key' }).waitFor();
    const stored = await svc.db.selectFrom('user_passkeys').selectAll().where('user_id', '=', user.id).execute();
    assert.equal(stored.length, 1);
    await shot(page, 'security');

    // Sign in with the passkey alone: no password, no second step.
    await signOut(page);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await expectHeading(page, 'My profile');
    assert.equal(await sessionAmr(user.id), 'swk mfa');
    await page.reload(); // the passkey sign-in set the refresh cookie too
    await expectHeading(page, 'My profile');

    // A password sign-in now asks for the second step; a recovery code gets through, once.
    await signOut(page);
    await passwordSignIn(page, user.username, user.password);
    await page.getByRole('heading', { name: 'Two-step verification' }).waitFor();
    await shot(page, 'sign-in-second-step');
    await fill(page, 'Code', codes[0]!);
    await page.getByRole('button', { name: 'Verify' }).click();
    await expectHeading(page, 'My profile');
    assert.equal(await sessionAmr(user.id), 'pwd otp mfa');
    await page.reload(); // and so did the second step
    await expectHeading(page, 'My profile');

    // Remove the passkey (the session is minutes old): gone from the list and the database.
    await page.getByRole('link', { name: 'Security' }).click();
    await expectHeading(page, 'Security');
    await page.locator('#main').getByText('On. 9 recovery codes left.').waitFor();
    await page.getByRole('button', { name: 'Remove passkey Test key' }).click();
    await page.locator('#main').getByText('No passkey yet.', { exact: false }).waitFor();
    assert.equal((await svc.db.selectFrom('user_passkeys').select('user_id').where('user_id', '=', user.id).execute()).length, 0);
    await context.close();
  });

  it('when a user verifies the email from the mail, forgets the password, resets it from the mailed link and deletes the account, then each page shows it and the database agrees', async () => {
    const { svc, origin, browser } = session;
    const user = await registerUser(svc.app);
    const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
    const page = await context.newPage();
    const latestLink = async (kind: 'verify-email' | 'reset-password') => {
      await mailSettled(svc.app);
      const mails = await outbox.messages(user.email);
      return `${origin}/${kind}#token=${tokenFrom(mails.at(-1)!, kind, origin)}`;
    };

    // The verification link of the registration mail.
    await page.goto(await latestLink('verify-email'));
    await expectHeading(page, 'Verify email');
    await page.locator('#main').getByText('Your email address is verified.').waitFor();
    await shot(page, 'verify-email');
    assert.equal(new URL(page.url()).hash, '', 'the token leaves the address bar');
    const verified = await svc.db.selectFrom('users').select('email_verified').where('user_id', '=', user.id).executeTakeFirstOrThrow();
    assert.equal(verified.email_verified, true);

    // Forgot password: the same answer for any address; the link comes by mail.
    await page.goto(`${origin}/sign-in`);
    await page.getByRole('link', { name: 'Forgot your password?' }).click();
    await expectHeading(page, 'Forgot password');
    await fill(page, 'Email', user.email);
    await page.getByRole('button', { name: 'Send the link' }).click();
    await page.locator('#main').getByText('If an account uses that address').waitFor();
    await shot(page, 'forgot-password');
    await page.goto(await latestLink('reset-password'));
    await expectHeading(page, 'Choose a new password');
    assert.equal(new URL(page.url()).hash, '');
    await fill(page, 'New password', user.password);
    await page.getByRole('button', { name: 'Set new password' }).click();
    await page.locator('#f-new_password-error').filter({ hasText: /\w/ }).waitFor(); // the last-5 rule, next to its field
    const newPassword = 'harbour violet engine 5521';
    await fill(page, 'New password', newPassword);
    await shot(page, 'reset-password');
    await page.getByRole('button', { name: 'Set new password' }).click();
    await page.locator('#main').getByText('Your password is changed.').waitFor();
    await page.getByRole('link', { name: 'Sign in with it' }).click();
    await passwordSignIn(page, user.username, newPassword);
    await expectHeading(page, 'My profile');

    // Delete the account: signed out, every row gone, the username free.
    await fill(page, 'Password to confirm', newPassword);
    await page.getByRole('button', { name: 'Delete my account' }).click();
    await expectHeading(page, 'Sign in');
    const left = await svc.db.selectFrom('users').select('user_id').where('user_id', '=', user.id).execute();
    assert.deepEqual(left, []);
    assert.equal((await svc.db.selectFrom('user_sessions').select('session_id').where('user_id', '=', user.id).execute()).length, 0);
    await context.close();
  });
});
