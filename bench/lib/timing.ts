/**
 * What the timing benches (login-timing.ts, reset-timing.ts) share: the --n option, the service
 * in-process on its own database, accounts to measure with, fresh client addresses, and the
 * table that compares two kinds of request.
 */
import { parseArgs } from 'node:util';
import { buildApp } from '../../src/app.js';
import type { Config } from '../../src/config.js';
import { openDatabase, type Db } from '../../src/db/create-db.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import type { App } from '../../src/http/types.js';

export const BENCH_PASSWORD = 'violet lantern orbit 4217';
export const WARM_UP = 5;

/** `--n`: how many requests of each kind (default 200); a bad value exits with code 2. */
export function requestsPerKind(): number {
  const { values } = parseArgs({ options: { n: { type: 'string', default: '200' } } });
  const n = Number(values.n);
  if (!Number.isInteger(n) || n < 1 || n > 100_000) {
    console.error(`--n must be a whole number from 1 to 100000, got "${values.n}"`);
    process.exit(2);
  }
  return n;
}

let addressCounter = 0;
/** A client address no request has used before (10.0.0.1, 10.0.0.2, …), so no per-address limit starts. */
export function nextAddress(): string {
  addressCounter += 1;
  return `10.${(addressCounter >> 16) & 255}.${(addressCounter >> 8) & 255}.${addressCounter & 255}`;
}

/** Runs `body` against the service in-process, on in-memory PGlite or BENCH_DATABASE_URL; exits 0 or 1. */
export function runBench(config: Config, body: (service: App, db: Db, runId: string) => Promise<void>, cleanUp: () => void = () => {}): void {
  const main = async () => {
    const db = await openDatabase({ databaseUrl: process.env.BENCH_DATABASE_URL || undefined, pgliteDir: 'memory://', poolMax: config.dbPoolMax, timeoutMs: config.dbTimeoutMs });
    let app: App | undefined;
    try {
      await migrateToLatest(db.kysely);
      app = await buildApp({ config, db });
      await body(app, db, `${process.pid.toString(36)}${Date.now().toString(36)}`);
    } finally {
      await app?.close();
      await db.close();
      cleanUp();
    }
  };
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error('bench failed:', err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
}

/** Registers `count` accounts named bench_<runId>_<i>, each from a fresh address; their usernames. */
export async function registerAccounts(service: App, runId: string, count: number): Promise<string[]> {
  const usernames: string[] = [];
  for (let i = 0; i < count; i++) {
    const username = `bench_${runId}_${i}`;
    const res = await service.inject({
      method: 'POST',
      url: '/v1/users',
      payload: { username, name: 'Bench User', dob: '1990-12-10', email: `${username}@example.com`, password: BENCH_PASSWORD },
      remoteAddress: nextAddress(),
    });
    if (res.statusCode !== 201) throw new Error(`registering ${username} answered ${res.statusCode}: ${res.body}`);
    usernames.push(username);
  }
  return usernames;
}

/**
 * Times `n` requests of each kind after a warm-up, alternating and swapping which kind goes
 * first, so drift on a shared machine hits both kinds alike. Milliseconds, sorted.
 */
export async function timeBothKinds<K extends string>(
  kinds: readonly [K, K],
  n: number,
  attempt: (kind: K, index: number) => Promise<number>,
): Promise<Record<K, number[]>> {
  const [a, b] = kinds;
  for (let i = 0; i < WARM_UP; i++) {
    await attempt(a, n + i);
    await attempt(b, i);
  }
  const times = { [a]: [] as number[], [b]: [] as number[] } as Record<K, number[]>;
  for (let i = 0; i < n; i++) {
    const order = i % 2 === 0 ? [a, b] : [b, a];
    for (const kind of order) times[kind].push(await attempt(kind, i));
  }
  for (const kind of kinds) times[kind].sort((x, y) => x - y);
  return times;
}

/** Milliseconds since `started` (process.hrtime.bigint()). */
export function msSince(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e6;
}

function median(sorted: readonly number[]): number {
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function mean(values: readonly number[]): number {
  return values.reduce((x, y) => x + y, 0) / values.length;
}

/** The comparison table: median, p90, mean, min and max of each kind, and their ratio. */
export function printComparison(labels: readonly [string, string], a: readonly number[], b: readonly number[], digits: number): void {
  const row = (label: string, x: number, y: number) => `${label.padEnd(10)}${x.toFixed(digits).padStart(16)}${y.toFixed(digits).padStart(16)}${(y / x).toFixed(3).padStart(18)}`;
  console.log(`${''.padEnd(10)}${`${labels[0]} (ms)`.padStart(16)}${`${labels[1]} (ms)`.padStart(16)}${`${labels[1]}/${labels[0]}`.padStart(18)}`);
  console.log(row('median', median(a), median(b)));
  console.log(row('p90', percentile(a, 90), percentile(b, 90)));
  console.log(row('mean', mean(a), mean(b)));
  console.log(row('min', a[0]!, b[0]!));
  console.log(row('max', a.at(-1)!, b.at(-1)!));
}

export function databaseLabel(db: Db): string {
  return db.kind === 'pglite' ? 'PGlite, in memory' : 'PostgreSQL server (BENCH_DATABASE_URL)';
}
