import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDataEncryptionKeys } from './crypto/data-encryption.js';

/**
 * Settings come from the environment, are checked once at start and then frozen.
 * A bad value stops the start with one line naming the variable (see API.md, "Running").
 */

export interface Argon2Params {
  /** KiB of memory per hash. */
  readonly memoryCost: number;
  /** Passes over memory. */
  readonly timeCost: number;
  readonly parallelism: number;
}

export interface Config {
  readonly port: number;
  readonly host: string;
  /** A postgres:// or mysql:// (mariadb://) URL; undefined means the embedded PGlite database under dataDir. */
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly logLevel: string;
  readonly passwordMinLength: number;
  /** Passed to Fastify's trustProxy: false (believe no proxy), a hop count, or addresses/CIDRs. */
  readonly trustProxy: boolean | number | string[];
  readonly accessTokenTtlS: number;
  readonly sessionTtlS: number;
  readonly sessionIdleTtlS: number;
  readonly rateLimitPerMinute: number;
  /** IMPORT_MAX_BYTES: the largest body POST /v1/admin/users/import reads (API-MIGRATION.md), 1 GiB by default. */
  readonly importMaxBytes: number;
  readonly loginMaxFailures: number;
  /** The first wait after loginMaxFailures failures in a row; it doubles with each further failure. */
  readonly loginLockBaseS: number;
  readonly loginLockMaxS: number;
  /** Failed logins an hour per account across all addresses (NIST SP 800-63B: at most 100). */
  readonly loginAccountMaxFailuresPerHour: number;
  readonly corsOrigins: readonly string[];
  readonly refreshRetryS: number;
  /** How long security events are kept. */
  readonly auditRetentionDays: number;
  /** ORG_LIMIT_PER_USER: how many organizations one user may create (API-ORGS.md). */
  readonly orgLimitPerUser: number;
  /** The origin users reach; the default issuer and audience of access tokens. */
  readonly publicUrl: string;
  /** The WebAuthn relying party id: the host of PUBLIC_URL or a registrable suffix of it. */
  readonly webauthnRpId: string;
  readonly jwtIssuer: string;
  readonly jwtAudience: string;
  /** Connections per process to a PostgreSQL server. */
  readonly dbPoolMax: number;
  /** DB_PREPARED_STATEMENTS: named prepared statements on a PostgreSQL server (off behind a pooler that cannot keep them). */
  readonly dbPreparedStatements: boolean;
  /** Worker processes of one instance (node:cluster); 1 on the embedded database. */
  readonly workers: number;
  /** How long a request waits for a database connection or a query before answering 503. */
  readonly dbTimeoutMs: number;
  readonly argon2: Argon2Params;
  /** PASSWORD_PEPPER: secrets outside the database; the first peppers new hashes, all verify. */
  readonly passwordPeppers: readonly string[];
  /** DATA_ENCRYPTION_KEY: 32-byte keys for secrets at rest; the first encrypts, all decrypt. Empty: a generated key in the database. */
  readonly dataEncryptionKeys: readonly Buffer[];
  /** SMTP_URL (smtp:// or smtps://); undefined writes mail to outboxDir as .eml files. */
  readonly smtpUrl: string | undefined;
  readonly mailFrom: string;
  /** Where mail goes without SMTP_URL: DATA_DIR/outbox. */
  readonly outboxDir: string;
  /** The first wait before a failed mail is tried again; each further wait is 4 times longer. */
  readonly mailRetryBaseMs: number;
  /** REQUIRE_EMAIL_VERIFICATION: no sign-in until the email is verified. */
  readonly requireEmailVerification: boolean;
  /** MFA_REQUIRED_FOR (API-ADMIN.md): who must have a second factor: nobody, holders of a role, everyone. */
  readonly mfaRequiredFor: 'none' | 'roles' | 'all';
  /** WEBHOOK_ALLOW_PRIVATE: webhooks may go to loopback, private, link-local and metadata addresses (tests, a closed network). */
  readonly webhookAllowPrivate: boolean;
  /** WEBHOOK_TIMEOUT_MS: the longest a delivery may take, connection to answer (API-INTEGRATION.md: 15 s). */
  readonly webhookTimeoutMs: number;
  /** IDENTITY_PROVIDERS and their IDP_<NAME>_* groups: sign in with another provider (API-FEDERATION.md A); none by default. */
  readonly identityProviders: readonly IdentityProviderSetting[];
  /** OAUTH_RESOURCES (API-FEDERATION.md B, RFC 8707): the resources a client may ask a token for, absolute URIs. */
  readonly oauthResources: readonly string[];
}

