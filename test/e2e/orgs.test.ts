import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { registerUser } from '../helpers/app.js';
import { expectHeading, screenshotDir, skipWithoutChromium, startBrowserSession } from '../helpers/browser.js';
import { mailSettled, startSmtpServer, type ReceivedMail } from '../helpers/mail.js';

/** Organizations in a real browser (API-ORGS.md): make one, invite by mail, accept, switch, remove. */
describe('organizations in the web app (headless Chromium)', { skip: skipWithoutChromium }, () => {
  let session: Awaited<ReturnType<typeof startBrowserSession>>;
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  before(async () => {
    smtp = await startSmtpServer();
    session = await startBrowserSession({ SMTP_URL: smtp.url });
  });
  after(async () => {
    await session?.close();
    await smtp?.close();
  });

  async function signIn(context: BrowserContext, login: string, password: string): Promise<Page> {
    const page = await context.newPage();
    await page.goto(`${session.origin}/sign-in`);
    await expectHeading(page, 'Sign in');
    await page.getByLabel('Username or email', { exact: true }).fill(login);
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await expectHeading(page, 'My profile');
    return page;
  }

  async function mailTo(to: string, subject: RegExp): Promise<ReceivedMail> {
    await mailSettled(session.svc.app);
    const mail = smtp.messages.filter((m) => m.to === to && subject.test(m.subject)).at(-1);
    assert.ok(mail, `no mail "${subject}" to ${to}`);
    return mail;
  }

  const linkIn = (mail: ReceivedMail, page: string) => {
    const match = new RegExp(`${session.origin}/${page}#token=[A-Za-z0-9_-]+`).exec(mail.text);
    assert.ok(match, `no ${page} link in ${mail.text}`);
    return match[0];
  };

  it('when an owner makes an organization and invites a colleague by email, then the colleague accepts from the mailed link, switches to it, and is removed', async () => {
    const { svc, origin, browser } = session;
    const ada = await registerUser(svc.app, { name: 'Ada Lovelace', username: 'ada_lovelace', email: 'ada@example.com' });
    const grace = await registerUser(svc.app, { name: 'Grace Hopper', username: 'grace_hopper', email: 'grace@example.com' });
    const slug = 'analytical-engines';

    // The owner makes the organization.
    const adaContext = await browser.newContext({ viewport: { width: 1100, height: 900 } });
    const owner = await signIn(adaContext, ada.username, ada.password);
    await owner.getByRole('link', { name: 'Organizations' }).click();
    await expectHeading(owner, 'Organizations');
    await owner.getByLabel('Name', { exact: true }).fill('Analytical Engines');
    await owner.getByLabel('Slug', { exact: true }).fill(slug);
    await owner.getByRole('button', { name: 'Make organization' }).click();
    await expectHeading(owner, 'Analytical Engines');
    const org = await svc.db.selectFrom('organizations').selectAll().where('slug', '=', slug).executeTakeFirstOrThrow();

    // ... and invites a colleague by email, as a member.
    await owner.getByLabel('Email to invite', { exact: true }).fill(grace.email);
    await owner.getByRole('button', { name: 'Send invitation' }).click();
    await owner.getByText(`${grace.email} as member`).waitFor();
    const invitation = linkIn(await mailTo(grace.email, /invited to join Analytical Engines/), 'accept-invitation');

    // The colleague confirms the address, opens the link and joins.
    const graceContext = await browser.newContext();
    const colleague = await signIn(graceContext, grace.username, grace.password);
    await colleague.goto(linkIn(await mailTo(grace.email, /Confirm your email/), 'verify-email'));
    await colleague.getByText('Your email address is verified').waitFor();
    await colleague.goto(invitation);
    await expectHeading(colleague, 'Accept the invitation');
    assert.equal(new URL(colleague.url()).hash, '', 'the token leaves the address bar');
    await colleague.getByRole('button', { name: 'Accept and join' }).click();
    await expectHeading(colleague, 'Organizations');
    const joined = await svc.db.selectFrom('org_members').select('role').where('org_id', '=', org.org_id).where('user_id', '=', grace.id).executeTakeFirstOrThrow();
    assert.equal(joined.role, 'member');

    // The colleague switches to the organization: the session speaks for it.
    await colleague.getByLabel('Act for').selectOption({ label: 'Analytical Engines' });
    await colleague.getByRole('button', { name: 'Switch' }).click();
    await colleague.getByText('(active)').waitFor();
    const chosen = await svc.db.selectFrom('session_orgs').innerJoin('user_sessions', 'user_sessions.session_id', 'session_orgs.session_id').select('session_orgs.org_id').where('user_sessions.user_id', '=', grace.id).executeTakeFirstOrThrow();
    assert.equal(String(chosen.org_id), String(org.org_id));
    // A member sees the members, but no way to manage them.
    await colleague.getByRole('link', { name: 'Analytical Engines' }).click();
    await expectHeading(colleague, 'Analytical Engines');
    assert.equal(await colleague.getByRole('button', { name: 'Remove' }).count(), 0);
    assert.equal(await colleague.getByRole('button', { name: 'Send invitation' }).count(), 0);

    // The owner's page shows the two members: the README's picture.
    await owner.reload();
    await expectHeading(owner, 'Analytical Engines');
    await owner.getByText('2 members').waitFor();
    await owner.screenshot({ path: join(await screenshotDir(), 'organization.png'), fullPage: true });

    // The owner removes the colleague; the colleague's next request speaks for no organization.
    await owner.getByRole('button', { name: 'Remove' }).click();
    await owner.getByText('1 member', { exact: true }).waitFor();
    assert.equal(await svc.db.selectFrom('org_members').select('role').where('org_id', '=', org.org_id).where('user_id', '=', grace.id).executeTakeFirst(), undefined);
    await colleague.getByRole('link', { name: 'Organizations' }).click();
    await expectHeading(colleague, 'Organizations');
    await colleague.getByText('You belong to no organization yet').waitFor();
    assert.equal(origin.startsWith('http://localhost:'), true);
    await adaContext.close();
    await graceContext.close();
  });
});
