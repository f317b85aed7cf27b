import type { Transaction } from 'kysely';
import type { Database } from '../db/schema.js';

/** Erases one feature's rows of a user, inside the deletion's transaction. */
export type Eraser = (trx: Transaction<Database>, userId: string) => Promise<void>;

/**
 * What deleting an account asks of every feature (GDPR art. 17): each feature that keeps rows
 * about a user adds its eraser when it is registered, and writes only its own tables. The
 * account feature runs them all in one transaction, then deletes the user row.
 */
export class AccountErasure {
  readonly #erasers: Array<{ feature: string; erase: Eraser }> = [];

  /** Adds a feature's eraser; they run in the order they were added. */
  add(feature: string, erase: Eraser): void {
    this.#erasers.push({ feature, erase });
  }

  /** The features that erase rows, in order (for tests and docs). */
  get features(): string[] {
    return this.#erasers.map((e) => e.feature);
  }

  async eraseAll(trx: Transaction<Database>, userId: string): Promise<void> {
    for (const { erase } of this.#erasers) await erase(trx, userId);
  }
}
