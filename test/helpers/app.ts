import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LightMyRequestResponse } from 'fastify';
import type { Kysely } from 'kysely';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { buildApp, type BuildAppOptions } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { isMysqlUrl, openDatabase, type Db } from '../../src/db/create-db.js';
import { isMysql } from '../../src/db/dialect.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import type { Database } from '../../src/db/schema.js';
import type { App } from '../../src/http/types.js';
import { TestClock } from './clock.js';

/**
 * A fresh service on a fresh database, per test file (or per call): PGlite in memory by default,
 * a new database on the PostgreSQL or MySQL/MariaDB server named by TEST_DATABASE_URL when it is set.
 */
export interface TestService {
  app: App;
  db: Kysely<Database>;
  /** The open database handle, for building another app on the same database. */
  handle: Db;
  config: Config;
  /** The service's clock: real time, moved forward by tests (helpers/clock.ts). */
  clock: TestClock;
  close(): Promise<void>;
}

/** Cheap Argon2id for tests only; production settings cannot go below OWASP's minimum. */
export const TEST_ARGON2 = Object.freeze({ memoryCost: 1024, timeCost: 1, parallelism: 1 });

export const serverUrl = process.env.TEST_DATABASE_URL || undefined;
/** The test server is MySQL or MariaDB (a mysql:// or mariadb:// TEST_DATABASE_URL). */
export const mysqlServer = serverUrl !== undefined && isMysqlUrl(serverUrl);

/** The name of the database `db` works in. */
export async function currentDatabaseName(db: Kysely<Database>): Promise<string> {
  const fn = isMysql(db) ? 'database' : 'current_database';
  return (await db.selectNoFrom((eb) => eb.fn<string>(fn, []).as('n')).executeTakeFirstOrThrow()).n;
}

/** Mail of tests that do not read it lands here, never in the working tree's data/outbox. */
const TEST_OUTBOX = join(tmpdir(), `ums-test-outbox-${process.pid}`);

export function testConfig(overrides: Partial<Config> = {}, env: Record<string, string> = {}): Config {
  return Object.freeze({ ...loadConfig({ PUBLIC_URL: 'http://localhost:3000', ...env }), argon2: TEST_ARGON2, outboxDir: TEST_OUTBOX, ...overrides });
}

/** Creates a database of its own on the test server and returns its URL and how to drop it. */
export async function createServerDatabase(baseUrl: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `ums_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  if (isMysqlUrl(baseUrl)) return createMysqlDatabase(baseUrl, name);
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: baseUrl });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

async function createMysqlDatabase(baseUrl: string, name: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const u = new URL(baseUrl);
  const admin = () =>
    mysql.createConnection({
      host: u.hostname,
      port: u.port ? Number(u.port) : 3306,
      user: decodeURIComponent(u.username) || 'root',
      password: decodeURIComponent(u.password) || undefined,
    });
  const c = await admin();
  await c.query(`create database ${name} character set utf8mb4 collate utf8mb4_bin`);
  await c.end();
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: async () => {
      const d = await admin();
      await d.query(`drop database if exists ${name}`);
      await d.end();
    },
  };
}

/** What a test may pass to buildApp beyond the config: a PermissionSource, more features. */
export type TestAppOptions = Pick<BuildAppOptions, 'permissions' | 'features'>;

export async function startTestService(overrides: Partial<Config> = {}, env: Record<string, string> = {}, options: TestAppOptions = {}): Promise<TestService> {
  const config = testConfig(overrides, env);
  const server = serverUrl ? await createServerDatabase(serverUrl) : undefined;
  const db = await openDatabase({ databaseUrl: server?.url, pgliteDir: 'memory://', poolMax: 10, timeoutMs: 5000 });
  await migrateToLatest(db.kysely);
  const clock = new TestClock();
  const app = await buildApp({ config, db, testHooks: true, clock, ...options });
  return {
    app,
    db: db.kysely,
    handle: db,
    config,
    clock,
    close: async () => {
      await app.close();
      await db.close();
      await server?.drop();
    },
  };
}

export const JSON_TYPE = 'application/json; charset=utf-8';
export const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';

let counter = 0;
/** A username (and matching email) no other test in the file uses. */
export function uniqueName(prefix = 'user'): string {
  counter += 1;
  return `${prefix}_${process.pid % 1000}_${counter}`;
}

export const GOOD_PASSWORD = 'violet lantern orbit 4217';

export interface RegisteredUser {
  id: string;
  username: string;
  email: string;
  password: string;
}

export async function registerUser(app: App, fields: Partial<{ username: string; email: string; password: string; name: string; dob: string }> = {}): Promise<RegisteredUser> {
  const username = fields.username ?? uniqueName();
  const body = {
    username,
    name: fields.name ?? 'Test User',
    dob: fields.dob ?? '1990-12-10',
    email: fields.email ?? `${username}@example.com`,
    password: fields.password ?? GOOD_PASSWORD,
  };
  const res = await app.inject({ method: 'POST', url: '/v1/users', payload: body });
  if (res.statusCode !== 201) throw new Error(`register failed: ${res.statusCode} ${res.body}`);
  return { id: res.json().id, username: body.username, email: body.email, password: body.password };
}

export interface LoggedIn {
  accessToken: string;
  refreshToken: string;
  sessionId: string;
  body: any;
}

export async function login(app: App, user: { username: string; password: string }, headers: Record<string, string> = {}): Promise<LoggedIn> {
  const res = await app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: user.password }, headers });
  if (res.statusCode !== 201) throw new Error(`login failed: ${res.statusCode} ${res.body}`);
  const body = res.json();
  return { accessToken: body.access_token, refreshToken: body.refresh_token, sessionId: body.session.id, body };
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/** Parses a problem+json answer after checking its media type. */
export function problem(res: LightMyRequestResponse): { status: number; code: string; detail: string; errors?: Array<{ field: string; message: string }>; [k: string]: unknown } {
  if (res.headers['content-type'] !== PROBLEM_TYPE) throw new Error(`expected problem+json, got ${res.headers['content-type']}: ${res.body}`);
  return res.json();
}

/** Row counts of the seed's tables, to show that a refused request wrote nothing. */
export async function tableCounts(db: Kysely<Database>): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of ['users', 'user_credentials', 'user_sessions'] as const) {
    const row = await db.selectFrom(table).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    counts[table] = Number(row.n);
  }
  return counts;
}
