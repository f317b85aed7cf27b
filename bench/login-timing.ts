/**
 * Login timing: does a failed login take as long for an unknown name as for a wrong password?
 * (API.md: "login with an unknown user or a wrong password (the same answer, in the same time)";
 * OWASP ASVS 5.0 V6.3.8.)
 *
 *   npm run bench:timing               # N = 200 attempts of each kind
 *   npm run bench:timing -- --n 500
 *
 * The service runs in-process with the settings loadConfig() gives (so the real Argon2id cost,
 * OWASP's m=19456 KiB, t=2, p=1 unless ARGON2_* raise it), on an in-memory PGlite database, or
 * on the PostgreSQL server named by BENCH_DATABASE_URL (a database it may write to).
 *
 * Each attempt comes from its own client address (10.x.y.z), so the per-account-and-address
 * backoff never starts. The per-account ceiling across addresses (100 failures an hour) would
 * start at the 100th wrong password for one account, so the wrong passwords are spread over as
 * few accounts as keep each under it (one per 90 attempts: 3 accounts for N = 200). Every
 * attempt must answer 401 invalid_credentials; anything else stops the bench with exit code 1.
 */
import { parseArgs } from 'node:util';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/create-db.js';
import { migrateToLatest } from '../src/db/migrate.js';
import type { App } from '../src/http/types.js';

const { values } = parseArgs({ options: { n: { type: 'string', default: '200' } } });
const N = Number(values.n);
if (!Number.isInteger(N) || N < 1 || N > 100_000) {
  console.error(`--n must be a whole number from 1 to 100000, got "${values.n}"`);
  process.exit(2);
}

/** Wrong passwords per account: under the hourly ceiling (100), with room for the warm-up. */
const ATTEMPTS_PER_ACCOUNT = 90;
const WARM_UP = 5;
const PASSWORD = 'violet lantern orbit 4217';
/** The same length as PASSWORD, so that nothing but the account differs between the two kinds. */
const WRONG_PASSWORD = 'copper kettle meadow 9381';

let addressCounter = 0;
/** A client address no attempt has used before: 10.0.0.1, 10.0.0.2, … */
function nextAddress(): string {
  addressCounter += 1;
  return `10.${(addressCounter >> 16) & 255}.${(addressCounter >> 8) & 255}.${addressCounter & 255}`;
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
  return values.reduce((a, b) => a + b, 0) / values.length;
}

async function main(): Promise<void> {
  const config = loadConfig();
  const databaseUrl = process.env.BENCH_DATABASE_URL || undefined;
  const db = await openDatabase({ databaseUrl, pgliteDir: 'memory://', poolMax: config.dbPoolMax, timeoutMs: config.dbTimeoutMs });
  let app: App | undefined;
  try {
    await migrateToLatest(db.kysely);
    app = await buildApp({ config, db });
    const service = app;
    const runId = `${process.pid.toString(36)}${Date.now().toString(36)}`;

    // The accounts whose passwords are guessed wrong.
    const accounts: string[] = [];
    const accountCount = Math.ceil((N + WARM_UP) / ATTEMPTS_PER_ACCOUNT);
    for (let i = 0; i < accountCount; i++) {
      const username = `bench_${runId}_${i}`;
      const res = await service.inject({
        method: 'POST',
        url: '/v1/users',
        payload: { username, name: 'Bench User', dob: '1990-12-10', email: `${username}@example.com`, password: PASSWORD },
        remoteAddress: nextAddress(),
      });
      if (res.statusCode !== 201) throw new Error(`registering ${username} answered ${res.statusCode}: ${res.body}`);
      accounts.push(username);
    }

    let unknownCounter = 0;
    /** One timed login attempt, in milliseconds; it must be refused as invalid_credentials. */
    async function attempt(kind: 'existing' | 'unknown', index: number): Promise<number> {
      const username = kind === 'existing' ? accounts[Math.floor(index / ATTEMPTS_PER_ACCOUNT)]! : `nobody_${runId}_${(unknownCounter += 1)}`;
      const started = process.hrtime.bigint();
      const res = await service.inject({
        method: 'POST',
        url: '/v1/sessions',
        payload: { username, password: WRONG_PASSWORD },
        remoteAddress: nextAddress(),
      });
      const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
      const code = res.statusCode === 401 ? (res.json() as { code?: string }).code : undefined;
      if (code !== 'invalid_credentials') throw new Error(`a ${kind}-user attempt answered ${res.statusCode} ${res.body}, not 401 invalid_credentials`);
      return elapsedMs;
    }

    // Warm-up, not measured: JIT, database caches, and the service's one-time dummy hash.
    for (let i = 0; i < WARM_UP; i++) {
      await attempt('existing', N + i);
      await attempt('unknown', i);
    }

    // Alternating, and swapping which kind goes first, so drift hits both kinds alike.
    const times = { existing: [] as number[], unknown: [] as number[] };
    const benchStarted = Date.now();
    for (let i = 0; i < N; i++) {
      if (i % 2 === 0) {
        times.existing.push(await attempt('existing', i));
        times.unknown.push(await attempt('unknown', i));
      } else {
        times.unknown.push(await attempt('unknown', i));
        times.existing.push(await attempt('existing', i));
      }
    }
    const benchS = (Date.now() - benchStarted) / 1000;

    const existing = [...times.existing].sort((a, b) => a - b);
    const unknown = [...times.unknown].sort((a, b) => a - b);
    const row = (label: string, a: number, b: number, digits = 1) =>
      `${label.padEnd(10)}${a.toFixed(digits).padStart(16)}${b.toFixed(digits).padStart(16)}${(b / a).toFixed(3).padStart(18)}`;
    const { memoryCost, timeCost, parallelism } = config.argon2;

    console.log('Login timing: wrong password for an existing user vs. an unknown username');
    console.log(`  Argon2id    m=${memoryCost} KiB, t=${timeCost}, p=${parallelism}${config.passwordPeppers.length ? ', with a pepper' : ', no pepper'} (from loadConfig())`);
    console.log(`  database    ${db.kind === 'pglite' ? 'PGlite, in memory' : 'PostgreSQL server (BENCH_DATABASE_URL)'}`);
    console.log(`  attempts    ${N} of each kind, alternating, after ${WARM_UP} of each to warm up; ${accountCount} account(s), a new client address per attempt`);
    console.log(`  node        ${process.version} on ${process.platform}/${process.arch}; ${benchS.toFixed(1)} s measured`);
    console.log('');
    console.log(`${''.padEnd(10)}${'existing (ms)'.padStart(16)}${'unknown (ms)'.padStart(16)}${'unknown/existing'.padStart(18)}`);
    console.log(row('median', median(existing), median(unknown)));
    console.log(row('p90', percentile(existing, 90), percentile(unknown, 90)));
    console.log(row('mean', mean(existing), mean(unknown)));
    console.log(row('min', existing[0]!, unknown[0]!));
    console.log(row('max', existing.at(-1)!, unknown.at(-1)!));
    console.log('');
    console.log(`Every attempt answered 401 invalid_credentials (${2 * N} measured, ${2 * WARM_UP} warm-up); none was throttled.`);
  } finally {
    await app?.close();
    await db.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error('bench failed:', err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
