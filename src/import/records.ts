import { importedHashProblem } from '../credentials/verifiers/index.js';
import { dobProblem, nameProblem, newEmailProblem } from '../users/rules.js';

/**
 * One user to import, as API-MIGRATION.md's NDJSON record, checked. Every reader turns its
 * source's shape into these fields; the rules are the same whatever the source.
 */
export interface ImportRecord {
  /** The line of the file it came from (or its position in a JSON array), from 1. */
  line: number;
  /** Absent when the source has none: made from the email's local part when the user is created. */
  username: string | undefined;
  name: string | undefined;
  dob: string | null;
  email: string;
  emailVerified: boolean;
  passwordHash: string | undefined;
  password: string | undefined;
  createdAt: Date | undefined;
  roles: string[];
  externalId: string | undefined;
}

export interface RecordError {
  line: number;
  /** The field at fault; null when the record could not be read at all. */
  field: string | null;
  message: string;
}

/** What a reader yields: the record's fields in the NDJSON shape, or why it could not be read. */
export interface RawRecord {
  line: number;
  fields?: Record<string, unknown>;
  errors?: Array<{ field: string | null; message: string }>;
}

export const USERNAME = /^[A-Za-z0-9_.-]{3,32}$/;
// The shape ajv-formats checks for `email` (its "fast" mode), as the API does.
const EMAIL = /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
const KNOWN_FIELDS = new Set(['username', 'name', 'dob', 'email', 'email_verified', 'password_hash', 'password', 'created_at', 'roles', 'external_id']);
/** A password longer than any password can be (policy.ts allows 128 code points). */
const MAX_PLAIN_PASSWORD = 1024;

/** Checks one record; answers it, or the errors that keep it out. */
export function checkRecord(raw: RawRecord, now: number): { record: ImportRecord } | { errors: RecordError[] } {
  const errors: RecordError[] = (raw.errors ?? []).map((e) => ({ line: raw.line, ...e }));
  const fields = raw.fields;
  if (!fields) return { errors: errors.length ? errors : [{ line: raw.line, field: null, message: 'could not be read' }] };
  const fail = (field: string, message: string) => errors.push({ line: raw.line, field, message });
  const text = (field: string): string | undefined => {
    const value = fields[field];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string') {
      fail(field, 'must be a string');
      return undefined;
    }
    return value;
  };

  for (const key of Object.keys(fields)) if (!KNOWN_FIELDS.has(key)) fail(key, 'is not a field of the import record');

  const username = text('username');
  if (username !== undefined && !USERNAME.test(username)) fail('username', 'must be 3 to 32 letters, digits, "_", "." or "-"');

  const name = text('name');
  if (name !== undefined) {
    const problem = nameProblem(name);
    if (problem) fail('name', problem);
  }

  const dob = text('dob');
  if (dob !== undefined) {
    const problem = dobProblem(dob, new Date(now));
    if (problem) fail('dob', problem);
  }

  const email = text('email');
  if (email === undefined) {
    if (!errors.some((e) => e.field === 'email')) fail('email', 'is required');
  } else if (email.length > 254 || !EMAIL.test(email)) fail('email', 'must be an email address');
  else {
    const problem = newEmailProblem(email);
    if (problem) fail('email', problem);
  }

  const verified = fields.email_verified;
  if (verified !== undefined && verified !== null && typeof verified !== 'boolean') fail('email_verified', 'must be true or false');

  const passwordHash = text('password_hash');
  const password = text('password');
  if (passwordHash !== undefined && password !== undefined) fail('password', 'give password_hash or password, not both');
  if (passwordHash !== undefined) {
    const problem = importedHashProblem(passwordHash);
    if (problem) fail('password_hash', problem);
  }
  if (password !== undefined && (password.length === 0 || password.length > MAX_PLAIN_PASSWORD)) fail('password', `must be 1 to ${MAX_PLAIN_PASSWORD} characters`);

  const created = text('created_at');
  let createdAt: Date | undefined;
  if (created !== undefined) {
    createdAt = new Date(created);
    if (!/^\d{4}-\d{2}-\d{2}T/.test(created) || Number.isNaN(createdAt.getTime())) fail('created_at', 'must be a date and time (RFC 3339)');
    else if (createdAt.getTime() > now + 86_400_000) fail('created_at', 'must not be in the future');
  }

  const roles = fields.roles;
  if (roles !== undefined && roles !== null && (!Array.isArray(roles) || roles.some((r) => typeof r !== 'string' || r.length === 0 || r.length > 64))) {
    fail('roles', 'must be a list of role names');
  }

  const externalId = text('external_id');
  if (externalId !== undefined && (externalId.length === 0 || externalId.length > 255)) fail('external_id', 'must be 1 to 255 characters');

  if (errors.length) return { errors };
  return {
    record: {
      line: raw.line,
      username,
      name: name?.trim(),
      dob: dob ?? null,
      email: email!,
      emailVerified: verified === true,
      passwordHash,
      password,
      createdAt,
      roles: (roles as string[] | undefined | null) ?? [],
      externalId,
    },
  };
}

/**
 * A username for a user whose source has none: the email's local part, its allowed characters
 * kept (API-MIGRATION.md); the caller makes it unique with a numeric suffix.
 */
export function usernameBase(email: string): string {
  const kept = email.slice(0, email.lastIndexOf('@')).replace(/[^A-Za-z0-9_.-]/g, '').slice(0, 26);
  return kept.length >= 3 ? kept : `${kept}${kept ? '_' : ''}user`;
}