/** One provider of IDENTITY_PROVIDERS, as configured (federation/providers.ts turns it into a client). */
export interface IdentityProviderSetting {
  /** Lower case, as in the URLs (/v1/oauth/{name}/...). */
  readonly name: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** The issuer (discovery), or for github the base URL of a GitHub Enterprise server; undefined for a preset. */
  readonly issuer: string | undefined;
  readonly scopes: string;
  readonly label: string;
}

/** OWASP Password Storage Cheat Sheet minimum for Argon2id: m=19456 KiB, t=2, p=1. */
export const OWASP_ARGON2: Argon2Params = Object.freeze({ memoryCost: 19456, timeCost: 2, parallelism: 1 });

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, got "${raw}"`);
  const n = Number(raw.trim());
  if (n < min || n > max) throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, got ${n}`);
  return n;
}

function str(env: Env, name: string, def: string): string {
  const raw = env[name];
  return raw === undefined || raw === '' ? def : raw;
}

function origin(name: string, raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${name} must be an absolute http(s) URL, got "${raw}"`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || (url.pathname !== '/' && url.pathname !== '')) {
    throw new ConfigError(`${name} must be an http(s) origin with no path, got "${raw}"`);
  }
  return url.origin;
}

// WebAuthn §5.1.3 (rp.id): a browser accepts an RP id only if it is the origin's host or a
// registrable domain suffix of it, and never an IP address. Unset, it is the host of PUBLIC_URL
// as it is (passkeys then simply do not work in a browser on an IP address).
function rpId(raw: string | undefined, publicUrl: string): string {
  const host = new URL(publicUrl).hostname;
  if (raw === undefined || raw === '') return host;
  const id = raw.trim().toLowerCase();
  if (!/^[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(id) || /^[0-9.]+$/.test(id)) {
    throw new ConfigError(`WEBAUTHN_RP_ID must be a host name (not an IP address), got "${raw}"`);
  }
  if (host !== id && !host.endsWith(`.${id}`)) {
    throw new ConfigError(`WEBAUTHN_RP_ID must be the host of PUBLIC_URL (${host}) or a domain it belongs to, got "${raw}"`);
  }
  return id;
}

function bool(env: Env, name: string, def: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return def;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new ConfigError(`${name} must be true or false, got "${env[name]}"`);
}

function smtpUrl(raw: string | undefined): string | undefined {
  if (raw === undefined || raw === '') return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError('SMTP_URL must be an smtp:// or smtps:// URL');
  }
  // The URL may hold a password: never echo it.
  if ((url.protocol !== 'smtp:' && url.protocol !== 'smtps:') || !url.hostname) throw new ConfigError('SMTP_URL must be an smtp:// or smtps:// URL with a host');
  return raw;
}

function mailFrom(raw: string | undefined, publicUrl: string): string {
  const from = raw === undefined || raw === '' ? `no-reply@${new URL(publicUrl).hostname}` : raw.trim();
  // One address, optionally with a display name: "Service <no-reply@example.com>". No line breaks (header injection).
  if (/[\r\n]/.test(from) || !/^([^<>]*<)?[^\s@<>]+@[^\s@<>]+>?$/.test(from)) throw new ConfigError(`MAIL_FROM must be an email address, got "${from}"`);
  return from;
}

/** DATA_DIR/outbox; an in-memory DATA_DIR (memory://) has no disk, so the system's temporary directory. */
function outboxDir(dataDir: string): string {
  return dataDir.startsWith('memory://') ? join(tmpdir(), 'user-management-outbox') : join(dataDir, 'outbox');
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

// ASVS 5.0 V15.3.4, V4.1.3: X-Forwarded-For is believed only from the proxies named here.
function parseTrustProxy(raw: string | undefined): boolean | number | string[] {
  if (raw === undefined || raw === '' || raw === 'false') return false;
  if (raw === 'true') return true;
  if (/^\d+$/.test(raw)) return Number(raw);
  const list = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const entry of list) {
    if (!/^[0-9a-fA-F.:]+(\/\d{1,3})?$/.test(entry) && entry !== 'loopback' && entry !== 'linklocal' && entry !== 'uniquelocal') {
      throw new ConfigError(`TRUST_PROXY must be true, a hop count, or comma-separated addresses/CIDRs, got "${entry}"`);
    }
  }
  return list;
}

function parseWorkers(env: Env, databaseUrl: string | undefined): number {
  const workers = int(env, 'WORKERS', databaseUrl ? availableParallelism() : 1, 1, 256);
  if (workers > 1 && !databaseUrl) {
    throw new ConfigError(`WORKERS=${workers} needs a server database (set DATABASE_URL): the embedded database belongs to one process`);
  }
  return workers;
}

function dataEncryptionKeys(raw: string | undefined): Buffer[] {
  try {
    return parseDataEncryptionKeys(raw);
  } catch (err) {
    throw new ConfigError(`DATA_ENCRYPTION_KEY must list base64 32-byte keys, comma-separated: ${(err as Error).message}`);
  }
}

function parsePeppers(raw: string | undefined): string[] {
  const peppers = (raw ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const pepper of peppers) {
    if (pepper.length < 32) throw new ConfigError('PASSWORD_PEPPER must list secrets of at least 32 characters, comma-separated');
  }
  return peppers;
}

function oauthResources(raw: string | undefined): string[] {
  const list = (raw ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const uri of list) {
    let url: URL | undefined;
    try {
      url = new URL(uri);
    } catch {
      url = undefined;
    }
    // RFC 8707 2: an absolute URI without a fragment.
    if (!url || uri.includes('#')) throw new ConfigError(`OAUTH_RESOURCES: "${uri}" must be an absolute URI without a fragment`);
  }
  return list;
}

/** The presets need no issuer (federation/providers.ts knows their endpoints). */
const IDP_PRESETS = ['google', 'microsoft', 'apple', 'gitlab', 'github'];
const IDP_LABELS: Record<string, string> = { google: 'Google', microsoft: 'Microsoft', apple: 'Apple', gitlab: 'GitLab', github: 'GitHub' };

function identityProviders(env: Env): IdentityProviderSetting[] {
  const names = (env.IDENTITY_PROVIDERS ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  if (new Set(names).size !== names.length) throw new ConfigError('IDENTITY_PROVIDERS names a provider twice');
  return names.map((name) => {
    if (!/^[a-z][a-z0-9]{0,31}$/.test(name)) throw new ConfigError(`IDENTITY_PROVIDERS: "${name}" must be letters and digits, starting with a letter`);
    const key = (suffix: string) => `IDP_${name.toUpperCase()}_${suffix}`;
    const required = (suffix: string) => {
      const value = env[key(suffix)]?.trim();
      if (!value) throw new ConfigError(`${key(suffix)} is required for the identity provider "${name}"`);
      return value;
    };
    const rawIssuer = env[key('ISSUER')]?.trim() || undefined;
    if (rawIssuer === undefined && !IDP_PRESETS.includes(name)) throw new ConfigError(`${key('ISSUER')} is required: "${name}" is not a preset (${IDP_PRESETS.join(', ')})`);
    let issuer: URL | undefined;
    if (rawIssuer !== undefined) {
      try {
        issuer = new URL(rawIssuer);
      } catch {
        throw new ConfigError(`${key('ISSUER')} must be a URL`);
      }
      // Plain http only on a loopback address (development and tests).
      const loopback = ['127.0.0.1', '[::1]', 'localhost'].includes(issuer.hostname);
      if (issuer.protocol !== 'https:' && !(issuer.protocol === 'http:' && loopback)) throw new ConfigError(`${key('ISSUER')} must be https (http only on a loopback address)`);
    }
    // Apple knows `name` and `email`, not `profile`.
    const defaultScopes = name === 'github' ? 'read:user user:email' : name === 'apple' ? 'openid email name' : 'openid email profile';
    return Object.freeze({
      name,
      clientId: required('CLIENT_ID'),
      clientSecret: required('CLIENT_SECRET'),
      issuer: rawIssuer,
      scopes: env[key('SCOPES')]?.trim() || defaultScopes,
      label: env[key('LABEL')]?.trim() || IDP_LABELS[name] || name,
    });
  });
}

function mfaRequiredFor(raw: string | undefined): 'none' | 'roles' | 'all' {
  const value = raw?.trim().toLowerCase();
  if (value === undefined || value === '') return 'none';
  if (value === 'none' || value === 'roles' || value === 'all') return value;
  throw new ConfigError(`MFA_REQUIRED_FOR must be none, roles or all, got "${raw}"`);
}

export function loadConfig(env: Env = process.env): Config {
  const port = int(env, 'PORT', 3000, 0, 65535);
  const databaseUrl = env.DATABASE_URL || undefined;
  if (databaseUrl !== undefined && !/^(postgres(ql)?|mysql|mariadb):\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL must be a postgres://, postgresql://, mysql:// or mariadb:// URL');
  }
  const logLevel = str(env, 'LOG_LEVEL', 'info');
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  const publicUrl = origin('PUBLIC_URL', str(env, 'PUBLIC_URL', `http://localhost:${port}`));
  const corsOrigins = (env.CORS_ORIGINS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((o) => {
      if (o === '*') throw new ConfigError('CORS_ORIGINS must list origins; "*" is not allowed');
      return origin('CORS_ORIGINS', o);
    });
  const sessionTtlS = int(env, 'SESSION_TTL_S', 2_592_000, 60, 31_536_000);
  const config: Config = {
    port,
    host: str(env, 'HOST', '127.0.0.1'),
    databaseUrl,
    dataDir: str(env, 'DATA_DIR', './data'),
    logLevel,
    passwordMinLength: int(env, 'PASSWORD_MIN_LENGTH', 8, 8, 64),
    trustProxy: parseTrustProxy(env.TRUST_PROXY),
    accessTokenTtlS: int(env, 'ACCESS_TOKEN_TTL_S', 900, 60, 3600),
    sessionTtlS,
    sessionIdleTtlS: int(env, 'SESSION_IDLE_TTL_S', 604_800, 60, sessionTtlS),
    rateLimitPerMinute: int(env, 'RATE_LIMIT_PER_MINUTE', 300, 1, 1_000_000),
    importMaxBytes: int(env, 'IMPORT_MAX_BYTES', 1024 ** 3, 1024, 64 * 1024 ** 3),
    loginMaxFailures: int(env, 'LOGIN_MAX_FAILURES', 5, 1, 100),
    loginLockBaseS: int(env, 'LOGIN_LOCK_BASE_S', 30, 1, 3600),
    loginLockMaxS: int(env, 'LOGIN_LOCK_MAX_S', 900, 1, 86_400),
    loginAccountMaxFailuresPerHour: int(env, 'LOGIN_ACCOUNT_MAX_FAILURES_PER_HOUR', 100, 1, 100),
    corsOrigins,
    refreshRetryS: int(env, 'REFRESH_RETRY_S', 10, 0, 60),
    auditRetentionDays: int(env, 'AUDIT_RETENTION_DAYS', 365, 1, 3650),
    orgLimitPerUser: int(env, 'ORG_LIMIT_PER_USER', 10, 0, 10_000),
    publicUrl,
    webauthnRpId: rpId(env.WEBAUTHN_RP_ID, publicUrl),
    jwtIssuer: str(env, 'JWT_ISSUER', publicUrl),
    jwtAudience: str(env, 'JWT_AUDIENCE', publicUrl),
    dbPoolMax: int(env, 'DB_POOL_MAX', 10, 1, 1000),
    dbPreparedStatements: bool(env, 'DB_PREPARED_STATEMENTS', true),
    workers: parseWorkers(env, databaseUrl),
    dbTimeoutMs: int(env, 'DB_TIMEOUT_MS', 5000, 100, 120_000),
    passwordPeppers: parsePeppers(env.PASSWORD_PEPPER),
    dataEncryptionKeys: dataEncryptionKeys(env.DATA_ENCRYPTION_KEY),
    smtpUrl: smtpUrl(env.SMTP_URL),
    mailFrom: mailFrom(env.MAIL_FROM, publicUrl),
    outboxDir: outboxDir(str(env, 'DATA_DIR', './data')),
    mailRetryBaseMs: int(env, 'MAIL_RETRY_BASE_MS', 2000, 10, 600_000),
    requireEmailVerification: bool(env, 'REQUIRE_EMAIL_VERIFICATION', false),
    mfaRequiredFor: mfaRequiredFor(env.MFA_REQUIRED_FOR),
    identityProviders: identityProviders(env),
    oauthResources: oauthResources(env.OAUTH_RESOURCES),
    webhookAllowPrivate: bool(env, 'WEBHOOK_ALLOW_PRIVATE', false),
    webhookTimeoutMs: int(env, 'WEBHOOK_TIMEOUT_MS', 15_000, 100, 60_000),
    // Never below OWASP's minimum: these settings can only make hashing stronger.
    argon2: {
      memoryCost: int(env, 'ARGON2_MEMORY_KIB', OWASP_ARGON2.memoryCost, OWASP_ARGON2.memoryCost, 4_194_304),
      timeCost: int(env, 'ARGON2_TIME_COST', OWASP_ARGON2.timeCost, OWASP_ARGON2.timeCost, 100),
      parallelism: int(env, 'ARGON2_PARALLELISM', OWASP_ARGON2.parallelism, OWASP_ARGON2.parallelism, 16),
    },
  };
  return Object.freeze(config);
}
