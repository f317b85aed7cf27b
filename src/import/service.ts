import type { Kysely, Transaction } from 'kysely';
import { auditRow, type AuditContext, type AuditRow } from '../audit/audit-log.js';
import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import type { PasswordHasher } from '../credentials/hashing.js';
import { uniqueViolation } from '../db/errors.js';
import { notifyInvalidated } from '../db/notifications.js';
import type { Database } from '../db/schema.js';
import { lookupKey } from '../users/repository.js';
import { readRecords, type FirebaseParams, type Format } from './readers/index.js';
import type { Input } from './readers/text.js';
import { checkRecord, usernameBase, type ImportRecord, type RecordError } from './records.js';
import { SeenKeys } from './seen-keys.js';
import {
  existingRoles,
  findHolders,
  grantRoles,
  insertAuditRows,
  insertCredentials,
  insertUsers,
  replaceCurrentHash,
  takenUsernames,
  updateImportedUser,
  usernamesStartingWith,
  type ExistingUser,
  type NewImportedUser,
} from './repository.js';

export const ON_CONFLICT = ['skip', 'update', 'fail'] as const;
export type OnConflict = (typeof ON_CONFLICT)[number];

export interface ImportOptions {
  format: Format;
  onConflict: OnConflict;
  dryRun: boolean;
  /** Records written per transaction. */
  batchSize?: number;
  firebase?: FirebaseParams | undefined;
  /** Who runs the import, for the audit events. */
  context: AuditContext;
}

/** The run's report (API-MIGRATION.md), the CLI's last line and the API's body. */
export interface ImportReport {
  created: number;
  updated: number;
  skipped: number;
  failed: number;
  errors: RecordError[];
}

export interface ImportProgress {
  /** Records read so far, good and bad. */
  records: number;
}

/** At most this many errors are listed; the counts go on. */
export const MAX_LISTED_ERRORS = 1000;
const DEFAULT_BATCH = 1000;
/** Plain passwords hashed at once: the hashing threads, kept busy without a queue of thousands. */
const HASH_CONCURRENCY = 8;

/**
 * Brings users in from a file (API-MIGRATION.md): records are read as a stream, checked one by
 * one, and written in batches, each batch in one transaction (so an interrupted run leaves whole
 * users only, and the same run again finishes it). A bad record never stops the others.
 */
