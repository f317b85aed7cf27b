import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

/** The command line's webhooks commands, on an embedded database in a directory of its own. */
function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
}

describe('command line: webhooks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ums-webhooks-cli-'));
  const env = { DATA_DIR: dir, DATABASE_URL: '' };
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('when an endpoint is added, listed and removed, then the secret is printed once, the list shows none, and a private address is refused with exit 1', { timeout: 240_000 }, async () => {
    const added = await cli(['webhooks', 'add', 'https://hooks.example.com/users', '--events', 'user.created,user.deleted', '--json'], env);
    assert.equal(added.code, 0, added.stderr);
    const made = JSON.parse(added.stdout);
    assert.match(made.secret, /^whsec_/);
    assert.deepEqual(made.events, ['user.created', 'user.deleted']);
    const listed = await cli(['webhooks', 'list', '--json'], env);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(JSON.parse(listed.stdout).webhooks.map((w: { id: string }) => w.id), [made.id]);
    assert.ok(!listed.stdout.includes('whsec_'));
    const refused = await cli(['webhooks', 'add', 'http://169.254.169.254/latest', '--events', '*'], env);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /url: must reach a public address/);
    const removed = await cli(['webhooks', 'remove', made.id], env);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal((await cli(['webhooks', 'remove', made.id], env)).code, 1);
    assert.equal((await cli(['webhooks', 'add', 'https://x.example.com'], env)).code, 2, 'no --events: bad usage');
  });
});
