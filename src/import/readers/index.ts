import { firebaseHash } from '../../credentials/verifiers/index.js';
import { USERNAME, type RawRecord } from '../records.js';
import { csvObjects, jsonArrayItems, lines, type Input } from './text.js';

/**
 * One reader per source (API-MIGRATION.md): each turns its system's export into records of the
 * NDJSON shape, one at a time, numbered by line (or by position in a JSON array).
 */

export const FORMATS = ['ndjson', 'csv', 'auth0', 'supabase', 'keycloak', 'firebase', 'better-auth'] as const;
export type Format = (typeof FORMATS)[number];

/** The Firebase project's password hash parameters (its console's "Password hash parameters"). */
export interface FirebaseParams {
  signerKey: string;
  saltSeparator: string;
  rounds: number;
  memCost: number;
}

export interface ReaderOptions {
  firebase?: FirebaseParams | undefined;
}

type Fields = Record<string, unknown>;
const isObject = (value: unknown): value is Fields => typeof value === 'object' && value !== null && !Array.isArray(value);
/** The source's username when it is one of ours, else none (one is made from the email). */
const usableUsername = (value: unknown): string | undefined => (typeof value === 'string' && USERNAME.test(value) ? value : undefined);
/** A database timestamp as psql prints it (`2024-05-01 10:00:00.123456+00`) or ISO, as RFC 3339. */
function timestamp(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const date = new Date(value.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00'));
  return Number.isNaN(date.getTime()) ? value : date.toISOString();
}
/** psql's CSV booleans (t/f) and the usual spellings. */
function flag(value: string | undefined): boolean | string | undefined {
  if (value === undefined) return undefined;
  if (/^(t|true|1|yes)$/i.test(value)) return true;
  if (/^(f|false|0|no)$/i.test(value)) return false;
  return value;
}
const base64 = (value: string): string => value.replace(/-/g, '+').replace(/_/g, '/');

async function* ndjson(input: Input, map: (value: Fields) => RawRecord['fields'] = (v) => v): AsyncGenerator<RawRecord> {
  for await (const item of lines(input)) {
    if ('tooLong' in item) {
      yield { line: item.line, errors: [{ field: null, message: 'the line is too long' }] };
      continue;
    }
    if (item.text.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(item.text);
    } catch {
      yield { line: item.line, errors: [{ field: null, message: 'is not valid JSON' }] };
      continue;
    }
    if (!isObject(value)) yield { line: item.line, errors: [{ field: null, message: 'is not a JSON object' }] };
    else yield { line: item.line, fields: map(value) };
  }
}

async function* csv(input: Input, map: (values: Record<string, string>) => RawRecord): AsyncGenerator<Omit<RawRecord, 'line'> & { line: number }> {
  for await (const row of csvObjects(input)) {
    if (row.error !== undefined) yield { line: row.line, errors: [{ field: null, message: row.error }] };
    else yield { ...map(row.values!), line: row.line };
  }
}

/** Our own CSV: the record's fields as columns; `roles` space-separated. */
function plainCsv(values: Record<string, string>): RawRecord {
  const fields: Fields = { ...values };
  if (values.email_verified !== undefined) fields.email_verified = flag(values.email_verified);
  if (values.roles !== undefined) fields.roles = values.roles.split(/\s+/).filter(Boolean);
  return { line: 0, fields };
}

/**
 * Auth0: the NDJSON of a bulk user export (`user_id`, `email`, ...) or of the password hash
 * export Auth0's support hands over (`_id.$oid`, `passwordHash`, ...); both give the Auth0 id.
 */
function auth0(value: Fields): Fields {
  const oid = isObject(value._id) ? value._id.$oid : undefined;
  const externalId = value.user_id ?? (typeof oid === 'string' ? `auth0|${oid}` : undefined);
  return {
    username: usableUsername(value.username),
    name: value.name ?? value.nickname,
    email: value.email,
    email_verified: value.email_verified,
    password_hash: value.passwordHash ?? value.password_hash,
    created_at: value.created_at,
    external_id: externalId,
  };
}

/** Supabase: `auth.users` as CSV with a header (`\copy (select * from auth.users) to … csv header`). */
function supabase(values: Record<string, string>): RawRecord {
  let meta: Fields = {};
  if (values.raw_user_meta_data) {
    try {
      const parsed: unknown = JSON.parse(values.raw_user_meta_data);
      if (isObject(parsed)) meta = parsed;
    } catch {
      return { line: 0, errors: [{ field: 'raw_user_meta_data', message: 'is not valid JSON' }] };
    }
  }
  return {
    line: 0,
    fields: {
      username: usableUsername(meta.user_name ?? meta.username),
      name: meta.full_name ?? meta.name,
      email: values.email,
      email_verified: values.email_confirmed_at !== undefined,
      password_hash: values.encrypted_password,
      created_at: timestamp(values.created_at),
      external_id: values.id,
    },
  };
}

/** Better Auth: its `user` table with the `password` of the `credential` account beside it (see README). */
function betterAuth(values: Record<string, string>): RawRecord {
  return {
    line: 0,
    fields: {
      username: usableUsername(values.username),
      name: values.name,
      email: values.email,
      email_verified: flag(values.emailVerified),
      password_hash: values.password,
      created_at: timestamp(values.createdAt),
      external_id: values.id,
    },
  };
}

// Keycloak's built-in roles, which every user of a realm has.
const KEYCLOAK_DEFAULT_ROLES = /^(default-roles-.*|offline_access|uma_authorization)$/;

/**
 * A Keycloak password credential (its `secretData` and `credentialData` JSON) as a PHC string:
 * PBKDF2 (`pbkdf2`, `pbkdf2-sha256`, `pbkdf2-sha512`) or Argon2 (Keycloak 24 and later).
 */
export function keycloakHash(credential: Fields): { hash: string } | { error: string } {
  let secret: Fields;
  let data: Fields;
  try {
    secret = JSON.parse(String(credential.secretData)) as Fields;
    data = JSON.parse(String(credential.credentialData)) as Fields;
  } catch {
    return { error: 'is not Keycloak credential data' };
  }
  const algorithm = String(data.algorithm);
  const iterations = Number(data.hashIterations);
  const salt = String(secret.salt ?? '').replace(/=+$/, '');
  const value = String(secret.value ?? '').replace(/=+$/, '');
  const extra = isObject(data.additionalParameters) ? data.additionalParameters : {};
  const param = (name: string): string | undefined => (Array.isArray(extra[name]) ? String((extra[name] as unknown[])[0]) : undefined);
  const pbkdf2 = /^pbkdf2(-sha256|-sha512)?$/.exec(algorithm);
  if (pbkdf2) return { hash: `$pbkdf2${pbkdf2[1] ?? '-sha1'}$i=${iterations}$${salt}$${value}` };
  if (algorithm === 'argon2') {
    const type = param('type') ?? 'id';
    const version = param('version') === '1.0' ? 16 : 19;
    return { hash: `$argon2${type}$v=${version}$m=${param('memory') ?? ''},t=${iterations},p=${param('parallelism') ?? ''}$${salt}$${value}` };
  }
  return { error: `uses the algorithm "${algorithm}", which this service does not verify` };
}

/** Keycloak: a realm export (`kc.sh export --realm R --file realm.json`, or its users-N.json files). */
function keycloak(value: Fields): RawRecord {
  const attributes = isObject(value.attributes) ? value.attributes : {};
  const attribute = (name: string) => (Array.isArray(attributes[name]) ? (attributes[name] as unknown[])[0] : undefined);
  const credentials = Array.isArray(value.credentials) ? value.credentials.filter(isObject) : [];
  const password = credentials.find((c) => c.type === 'password');
  const converted = password ? keycloakHash(password) : undefined;
  if (converted && 'error' in converted) return { line: 0, errors: [{ field: 'password_hash', message: `the Keycloak credential ${converted.error}` }] };
  const name = [value.firstName, value.lastName].filter((part) => typeof part === 'string' && part.trim()).join(' ');
  return {
    line: 0,
    fields: {
      username: usableUsername(value.username),
      name: name || undefined,
      dob: attribute('dob') ?? attribute('birthdate'),
      email: value.email,
      email_verified: value.emailVerified,
      password_hash: converted?.hash,
      created_at: typeof value.createdTimestamp === 'number' ? new Date(value.createdTimestamp).toISOString() : undefined,
      roles: Array.isArray(value.realmRoles) ? value.realmRoles.filter((r) => typeof r === 'string' && !KEYCLOAK_DEFAULT_ROLES.test(r)) : undefined,
      external_id: value.id,
    },
  };
}

/** Firebase: the JSON of `firebase auth:export users.json --format=json`; hashes need the project's parameters. */
function firebase(value: Fields, params: FirebaseParams | undefined): RawRecord {
  let passwordHash: string | undefined;
  if (typeof value.passwordHash === 'string') {
    if (!params) return { line: 0, errors: [{ field: 'password_hash', message: 'a Firebase hash needs the project\'s parameters (--firebase-signer-key, --firebase-salt-separator, --firebase-rounds, --firebase-mem-cost)' }] };
    passwordHash = firebaseHash(params, base64(String(value.salt ?? '')), base64(value.passwordHash));
  }
  const created = Number(value.createdAt);
  return {
    line: 0,
    fields: {
      name: value.displayName,
      email: value.email,
      email_verified: value.emailVerified,
      password_hash: passwordHash,
      created_at: Number.isFinite(created) && created > 0 ? new Date(created).toISOString() : undefined,
      external_id: value.localId,
    },
  };
}

async function* jsonUsers(input: Input, map: (value: Fields) => RawRecord): AsyncGenerator<RawRecord> {
  for await (const item of jsonArrayItems(input, 'users')) {
    if ('error' in item) yield { line: item.index, errors: [{ field: null, message: item.index === 0 ? `the file ${item.error}` : `the record ${item.error}` }] };
    else if (!isObject(item.value)) yield { line: item.index, errors: [{ field: null, message: 'is not a JSON object' }] };
    else yield { ...map(item.value), line: item.index };
  }
}

export function readRecords(format: Format, input: Input, options: ReaderOptions = {}): AsyncGenerator<RawRecord> {
  switch (format) {
    case 'ndjson':
      return ndjson(input);
    case 'csv':
      return csv(input, plainCsv);
    case 'auth0':
      return ndjson(input, auth0);
    case 'supabase':
      return csv(input, supabase);
    case 'better-auth':
      return csv(input, betterAuth);
    case 'keycloak':
      return jsonUsers(input, keycloak);
    case 'firebase':
      return jsonUsers(input, (value) => firebase(value, options.firebase));
  }
}
