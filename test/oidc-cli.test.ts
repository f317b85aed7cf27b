import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openDatabase } from '../src/db/create-db.js';
import { hashSecret } from '../src/core/secrets.js';
import { createServerDatabase, serverUrl } from './helpers/app.js';

// API-FEDERATION.md B: clients create|list|show|rotate-secret|delete on the command line.

function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

describe('clients on the command line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ums-oidc-cli-'));
  let server: Awaited<ReturnType<typeof createServerDatabase>> | undefined;
  let env: Record<string, string>;
  before(async () => {
    server = serverUrl ? await createServerDatabase(serverUrl) : undefined;
    env = server ? { DATABASE_URL: server.url, DATA_DIR: dir } : { DATA_DIR: dir };
  });
  after(async () => {
    await server?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('when a client is created, then its secret is printed once and stored hashed; rotate-secret replaces it; a bad redirect URI is exit 1 saying why', async () => {
    const made = await cli(['clients', 'create', '--name', 'Sample app', '--type', 'confidential', '--redirect-uri', 'http://localhost:4000/cb', '--first-party', '--json'], env);
    assert.equal(made.code, 0, made.stderr);
    const client = JSON.parse(made.stdout);
    assert.equal(client.first_party, true);
    assert.deepEqual(client.redirect_uris, ['http://localhost:4000/cb']);
    assert.match(client.client_secret, /^[A-Za-z0-9_-]{43}$/);

    const rotated = await cli(['clients', 'rotate-secret', client.client_id], env);
    assert.equal(rotated.code, 0, rotated.stderr);
    const secret = /client_secret: (\S+)/.exec(rotated.stdout)![1]!;
    assert.notEqual(secret, client.client_secret);
    assert.match(rotated.stdout, /shown once/);

    const bad = await cli(['clients', 'create', '--name', 'x', '--type', 'public', '--redirect-uri', 'http://evil.example/cb'], env);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /redirect_uris\/0: plain http only on a loopback host/);

    // One client, stored with the hash of the newest secret only.
    const db = await openDatabase({ databaseUrl: server?.url, pgliteDir: dir });
    try {
      const rows = await db.kysely.selectFrom('oauth_clients').select(['client_id', 'secret_hash']).execute();
      assert.deepEqual(rows, [{ client_id: client.client_id, secret_hash: hashSecret(secret) }]);
    } finally {
      await db.close();
    }
  });
});
