import { readdirSync } from 'node:fs';
import { setPriority } from 'node:os';

/** How much lower the background threads run (Linux nice values: 0 is normal, 19 the lowest). */
export const BACKGROUND_NICENESS = 10;

/**
 * Lets the event loop go first when the cores are busy. Every thread of this process but the
 * main one runs at a lower scheduling priority: libuv's pool, where passwords are hashed (the
 * pool exists by now: the ES module loader used it), and V8's helpers. A login flood then takes
 * the cores the event loop leaves, instead of making token checks wait for a slice between
 * hashes; hashing loses only the CPU the event loop actually uses. Linux sets priorities per
 * thread; elsewhere this does nothing. Answers how many threads it lowered.
 */
export function lowerBackgroundThreads(niceness = BACKGROUND_NICENESS): number {
  if (process.platform !== 'linux') return 0;
  let lowered = 0;
  for (const entry of readdirSync('/proc/self/task')) {
    const tid = Number(entry);
    if (tid === process.pid) continue;
    try {
      setPriority(tid, niceness);
      lowered++;
    } catch {
      // A thread that ended meanwhile, or a system that refuses: it keeps its priority.
    }
  }
  return lowered;
}
