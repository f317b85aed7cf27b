/**
 * The import's figures (API-MIGRATION.md): users per second for records with hashes into
 * PostgreSQL and the importing process's peak RSS, for a generated file of BENCH_IMPORT_RECORDS
 * records (1,000,000 by default); records with plain passwords against the Argon2id hash rate;
 * and the first sign-in of an imported bcrypt user beside an Argon2id one. Run by `npm run bench`
 * (not --quick); `npx tsx bench/import.ts` runs it alone (needs `npm run build` first).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { hash as bcryptHash } from '@node-rs/bcrypt';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { PasswordHasher } from '../src/credentials/hashing.js';
import { openDatabase } from '../src/db/create-db.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { insertUserWithPassword } from '../src/users/repository.js';
import { ImportService } from '../src/import/service.js';
import { createServerDatabase } from '../test/helpers/app.js';

const PASSWORD = 'violet lantern orbit 4217';

export interface ImportFigures {
  records: number;
  usersPerS: number;
  peakRssMiB: number;
  seconds: number;
  plain: { records: number; usersPerS: number };
  firstSignIn: { bcryptMs: number; argon2Ms: number; bcryptCost: number };
}

/** Writes `count` NDJSON records, their hashes real ones of several formats (the test fixtures). */
async function generate(path: string, count: number, plain = false): Promise<void> {
  const hashes = Object.values((JSON.parse(readFileSync('test/fixtures/import/hashes.json', 'utf8')) as { hashes: Record<string, string> }).hashes);
  const out = createWriteStream(path);
  for (let i = 0; i < count; i++) {
    const record = {
      // One in ten without a username: it is made from the email.
      ...(i % 10 === 0 ? {} : { username: `imp_${i}` }),
      name: `Imported User ${i}`,
      ...(i % 3 === 0 ? {} : { dob: '1990-01-01' }),
      email: `imp_${i}@example.com`,
      email_verified: i % 2 === 0,
      ...(plain ? { password: `${PASSWORD} ${i}` } : { password_hash: hashes[i % hashes.length] }),
      created_at: '2020-01-01T00:00:00Z',
      external_id: `src|${i}`,
    };
    if (!out.write(`${JSON.stringify(record)}\n`)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

/** Runs the built command line's import and samples its peak RSS (VmHWM) until it exits. */
async function runCli(file: string, databaseUrl: string, dataDir: string): Promise<{ seconds: number; peakRssMiB: number; report: { created: number; failed: number } }> {
  const started = performance.now();
  const child = spawn(process.execPath, ['dist/src/cli.js', 'users', 'import', file], { env: { ...process.env, DATABASE_URL: databaseUrl, DATA_DIR: dataDir }, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d));
  let peakKiB = 0;
  const sample = setInterval(() => {
    try {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      peakKiB = Math.max(peakKiB, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0));
    } catch {
      // exited between two samples
    }
  }, 100);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearInterval(sample);
  if (code !== 0) throw new Error(`the import exited with ${code}: ${stdout}`);
  return { seconds: (performance.now() - started) / 1000, peakRssMiB: Math.round(peakKiB / 1024), report: JSON.parse(stdout.trim().split('\n').at(-1)!) };
}

/** The median of the first sign-ins of `n` users of each kind (in-process, the configured Argon2id). */
async function firstSignIns(databaseUrl: string, dataDir: string, n: number): Promise<ImportFigures['firstSignIn']> {
  const config = Object.freeze({ ...loadConfig({ DATA_DIR: dataDir, PUBLIC_URL: 'http://localhost:3000' }), outboxDir: join(dataDir, 'outbox') });
  const db = await openDatabase({ databaseUrl });
  try {
    await migrateToLatest(db.kysely);
    const app = await buildApp({ config, db });
    try {
      const bcryptCost = 10; // bcrypt's usual default (Auth0, Supabase, most libraries)
      const hasher = new PasswordHasher(config.argon2);
      const records = await Promise.all(Array.from({ length: n }, async (_, i) => JSON.stringify({ username: `first_b_${i}`, email: `first_b_${i}@example.com`, password_hash: await bcryptHash(PASSWORD, bcryptCost) })));
      await new ImportService(db.kysely, hasher).run(Readable.from([records.join('\n')]), { format: 'ndjson', onConflict: 'skip', dryRun: false, context: { ip: null, userAgent: 'bench' } });
      const phc = await hasher.hash(PASSWORD);
      for (let i = 0; i < n; i++) await insertUserWithPassword(db.kysely, { username: `first_a_${i}`, name: 'Bench', dob: '1990-01-01', email: `first_a_${i}@example.com` }, phc);
      const time = async (username: string, i: number) => {
        const started = performance.now();
        const res = await app.inject({ method: 'POST', url: '/v1/sessions', payload: { username, password: PASSWORD }, remoteAddress: `10.9.${i >> 8}.${i & 255}` });
        if (res.statusCode !== 201) throw new Error(`sign-in of ${username}: ${res.statusCode} ${res.body}`);
        return performance.now() - started;
      };
      await time('first_a_0', 0); // warm-up
      const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      const bcrypt: number[] = [];
      const argon: number[] = [];
      for (let i = 1; i < n; i++) {
        bcrypt.push(await time(`first_b_${i}`, i));
        argon.push(await time(`first_a_${i}`, i + n));
      }
      return { bcryptMs: Math.round(median(bcrypt)), argon2Ms: Math.round(median(argon)), bcryptCost };
    } finally {
      await app.close();
    }
  } finally {
    await db.close();
  }
}

export async function importBench(serverUrl: string, records: number, log: (line: string) => void): Promise<ImportFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'ums-bench-import-'));
  try {
    const file = join(dir, 'users.ndjson');
    log(`Import: generating ${records} records with hashes...`);
    await generate(file, records);
    const plainCount = Math.min(2000, records);
    const plainFile = join(dir, 'plain.ndjson');
    await generate(plainFile, plainCount, true);
    /** One import into a fresh database on the server. */
    const imported = async (path: string) => {
      const database = await createServerDatabase(serverUrl);
      try {
        return await runCli(path, database.url, dir);
      } finally {
        await database.drop();
      }
    };
    log('Import: running users import into PostgreSQL...');
    const run = await imported(file);
    if (run.report.created !== records) throw new Error(`the import created ${run.report.created} of ${records}: ${JSON.stringify(run.report).slice(0, 500)}`);
    log(`Import: ${plainCount} records with plain passwords...`);
    const plainRun = await imported(plainFile);
    const signIns = await createServerDatabase(serverUrl);
    let firstSignIn: ImportFigures['firstSignIn'];
    try {
      log('Import: first sign-ins, imported bcrypt beside Argon2id...');
      firstSignIn = await firstSignIns(signIns.url, dir, 21);
    } finally {
      await signIns.drop();
    }
    return {
      records,
      usersPerS: Math.round(records / run.seconds),
      peakRssMiB: run.peakRssMiB,
      seconds: Math.round(run.seconds),
      plain: { records: plainCount, usersPerS: Math.round(plainCount / plainRun.seconds) },
      firstSignIn,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const records = Number(process.env.BENCH_IMPORT_RECORDS ?? 1_000_000);
  importBench(process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres', records, (line) => process.stderr.write(`${line}\n`)).then(
    (figures) => console.log(JSON.stringify(figures, null, 2)),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
