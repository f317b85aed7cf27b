import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { collectWhenIdle } from '../src/idle-collection.js';

/**
 * Waits until `done()` holds, for at most `limitMs`: a collection that should come is waited for,
 * not given a fixed time that a slow moment of a shared machine could overrun.
 */
async function until(done: () => boolean, limitMs = 3000): Promise<void> {
  for (const start = Date.now(); !done() && Date.now() - start < limitMs; ) await sleep(5);
}

describe('idle collection', () => {
  const IDLE_MS = 20;

  it('when no request came, then nothing is collected', async () => {
    let collections = 0;
    const idle = collectWhenIdle({ idleMs: IDLE_MS, minRequests: 2, collect: () => collections++ });
    await sleep(IDLE_MS * 8);
    idle.stop();
    assert.equal(collections, 0);
  });

  it('when requests stop, then one collection runs, and no other until requests come again', async () => {
    let collections = 0;
    const idle = collectWhenIdle({ idleMs: IDLE_MS, minRequests: 2, collect: () => collections++ });
    idle.touch();
    idle.touch();
    await until(() => collections > 0);
    assert.equal(collections, 1);
    await sleep(IDLE_MS * 5);
    assert.equal(collections, 1, 'an idle process is not collected again');
    idle.touch();
    idle.touch();
    await until(() => collections > 1);
    assert.equal(collections, 2);
    idle.stop();
  });

  it('while requests keep coming, then nothing is collected', async () => {
    let collections = 0;
    // A request every 10 ms must never leave a whole interval empty; 500 ms leaves room for a
    // stalled moment of a shared machine.
    const idle = collectWhenIdle({ idleMs: 500, minRequests: 2, collect: () => collections++ });
    for (let i = 0; i < 120; i++) {
      idle.touch();
      await sleep(10);
    }
    assert.equal(collections, 0);
    await until(() => collections > 0);
    assert.equal(collections, 1);
    idle.stop();
  });

  it('when fewer requests than the minimum came (a health check now and then), then nothing is collected', async () => {
    let collections = 0;
    const idle = collectWhenIdle({ idleMs: IDLE_MS, minRequests: 3, collect: () => collections++ });
    idle.touch();
    await sleep(IDLE_MS * 4);
    idle.touch();
    await sleep(IDLE_MS * 6);
    assert.equal(collections, 0, 'two requests, apart');
    idle.touch();
    await until(() => collections > 0);
    assert.equal(collections, 1, 'the third brings it to the minimum');
    idle.stop();
  });

  it('when stopped, then requests lead to no collection', async () => {
    let collections = 0;
    const idle = collectWhenIdle({ idleMs: IDLE_MS, minRequests: 2, collect: () => collections++ });
    idle.stop();
    idle.touch();
    await sleep(IDLE_MS * 8);
    assert.equal(collections, 0);
  });
});
