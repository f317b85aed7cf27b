import type { Kysely } from 'kysely';
import { AccessTokens } from './auth/access-tokens.js';
import { callerGuards, type RequireCaller } from './auth/guard.js';
import { KeyStore } from './auth/keys.js';
import { loadOrCreateSecret } from './auth/secrets.js';
import { AuditLog } from './audit/audit-log.js';
import { AccessControl, type AccessState } from './admin/access.js';
import { lastAdminIsKept } from './admin/users.js';
import { BackgroundJobs } from './account/background.js';
import { EmailVerification } from './account/email-verification.js';
import { SecurityNotices } from './account/security-notices.js';
import { InvalidatedCache } from './cache/invalidated-cache.js';
import { Invalidation } from './cache/invalidation.js';
import type { Config } from './config.js';
import { systemClock, type Clock } from './core/clock.js';
import { AccountErasure } from './core/erasure.js';
import { EventRecorder } from './core/events.js';
import type { PermissionSource } from './core/permissions.js';
import { Reauthentication } from './core/reauth.js';
import { PasswordHasher, pepperFrom } from './credentials/hashing.js';
import { findCurrentCredential } from './credentials/repository.js';
import { CredentialsService } from './credentials/service.js';
import { loadDataCipher } from './crypto/data-encryption.js';
import type { Db } from './db/create-db.js';
import type { Database } from './db/schema.js';
import type { App } from './http/types.js';
import { Mailer, mailTransport } from './mail/mailer.js';
import { MfaService } from './mfa/service.js';
import { countPasskeys } from './passkeys/repository.js';
import { LastUseRecorder } from './sessions/last-use.js';
import { RefreshCookie } from './sessions/refresh-cookie.js';
import { RefreshChain } from './sessions/refresh-tokens.js';
import { addressesSince, openedWithin, type SessionState } from './sessions/repository.js';
import { SessionRevocation } from './sessions/revocation.js';
import { SessionsService } from './sessions/service.js';
import { LoginThrottle } from './throttling/login-throttle.js';
import type { User } from './users/schemas.js';
import { UsersService } from './users/service.js';
import { OrgAccess, type Memberships } from './orgs/access.js';
import { sessionOrgOf, soleOwnedOrgs } from './orgs/repository.js';
import { AppError } from './errors.js';
import type { OutboxDispatcher } from './webhooks/dispatcher.js';
import { createOutbox } from './webhooks/outbox.js';
import { outboxEventWriter } from './webhooks/repository.js';

export interface DependencyOptions {
  config: Config;
  db: Db;
  clock?: Clock | undefined;
  permissions?: PermissionSource | undefined;
  testHooks?: boolean | undefined;
  /** A worker of several: the supervisor gives the start's warnings once (server.ts). */
  quietStartWarnings?: boolean | undefined;
}

/**
 * The one object of named dependencies every feature is built from (buildApp passes it to each
 * feature plugin; a feature names the part it uses in its own `…FeatureDeps`). It holds what
 * several features share: the database, the clock, the audit log, the login throttle, hashing,
 * tokens, caches, the one revocation path, the one re-authentication service, the guard factory,
 * and the services more than one feature calls (users, credentials, sessions, second factors).
 * Close hooks of what it opens go on `app`.
 */
