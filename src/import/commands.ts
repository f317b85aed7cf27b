import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import type { Kysely } from 'kysely';
import { AuditLog } from '../audit/audit-log.js';
import type { Config } from '../config.js';
import { PasswordHasher, pepperFrom } from '../credentials/hashing.js';
import type { Database } from '../db/schema.js';
import { exportUsers, secretFile } from './export.js';
import { FORMATS, type FirebaseParams, type Format } from './readers/index.js';
import { ImportService, ON_CONFLICT, type ImportOptions, type ImportReport, type OnConflict } from './service.js';

/** The command line's `users import` and `users export` (wired in cli.ts). */

export const IMPORT_HELP = `  users import FILE [--format F] [--on-conflict skip|update|fail] [--dry-run]
                                  bring users in with the password hashes they have; F is one
                                  of ${FORMATS.join(', ')} (default ndjson); a Firebase
                                  export also needs --firebase-signer-key, --firebase-salt-separator,
                                  --firebase-rounds and --firebase-mem-cost. Progress on a terminal
                                  (or with --progress); the report as JSON on the last line.
                                  Exit 3 when some records could not come (the report says why)
  users export [--out FILE]       every user as NDJSON, password hashes included (keep it secret)`;

export const IMPORT_OPTIONS = {
  format: { type: 'string' },
  'on-conflict': { type: 'string' },
  'dry-run': { type: 'boolean' },
  'batch-size': { type: 'string' },
  progress: { type: 'boolean' },
  out: { type: 'string' },
  'firebase-signer-key': { type: 'string' },
  'firebase-salt-separator': { type: 'string' },
  'firebase-rounds': { type: 'string' },
  'firebase-mem-cost': { type: 'string' },
} as const;

type Values = { [K in keyof typeof IMPORT_OPTIONS]?: (typeof IMPORT_OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

const ADMIN_CONTEXT = { ip: null, userAgent: 'admin command line' };

function firebaseParams(values: Values, usage: (message: string) => Error): FirebaseParams | undefined {
  const given = [values['firebase-signer-key'], values['firebase-salt-separator'], values['firebase-rounds'], values['firebase-mem-cost']];
  if (given.every((v) => v === undefined)) return undefined;
  if (given.some((v) => v === undefined)) throw usage('give all four --firebase-* parameters, as the Firebase console shows them');
  const [signerKey, saltSeparator, rounds, memCost] = given as string[];
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(signerKey!) || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(saltSeparator!)) throw usage('--firebase-signer-key and --firebase-salt-separator are base64');
  if (!/^\d{1,2}$/.test(rounds!) || !/^\d{1,2}$/.test(memCost!)) throw usage('--firebase-rounds and --firebase-mem-cost are small whole numbers');
  const b64 = (s: string) => s.replace(/-/g, '+').replace(/_/g, '/');
  return { signerKey: b64(signerKey!), saltSeparator: b64(saltSeparator!), rounds: Number(rounds), memCost: Number(memCost) };
}

/** Counts the lines of a file (fast, bytes only), for a line format's "done / total". */
async function countLines(path: string): Promise<number> {
  let n = 0;
  for await (const chunk of createReadStream(path)) {
    for (let i = (chunk as Buffer).indexOf(10); i >= 0; i = (chunk as Buffer).indexOf(10, i + 1)) n++;
  }
  return n;
}

export interface ImportCommand {
  file: string;
  options: Omit<ImportOptions, 'context'>;
  progress: boolean;
}

/** Checks the options of `users import` before anything is opened or read. */
export function importCommandOf(file: string, values: Values, usage: (message: string) => Error): ImportCommand {
  const format = (values.format ?? 'ndjson') as Format;
  if (!FORMATS.includes(format)) throw usage(`--format must be one of ${FORMATS.join(', ')}`);
  const onConflict = (values['on-conflict'] ?? 'skip') as OnConflict;
  if (!ON_CONFLICT.includes(onConflict)) throw usage('--on-conflict must be skip, update or fail');
  const batch = values['batch-size'] ?? '1000';
  if (!/^\d{1,5}$/.test(batch) || Number(batch) < 1 || Number(batch) > 10_000) throw usage('--batch-size must be a whole number from 1 to 10000');
  const firebase = firebaseParams(values, usage);
  return {
    file,
    options: { format, onConflict, dryRun: values['dry-run'] === true, batchSize: Number(batch), firebase },
    progress: values.progress === true || process.stderr.isTTY === true,
  };
}

export async function importCommand(db: Kysely<Database>, config: Config, command: ImportCommand): Promise<{ report: ImportReport; code: number }> {
  const { file, options } = command;
  const size = (await stat(file)).size;
  const tty = process.stderr.isTTY === true;
  const lineFormat = !['keycloak', 'firebase'].includes(options.format);
  const total = command.progress && tty && lineFormat ? await countLines(file) : undefined;
  const input = createReadStream(file);
  const started = performance.now();
  const progress = ({ records }: { records: number }) => {
    const seconds = (performance.now() - started) / 1000;
    const rate = Math.round(records / Math.max(seconds, 0.001));
    const done = total !== undefined ? `${records} / ${total} records` : `${records} records, ${Math.round((input.bytesRead / Math.max(size, 1)) * 100)}% of the file`;
    const text = `${done}, ${rate} records/s`;
    // On a terminal the line is rewritten in place; elsewhere (--progress) one line a batch.
    if (tty) process.stderr.write(`\r${text}\x1b[K`);
    else process.stderr.write(`${text}\n`);
  };

  const hasher = new PasswordHasher(config.argon2, config.passwordPeppers.map(pepperFrom));
  const report = await new ImportService(db, hasher).run(input, { ...options, context: ADMIN_CONTEXT }, command.progress ? progress : undefined);
  if (command.progress && tty) process.stderr.write('\n');
  return { report, code: report.failed > 0 ? 3 : 0 };
}

export async function exportCommand(db: Kysely<Database>, out: string | undefined): Promise<number> {
  console.error('This export holds every user\'s password hash: treat it as a secret, and delete it once it has been imported.');
  const target = out !== undefined ? secretFile(out) : process.stdout;
  const count = await exportUsers(db, target, new AuditLog(db), ADMIN_CONTEXT);
  if (out !== undefined) {
    target.end();
    await finished(target);
    console.error(`${count} user(s) written to ${out}.`);
  }
  return count;
}