export class ImportService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly hasher: PasswordHasher,
    private readonly clock: Clock = systemClock,
  ) {}

  async run(input: Input, options: ImportOptions, onProgress?: (progress: ImportProgress) => void): Promise<ImportReport> {
    const report: ImportReport = { created: 0, updated: 0, skipped: 0, failed: 0, errors: [] };
    const batchSize = options.batchSize ?? DEFAULT_BATCH;
    let records = 0;
    let batch: ImportRecord[] = [];
    // The keys of the batch being gathered: a record that shares one with an earlier record of
    // the batch waits for the next batch, where it meets that user as a conflict.
    let batchKeys = new Set<string>();
    // A dry run writes nothing, so a later batch would not meet the users an earlier one would
    // have made: the run remembers their keys instead.
    const wouldExist = options.dryRun ? new SeenKeys() : undefined;

    const listErrors = (errors: RecordError[]) => {
      for (const e of errors) if (report.errors.length < MAX_LISTED_ERRORS) report.errors.push(e);
    };
    // One batch is written while the next is read and checked; writes stay one after another,
    // so each batch sees the users of the one before it.
    let writing: Promise<void> = Promise.resolve();
    const flush = async () => {
      if (!batch.length) return;
      const full = batch;
      batch = [];
      batchKeys = new Set();
      await writing;
      writing = this.#writeBatch(full, options, wouldExist).then((outcome) => {
        report.created += outcome.created;
        report.updated += outcome.updated;
        report.skipped += outcome.skipped;
        report.failed += outcome.errors.length;
        listErrors(outcome.errors);
        onProgress?.({ records });
      });
      writing.catch(() => {}); // awaited at the next flush or the end; handled there
    };

    for await (const raw of readRecords(options.format, input, { firebase: options.firebase })) {
      records += 1;
      const checked = checkRecord(raw, this.clock.now());
      if ('errors' in checked) {
        report.failed += 1;
        listErrors(checked.errors);
        continue;
      }
      const record = checked.record;
      const keys = recordKeys(record);
      if (keys.some((k) => batchKeys.has(k))) await flush();
      for (const k of keys) batchKeys.add(k);
      batch.push(record);
      if (batch.length >= batchSize) await flush();
    }
    await flush();
    await writing;
    return report;
  }

  async #writeBatch(batch: ImportRecord[], options: ImportOptions, wouldExist?: SeenKeys): Promise<{ created: number; updated: number; skipped: number; errors: RecordError[] }> {
    // Slow work first: plain passwords are hashed before the transaction opens.
    const hashes = new Map<ImportRecord, string>();
    if (!options.dryRun) {
      const plain = batch.filter((r) => r.password !== undefined);
      for (let i = 0; i < plain.length; i += HASH_CONCURRENCY) {
        await Promise.all(plain.slice(i, i + HASH_CONCURRENCY).map(async (r) => hashes.set(r, await this.hasher.hash(r.password!))));
      }
    }
    if (options.dryRun) {
      const plan = await this.#plan(this.db, batch, options, wouldExist);
      for (const record of plan.toCreate) for (const key of recordKeys(record)) wouldExist?.add(key);
      return plan;
    }
    // A user registering meanwhile can take a key the batch was about to use: the batch is rolled
    // back whole and planned again.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.db.transaction().execute((trx) => this.#apply(trx, batch, hashes, options));
      } catch (err) {
        if (attempt >= 3 || uniqueViolation(err) === undefined) throw err;
      }
    }
  }

  /** What each record of the batch meets: a new user, or the existing user(s) it conflicts with. */
  async #plan(db: Kysely<Database> | Transaction<Database>, batch: ImportRecord[], options: ImportOptions, wouldExist?: SeenKeys) {
    const holders = await findHolders(db, {
      usernames: batch.filter((r) => r.username !== undefined).map((r) => lookupKey(r.username!)),
      emails: batch.map((r) => lookupKey(r.email)),
      externalIds: batch.filter((r) => r.externalId !== undefined).map((r) => r.externalId!),
    });
    const roles = await existingRoles(db, [...new Set(batch.flatMap((r) => r.roles))]);
    const errors: RecordError[] = [];
    const toCreate: ImportRecord[] = [];
    const toUpdate: Array<{ record: ImportRecord; userId: string }> = [];
    let skipped = 0;
    for (const record of batch) {
      const unknown = record.roles.filter((r) => !roles.has(r));
      if (unknown.length) {
        errors.push({ line: record.line, field: 'roles', message: `names no role of this service: ${unknown.join(', ')}` });
        continue;
      }
      const matches = holders.filter((h) => holds(h, record));
      const ids = [...new Set(matches.map((h) => h.user_id))];
      // (a dry run) a user an earlier batch would have made: the conflict the real run meets
      const earlier = ids.length === 0 && wouldExist !== undefined ? recordKeys(record).find((k) => wouldExist.has(k)) : undefined;
      if (earlier !== undefined) {
        if (options.onConflict === 'skip') skipped += 1;
        else if (options.onConflict === 'fail') errors.push({ line: record.line, field: KEY_FIELDS[earlier[0]!]!, message: 'already belongs to a user (--on-conflict fail)' });
        else toUpdate.push({ record, userId: '' });
      } else if (!ids.length) toCreate.push(record);
      else if (options.onConflict === 'skip') skipped += 1;
      else if (options.onConflict === 'fail') errors.push({ line: record.line, field: conflictField(matches[0]!, record), message: 'already belongs to a user (--on-conflict fail)' });
      else if (ids.length > 1) errors.push({ line: record.line, field: null, message: 'matches more than one existing user (by username, email or external_id)' });
      else toUpdate.push({ record, userId: ids[0]! });
    }
    return { created: toCreate.length, updated: toUpdate.length, skipped, errors, toCreate, toUpdate };
  }

  async #apply(trx: Transaction<Database>, batch: ImportRecord[], hashes: Map<ImportRecord, string>, options: ImportOptions) {
    const plan = await this.#plan(trx, batch, options);
    const usernames = await this.#usernames(trx, plan.toCreate);
    // A record without its own creation time is created now (the service's clock).
    const now = new Date(this.clock.now());
    const users: NewImportedUser[] = plan.toCreate.map((r) => {
      const username = usernames.get(r)!;
      return { username, name: r.name ?? username, dob: r.dob, email: r.email, email_verified: r.emailVerified, external_id: r.externalId ?? null, created_at: r.createdAt ?? now };
    });
    const ids = await insertUsers(trx, users);
    const audit: AuditRow[] = [];
    const credentials: Array<{ user_id: string; hashed_password: string; imported: boolean }> = [];
    const grants: Array<{ user_id: string; role_name: string }> = [];
    plan.toCreate.forEach((r, i) => {
      const userId = ids.get(users[i]!.username.toLowerCase())!;
      for (const role of r.roles) grants.push({ user_id: userId, role_name: role });
      const hash = r.passwordHash ?? hashes.get(r);
      if (hash) credentials.push({ user_id: userId, hashed_password: hash, imported: r.passwordHash !== undefined });
      audit.push(auditRow('user_imported', { ...options.context, userId }, details(options, r)));
    });
    await insertCredentials(trx, credentials);
    for (const { record: r, userId } of plan.toUpdate) {
      await updateImportedUser(trx, userId, {
        ...(r.username !== undefined ? { username: r.username } : {}),
        ...(r.name !== undefined ? { name: r.name } : {}),
        ...(r.dob !== null ? { dob: r.dob } : {}),
        email: r.email,
        email_verified: r.emailVerified,
        ...(r.externalId !== undefined ? { external_id: r.externalId } : {}),
      });
      const hash = r.passwordHash ?? hashes.get(r);
      if (hash) await replaceCurrentHash(trx, userId, hash, r.passwordHash !== undefined);
      for (const role of r.roles) grants.push({ user_id: userId, role_name: role });
      audit.push(auditRow('user_imported', { ...options.context, userId }, { ...details(options, r), updated: true }));
    }
    await grantRoles(trx, grants);
    // Running instances drop the updated profiles (and permissions) they cached.
    if (plan.toUpdate.length) {
      await notifyInvalidated(trx, 'user', plan.toUpdate.map((u) => u.userId));
      await notifyInvalidated(trx, 'access', plan.toUpdate.map((u) => u.userId));
    }
    await insertAuditRows(trx, audit);
    return plan;
  }

  /**
   * The username of each new user: its own, or the email's local part made unique with a
   * numeric suffix (`ada`, `ada2`, `ada3`...), against the database and the rest of the batch.
   */
  async #usernames(trx: Transaction<Database>, records: ImportRecord[]): Promise<Map<ImportRecord, string>> {
    const chosen = new Map<ImportRecord, string>();
    const used = new Set<string>();
    for (const r of records) {
      if (r.username !== undefined) {
        chosen.set(r, r.username);
        used.add(lookupKey(r.username));
      }
    }
    const derive = records.filter((r) => r.username === undefined);
    if (!derive.length) return chosen;
    const bases = new Map(derive.map((r) => [r, usernameBase(r.email)]));
    const taken = await takenUsernames(trx, [...new Set([...bases.values()].map(lookupKey))]);
    const crowded: ImportRecord[] = [];
    for (const r of derive) {
      const key = lookupKey(bases.get(r)!);
      if (taken.has(key) || used.has(key)) crowded.push(r);
      else {
        chosen.set(r, bases.get(r)!);
        used.add(key);
      }
    }
    if (crowded.length) {
      const takenLike = await usernamesStartingWith(trx, [...new Set(crowded.map((r) => lookupKey(bases.get(r)!)))]);
      for (const r of crowded) {
        const base = bases.get(r)!;
        for (let n = 2; ; n++) {
          const candidate = `${base.slice(0, 32 - String(n).length)}${n}`;
          const key = lookupKey(candidate);
          if (!takenLike.has(key) && !used.has(key)) {
            chosen.set(r, candidate);
            used.add(key);
            break;
          }
        }
      }
    }
    return chosen;
  }
}

/** A record's conflict keys, in the order a conflict names its field (conflictField): username, email, external id. */
function recordKeys(r: ImportRecord): string[] {
  return [...(r.username !== undefined ? [`u:${lookupKey(r.username)}`] : []), `e:${lookupKey(r.email)}`, ...(r.externalId !== undefined ? [`x:${r.externalId}`] : [])];
}

const KEY_FIELDS: Record<string, string> = { u: 'username', e: 'email', x: 'external_id' };

function holds(h: ExistingUser, r: ImportRecord): boolean {
  return h.email_key === lookupKey(r.email) || (r.username !== undefined && h.username_key === lookupKey(r.username)) || (r.externalId !== undefined && h.external_id === r.externalId);
}

function conflictField(h: ExistingUser, r: ImportRecord): string {
  if (r.username !== undefined && h.username_key === lookupKey(r.username)) return 'username';
  if (h.email_key === lookupKey(r.email)) return 'email';
  return 'external_id';
}

function details(options: ImportOptions, r: ImportRecord): Record<string, string> {
  return { format: options.format, ...(r.externalId !== undefined ? { external_id: r.externalId } : {}), ...(r.roles.length ? { roles: r.roles.join(' ') } : {}) };
}
