import type { Clock } from '../../src/core/clock.js';

/**
 * The clock of a test service (startTestService): the real time, moved forward when a test says
 * so. A test jumps to the start of a fixed window (a per-minute count, a TOTP step) instead of
 * waiting for one; the time still passes while the test runs (a test that needs time frozen
 * passes a ManualClock of src/core/clock.ts instead).
 */
export class TestClock implements Clock {
  #offsetMs = 0;

  now(): number {
    return Date.now() + this.#offsetMs;
  }

  /** Moves the clock forward (or back) by `ms`. */
  advance(ms: number): void {
    this.#offsetMs += ms;
  }

  /** Sets the clock to `to` (it runs on from there). */
  set(to: number): void {
    this.#offsetMs = to - Date.now();
  }
}

/** Moves `clock` 1 s into the next minute: a counting test starts at the beginning of a fresh window of every per-minute limit. */
export function startOfNextMinute(clock: TestClock): void {
  clock.set((Math.floor(clock.now() / 60_000) + 1) * 60_000 + 1_000);
}

/** Moves `clock` 1 s into the next TOTP step (30 s): a code made at clock.now() is checked within its own step. */
export function startOfNextStep(clock: TestClock): void {
  clock.set((Math.floor(clock.now() / 30_000) + 1) * 30_000 + 1_000);
}
