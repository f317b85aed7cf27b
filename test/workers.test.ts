import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { createServerDatabase, serverUrl } from './helpers/app.js';
import { startServer, type ServerProcess } from './helpers/processes.js';

function workersOf(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

describe('WORKERS: one instance, several processes', { skip: serverUrl ? false : 'needs TEST_DATABASE_URL (a PostgreSQL or MySQL/MariaDB server)' }, () => {
  let database: { url: string; drop: () => Promise<void> };
  let server: ServerProcess;
  before(async () => {
    database = await createServerDatabase(serverUrl!);
    server = await startServer({ DATABASE_URL: database.url, WORKERS: '2', DATA_DIR: '/nonexistent' }, 60_000);
  });
  after(async () => {
    assert.equal(await server.stop(), 0, 'the supervisor drains its workers and exits 0 on SIGTERM');
    await database.drop();
  });

  it('when a worker crashes, then the supervisor starts another and the service keeps answering', { timeout: 60_000 }, async () => {
    assert.match(server.output(), /Workers: 2/);
    const before = workersOf(server.process.pid!);
    assert.equal(before.length, 2);
    process.kill(before[0]!, 'SIGKILL');
    const end = Date.now() + 30_000;
    let now: number[] = [];
    while (Date.now() < end) {
      now = workersOf(server.process.pid!);
      if (now.length === 2 && !now.includes(before[0]!)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(now.length, 2, 'two workers again');
    assert.ok(!now.includes(before[0]!));
    let ok = 0;
    for (let i = 0; i < 10; i++) if ((await fetch(`${server.url}/readyz`)).status === 200) ok++;
    assert.equal(ok, 10);
    assert.match(server.output(), /exited \(SIGKILL\); starting another/);
  });
});
