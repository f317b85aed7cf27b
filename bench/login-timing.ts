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
import { loadConfig } from '../src/config.js';
import { databaseLabel, msSince, nextAddress, printComparison, registerAccounts, requestsPerKind, runBench, timeBothKinds, WARM_UP } from './lib/timing.js';

const N = requestsPerKind();
/** Wrong passwords per account: under the hourly ceiling (100), with room for the warm-up. */
const ATTEMPTS_PER_ACCOUNT = 90;
/** The same length as the accounts' password, so that nothing but the account differs between the two kinds. */
const WRONG_PASSWORD = 'copper kettle meadow 9381';

const config = loadConfig();
runBench(config, async (service, db, runId) => {
  // The accounts whose passwords are guessed wrong.
  const accountCount = Math.ceil((N + WARM_UP) / ATTEMPTS_PER_ACCOUNT);
  const accounts = await registerAccounts(service, runId, accountCount);

  let unknownCounter = 0;
  /** One timed login attempt, in milliseconds; it must be refused as invalid_credentials. */
  async function attempt(kind: 'existing' | 'unknown', index: number): Promise<number> {
    const username = kind === 'existing' ? accounts[Math.floor(index / ATTEMPTS_PER_ACCOUNT)]! : `nobody_${runId}_${(unknownCounter += 1)}`;
    const started = process.hrtime.bigint();
    const res = await service.inject({ method: 'POST', url: '/v1/sessions', payload: { username, password: WRONG_PASSWORD }, remoteAddress: nextAddress() });
    const elapsedMs = msSince(started);
    const code = res.statusCode === 401 ? (res.json() as { code?: string }).code : undefined;
    if (code !== 'invalid_credentials') throw new Error(`a ${kind}-user attempt answered ${res.statusCode} ${res.body}, not 401 invalid_credentials`);
    return elapsedMs;
  }

  // The warm-up (not measured) covers JIT, database caches and the service's one-time dummy hash.
  const benchStarted = Date.now();
  const times = await timeBothKinds(['existing', 'unknown'], N, attempt);
  const benchS = (Date.now() - benchStarted) / 1000;
  const { memoryCost, timeCost, parallelism } = config.argon2;
  console.log('Login timing: wrong password for an existing user vs. an unknown username');
  console.log(`  Argon2id    m=${memoryCost} KiB, t=${timeCost}, p=${parallelism}${config.passwordPeppers.length ? ', with a pepper' : ', no pepper'} (from loadConfig())`);
  console.log(`  database    ${databaseLabel(db)}`);
  console.log(`  attempts    ${N} of each kind, alternating, after ${WARM_UP} of each to warm up; ${accountCount} account(s), a new client address per attempt`);
  console.log(`  node        ${process.version} on ${process.platform}/${process.arch}; ${benchS.toFixed(1)} s measured`);
  console.log('');
  printComparison(['existing', 'unknown'], times.existing, times.unknown, 1);
  console.log('');
  console.log(`Every attempt answered 401 invalid_credentials (${2 * N} measured, ${2 * WARM_UP} warm-up); none was throttled.`);
});
