import type { Kysely } from 'kysely';
import { systemClock, type Clock } from '../core/clock.js';
import type { Database } from '../db/schema.js';

/** Last use is recorded at most this often per session. */
export const TOUCH_EVERY_MS = 60_000;
const FLUSH_EVERY_MS = 10_000;

/**
 * Records sessions' last use off the request path: marks are collected and written in one
 * statement every few seconds (and on close). Idle timeouts are days; a few seconds of delay
 * in the stored value changes nothing.
 */
export class LastUseRecorder {
  #pending = new Set<string>();
  #timer: NodeJS.Timeout;
  #flushing: Promise<void> = Promise.resolve();

  private readonly everyMs: number;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly onError: (err: unknown) => void,
    idleTtlS = Infinity,
    private readonly clock: Clock = systemClock,
  ) {
    this.everyMs = Math.min(TOUCH_EVERY_MS, (idleTtlS * 1000) / 4);
    this.#timer = setInterval(() => void this.flush(), FLUSH_EVERY_MS);
    this.#timer.unref();
  }

  /** True when a use at `lastUsedAt` is old enough to be recorded again (often enough for short idle timeouts too). */
  due(lastUsedAt: Date, now = this.clock.now()): boolean {
    return now - lastUsedAt.getTime() > this.everyMs;
  }

  mark(sessionId: string): void {
    this.#pending.add(sessionId);
  }

  flush(): Promise<void> {
    if (this.#pending.size === 0) return this.#flushing;
    const ids = [...this.#pending];
    this.#pending.clear();
    this.#flushing = this.#flushing.then(async () => {
      // In chunks: one statement takes at most 65,535 parameters.
      for (let i = 0; i < ids.length; i += 10_000) {
        await this.db
          .updateTable('user_sessions')
          .set({ last_used_at: new Date(this.clock.now()) })
          .where('session_id', 'in', ids.slice(i, i + 10_000))
          .execute()
          .catch((err) => this.onError(err));
      }
    });
    return this.#flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
  }
}
