import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { BACKGROUND_NICENESS } from '../src/thread-priority.js';
import { startServer, type ServerProcess } from './helpers/processes.js';

/** The nice value of each thread of a process (Linux /proc: the 19th field of stat). */
function niceOfThreads(pid: number): Map<number, number> {
  const nice = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    nice.set(Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
  }
  return nice;
}

describe('thread priorities: token checks go before hashing', { skip: process.platform === 'linux' ? false : 'thread priorities are read from Linux /proc' }, () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServer({ WORKERS: '1', DATA_DIR: 'memory://', UV_THREADPOOL_SIZE: '3' }, 60_000);
  });
  after(async () => {
    await server.stop();
  });

  it('when the service runs, then its event loop keeps the normal priority and every other thread (the hashing pool among them) runs lower', async () => {
    // A registration hashes a password: the pool is in use, not just created.
    const username = `prio_${process.pid}`;
    const res = await fetch(`${server.url}/v1/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, name: 'P', dob: '1990-01-01', email: `${username}@example.com`, password: 'violet lantern orbit 4217' }),
    });
    assert.equal(res.status, 201);
    const pid = server.process.pid!;
    const nice = niceOfThreads(pid);
    assert.equal(nice.get(pid), 0, 'the event loop');
    const others = [...nice].filter(([tid]) => tid !== pid);
    assert.ok(others.length >= 3, `the pool's 3 threads are among the others (${others.length})`);
    assert.deepEqual(
      others.filter(([, n]) => n !== BACKGROUND_NICENESS),
      [],
      'no other thread at normal priority',
    );
  });
});
