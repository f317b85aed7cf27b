import type { Kysely } from 'kysely';
import type { Caller, ClientInfo } from '../core/caller.js';
import type { Clock } from '../core/clock.js';
import type { EventRecorder } from '../core/events.js';
import { auditRow, eventOfNewSession, type AuditLog } from '../audit/audit-log.js';
import type { SideWrite } from '../db/side-writes.js';
import type { AccessTokens } from '../auth/access-tokens.js';
import type { PasswordHasher } from '../credentials/hashing.js';
import { upgradeAfterSignIn } from '../credentials/upgrade.js';
import type { Database } from '../db/schema.js';
import { AppError, validationFailed } from '../errors.js';
import { MFA_FACTORS, type MfaService } from '../mfa/service.js';
import type { Attempt, LoginThrottle } from '../throttling/login-throttle.js';
import { findUserById, toUser, type UserRecord } from '../users/repository.js';
import type { User } from '../users/schemas.js';
import { hashSecret, newSecret, parseRefreshToken, type RefreshChain } from './refresh-tokens.js';
import type { LastUseRecorder } from './last-use.js';
import {
  findPasswordSignInSubject,
  findSessionForRefresh,
  findSessionState,
  insertSession,
  listActiveSessions,
  rotateIfCurrent,
  rotateToFresh,
  type RotatedSession,
  sessionBelongsTo,
  type SessionState,
} from './repository.js';
import type { SessionRevocation } from './revocation.js';
import { assertMaySignIn } from './sign-in-policy.js';
import type { InvalidatedCache } from '../cache/invalidated-cache.js';
import type { LoginBody, MfaLoginBody, Session, TokenPair } from './schemas.js';

export interface SessionSettings {
  sessionTtlS: number;
  sessionIdleTtlS: number;
  refreshRetryS: number;
  requireEmailVerification: boolean;
}

// Now in core/caller.ts; re-exported for existing imports.
export type { Caller, ClientInfo } from '../core/caller.js';

/** What a password sign-in comes to: a session, or a second factor to ask for (not an error: the password checked out). */
export type PasswordSignIn = { kind: 'signed_in'; pair: TokenPair } | { kind: 'mfa_required'; mfaToken: string; factors: readonly string[] };

export interface SessionsDeps {
  db: Kysely<Database>;
  hasher: PasswordHasher;
  tokens: AccessTokens;
  chain: RefreshChain;
  throttle: LoginThrottle;
  audit: AuditLog;
  revocation: SessionRevocation;
  sessionCache: InvalidatedCache<SessionState>;
  lastUse: LastUseRecorder;
  /** Profiles, from the users' cache when it has them. */
  users: { profile(userId: string): Promise<User> };
  config: SessionSettings;
  mfa: MfaService;
  clock: Clock;
  events: EventRecorder;
}

const invalidCredentials = () => new AppError('invalid_credentials');
const invalidRefreshToken = () => new AppError('invalid_refresh_token');

export class SessionsService {
  private readonly db: Kysely<Database>;
  private readonly hasher: PasswordHasher;
  private readonly tokens: AccessTokens;
  private readonly chain: RefreshChain;
  private readonly throttle: LoginThrottle;
  private readonly audit: AuditLog;
  private readonly revocation: SessionRevocation;
  private readonly cache: InvalidatedCache<SessionState>;
  private readonly lastUse: LastUseRecorder;
  private readonly profiles: { profile(userId: string): Promise<User> };
  private readonly settings: SessionSettings;
  private readonly mfa: MfaService;
  private readonly clock: Clock;
  private readonly events: EventRecorder;

  constructor(deps: SessionsDeps) {
    this.clock = deps.clock;
    this.events = deps.events;
    ({ db: this.db, hasher: this.hasher, tokens: this.tokens, chain: this.chain, throttle: this.throttle, audit: this.audit, revocation: this.revocation } = deps);
    ({ sessionCache: this.cache, lastUse: this.lastUse, users: this.profiles, config: this.settings, mfa: this.mfa } = deps);
  }

