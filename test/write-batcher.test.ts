import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WriteBatcher } from '../src/db/write-batcher.js';

describe('WriteBatcher (group commit of small writes)', () => {
  it('when writes arrive in the same turn, then they go in one write and each caller gets its own result', async () => {
    const writes: number[][] = [];
    const batcher = new WriteBatcher<number, number>(async (items) => {
      writes.push(items);
      return items.map((n) => n * 10);
    });
    assert.deepEqual(await Promise.all([1, 2, 3].map((n) => batcher.push(n))), [10, 20, 30]);
    assert.deepEqual(writes, [[1, 2, 3]]);
  });

  it('when writes arrive while one is in flight, then they wait for it and go together in the next', async () => {
    const writes: number[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const batcher = new WriteBatcher<number, number>(async (items) => {
      writes.push(items);
      if (writes.length === 1) await gate;
      return items;
    });
    const first = batcher.push(1);
    await new Promise((r) => setImmediate(r)); // the first write is under way
    const later = [2, 3, 4].map((n) => batcher.push(n));
    assert.equal(batcher.pending, 3);
    release();
    assert.deepEqual(await Promise.all([first, ...later]), [1, 2, 3, 4]);
    assert.deepEqual(writes, [[1], [2, 3, 4]]);
  });

  it('when a write of several fails, then each is tried alone and only the bad one fails', async () => {
    const batcher = new WriteBatcher<number, number>(async (items) => {
      if (items.includes(13)) throw new Error('13 is refused');
      return items;
    });
    const results = await Promise.allSettled([12, 13, 14].map((n) => batcher.push(n)));
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    assert.equal((results[1] as PromiseRejectedResult).reason.message, '13 is refused');
  });

  it('when the database cannot be reached, then every write of the batch fails at once, without one try each', async () => {
    let writes = 0;
    const batcher = new WriteBatcher<number, number>(async () => {
      writes++;
      throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    });
    const results = await Promise.allSettled([1, 2, 3].map((n) => batcher.push(n)));
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected', 'rejected']);
    assert.equal(writes, 1);
    assert.equal(await batcher.push(4).catch(() => 'refused again'), 'refused again', 'the batcher still works after a failed batch');
  });

  it('when more than the largest batch waits, then they go in batches of at most that size', async () => {
    const sizes: number[] = [];
    const batcher = new WriteBatcher<number, number>(async (items) => {
      sizes.push(items.length);
      return items;
    }, 4);
    await Promise.all(Array.from({ length: 10 }, (_, i) => batcher.push(i)));
    assert.deepEqual(sizes, [4, 4, 2]);
  });
});
