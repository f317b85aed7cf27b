import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { freePort } from '../../test/helpers/processes.js';

export interface Child {
  url: string;
  pid: number;
  process: ChildProcess;
  output(): string;
  stop(): Promise<number | null>;
}

/** Starts a process and waits for `ready` in its output. */
export async function startChild(args: string[], env: Record<string, string>, ready: string | RegExp, timeoutMs = 60_000): Promise<Child> {
  const port = Number(env.PORT ?? (await freePort()));
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(' ')} did not start:\n${out}`)), timeoutMs);
    const check = () => {
      if (typeof ready === 'string' ? out.includes(ready) : ready.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${args.join(' ')} exited with ${code}:\n${out}`));
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    process: child,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Resident memory of a process, in MiB (Linux /proc). */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

/** CPU time (user + system) in milliseconds of one thread, or of the sum of the threads of a process. */
function cpuMsOf(statPath: string): number {
  try {
    const stat = readFileSync(statPath, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
  } catch {
    return 0; // the process or thread ended meanwhile
  }
}

const CLOCK_TICKS_PER_S = 100;

export interface CpuSnapshot {
  /** The service's event-loop thread. */
  main: number;
  /** The service's other threads: the libuv pool (hashing, signing) and V8's helpers. */
  threads: number;
  /** Every process of the database server (postgres, mariadbd). */
  database: number;
}

/** Where the CPU time went so far: the service's main thread, its other threads, the database server. */
export function cpuSnapshot(pid: number): CpuSnapshot {
  const main = cpuMsOf(`/proc/${pid}/task/${pid}/stat`);
  const all = cpuMsOf(`/proc/${pid}/stat`);
  let database = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let comm = '';
    try {
      comm = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    if (comm === 'postgres' || comm === 'mariadbd' || comm === 'mysqld') database += cpuMsOf(`/proc/${entry}/stat`);
  }
  return { main, threads: all - main, database };
}