export async function sharedDependencies(app: App, { config, db: handle, clock = systemClock, permissions: givenPermissions, testHooks = false, quietStartWarnings = false }: DependencyOptions) {
  const db: Kysely<Database> = handle.kysely;
  const log = app.log;
  const secret = (name: string) => loadOrCreateSecret(db, name);

  const hasher = new PasswordHasher(config.argon2, config.passwordPeppers.map(pepperFrom));
  await hasher.warm();
  // Secrets at rest (TOTP secrets, private signing keys): DATA_ENCRYPTION_KEY, or a generated key with a warning.
  const cipher = await loadDataCipher(db, config.dataEncryptionKeys, (message) => quietStartWarnings || log.warn(message));
  const keys = new KeyStore(db, cipher, clock);
  await keys.init();
  app.addHook('onClose', async () => keys.stop());
  app.decorate('keyStore', keys);
  // Roles (src/admin/access.ts), made once the caches are: the token's `roles` hint reads them.
  let access: AccessControl | undefined;
  // Organizations (src/orgs/access.ts): the session's chosen organization, while a member of it, is the token's `org_id`.
  let orgAccess: OrgAccess | undefined;
  const orgOfSession = async (userId: string, sessionId: string) => {
    const orgId = await sessionOrgOf(db, sessionId);
    const membership = orgId === undefined ? undefined : await orgAccess!.membershipOf(userId, orgId);
    return orgId !== undefined && membership ? { orgId, role: membership.role } : undefined;
  };
  const tokens = new AccessTokens(keys, { issuer: config.jwtIssuer, audience: config.jwtAudience, ttlS: config.accessTokenTtlS }, undefined, clock, (userId) => access!.rolesOf(userId), orgOfSession);
  const chain = new RefreshChain(await secret('refresh_token_hmac'));

  const audit = new AuditLog(db);
  const throttle = new LoginThrottle({
    db,
    audit,
    settings: { maxFailures: config.loginMaxFailures, baseWaitS: config.loginLockBaseS, maxWaitS: config.loginLockMaxS, accountHourlyCeiling: config.loginAccountMaxFailuresPerHour },
    knownAddresses: (userId, since) => addressesSince(db, userId, since),
    clock,
  });
  const reauth = new Reauthentication({
    attempts: throttle,
    audit,
    hasher,
    passwords: { current: (userId) => findCurrentCredential(db, userId) },
    sessions: { openedWithin: (caller, seconds) => openedWithin(db, caller, seconds) },
  });

  const sessionCache = new InvalidatedCache<SessionState>();
  const userCache = new InvalidatedCache<User>();
  const accessCache = new InvalidatedCache<AccessState>();
  const membershipCache = new InvalidatedCache<Memberships>();
  const invalidation = new Invalidation({
    session: sessionCache,
    user: userCache as InvalidatedCache<unknown>,
    access: accessCache as InvalidatedCache<unknown>,
    membership: membershipCache as InvalidatedCache<unknown>,
  });
  await invalidation.start(handle);
  // With WORKERS > 1, a change's answer waits until the other workers have forgotten it.
  app.addHook('onSend', invalidation.awaitWorkers);
  app.addHook('onClose', () => invalidation.stop());
  // Administration (API-ADMIN.md): permissions from the roles held now, cached like sessions;
  // MFA_REQUIRED_FOR. A test may pass its own PermissionSource.
  access = new AccessControl(db, accessCache, invalidation, config.mfaRequiredFor, (err) => log.warn({ err }, 'announcing a change of second factors failed'));
  audit.onRecorded(access.recorded);
  const permissions: PermissionSource = givenPermissions ?? access;
  orgAccess = new OrgAccess(db, membershipCache, invalidation);
  // The durable outbox (API-INTEGRATION.md, Webhooks): events are written in the transaction of
  // their change; this instance's dispatcher sends them, with every other instance's.
  const events = new EventRecorder(clock);
  events.plug(outboxEventWriter);
  const revocation = new SessionRevocation(invalidation, events);
  const lastUse = new LastUseRecorder(db, (err) => log.warn({ err }, 'recording last use of sessions failed'), config.sessionIdleTtlS, clock);
  app.addHook('onClose', () => lastUse.close());
  if (testHooks) {
    app.decorate('sessionCacheForTests', sessionCache);
    app.decorate('accessTokensForTests', tokens);
  }

  // Mail leaves through SMTP_URL, or lands in DATA_DIR/outbox; always off the request path.
  const mailer = new Mailer(mailTransport(config), { from: config.mailFrom, retryBaseMs: config.mailRetryBaseMs }, log);
  const jobs = new BackgroundJobs(log);
  app.decorate('mailer', mailer);
  app.decorate('accountJobs', jobs);
  app.addHook('onClose', async () => {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([jobs.idle(), new Promise<void>((resolve) => (timer = setTimeout(resolve, 5000)))]);
    clearTimeout(timer);
    await mailer.close();
  });
  audit.onRecorded(new SecurityNotices(db, mailer, jobs, log, clock).recorded);

  const outbox = createOutbox({ db, clock, cipher, config, log });
  outbox.dispatcher.start();
  app.decorate('outbox', outbox.dispatcher);
  app.addHook('onClose', () => outbox.close());

  const erasure = new AccountErasure();
  const infrastructure = { config, db, clock, log, secret, erasure, hasher, cipher, keys, tokens, chain, audit, throttle, reauth, invalidation, sessionCache, userCache, revocation, lastUse, mailer, jobs, events };
  const verification = new EmailVerification(infrastructure);
  const users = new UsersService({ ...infrastructure, emailEvents: verification });
  const credentials = new CredentialsService(infrastructure);
  const mfa = new MfaService({ ...infrastructure, issuer: new URL(config.publicUrl).host, passkeyCount: (userId) => countPasskeys(db, userId) });
  const sessions = new SessionsService({ ...infrastructure, users, mfa });
  const callerGuard = callerGuards({ tokens, sessions, reauth, permissions, memberships: orgAccess });
  // MFA_REQUIRED_FOR: a covered user without a second factor may only set one up (src/admin/access.ts).
  const requireCaller: RequireCaller = (requirements) => access!.guard(callerGuard(requirements));
  const refreshCookie = new RefreshCookie(config.publicUrl.startsWith('https:'), clock);

  // beforeDelete: the last admin is not deleted, by any way (account/deletion.ts); nor the only
  // owner of an organization (API-ORGS.md), until ownership passes or the organization goes.
  const beforeDelete = async (trx: Parameters<typeof lastAdminIsKept>[0], userId: string) => {
    await lastAdminIsKept(trx, userId);
    const sole = await soleOwnedOrgs(trx, userId);
    if (sole.length) {
      throw new AppError('last_owner', {
        detail: `You are the only owner of ${sole.map((o) => o.slug).join(', ')}: make another member an owner, or delete the organization, first.`,
        extensions: { orgs: sole.map((o) => o.org_id) },
      });
    }
  };
  return { ...infrastructure, quietStartWarnings, permissions, access, orgAccess, beforeDelete, verification, users, credentials, mfa, sessions, requireCaller, refreshCookie };
}

export type AppDependencies = Awaited<ReturnType<typeof sharedDependencies>>;

declare module 'fastify' {
  interface FastifyInstance {
    /** This instance's dispatcher of the durable outbox (tests drain it). */
    outbox: OutboxDispatcher;
  }
}