  // ASVS 5.0 V7.3.1 (inactivity timeout), V7.3.2 (absolute lifetime).
  /** A session can be used while it is active, before its absolute expiry and not idle too long. */
  isUsable(session: Pick<SessionState, 'is_active' | 'expires_at' | 'last_used_at'>, now = this.clock.now()): boolean {
    return (
      session.is_active &&
      session.expires_at.getTime() > now &&
      session.last_used_at.getTime() + this.settings.sessionIdleTtlS * 1000 > now
    );
  }

  /** create_new_session: verify the password, then open a session or ask for the second factor. */
  async login(input: LoginBody, client: ClientInfo): Promise<PasswordSignIn> {
    if ((input.username === undefined) === (input.email === undefined)) {
      throw validationFailed([{ field: input.username === undefined ? 'username' : 'email', message: 'give exactly one of username and email' }]);
    }
    const by = input.username !== undefined ? 'username' : 'email';
    const name = (input.username ?? input.email)!;
    const found = await findPasswordSignInSubject(this.db, by, name);
    const user = found?.user;
    const context = { userId: user?.user_id ?? null, ...client };
    // ASVS 5.0 V6.3.1: brute force and credential stuffing (see throttling/login-throttle.ts).
    const attempt = await this.throttle.begin(user ? { userId: user.user_id } : { unknownName: name }, context, 'login');

    const credential = found?.credential;
    const verified = credential
      ? await this.hasher.verify(credential.hashed_password, input.password)
      : await this.hasher.verifyNothing(input.password); // the same work as a wrong password
    if (!user || !credential || !verified) {
      await this.throttle.failed(attempt);
      await this.audit.record('login_failed', context, { reason: user ? 'wrong_password' : 'unknown_user' });
      throw invalidCredentials();
    }
    // A disabled account answers like a wrong password, after the same work (ASVS 5.0 V7.4.2).
    if (user.disabled_at) {
      await this.throttle.failed(attempt);
      await this.audit.record('login_failed', context, { reason: 'disabled' });
      throw invalidCredentials();
    }

    await upgradeAfterSignIn(this.db, this.hasher, user.user_id, credential, input.password);
    // A second factor is on: no session yet, and the failure count stays until a sign-in completes.
    if (found.totpOn) {
      await this.throttle.released(attempt);
      const mfaToken = await this.mfa.issueChallenge(user.user_id, client.ip);
      await this.audit.record('mfa_challenge_issued', context, { factors: MFA_FACTORS.join(' ') });
      return { kind: 'mfa_required', mfaToken, factors: MFA_FACTORS };
    }
    return { kind: 'signed_in', pair: await this.#signIn(user, client, ['pwd'], attempt) };
  }

  /**
   * The second step of a password sign-in (POST /v1/sessions/mfa): the mfa_token first, then the
   * code (TOTP or a recovery code). A wrong code counts as a failed login of the account.
   */
  async loginWithMfa(input: MfaLoginBody, client: ClientInfo): Promise<TokenPair> {
    const challenge = await this.mfa.openChallenge(input.mfa_token, client.ip);
    const user = await findUserById(this.db, challenge.userId);
    const context = { userId: challenge.userId, ...client };
    if (!user || user.disabled_at) {
      // Disabled (or deleted) since the password step: the token dies with the account's sign-ins.
      await this.mfa.closeChallenge(challenge);
      await this.audit.record('login_failed', context, { reason: 'disabled' });
      throw new AppError('invalid_mfa_token');
    }
    const attempt = await this.throttle.begin({ userId: user.user_id }, context, 'login_mfa');
    let redeemed: Awaited<ReturnType<MfaService['redeem']>>;
    let refusal: unknown;
    try {
      // Rules for every sign-in (REQUIRE_EMAIL_VERIFICATION) are checked once the code checked
      // out and before it is spent, so a refused sign-in does not cost a recovery code.
      redeemed = await this.mfa.redeem(challenge, input.code, () => {
        try {
          assertMaySignIn(user, this.settings);
        } catch (err) {
          throw (refusal = err);
        }
      });
    } catch (err) {
      await this.throttle.released(attempt);
      if (err === refusal) await this.#recordRefusal(user, client, err);
      throw err;
    }
    if (!redeemed) {
      await this.throttle.failed(attempt);
      await this.audit.record('mfa_challenge_failed', context, { stage: 'sign_in' });
      throw new AppError('invalid_mfa_code');
    }
    if (redeemed.factor === 'recovery_code') await this.audit.record('recovery_code_used', context, { left: redeemed.recoveryCodesLeft ?? 0 });
    // RFC 8176: a one-time password on top of the first step (a password, or another provider).
    return this.#signIn(user, client, [challenge.firstFactor === 'fed' ? 'fed' : 'pwd', 'otp', 'mfa'], attempt, { factor: redeemed.factor });
  }

  /**
   * The one place a sign-in completes, whatever the way (password, password and second factor):
   * checks that apply to every way of signing in go here, then the session opens and the
   * account's failure count resets.
   */
  async #signIn(user: UserRecord, client: ClientInfo, amr: readonly string[], attempt: Attempt, details?: Record<string, string>): Promise<TokenPair> {
    try {
      await this.#assertMaySignIn(user, client);
    } catch (err) {
      // No failure (the credentials were right), and no reset of the count either: no sign-in happened.
      await this.throttle.released(attempt);
      throw err;
    }
    // The session, the throttle's reset and the login_succeeded event, in one round trip. If the
    // account was disabled or deleted meanwhile, no session opens and the sign-in fails as a
    // wrong password would, but the count still starts again: the password was right.
    try {
      return await this.#open(user, client, amr, [this.throttle.completion(attempt), eventOfNewSession(auditRow('login_succeeded', { userId: user.user_id, ...client }, details))]);
    } catch (err) {
      // The statement failed whole (a database error): nothing was written, so the attempt ends here.
      if (!(err instanceof AppError)) await this.throttle.released(attempt).catch(() => {});
      throw err;
    }
  }

