/**
 * Shared pieces of the attack suite (test/security/*.test.ts). Not a test file itself.
 *
 * Every attack asserts three things: the exact status, the problem `code`, and that the database
 * holds exactly what it held before ("nothing lost", "nothing written").
 */
import assert from 'node:assert/strict';
import { createHmac, createPrivateKey, randomUUID, sign as cryptoSign, type KeyObject } from 'node:crypto';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import type { Kysely } from 'kysely';
import { openPrivateJwk } from '../../src/auth/keys.js';
import { loadDataCipher } from '../../src/crypto/data-encryption.js';
import type { Database } from '../../src/db/schema.js';
import type { App } from '../../src/http/types.js';
import { GOOD_PASSWORD, PROBLEM_TYPE, problem, tableCounts, uniqueName, type LoggedIn, type RegisteredUser, type TestService } from '../helpers/app.js';

export type Db = Kysely<Database>;

/**
 * Everything an attack could change or destroy: the seed's three tables row by row (every column
 * except `last_used_at`, which the service records in the background), and the signing keys.
 * Throttling counters and the audit log are expected to grow and are not part of it.
 */
export interface DbState {
  counts: Record<string, number>;
  users: unknown[];
  credentials: unknown[];
  sessions: unknown[];
  keys: unknown[];
}

export async function dbState(db: Db): Promise<DbState> {
  return {
    counts: await tableCounts(db),
    users: await db.selectFrom('users').selectAll().orderBy('user_id').execute(),
    credentials: await db.selectFrom('user_credentials').selectAll().orderBy('credentials_id').execute(),
    sessions: await db
      .selectFrom('user_sessions')
      .select([
        'session_id',
        'user_id',
        'created_at',
        'is_active',
        'expires_at',
        'ended_at',
        'end_reason',
        'user_agent',
        'ip',
        'refresh_token_hash',
        'previous_refresh_token_hash',
        'refresh_rotated_at',
        'refresh_generation',
      ])
      .orderBy('session_id')
      .execute(),
    keys: await db.selectFrom('signing_keys').select(['kid', 'alg', 'public_jwk', 'private_jwk', 'activates_at', 'retired_at']).orderBy('kid').execute(),
  };
}

/** The database holds exactly what it held before the refused request. */
export async function assertNothingChanged(db: Db, before: DbState, label = 'the database is unchanged'): Promise<void> {
  assert.deepStrictEqual(await dbState(db), before, label);
}

/** The rows of one user: profile, credentials, sessions. */
export async function userRows(db: Db, userId: string) {
  return {
    user: await db.selectFrom('users').selectAll().where('user_id', '=', userId).executeTakeFirst(),
    credentials: await db.selectFrom('user_credentials').selectAll().where('user_id', '=', userId).orderBy('credentials_id').execute(),
    sessions: await db
      .selectFrom('user_sessions')
      .select(['session_id', 'is_active', 'expires_at', 'ended_at', 'end_reason', 'refresh_token_hash', 'refresh_generation'])
      .where('user_id', '=', userId)
      .orderBy('session_id')
      .execute(),
  };
}

export function sessionRow(db: Db, sessionId: string) {
  return db.selectFrom('user_sessions').selectAll().where('session_id', '=', sessionId).executeTakeFirstOrThrow();
}

/** A problem+json answer with exactly this status and code; returns the body. */
export function assertProblem(res: LightMyRequestResponse, status: number, code: string, label = ''): ReturnType<typeof problem> {
  assert.equal(res.statusCode, status, `${label} ${res.statusCode} ${res.body}`.trim());
  assert.equal(res.headers['content-type'], PROBLEM_TYPE, label);
  const body = problem(res);
  assert.equal(body.code, code, label);
  assert.equal(body.status, status, `${label}: the status member equals the HTTP status`);
  return body;
}

/** 400 validation_failed whose `errors` names `field`. */
export function assertValidationFailed(res: LightMyRequestResponse, field: string, label = ''): void {
  const body = assertProblem(res, 400, 'validation_failed', label);
  assert.ok(Array.isArray(body.errors), `${label}: errors is a list`);
  assert.ok(
    body.errors!.some((e) => e.field === field),
    `${label}: errors names ${field}: ${JSON.stringify(body.errors)}`,
  );
}

/** 401 invalid_token with a Bearer challenge. */
export function assertInvalidToken(res: LightMyRequestResponse, label = ''): void {
  assertProblem(res, 401, 'invalid_token', label);
  assert.match(String(res.headers['www-authenticate'] ?? ''), /^Bearer\b/, `${label}: WWW-Authenticate: Bearer`);
}

export function registerPayload(overrides: Record<string, unknown> = {}, prefix = 'sec'): Record<string, unknown> {
  const username = uniqueName(prefix);
  return { username, name: 'Security Tester', dob: '1990-12-10', email: `${username}@example.com`, password: GOOD_PASSWORD, ...overrides };
}

/** A raw body with an explicit Content-Type (application/json unless given). */
export function rawInject(app: App, method: InjectOptions['method'], url: string, body: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return app.inject({ method, url, payload: body, headers: { 'content-type': 'application/json', ...headers } });
}

// ---------------------------------------------------------------------------------------------
// JWTs built by hand, so that any header or claim can be set (jose refuses to sign some of them).

export function b64json(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

export type Signer = (signingInput: Buffer) => Buffer;

/** A compact JWS: header and payload as given, signed by `signer` (none: an empty signature). */
export function compactJws(header: Record<string, unknown>, payload: Record<string, unknown>, signer?: Signer): string {
  const input = `${b64json(header)}.${b64json(payload)}`;
  const signature = signer ? signer(Buffer.from(input)).toString('base64url') : '';
  return `${input}.${signature}`;
}

export const ed25519Signer = (key: KeyObject): Signer => (input) => cryptoSign(null, input, key);
export const hmacSigner = (secret: Buffer | string): Signer => (input) => createHmac('sha256', secret).update(input).digest();

export interface ServiceKey {
  kid: string;
  privateKey: KeyObject;
  publicJwk: { kty: string; crv: string; x: string };
}

/** The service's own signing key, read from the signing_keys table. */
export async function serviceSigningKey(db: Db): Promise<ServiceKey> {
  const row = await db.selectFrom('signing_keys').selectAll().where('retired_at', 'is', null).orderBy('created_at', 'desc').executeTakeFirstOrThrow();
  return {
    kid: row.kid,
    // Stored encrypted with DATA_ENCRYPTION_KEY (here the generated one).
    privateKey: createPrivateKey({ key: JSON.parse(openPrivateJwk(await loadDataCipher(db, []), row)), format: 'jwk' }),
    publicJwk: JSON.parse(row.public_jwk),
  };
}

/** Claims of a genuine access token for this user and session; `undefined` in overrides drops a claim. */
export function accessClaims(svc: TestService, user: RegisteredUser, session: LoggedIn, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = {
    iss: svc.config.jwtIssuer,
    aud: svc.config.jwtAudience,
    sub: user.id,
    sid: session.sessionId,
    client_id: 'user-management',
    iat: now,
    exp: now + 600,
    jti: randomUUID(),
    ...overrides,
  };
  for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
  return claims;
}

/** A header of a genuine access token; `undefined` in overrides drops a member. */
export function accessHeader(kid: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const header: Record<string, unknown> = { alg: 'EdDSA', typ: 'at+jwt', kid, ...overrides };
  for (const [k, v] of Object.entries(header)) if (v === undefined) delete header[k];
  return header;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
