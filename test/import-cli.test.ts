import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openDatabase } from '../src/db/create-db.js';
import { createServerDatabase, serverUrl } from './helpers/app.js';

/**
 * The command line's `users import` and `users export`, run as processes against a database of
 * their own (an embedded one in a temporary DATA_DIR, or a fresh one on the test server).
 */

interface Counts {
  users: number;
  emails: number;
  imported_events: number;
  exported_events: number;
}

interface Target {
  env: Record<string, string>;
  counts(): Promise<Counts>;
  drop(): Promise<void>;
}

async function newTarget(): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), 'ums-import-cli-'));
  const server = serverUrl ? await createServerDatabase(serverUrl) : undefined;
  const env: Record<string, string> = server ? { DATABASE_URL: server.url, DATA_DIR: dir } : { DATA_DIR: dir };
  return {
    env,
    async counts() {
      // The embedded database has one owner at a time: opened only while no command runs.
      const db = await openDatabase({ databaseUrl: server?.url, pgliteDir: dir });
      try {
        const k = db.kysely;
        const events = (event: string) => k.selectFrom('audit_events').select((eb) => eb.fn.countAll<string>().as('n')).where('event', '=', event).executeTakeFirstOrThrow();
        const [users, emails, imported, exported] = await Promise.all([
          k.selectFrom('users').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
          k.selectFrom('users').select((eb) => eb.fn.count<string>('email_key').distinct().as('n')).executeTakeFirstOrThrow(),
          events('user_imported'),
          events('users_exported'),
        ]);
        return { users: Number(users.n), emails: Number(emails.n), imported_events: Number(imported.n), exported_events: Number(exported.n) };
      } finally {
        await db.close();
      }
    },
    async drop() {
      await server?.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI; `onStderr` may kill it. */
function cli(args: string[], env: Record<string, string>, onStderr?: (text: string, kill: () => void) => void): Promise<Run> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => {
    stderr += d;
    onStderr?.(stderr, () => child.kill('SIGKILL'));
  });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, stdout, stderr })));
}
const reportOf = (run: Run) => JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { created: number; updated: number; skipped: number; failed: number; errors: unknown[] };

describe('users import and users export (command line)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ums-import-files-'));
  let target: Target;
  before(async () => {
    target = await newTarget();
  });
  after(async () => {
    await target.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('when an import is killed mid-file and run again, then every user is there once', async () => {
    const total = 12_000;
    const file = join(dir, 'many.ndjson');
    writeFileSync(file, Array.from({ length: total }, (_, i) => JSON.stringify({ username: `bulk_${i}`, name: `Bulk ${i}`, email: `bulk_${i}@example.com`, password_hash: '$2b$05$tG1Lm7YQWG/LX.3Mwn4a/epoA9xNi1Ojx69aKrlGDfLMR.c90n6/C' })).join('\n') + '\n');
    const args = ['users', 'import', file, '--batch-size', '300', '--progress'];

    // Killed (SIGKILL: no clean-up of any kind) as soon as the first batches are in.
    const killed = await cli(args, target.env, (text, kill) => {
      if (/^\d+ records/m.test(text)) kill();
    });
    assert.equal(killed.signal, 'SIGKILL', `it was killed, not finished: ${killed.stderr}`);
    const partial = (await target.counts()).users;
    assert.ok(partial > 0 && partial < total, `some users came, not all: ${partial}`);
    assert.equal(partial % 300, 0, 'only whole batches were written');

    const again = await cli(args, target.env);
    assert.equal(again.code, 0, again.stderr);
    const report = reportOf(again);
    assert.equal(report.skipped, partial, 'the users of the first run are skipped');
    assert.equal(report.created, total - partial);
    const counts = await target.counts();
    assert.equal(counts.users, total);
    assert.equal(counts.emails, total, 'every user once');
    assert.equal(counts.imported_events, total);
  });

  it('when a file has bad records, then the report is the last line, exit code 3, and no progress off a terminal', async () => {
    const file = join(dir, 'bad.ndjson');
    writeFileSync(file, `${JSON.stringify({ username: 'cli_ok', email: 'cli_ok@example.com' })}\nnot json\n`);
    const run = await cli(['users', 'import', file], target.env);
    assert.equal(run.code, 3);
    assert.deepEqual(reportOf(run), { created: 1, updated: 0, skipped: 0, failed: 1, errors: [{ line: 2, field: null, message: 'is not valid JSON' }] });
    assert.equal(run.stderr, '', 'no progress lines when stderr is not a terminal');
  });

  it('when an option is wrong, then a usage error and exit 2, before anything is read', async () => {
    const run = await cli(['users', 'import', 'test/fixtures/import/users.ndjson', '--on-conflict', 'merge'], target.env);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /--on-conflict must be skip, update or fail/);
    const firebase = await cli(['users', 'import', 'test/fixtures/import/firebase-users.json', '--format', 'firebase', '--firebase-rounds', '8'], target.env);
    assert.equal(firebase.code, 2);
    assert.match(firebase.stderr, /all four --firebase-\* parameters/);
  });

  it('when users are exported, then the file holds each as an import record with its hash, readable by its owner only, with a warning and an audit event; it imports elsewhere as it was', async () => {
    await target.drop();
    target = await newTarget();
    const imported = await cli(['users', 'import', 'test/fixtures/import/users.ndjson'], target.env);
    assert.equal(imported.code, 0, imported.stderr);
    const out = join(dir, 'export.ndjson');
    const run = await cli(['users', 'export', '--out', out], target.env);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /password hash: treat it as a secret/);
    assert.equal(statSync(out).mode & 0o777, 0o600);
    const records = readFileSync(out, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    const counts = await target.counts();
    assert.equal(records.length, counts.users);
    const ada = records.find((r) => r.username === 'ada_l');
    const source = JSON.parse(readFileSync('test/fixtures/import/users.ndjson', 'utf8').split('\n')[0]!) as Record<string, unknown>;
    assert.deepEqual(ada, { ...source, created_at: '2019-04-01T10:00:00.000Z' });
    assert.equal(counts.exported_events, 1);

    // Into another database, the same users come.
    const elsewhere = await newTarget();
    try {
      const back = await cli(['users', 'import', out], elsewhere.env);
      assert.equal(back.code, 0, back.stderr);
      assert.equal(reportOf(back).created, records.length);
      const again = await cli(['users', 'export'], elsewhere.env);
      assert.deepEqual(again.stdout.trim().split('\n').map((line) => JSON.parse(line)), records);
    } finally {
      await elsewhere.drop();
    }
  });
});
