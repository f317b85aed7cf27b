import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { loadConfig } from '../src/config.js';
import { uniqueViolation } from '../src/db/errors.js';
import { insertUser } from '../src/users/repository.js';
import { mysqlServer, startTestService, type TestService } from './helpers/app.js';

/**
 * What MySQL/MariaDB must do as PostgreSQL does, checked on the database itself (the rest of the
 * suite checks it through the HTTP contract). Runs when TEST_DATABASE_URL is a mysql:// URL.
 */
describe('settings', () => {
  it('when DATABASE_URL is a mysql:// or mariadb:// URL, then it is accepted; another scheme is refused', () => {
    assert.equal(loadConfig({ DATABASE_URL: 'mysql://u:p@db:3306/app' }).databaseUrl, 'mysql://u:p@db:3306/app');
    assert.equal(loadConfig({ DATABASE_URL: 'mariadb://u@db/app' }).databaseUrl, 'mariadb://u@db/app');
    assert.throws(() => loadConfig({ DATABASE_URL: 'sqlite://x' }), /postgres:\/\/, postgresql:\/\/, mysql:\/\/ or mariadb:\/\//);
  });
});

describe('MySQL/MariaDB dialect', { skip: mysqlServer ? false : 'needs TEST_DATABASE_URL=mysql://… (a MySQL or MariaDB server)' }, () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService();
  });
  after(() => svc.close());

  it('when names differ by case only they collide, by accents only they do not (utf8mb4_bin and lower-cased keys)', async () => {
    await insertUser(svc.db, { username: 'ana', name: 'A', dob: '1990-01-01', email: 'ana@example.com' });
    await assert.rejects(
      insertUser(svc.db, { username: 'ANA', name: 'A', dob: '1990-01-01', email: 'ana2@example.com' }),
      (err) => uniqueViolation(err) === 'users_username_key_unique',
    );
    const accented = await insertUser(svc.db, { username: 'ána', name: 'A', dob: '1990-01-01', email: 'ána@example.com' });
    assert.equal(accented.username, 'ána', 'utf8mb4 keeps the accent');
    await assert.rejects(
      insertUser(svc.db, { username: 'other', name: 'A', dob: '1990-01-01', email: 'ANA@EXAMPLE.COM' }),
      (err) => uniqueViolation(err) === 'users_email_key_unique',
    );
    const emoji = await insertUser(svc.db, { username: 'emoji', name: 'Ada 🦄', dob: '1990-01-01', email: 'emoji@example.com' });
    assert.equal(emoji.name, 'Ada 🦄');
  });

  it('when rows come back, then ids are strings, dates are YYYY-MM-DD, timestamps are UTC with milliseconds and booleans are booleans', async () => {
    const user = await insertUser(svc.db, { username: 'types', name: 'T', dob: '1990-12-10', email: 'types@example.com' });
    assert.equal(typeof user.user_id, 'string');
    assert.equal(user.dob, '1990-12-10');
    assert.equal(user.email_verified, false);
    assert.ok(user.created_at instanceof Date);
    assert.ok(Math.abs(user.created_at.getTime() - Date.now()) < 60_000, 'UTC, not shifted by a time zone');
    const { rows } = await sql<{ t: Date }>`select current_timestamp(3) as t`.execute(svc.db);
    const stamps = await Promise.all([0, 1, 2, 3, 4].map(async () => (await sql<{ t: Date }>`select current_timestamp(3) as t`.execute(svc.db)).rows[0]!.t.getMilliseconds()));
    assert.ok(rows[0]!.t instanceof Date);
    assert.ok(stamps.some((ms) => ms !== 0), 'milliseconds are kept');
  });

  it('when two transactions deadlock, then the victim is retried once inside the service and both succeed', async () => {
    const a = await insertUser(svc.db, { username: 'dl_a', name: 'A', dob: '1990-01-01', email: 'dl_a@example.com' });
    const b = await insertUser(svc.db, { username: 'dl_b', name: 'B', dob: '1990-01-01', email: 'dl_b@example.com' });
    let attempts = 0;
    let arrived = 0;
    let release: () => void = () => {};
    const bothLocked = new Promise<void>((resolve) => (release = resolve));
    const crosswise = (first: string, second: string) =>
      svc.db.transaction().execute(async (trx) => {
        attempts++;
        await trx.updateTable('users').set({ name: sql`concat(name, '.')` }).where('user_id', '=', first).execute();
        if (++arrived === 2) release();
        await bothLocked;
        await trx.updateTable('users').set({ name: sql`concat(name, '.')` }).where('user_id', '=', second).execute();
      });
    await Promise.all([crosswise(a.user_id, b.user_id), crosswise(b.user_id, a.user_id)]);
    assert.equal(attempts, 3, 'one of the two ran again');
    const names = await svc.db.selectFrom('users').select('name').where('user_id', 'in', [a.user_id, b.user_id]).orderBy('user_id').execute();
    assert.deepEqual(names.map((r) => r.name), ['A..', 'B..']);
  });
});
