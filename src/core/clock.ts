/**
 * The one clock every time rule reads (expiries, windows, backoffs, TOTP steps). Production uses
 * the system clock; tests pass a ManualClock and move it instead of sleeping.
 */
export interface Clock {
  /** Milliseconds since the epoch, as Date.now(). */
  now(): number;
}

export const systemClock: Clock = Object.freeze({ now: () => Date.now() });

/** A clock that moves only when told: for tests. Starts at the system time unless given one. */
export class ManualClock implements Clock {
  #ms: number;

  constructor(start: number | Date = Date.now()) {
    this.#ms = typeof start === 'number' ? start : start.getTime();
  }

  now(): number {
    return this.#ms;
  }

  /** Moves the clock forward (or back, with a negative amount) by `ms`. */
  advance(ms: number): void {
    this.#ms += ms;
  }

  set(to: number | Date): void {
    this.#ms = typeof to === 'number' ? to : to.getTime();
  }
}
