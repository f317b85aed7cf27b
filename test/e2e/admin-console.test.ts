import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { AdminService } from '../../src/admin/service.js';
import { login, registerUser, uniqueName, type RegisteredUser } from '../helpers/app.js';
import { expectHeading, screenshotDir, skipWithoutChromium, startBrowserSession } from '../helpers/browser.js';

/** The admin console (API-ADMIN.md) in a real browser: a support user, then an administrator. */
describe('admin console (headless Chromium)', { skip: skipWithoutChromium }, () => {
  let session: Awaited<ReturnType<typeof startBrowserSession>>;
  let shots: string;
  let cli: AdminService;
  before(async () => {
    session = await startBrowserSession();
    shots = await screenshotDir();
    cli = new AdminService(session.svc.db);
  });
  after(() => session?.close());

  const shot = (page: Page, name: string) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

  async function signIn(user: RegisteredUser): Promise<Page> {
    const context = await session.browser.newContext({ viewport: { width: 1100, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${session.origin}/sign-in`);
    await expectHeading(page, 'Sign in');
    await page.getByLabel('Username or email', { exact: true }).fill(user.username);
    await page.getByLabel('Password', { exact: true }).fill(user.password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await expectHeading(page, 'My profile');
    return page;
  }

  async function findAndOpen(page: Page, query: string, username: string): Promise<void> {
    await page.getByRole('link', { name: 'Admin', exact: true }).click();
    await expectHeading(page, 'Users');
    await page.getByLabel('Search users', { exact: true }).fill(query);
    await page.keyboard.press('Enter');
    await page.getByRole('link', { name: username, exact: true }).click();
    await expectHeading(page, username);
  }

  it('when a support user finds a user and ends one of their sessions, then it ends, and no action beyond their permissions is offered', async () => {
    const { svc } = session;
    const support = await registerUser(svc.app);
    await cli.changeRole(support.username, 'support', true);
    const target = await registerUser(svc.app, { name: 'Margaret Hamilton' });
    const phone = await login(svc.app, target);
    await login(svc.app, target);

    const page = await signIn(support);
    assert.equal(await page.getByRole('link', { name: 'Roles', exact: true }).count(), 0, 'support cannot read roles');
    await findAndOpen(page, 'hamilton', target.username);
    await shot(page, 'admin-user-support');
    for (const name of ['Delete user', 'Disable user', 'Set password', 'Save roles', 'Send a password reset link', 'Create user']) {
      assert.equal(await page.getByRole('button', { name }).count(), 0, `${name} is not offered to support`);
    }
    const ends = page.getByRole('button', { name: /^End the session/ });
    assert.equal(await ends.count(), 2);
    // The newest session is first: the phone's came first, so it is the second.
    await ends.nth(1).click();
    await page.locator('#main').getByText('Session ended.').waitFor();
    const ended = await svc.db.selectFrom('user_sessions').select(['is_active', 'end_reason']).where('session_id', '=', phone.sessionId).executeTakeFirstOrThrow();
    assert.deepEqual(ended, { is_active: false, end_reason: 'revoked' });
    assert.equal((await svc.app.inject({ method: 'GET', url: '/v1/users/me', headers: { authorization: `Bearer ${phone.accessToken}` } })).statusCode, 401);
    await page.context().close();
  });

  it('when an administrator makes a role, grants it and deletes a user, then the page and the database show each step', async () => {
    const { svc } = session;
    const admin = await registerUser(svc.app);
    await cli.changeRole(admin.username, 'admin', true);
    const tag = uniqueName('crew').replace(/_/g, '');
    const crew: RegisteredUser[] = [];
    for (let i = 0; i < 22; i++) crew.push(await registerUser(svc.app, { username: `${tag}_${String(i).padStart(2, '0')}`, name: `Crew Member ${i}` }));
    const target = crew[0]!;

    const page = await signIn(admin);
    // A role, made on the roles page.
    await page.getByRole('link', { name: 'Roles', exact: true }).click();
    await expectHeading(page, 'Roles');
    await page.getByLabel('Name', { exact: true }).fill('helpdesk');
    await page.getByLabel('Description', { exact: true }).fill('First line of support');
    await page.getByRole('checkbox', { name: 'users:read' }).check();
    await page.getByRole('checkbox', { name: 'sessions:revoke' }).check();
    await page.getByRole('button', { name: 'Make role' }).click();
    await page.locator('[data-role="helpdesk"]').waitFor();
    await shot(page, 'admin-roles');
    const stored = await svc.db.selectFrom('role_permissions').select('permission').where('role_name', '=', 'helpdesk').orderBy('permission').execute();
    assert.deepEqual(stored.map((r) => r.permission), ['sessions:revoke', 'users:read']);

    // Search, with more results on demand.
    await page.getByRole('link', { name: 'Admin', exact: true }).click();
    await expectHeading(page, 'Users');
    await page.getByLabel('Search users', { exact: true }).fill(tag);
    await page.getByRole('button', { name: 'Search' }).click();
    await page.locator('#main').getByText('20 users shown; more are available.').waitFor();
    await page.getByRole('button', { name: 'Show more users' }).click();
    await page.locator('#main').getByText('22 users shown.').waitFor();
    assert.equal(await page.evaluate('document.activeElement?.textContent'), `${tag}_01`, 'focus moves to the first new user');
    assert.equal(await page.getByRole('button', { name: 'Show more users' }).isHidden(), true);
    await shot(page, 'admin-search');

    // A new user, invited by mail to choose a password: the admin never sets or sees one.
    const newcomer = `${tag}_new`;
    await page.getByText('New user', { exact: true }).click();
    await page.getByLabel('Username', { exact: true }).fill(newcomer);
    await page.getByLabel('Full name', { exact: true }).fill('Radia Perlman');
    await page.getByLabel('Date of birth', { exact: true }).fill('1951-12-18');
    await page.getByLabel('Email', { exact: true }).fill(`${newcomer}@example.com`);
    await page.getByRole('button', { name: 'Create user' }).click();
    await expectHeading(page, newcomer);
    const made = await svc.db.selectFrom('users').select(['user_id', 'name', 'email']).where('username', '=', newcomer).executeTakeFirstOrThrow();
    assert.deepEqual([made.name, made.email], ['Radia Perlman', `${newcomer}@example.com`]);
    assert.equal(await svc.db.selectFrom('user_credentials').select('user_id').where('user_id', '=', made.user_id).executeTakeFirst(), undefined, 'no password until the invited person chooses one');
    const created = await svc.db.selectFrom('audit_events').select(['actor_id', 'details']).where('user_id', '=', made.user_id).where('event', '=', 'user_created').executeTakeFirstOrThrow();
    assert.equal(String(created.actor_id), admin.id);
    assert.equal(JSON.parse(created.details!).invited, true);
    await page.getByRole('link', { name: 'Admin', exact: true }).click();
    await expectHeading(page, 'Users');
    await page.getByLabel('Search users', { exact: true }).fill(target.username);
    await page.getByRole('button', { name: 'Search' }).click();

    // Grant the role.
    await page.getByRole('link', { name: target.username, exact: true }).click();
    await expectHeading(page, target.username);
    await page.getByRole('checkbox', { name: /^helpdesk/ }).check();
    await page.getByRole('button', { name: 'Save roles' }).click();
    await page.locator('dd').filter({ hasText: /^helpdesk$/ }).waitFor();
    const held = await svc.db.selectFrom('user_roles').select(['role_name', 'granted_by']).where('user_id', '=', target.id).execute();
    assert.deepEqual(held.map((r) => [r.role_name, String(r.granted_by)]), [['helpdesk', admin.id]]);
    await shot(page, 'admin-user');

    // Delete, once the username is typed.
    const remove = page.getByRole('button', { name: 'Delete user' });
    assert.equal(await remove.isDisabled(), true);
    await page.getByLabel(`Type ${target.username} to confirm`).fill(target.username.slice(0, -1));
    assert.equal(await remove.isDisabled(), true, 'not until the whole username is typed');
    await page.getByLabel(`Type ${target.username} to confirm`).fill(target.username);
    await remove.click();
    await expectHeading(page, 'Users');
    assert.equal(await svc.db.selectFrom('users').select('user_id').where('user_id', '=', target.id).executeTakeFirst(), undefined);
    await page.context().close();
  });
});

describe('second factor required (headless Chromium)', { skip: skipWithoutChromium }, () => {
  let session: Awaited<ReturnType<typeof startBrowserSession>>;
  before(async () => {
    session = await startBrowserSession({}, { mfaRequiredFor: 'roles' });
  });
  after(() => session?.close());

  it('when MFA_REQUIRED_FOR covers a user without a second factor, then signing in takes them straight to the set-up', async () => {
    const user = await registerUser(session.svc.app);
    await new AdminService(session.svc.db).changeRole(user.username, 'support', true);
    const page = await (await session.browser.newContext()).newPage();
    await page.goto(`${session.origin}/sign-in`);
    await expectHeading(page, 'Sign in');
    await page.getByLabel('Username or email', { exact: true }).fill(user.username);
    await page.getByLabel('Password', { exact: true }).fill(user.password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await expectHeading(page, 'Security');
    await page.locator('#announcer').filter({ hasText: 'Set up a second factor' }).waitFor({ state: 'attached' });
    await page.screenshot({ path: join(await screenshotDir(), 'mfa-setup-required.png'), fullPage: true });
    await page.context().close();
  });
});
