/**
 * Password reset timing: does POST /v1/password-resets answer as fast for an address with no
 * account as for one with an account? (API-ACCOUNT.md: "always 202 with the same body, in the
 * same time"; OWASP ASVS 5.0 V6.3.8.)
 *
 *   npm run bench:reset-timing               # N = 200 requests of each kind
 *   npm run bench:reset-timing -- --n 500
 *
 * The service runs in-process with the settings loadConfig() gives, on an in-memory PGlite
 * database (or BENCH_DATABASE_URL), writing its mail to a temporary outbox. Each request comes
 * from its own client address; the known addresses are spread over accounts so that none passes
 * its 5 mails an hour. The mail work happens after the answer; the bench waits for it to finish
 * (untimed) before the next request, so one request's mail never slows the next one's answer.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

const REQUESTS_PER_ACCOUNT = 5;
const WARM_UP = 5;

let addressCounter = 0;
function nextAddress(): string {
  addressCounter += 1;
  return `10.${(addressCounter >> 16) & 255}.${(addressCounter >> 8) & 255}.${addressCounter & 255}`;
}

function median(sorted: readonly number[]): number {
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

async function main(): Promise<void> {
  const outbox = mkdtempSync(join(tmpdir(), 'ums-bench-outbox-'));
  const config = Object.freeze({ ...loadConfig(), outboxDir: outbox });
  const db = await openDatabase({ databaseUrl: process.env.BENCH_DATABASE_URL || undefined, pgliteDir: 'memory://', poolMax: config.dbPoolMax, timeoutMs: config.dbTimeoutMs });
  let app: App | undefined;
  try {
    await migrateToLatest(db.kysely);
    app = await buildApp({ config, db });
    const service = app;
    const runId = `${process.pid.toString(36)}${Date.now().toString(36)}`;

    const emails: string[] = [];
    const accountCount = Math.ceil((N + WARM_UP) / REQUESTS_PER_ACCOUNT);
    for (let i = 0; i < accountCount; i++) {
      const username = `bench_${runId}_${i}`;
      const res = await service.inject({
        method: 'POST',
        url: '/v1/users',
        payload: { username, name: 'Bench User', dob: '1990-12-10', email: `${username}@example.com`, password: 'violet lantern orbit 4217' },
        remoteAddress: nextAddress(),
      });
      if (res.statusCode !== 201) throw new Error(`registering ${username} answered ${res.statusCode}: ${res.body}`);
      emails.push(`${username}@example.com`);
    }
    await service.accountJobs.idle();
    await service.mailer.idle();

    let unknownCounter = 0;
    let firstBody: string | undefined;
    async function attempt(kind: 'known' | 'unknown', index: number): Promise<number> {
      const email = kind === 'known' ? emails[Math.floor(index / REQUESTS_PER_ACCOUNT)]! : `nobody_${runId}_${(unknownCounter += 1)}@example.com`;
      const started = process.hrtime.bigint();
      const res = await service.inject({ method: 'POST', url: '/v1/password-resets', payload: { email }, remoteAddress: nextAddress() });
      const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
      if (res.statusCode !== 202) throw new Error(`a ${kind}-address request answered ${res.statusCode} ${res.body}, not 202`);
      firstBody ??= res.body;
      if (res.body !== firstBody) throw new Error(`a ${kind}-address request answered a different body: ${res.body}`);
      // The work starts just after the answer has gone: let it start, then wait for it to end.
      await new Promise((resolve) => setTimeout(resolve, 5));
      await service.accountJobs.idle();
      await service.mailer.idle();
      return elapsedMs;
    }

    for (let i = 0; i < WARM_UP; i++) {
      await attempt('known', N + i);
      await attempt('unknown', i);
    }
    const times = { known: [] as number[], unknown: [] as number[] };
    for (let i = 0; i < N; i++) {
      if (i % 2 === 0) {
        times.known.push(await attempt('known', i));
        times.unknown.push(await attempt('unknown', i));
      } else {
        times.unknown.push(await attempt('unknown', i));
        times.known.push(await attempt('known', i));
      }
    }
    const known = [...times.known].sort((a, b) => a - b);
    const unknown = [...times.unknown].sort((a, b) => a - b);
    const row = (label: string, a: number, b: number) => `${label.padEnd(10)}${a.toFixed(2).padStart(16)}${b.toFixed(2).padStart(16)}${(b / a).toFixed(3).padStart(18)}`;
    console.log('Password reset timing: POST /v1/password-resets for an address with an account vs. one without');
    console.log(`  database    ${db.kind === 'pglite' ? 'PGlite, in memory' : 'PostgreSQL server (BENCH_DATABASE_URL)'}`);
    console.log(`  requests    ${N} of each kind, alternating, after ${WARM_UP} of each to warm up; a new client address per request`);
    console.log(`  node        ${process.version} on ${process.platform}/${process.arch}`);
    console.log('');
    console.log(`${''.padEnd(10)}${'known (ms)'.padStart(16)}${'unknown (ms)'.padStart(16)}${'unknown/known'.padStart(18)}`);
    console.log(row('median', median(known), median(unknown)));
    console.log(row('p90', percentile(known, 90), percentile(unknown, 90)));
    console.log(row('min', known[0]!, unknown[0]!));
    console.log(row('max', known.at(-1)!, unknown.at(-1)!));
    console.log('');
    console.log(`Every request answered 202 with the same body (${2 * N} measured).`);
  } finally {
    await app?.close();
    await db.close();
    rmSync(outbox, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error('bench failed:', err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
