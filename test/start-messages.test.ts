import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { freePort, startServer } from './helpers/processes.js';

/** What a newcomer reads when a start or a command cannot go on: one line that says what to do (issue #24). */

function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], { env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => resolve({ code, out, err }));
  });
}

const lines = (text: string) => text.split('\n').filter((l) => l.trim());

describe('start and command messages', { timeout: 300_000 }, () => {
  const dirs: string[] = [];
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('when npm start is given a bad setting, then it says so before building anything, in one line, and exits 1', async () => {
    const started = Date.now();
    const child = spawn(process.execPath, ['scripts/prestart.mjs'], { env: { ...process.env, PORT: 'abc' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const code = await new Promise((resolve) => child.on('exit', resolve));
    assert.equal(code, 1);
    assert.deepEqual(lines(out), ['Checking the settings…'], 'nothing compiled');
    assert.deepEqual(lines(err), ['Configuration error: PORT must be a whole number from 0 to 65535, got "abc"']);
    assert.ok(Date.now() - started < 20_000, 'well before a build would have finished');
  });

  for (const scheme of ['postgres', 'mysql']) {
    it(`when DATABASE_URL (${scheme}) points at a port where no database listens, then the start stops with one line naming DATABASE_URL, not the password`, async () => {
      const port = await freePort();
      const { code, out, err } = await run(['src/server.ts'], { DATABASE_URL: `${scheme}://ums:hunter2secret@127.0.0.1:${port}/ums`, WORKERS: '1', PORT: String(await freePort()) });
      assert.equal(code, 1, out + err);
      assert.deepEqual(lines(out + err), [
        `Cannot reach the database at DATABASE_URL (127.0.0.1:${port}, database ums): connection refused. Start the database server, or fix DATABASE_URL (unset, the service uses its embedded database).`,
      ]);
    });
  }

  it('when the server runs on the embedded database, then the CLI says to stop it first (with its pid), not to set DATABASE_URL', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ums-cli-lock-'));
    dirs.push(dir);
    const server = await startServer({ DATA_DIR: dir }, 120_000);
    try {
      const { code, out, err } = await run(['src/cli.ts', 'users', 'list'], { DATA_DIR: dir });
      assert.equal(code, 1);
      assert.equal(out, '');
      assert.deepEqual(lines(err), [
        `The server (process ${server.process.pid}) has the embedded database in ${dir} open, and one process at a time can: ` +
          `stop the server first (Ctrl-C where it runs, or kill ${server.process.pid}), run this command, then start the server again.`,
      ]);
      assert.doesNotMatch(err, /DATABASE_URL/);
    } finally {
      assert.equal(await server.stop(), 0);
    }
    const { code, out } = await run(['src/cli.ts', 'users', 'list'], { DATA_DIR: dir });
    assert.equal(code, 0, 'with the server stopped, the command runs');
    assert.equal(out.trim(), 'No users.');
  });
});
