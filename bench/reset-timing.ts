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
import { loadConfig } from '../src/config.js';
import { databaseLabel, msSince, nextAddress, printComparison, registerAccounts, requestsPerKind, runBench, timeBothKinds, WARM_UP } from './lib/timing.js';

const N = requestsPerKind();
/** Reset mails per account: under its 5 an hour. */
const REQUESTS_PER_ACCOUNT = 5;

const outbox = mkdtempSync(join(tmpdir(), 'ums-bench-outbox-'));
const config = Object.freeze({ ...loadConfig(), outboxDir: outbox });
runBench(
  config,
  async (service, db, runId) => {
    const accounts = await registerAccounts(service, runId, Math.ceil((N + WARM_UP) / REQUESTS_PER_ACCOUNT));
    const emails = accounts.map((username) => `${username}@example.com`);
    await service.accountJobs.idle();
    await service.mailer.idle();

    let unknownCounter = 0;
    let firstBody: string | undefined;
    async function attempt(kind: 'known' | 'unknown', index: number): Promise<number> {
      const email = kind === 'known' ? emails[Math.floor(index / REQUESTS_PER_ACCOUNT)]! : `nobody_${runId}_${(unknownCounter += 1)}@example.com`;
      const started = process.hrtime.bigint();
      const res = await service.inject({ method: 'POST', url: '/v1/password-resets', payload: { email }, remoteAddress: nextAddress() });
      const elapsedMs = msSince(started);
      if (res.statusCode !== 202) throw new Error(`a ${kind}-address request answered ${res.statusCode} ${res.body}, not 202`);
      firstBody ??= res.body;
      if (res.body !== firstBody) throw new Error(`a ${kind}-address request answered a different body: ${res.body}`);
      // The work starts just after the answer has gone; wait for it (untimed) before the next request.
      await new Promise((resolve) => setTimeout(resolve, 5));
      await service.accountJobs.idle();
      await service.mailer.idle();
      return elapsedMs;
    }

    const times = await timeBothKinds(['known', 'unknown'], N, attempt);
    console.log('Password reset timing: POST /v1/password-resets for an address with an account vs. one without');
    console.log(`  database    ${databaseLabel(db)}`);
    console.log(`  requests    ${N} of each kind, alternating, after ${WARM_UP} of each to warm up; a new client address per request`);
    console.log(`  node        ${process.version} on ${process.platform}/${process.arch}`);
    console.log('');
    printComparison(['known', 'unknown'], times.known, times.unknown, 2);
    console.log('');
    console.log(`Every request answered 202 with the same body (${2 * N} measured).`);
  },
  () => rmSync(outbox, { recursive: true, force: true }),
);
