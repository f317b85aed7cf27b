import type { SessionState } from './repository.js';

/**
 * Each instance keeps the state of sessions it has checked, so that a protected request costs
 * no database round trip. It is kept right by the fan-out of ended sessions (LISTEN/NOTIFY):
 * - the instance that ends a session forgets it at once;
 * - every other instance forgets it when the notification arrives (well within 1 s);
 * - while the notification channel is down, the cache is bypassed and the database asked.
 * A read that started before an invalidation is never cached (the epoch check), so a revocation
 * cannot be overwritten by a slow read of the old state.
 */
export class SessionCache {
  #entries = new Map<string, SessionState>();
  #epoch = 0;
  #enabled = true;

  constructor(readonly maxEntries = 100_000) {}

  get enabled(): boolean {
    return this.#enabled;
  }

  /** Taken before reading the database; pass it back to `set`. */
  get epoch(): number {
    return this.#epoch;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(sessionId: string): SessionState | undefined {
    return this.#enabled ? this.#entries.get(sessionId) : undefined;
  }

  set(state: SessionState, epochAtRead: number): void {
    if (!this.#enabled || epochAtRead !== this.#epoch) return;
    if (this.#entries.size >= this.maxEntries && !this.#entries.has(state.session_id)) {
      // Drop the oldest entry (Map keeps insertion order).
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(state.session_id, state);
  }

  /** Records a use seen by this instance, so idle checks see it before it reaches the database. */
  touched(sessionId: string, at: Date): void {
    const entry = this.#entries.get(sessionId);
    if (entry) entry.last_used_at = at;
  }

  forget(sessionIds: Iterable<string>): void {
    this.#epoch++;
    for (const id of sessionIds) this.#entries.delete(id);
  }

  /** Forget everything: notifications may have been missed. */
  clear(): void {
    this.#epoch++;
    this.#entries.clear();
  }

  /** Off while the notification channel is down (every check asks the database), on when it is back. */
  setEnabled(enabled: boolean): void {
    if (enabled !== this.#enabled) this.clear();
    this.#enabled = enabled;
  }
}
