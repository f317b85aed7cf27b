/**
 * Gives a burst's memory back once the burst is over. V8 collects its old generation when that
 * grows, not when the process goes quiet, so a worker that served a burst keeps the burst's
 * garbage (tens of MiB of promoted request objects) for as long as it stays idle (20 s of idling
 * changed nothing in a probe). Here, one full collection runs after a whole `idleMs` without a
 * request, once at least `minRequests` came since the last one: no request waits on its pause,
 * and a quiet process polled now and then (health checks, metrics) is not collected again and again.
 *
 * Needs `--expose-gc` (`npm start` passes it); without it, this does nothing.
 */
export interface IdleCollection {
  /** Call on every request. */
  touch(): void;
  stop(): void;
}

export function collectWhenIdle(options: { idleMs?: number; minRequests?: number; collect?: () => void } = {}): IdleCollection {
  const collect = options.collect ?? (globalThis as { gc?: () => void }).gc;
  if (!collect) return { touch: () => {}, stop: () => {} };
  const minRequests = options.minRequests ?? 500;
  let requests = 0;
  let sinceCollection = 0;
  const timer = setInterval(() => {
    if (requests > 0) {
      sinceCollection += requests;
      requests = 0;
    } else if (sinceCollection >= minRequests) {
      sinceCollection = 0;
      collect();
    }
  }, options.idleMs ?? 2000);
  timer.unref();
  return {
    touch: () => void requests++,
    stop: () => clearInterval(timer),
  };
}
