import type { MailLog } from '../mail/mailer.js';

/**
 * Work done after the answer has gone (the look-up and mail of a password reset request), so
 * the answer takes the same time whatever the work finds. Bounded: past `maxQueued` waiting jobs
 * a new one is dropped with a warning, so a flood cannot eat memory.
 */
export class BackgroundJobs {
  readonly #queue: Array<() => Promise<void>> = [];
  #running = 0;
  /** Jobs promised but not started yet (they start once an answer has gone). */
  #reserved = 0;
  #idleWaiters: Array<() => void> = [];

  constructor(
    private readonly log: MailLog,
    private readonly concurrency = 2,
    private readonly maxQueued = 10_000,
  ) {}

  run(job: () => Promise<void>): void {
    if (this.#queue.length >= this.maxQueued) {
      this.log.error({}, 'background job dropped: the queue is full');
      this.#settle();
      return;
    }
    this.#queue.push(job);
    this.#pump();
  }

  /**
   * Holds a place for a job that starts later (after its answer has gone), so `idle()` waits for
   * it from now on, not only once it starts. Call the returned function once to start it.
   */
  reserve(): (job: () => Promise<void>) => void {
    this.#reserved += 1;
    let started = false;
    return (job) => {
      if (started) return;
      started = true;
      this.#reserved -= 1;
      this.run(job);
    };
  }

  idle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #isIdle(): boolean {
    return this.#running === 0 && this.#queue.length === 0 && this.#reserved === 0;
  }

  #settle(): void {
    if (!this.#isIdle()) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  #pump(): void {
    while (this.#running < this.concurrency && this.#queue.length > 0) {
      const job = this.#queue.shift()!;
      this.#running += 1;
      job()
        .catch((err: unknown) => this.log.error({ err }, 'background job failed'))
        .finally(() => {
          this.#running -= 1;
          this.#pump();
          this.#settle();
        });
    }
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Work done after the answer (password reset requests); tests wait on `idle()`. */
    accountJobs: BackgroundJobs;
  }
}
