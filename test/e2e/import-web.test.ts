import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { PasswordHasher } from '../../src/credentials/hashing.js';
import { ImportService } from '../../src/import/service.js';
import { TEST_ARGON2 } from '../helpers/app.js';
import { expectHeading, skipWithoutChromium, startBrowserSession } from '../helpers/browser.js';

const hashes = JSON.parse(readFileSync('test/fixtures/import/hashes.json', 'utf8')) as { password: string; hashes: Record<string, string> };

/** An imported user in the web app: asked for the date of birth the source did not have, and downloading their data. */
describe('web app: an imported user (headless Chromium)', { skip: skipWithoutChromium }, () => {
  let session: Awaited<ReturnType<typeof startBrowserSession>>;
  before(async () => {
    session = await startBrowserSession();
  });
  after(() => session?.close());

  it('when a user imported without a date of birth signs in, then the profile asks for it and saves it; "Download my data" gives their data and no hash', async () => {
    const { svc, origin, browser } = session;
    const hash = hashes.hashes['bcrypt-2y (htpasswd -B)']!;
    const record = { username: 'web_imported', name: 'Imported Person', email: 'web_imported@example.com', password_hash: hash };
    await new ImportService(svc.db, new PasswordHasher(TEST_ARGON2)).run(Readable.from([JSON.stringify(record)]), { format: 'ndjson', onConflict: 'skip', dryRun: false, context: { ip: null, userAgent: 'test' } });

    const context = await browser.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    await page.goto(`${origin}/sign-in`);
    await expectHeading(page, 'Sign in');
    await page.getByLabel('Username or email', { exact: true }).fill(record.username);
    await page.getByLabel('Password', { exact: true }).fill(hashes.password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await expectHeading(page, 'My profile');

    await page.getByRole('heading', { name: 'Add your date of birth' }).waitFor();
    assert.equal(await page.locator('#profile').getByText('Not given yet').count(), 1);
    await page.getByLabel('Your date of birth', { exact: true }).fill('1985-03-04');
    await page.getByRole('button', { name: 'Save date of birth' }).click();
    await page.getByText('your date of birth is saved').waitFor();
    const row = await svc.db.selectFrom('users').select('dob').where('username', '=', record.username).executeTakeFirstOrThrow();
    assert.equal(row.dob, '1985-03-04');
    // Shown as every calendar date of the app is (web/src/dates.ts), in the browser's locale.
    const shown = await page.evaluate(() => new Intl.DateTimeFormat(undefined, { dateStyle: 'long', timeZone: 'UTC' }).format(new Date(Date.UTC(1985, 2, 4))));
    assert.equal(await page.locator('#profile').getByText(shown).count(), 1);

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download my data' }).click()]);
    assert.equal(download.suggestedFilename(), 'my-data.json');
    const text = await readFile((await download.path())!, 'utf8');
    const data = JSON.parse(text) as { profile: { username: string; dob: string }; sessions: unknown[]; events: Array<{ type: string }> };
    assert.equal(data.profile.username, record.username);
    assert.equal(data.profile.dob, '1985-03-04');
    assert.equal(data.sessions.length, 1);
    assert.ok(data.events.some((e) => e.type === 'user_imported'));
    assert.ok(!text.includes(hash) && !text.includes('$argon2id$'), 'no password hash in the download');
    await context.close();
  });
});
