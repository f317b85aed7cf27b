#!/usr/bin/env node
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { listKeys, retireKey, rotateKeys } from './auth/keys.js';
import { ConfigError, loadConfig } from './config.js';
import { DataDirInUseError, openDatabase, type Db } from './db/create-db.js';
import { migrateToLatest } from './db/migrate.js';

/**
 * The admin command line. Same settings as the server (DATABASE_URL, DATA_DIR, ...).
 * Exit codes: 0 done, 1 failed, 2 bad usage.
 */

const HELP = `Usage: user-management <command> [options]

Commands:
  migrate                         apply pending database migrations
  keys list                       list signing keys and their state
  keys rotate [--publish-delay S] add a signing key: published now, signing after S seconds
                                  (default 60, so every instance has loaded it), and retire the
                                  current keys once their last tokens have expired
  keys retire <kid>               retire a key now (a suspected leak); its tokens are refused

Options:
  --json    machine-readable output
  --help    this text

Settings come from the environment, as for the server: DATABASE_URL, DATA_DIR, ACCESS_TOKEN_TTL_S.
On the embedded database the server must be stopped first (one process owns DATA_DIR).`;

class UsageError extends Error {}

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, 'publish-delay': { type: 'string' } },
  });
  const [command, sub, arg] = positionals;
  if (values.help || !command) {
    console.log(HELP);
    return command || values.help ? 0 : 2;
  }
  const config = loadConfig();
  const print = (human: string, data: unknown) => console.log(values.json ? JSON.stringify(data) : human);

  const withDb = async <T>(work: (db: Db) => Promise<T>): Promise<T> => {
    const db = await openDatabase({ databaseUrl: config.databaseUrl, pgliteDir: join(config.dataDir), timeoutMs: config.dbTimeoutMs });
    try {
      await migrateToLatest(db.kysely);
      return await work(db);
    } finally {
      await db.close();
    }
  };

  if (command === 'migrate' && !sub) {
    const db = await openDatabase({ databaseUrl: config.databaseUrl, pgliteDir: join(config.dataDir), timeoutMs: config.dbTimeoutMs });
    try {
      const applied = await migrateToLatest(db.kysely);
      print(applied.length ? `Applied: ${applied.join(', ')}` : 'Nothing to apply: the database is up to date.', { applied });
    } finally {
      await db.close();
    }
    return 0;
  }

  if (command === 'keys' && sub === 'list' && !arg) {
    const keys = await withDb((db) => listKeys(db.kysely));
    const lines = keys.map((k) => `${k.kid}  ${k.state.padEnd(9)}  activates ${k.activates_at}  retires ${k.retired_at ?? '-'}`);
    print(lines.length ? lines.join('\n') : 'No signing keys yet: the server makes the first one when it starts.', { keys });
    return 0;
  }

  if (command === 'keys' && sub === 'rotate' && !arg) {
    const raw = values['publish-delay'] ?? '60';
    if (!/^\d+$/.test(raw) || Number(raw) > 86_400) throw new UsageError('--publish-delay must be a whole number of seconds from 0 to 86400');
    const result = await withDb((db) => rotateKeys(db.kysely, { publishDelayS: Number(raw), accessTokenTtlS: config.accessTokenTtlS }));
    print(`New key ${result.kid}: published now, signs from ${result.activatesAt.toISOString()}; the keys it replaces retire at ${result.retiresAt.toISOString()}.`, {
      kid: result.kid,
      activates_at: result.activatesAt.toISOString(),
      previous_keys_retire_at: result.retiresAt.toISOString(),
    });
    return 0;
  }

  if (command === 'keys' && sub === 'retire' && arg) {
    const outcome = await withDb((db) => retireKey(db.kysely, arg));
    if (outcome === 'unknown') {
      console.error(`No live key with kid ${arg}.`);
      return 1;
    }
    if (outcome === 'last_key') {
      console.error(`Key ${arg} is the only live key; run "keys rotate --publish-delay 0" first.`);
      return 1;
    }
    print(`Key ${arg} retired.`, { kid: arg, retired: true });
    return 0;
  }

  throw new UsageError(`Unknown command: ${positionals.join(' ')}`);
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`${(err as Error).message}\nRun with --help for usage.`);
      process.exit(2);
    }
    if (err instanceof ConfigError) console.error(`Configuration error: ${err.message}`);
    else if (err instanceof DataDirInUseError) console.error(err.message);
    else console.error(`Failed: ${(err as Error).message}`);
    process.exit(1);
  },
);
