import { isDatabaseUnavailable } from './errors.js';

/**
 * Group commit for small writes that many requests make at once (audit rows, throttling
 * counters): each caller still waits until its own write is in the database, but writes that
 * arrive while one is in flight go together in the next statement. Idle, a write goes out on its
 * own at once; under load, one round trip serves many requests, which is what bounds the
 * refresh and login rates on a shared machine (every statement is a system call each way).
 */
export class WriteBatcher<Item, Result> {
  #queue: Array<{ item: Item; resolve: (result: Result) => void; reject: (err: unknown) => void }> = [];
  #flushing = false;

  /**
   * @param write writes the items in one go and answers one result per item, in order. If it
   *   throws for a batch of several, each item is tried alone, so one bad item fails only itself;
   *   if the database is unreachable, all of them fail at once.
   */
  constructor(
    private readonly write: (items: Item[]) => Promise<Result[]>,
    private readonly maxBatch = 500,
  ) {}

  push(item: Item): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      if (!this.#flushing) {
        this.#flushing = true;
        // Writes made in the same turn of the event loop join the first statement.
        queueMicrotask(() => void this.#flush());
      }
    });
  }

  /** Items waiting or being written. */
  get pending(): number {
    return this.#queue.length;
  }

  async #flush(): Promise<void> {
    try {
      while (this.#queue.length) {
        const batch = this.#queue.splice(0, this.maxBatch);
        try {
          const results = await this.write(batch.map((entry) => entry.item));
          batch.forEach((entry, i) => entry.resolve(results[i]!));
        } catch (err) {
          if (batch.length === 1 || isDatabaseUnavailable(err)) {
            for (const entry of batch) entry.reject(err);
            continue;
          }
          // One bad item (a value the database refuses) fails only itself: the others, one by one.
          for (const entry of batch) {
            await this.write([entry.item]).then(([result]) => entry.resolve(result!), entry.reject);
          }
        }
      }
    } finally {
      this.#flushing = false;
    }
  }
}