  /**
   * Opens the session of a sign-in whose credential was checked elsewhere (a passkey, see
   * passkeys/service.ts); `amr` says how.
   */
  async openSession(user: UserRecord, client: ClientInfo, amr: readonly string[], parentSessionId?: string): Promise<TokenPair> {
    await this.#assertMaySignIn(user, client);
    const pair = await this.#open(user, client, amr, [], parentSessionId);
    await this.throttle.signedIn(user.user_id, client.ip); // a completed sign-in resets the count (API.md)
    return pair;
  }

  /**
   * Rules for every way of signing in, checked only once its credentials checked out, so a
   * refusal tells nothing to anyone without them (REQUIRE_EMAIL_VERIFICATION).
   */
  async #assertMaySignIn(user: UserRecord, client: ClientInfo): Promise<void> {
    try {
      assertMaySignIn(user, this.settings);
    } catch (err) {
      await this.#recordRefusal(user, client, err);
      throw err;
    }
  }

  /** A sign-in whose credentials checked out but which a rule refused, as a security event. */
  async #recordRefusal(user: UserRecord, client: ClientInfo, err: unknown): Promise<void> {
    await this.audit.record('login_failed', { userId: user.user_id, ...client }, { reason: err instanceof AppError ? err.code : 'refused' });
  }

  /** Opens a session for a user whose sign-in checked out; `amr` says how (RFC 8176). */
  async #open(user: UserRecord, client: ClientInfo, amr: readonly string[], alongWith: ReadonlyArray<SideWrite<unknown>> = [], parentSessionId?: string): Promise<TokenPair> {
    const secret = newSecret();
    const session = await insertSession(
      this.db,
      {
        userId: user.user_id,
        expiresAt: new Date(this.clock.now() + this.settings.sessionTtlS * 1000),
        refreshTokenHash: hashSecret(secret),
        userAgent: client.userAgent?.slice(0, 512) ?? null,
        ip: client.ip,
        amr,
        parentSessionId: parentSessionId ?? null,
      },
      // session.created (API-INTEGRATION.md) with the session, in the same round trip.
      [...alongWith, this.events.withNewRow({ type: 'session.created', userId: user.user_id, data: { amr: [...amr] } }, { data: { session_id: 'session_id' } })],
    );
    if (!session) throw invalidCredentials(); // disabled or deleted meanwhile
    return this.#tokenPair(toUser(user), { ...session, refresh_generation: 0 }, secret);
  }

  async #tokenPair(
    user: User,
    session: { session_id: string; created_at: Date; expires_at: Date; amr: string; refresh_generation: number },
    secret: string,
  ): Promise<TokenPair> {
    const access = await this.tokens.issue(user.id, session.session_id, session.amr.split(' '));
    return {
      access_token: access.token,
      token_type: 'Bearer',
      expires_in: access.expiresIn,
      refresh_token: this.chain.format(session.session_id, session.refresh_generation, secret),
      session: { id: session.session_id, created_at: session.created_at.toISOString(), expires_at: session.expires_at.toISOString() },
      user,
    };
  }

  /**
   * Trades a refresh token for a new pair (rotation). The token just rotated may be presented
   * again within REFRESH_RETRY_S and answers the same successor; any other reuse is theft and
   * ends the session (RFC 9700 4.14.2).
   */
  async refresh(token: string, client: ClientInfo, options: { clientSession?: boolean } = {}): Promise<TokenPair> {
    // The OpenID Provider's /oauth/token refreshes an app's session (after the app authenticated);
    // POST /v1/sessions/refresh the service's own. A token of one kind is unknown to the other.
    const clientSession = options.clientSession === true;
    const parsed = parseRefreshToken(token);
    // Only a token the server issued (its tag checks out) goes further.
    if (!parsed || !this.chain.issued(parsed)) throw invalidRefreshToken();
    const presentedHash = hashSecret(parsed.secret);

    // The common case, a current token of a usable session, in one statement.
    const next = this.chain.next(parsed.secret);
    const rotate = () =>
      rotateIfCurrent(this.db, { sessionId: parsed.sessionId, presentedHash, nextHash: hashSecret(next), now: new Date(this.clock.now()), idleTtlS: this.settings.sessionIdleTtlS, clientSession });
    const rotated = await rotate();
    if (rotated) return this.#rotated(rotated, next, client);

    // Otherwise read the session to tell a retry, a replay or an unusable session apart.
    for (let attempt = 0; attempt < 2; attempt++) {
      const session = await findSessionForRefresh(this.db, parsed.sessionId, this.settings.refreshRetryS);
      if (!session || !this.isUsable(session) || (session.parent_session_id !== null) !== clientSession) throw invalidRefreshToken();

      if (session.refresh_token_hash === presentedHash) {
        const rotatedNow = await rotate();
        if (rotatedNow) return this.#rotated(rotatedNow, next, client);
        continue; // a concurrent refresh rotated it first: read again, this is now a retry
      }

      if (session.previous_refresh_token_hash === presentedHash) {
        // REFRESH_RETRY_S=0 is strict single use, whatever the clocks say; a window is measured on
        // the database's clock, which stamped the rotation.
        const withinRetry = this.settings.refreshRetryS > 0 && Number(session.rotated_within) === 1;
        if (withinRetry && hashSecret(next) === session.refresh_token_hash) {
          // The successor it was given before (derived from it): the same answer again.
          await this.audit.record('refresh', { userId: session.user_id, sessionId: session.session_id, ...client }, { retry: true });
          return this.#pairFor(session, next);
        }
        await this.#endForReuse(session, client);
      }

      // An older token of this session, replayed: one the server issued (its tag says so) before
      // the session's current generation, however long ago.
      if (parsed.generation < session.refresh_generation) await this.#endForReuse(session, client);
      throw invalidRefreshToken();
    }
    throw invalidRefreshToken();
  }

  async #rotated(session: RotatedSession, next: string, client: ClientInfo): Promise<TokenPair> {
    const cached = this.cache.get(session.session_id);
    if (cached) cached.last_used_at = new Date(this.clock.now());
    await this.audit.record('refresh', { userId: session.user_id, sessionId: session.session_id, ...client });
    return this.#pairFor(session, next);
  }

  async #endForReuse(session: { session_id: string; user_id: string }, client: ClientInfo): Promise<never> {
    await this.revocation.endNow(this.db, { userId: session.user_id, sessionId: session.session_id }, 'refresh_reuse');
    await this.audit.record('refresh_reuse', { userId: session.user_id, sessionId: session.session_id, ...client });
    throw invalidRefreshToken();
  }

  async #pairFor(session: { session_id: string; user_id: string; created_at: Date; expires_at: Date; amr: string; refresh_generation: number }, secret: string): Promise<TokenPair> {
    const user = await this.profiles.profile(session.user_id).catch((err: unknown) => {
      throw err instanceof AppError ? invalidRefreshToken() : err;
    });
    return this.#tokenPair(user, session, secret);
  }

  /**
   * The check behind every protected route: the token's session must exist, belong to the
   * token's subject and still be usable. Answered from this instance's cache when it can be
   * (see InvalidatedCache for why that stays right on revocation).
   */
  async authenticate(userId: string, sessionId: string): Promise<{ userId: string; sessionId: string } | undefined> {
    let session = this.cache.get(sessionId);
    if (session && session.is_active && session.expires_at.getTime() > this.clock.now() && !this.isUsable(session)) {
      // Idle here may still be in use on another instance: ask the database before refusing.
      this.cache.forget([sessionId]);
      session = undefined;
    }
    if (!session) {
      const epoch = this.cache.epoch;
      session = await findSessionState(this.db, sessionId);
      if (session) this.cache.set(sessionId, session, epoch);
    }
    if (!session || session.user_id !== userId || !this.isUsable(session)) return undefined;
    if (this.lastUse.due(session.last_used_at)) {
      this.lastUse.mark(sessionId);
      session.last_used_at = new Date(this.clock.now()); // the cached entry sees the use before the database does
    }
    return { userId, sessionId };
  }

  /**
   * A new token pair for the caller's session, as if refreshed (an organization switch, whose
   * access token carries the new `org_id`): the refresh token before is used up.
   */
  async reissue(caller: Caller): Promise<TokenPair> {
    const secret = newSecret();
    const session = await rotateToFresh(this.db, { sessionId: caller.sessionId, userId: caller.userId, nextHash: hashSecret(secret) });
    if (!session) throw new AppError('invalid_token');
    return this.#pairFor(session, secret);
  }

  /** update_session: logout marks the caller's session inactive. */
  async logout(caller: Caller): Promise<void> {
    await this.revocation.endNow(this.db, { userId: caller.userId, sessionId: caller.sessionId }, 'logout');
    await this.audit.record('logout', caller);
  }

  async list(caller: Caller): Promise<Session[]> {
    const rows = await listActiveSessions(this.db, caller.userId, this.settings.sessionIdleTtlS, new Date(this.clock.now()));
    return rows.map((row) => ({
      id: row.session_id,
      created_at: row.created_at.toISOString(),
      last_used_at: row.last_used_at.toISOString(),
      expires_at: row.expires_at.toISOString(),
      is_active: row.is_active,
      current: row.session_id === caller.sessionId,
      user_agent: row.user_agent,
      ip: row.ip,
    }));
  }

  /** Revokes one of the caller's sessions (204 even if it had ended); anyone else's is 404. */
  async revoke(caller: Caller, sessionId: string): Promise<void> {
    if (!/^[1-9][0-9]{0,17}$/.test(sessionId) || !(await sessionBelongsTo(this.db, sessionId, caller.userId))) {
      throw new AppError('not_found', { detail: 'You have no session with that id.' });
    }
    const ended = await this.revocation.endNow(this.db, { userId: caller.userId, sessionId }, 'revoked');
    if (ended.length) await this.audit.record('session_revoked', caller, { revoked_session_id: sessionId });
  }

  async revokeAll(caller: Caller): Promise<void> {
    const ended = await this.revocation.endNow(this.db, { userId: caller.userId }, 'revoked_all');
    await this.audit.record('sessions_revoked_all', caller, { count: ended.length });
  }
}
