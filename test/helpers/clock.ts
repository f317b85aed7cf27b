/**
 * Waits, when the clock is near the end of a fixed window (a TOTP step, a per-minute count), until
 * the next one has begun: a test that counts or checks codes within one window then stays in it.
 */
async function awayFromEdge(windowMs: number, marginMs: number): Promise<void> {
  const into = Date.now() % windowMs;
  if (into > windowMs - marginMs) await new Promise((r) => setTimeout(r, windowMs - into + 100));
}

/** Per-minute limits count in fixed windows: start a counting test well inside one. */
export const awayFromMinuteEdge = (): Promise<void> => awayFromEdge(60_000, 10_000);

/** TOTP's 30 s steps: a code made now is checked by the server within the same step. */
export const awayFromStepEdge = (): Promise<void> => awayFromEdge(30_000, 5_000);
