/**
 * A per-instance cache of database rows that other instances may change, kept right by the
 * fan-out of invalidations (see cache/invalidation.ts):
 * - the instance that changes a row forgets it at once;
 * - every other instance forgets it when the notification arrives (well within 1 s);
 * - while the notification channel is down, the cache is off and the database is asked.
 * A read that started before an invalidation is never cached (the epoch check), so a change
 * cannot be overwritten by a slow read of the old state.
 */
export class InvalidatedCache<V> {
  #entries = new Map<string, V>();
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

  get(key: string): V | undefined {
    return this.#enabled ? this.#entries.get(key) : undefined;
  }

  set(key: string, value: V, epochAtRead: number): void {
    if (!this.#enabled || epochAtRead !== this.#epoch) return;
    if (this.#entries.size >= this.maxEntries && !this.#entries.has(key)) {
      // Drop the oldest entry (Map keeps insertion order).
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(key, value);
  }

  forget(keys: Iterable<string>): void {
    this.#epoch++;
    for (const key of keys) this.#entries.delete(key);
  }

  /** Forget everything: notifications may have been missed. */
  clear(): void {
    this.#epoch++;
    this.#entries.clear();
  }

  /** Off while the notification channel is down (every read asks the database), on when it is back. */
  setEnabled(enabled: boolean): void {
    if (enabled !== this.#enabled) this.clear();
    this.#enabled = enabled;
  }
}
