import { createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import * as oidc from 'openid-client';
import type { AuditLog } from '../audit/audit-log.js';
import type { Caller, ClientInfo } from '../core/caller.js';
import type { EventRecorder } from '../core/events.js';
import type { Clock } from '../core/clock.js';
import { uniqueViolation } from '../db/errors.js';
import type { Database } from '../db/schema.js';
import { AppError, validationFailed } from '../errors.js';
import { isTotpOn } from '../mfa/repository.js';
import { MFA_FACTORS, type MfaService } from '../mfa/service.js';
import type { SessionsService } from '../sessions/service.js';
import type { TokenPair } from '../sessions/schemas.js';
import type { LoginThrottle } from '../throttling/login-throttle.js';
import { findUserById, takenFields, type UserRecord } from '../users/repository.js';
import { dobProblem } from '../users/rules.js';
import type { IdentityProvider, UpstreamAccount } from './providers.js';
import {
  deleteSignup,
  findIdentity,
  findSignup,
  findUserByEmail,
  insertIdentity,
  insertSignup,
  insertState,
  insertUserWithIdentity,
  listIdentities,
  unlinkUnlessLastWayIn,
  recordIdentityUse,
  takeState,
} from './repository.js';

/** How long a flow started at a provider, and a pending sign-up, may take (API-FEDERATION.md A). */
export const FLOW_TTL_MS = 10 * 60_000;

/** The `error=` codes a callback redirects to /sign-in with (the web app has a message for each). */
export const CALLBACK_ERRORS = [
  'invalid_state',
  'provider_error',
  'invalid_response',
  'account_exists',
  'email_required',
  'identity_in_use',
  'invalid_credentials',
  'email_not_verified',
  'too_many_requests',
] as const;
export type CallbackError = (typeof CALLBACK_ERRORS)[number];

export type CallbackOutcome =
  | { kind: 'signed_in'; pair: TokenPair; returnTo: string }
  | { kind: 'mfa_required'; mfaToken: string; factors: readonly string[]; returnTo: string }
  | { kind: 'sign_up'; token: string }
  | { kind: 'linked'; returnTo: string }
  | { kind: 'refused'; code: CallbackError };

export interface FederationDeps {
  db: Kysely<Database>;
  clock: Clock;
  events: EventRecorder;
  audit: AuditLog;
  throttle: LoginThrottle;
  mfa: MfaService;
  sessions: Pick<SessionsService, 'openSession'>;
  providers: ReadonlyMap<string, IdentityProvider>;
  /** PUBLIC_URL: the callback is `<publicUrl>/v1/oauth/<name>/callback`. */
  publicUrl: string;
  log: { warn(obj: object, msg: string): void };
}

/** SHA-256 (base64url) of a random value handed out: only hashes are stored. */
export const digest = (value: string) => createHash('sha256').update(value).digest('base64url');
export const newSecret = () => randomBytes(32).toString('base64url');

/** A path on this service, or `/` (an absolute URL, `//host` or `/\host` could leave it). */
export function localPath(raw: string | undefined): string {
  if (raw === undefined || raw.length > 512 || !raw.startsWith('/') || raw.startsWith('//') || raw.startsWith('/\\')) return '/';
  // A control character or a backslash anywhere could be read as another host by some browsers.
  if (/[\u0000-\u001f\u007f\\]/.test(raw)) return '/';
  const url = new URL(raw, 'http://service.invalid');
  return url.host === 'service.invalid' ? `${url.pathname}${url.search}${url.hash}` : '/';
}

const refused = (code: CallbackError): CallbackOutcome => ({ kind: 'refused', code });

/** Sign in with another provider, link and unlink accounts (API-FEDERATION.md A). */
export class FederationService {
  constructor(private readonly deps: FederationDeps) {}

  list(): Array<{ name: string; label: string }> {
    return [...this.deps.providers.values()].map((p) => ({ name: p.name, label: p.label }));
  }

  #provider(name: string): IdentityProvider {
    const provider = this.deps.providers.get(name);
    if (!provider) throw new AppError('not_found', { detail: 'There is no identity provider of that name.' });
    return provider;
  }

  #redirectUri(name: string): string {
    return `${this.deps.publicUrl}/v1/oauth/${name}/callback`;
  }

  /**
   * Starts a flow: a single-use state bound to the browser's binding cookie (its hash), a nonce
   * and a PKCE verifier, stored; answers the provider's authorization URL. `userId` for a link.
   */
  async start(name: string, returnTo: string | undefined, binding: string, userId: string | null = null): Promise<URL> {
    const provider = this.#provider(name);
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const codeVerifier = oidc.randomPKCECodeVerifier();
    await insertState(this.deps.db, {
      state_hash: digest(state),
      binding_hash: digest(binding),
      provider: name,
      user_id: userId,
      nonce,
      code_verifier: codeVerifier,
      return_to: localPath(returnTo),
      expires_at: new Date(this.deps.clock.now() + FLOW_TTL_MS),
    });
    return provider.authorizationUrl(this.#redirectUri(name), { state, nonce, codeVerifier, codeChallenge: await oidc.calculatePKCECodeChallenge(codeVerifier) });
  }

  /** The provider's answer: who signs in (the rules 1-3 of API-FEDERATION.md A), or why nobody does. */
  async callback(name: string, params: URLSearchParams, binding: string | undefined, client: ClientInfo): Promise<CallbackOutcome> {
    const provider = this.#provider(name);
    const state = params.get('state');
    if (!state || !binding) return refused('invalid_state');
    // Taken (deleted) whatever comes next: a state works once.
    const flow = await takeState(this.deps.db, digest(state));
    if (!flow || flow.provider !== name || flow.binding_hash !== digest(binding) || flow.expires_at.getTime() <= this.deps.clock.now()) return refused('invalid_state');
    if (params.has('error')) return refused('provider_error');

    const callbackUrl = new URL(this.#redirectUri(name));
    for (const [key, value] of params) callbackUrl.searchParams.append(key, value);
    let account: UpstreamAccount;
    try {
      account = await provider.account(callbackUrl, { state, nonce: flow.nonce, codeVerifier: flow.code_verifier });
    } catch (err) {
      // The reason only (never the code, a token or the provider's body).
      this.deps.log.warn({ provider: name, reason: err instanceof Error ? err.constructor.name + ': ' + err.message.slice(0, 200) : 'unknown' }, 'identity provider answer refused');
      return refused('invalid_response');
    }

    if (flow.user_id !== null) return this.#link(name, account, String(flow.user_id), flow.return_to, client);

    const known = await findIdentity(this.deps.db, name, account.subject);
    if (known) {
      const user = await findUserById(this.deps.db, String(known.user_id));
      if (!user) return refused('invalid_credentials');
      await recordIdentityUse(this.deps.db, known.identity_id, new Date(this.deps.clock.now()), account.email ?? null, account.emailVerified);
      return this.#signIn(name, user, flow.return_to, client);
    }

    if (account.email === undefined) return refused('email_required');
    const local = await findUserByEmail(this.deps.db, account.email);
    if (local) {
      // Rule 2: both sides must vouch for the address, or nothing is linked and nobody is made.
      if (!account.emailVerified || !local.email_verified) return refused('account_exists');
      try {
        await insertIdentity(this.deps.db, { user_id: local.user_id, provider: name, subject: account.subject, email: account.email, email_verified: true, last_used_at: new Date(this.deps.clock.now()) });
      } catch (err) {
        if (uniqueViolation(err) === undefined) throw err;
        return refused('identity_in_use'); // linked by a concurrent callback
      }
      await this.deps.audit.record('identity_linked', { userId: local.user_id, ...client }, { provider: name, by: 'verified_email' });
      return this.#signIn(name, local, flow.return_to, client);
    }

    // Rule 3: a new person; /complete-sign-up asks the rest, bound to this identity and browser.
    const token = newSecret();
    await insertSignup(this.deps.db, {
      token_hash: digest(token),
      binding_hash: flow.binding_hash,
      provider: name,
      subject: account.subject,
      email: account.email,
      email_verified: account.emailVerified,
      name: (account.name ?? account.username ?? account.email.split('@')[0]!).slice(0, 255),
      username_hint: account.username?.slice(0, 64) ?? null,
      return_to: flow.return_to,
      expires_at: new Date(this.deps.clock.now() + FLOW_TTL_MS),
    });
    return { kind: 'sign_up', token };
  }

  async #link(name: string, account: UpstreamAccount, userId: string, returnTo: string, client: ClientInfo): Promise<CallbackOutcome> {
    const known = await findIdentity(this.deps.db, name, account.subject);
    if (known) return String(known.user_id) === userId ? { kind: 'linked', returnTo } : refused('identity_in_use');
    try {
      await insertIdentity(this.deps.db, { user_id: userId, provider: name, subject: account.subject, email: account.email ?? null, email_verified: account.emailVerified, last_used_at: null });
    } catch (err) {
      if (uniqueViolation(err) === undefined) throw err;
      return refused('identity_in_use');
    }
    await this.deps.audit.record('identity_linked', { userId, ...client }, { provider: name, by: 'signed_in' });
    return { kind: 'linked', returnTo };
  }

  /** Every sign-in rule as on the other ways: the throttle, a disabled user, the second factor, REQUIRE_EMAIL_VERIFICATION. */
  async #signIn(name: string, user: UserRecord, returnTo: string, client: ClientInfo): Promise<CallbackOutcome> {
    const context = { userId: user.user_id, ...client };
    let attempt;
    try {
      attempt = await this.deps.throttle.begin({ userId: user.user_id }, context, 'login_federated');
    } catch (err) {
      if (err instanceof AppError && err.code === 'too_many_requests') return refused('too_many_requests');
      throw err;
    }
    if (user.disabled_at) {
      await this.deps.throttle.failed(attempt);
      await this.deps.audit.record('login_failed', context, { reason: 'disabled', idp: name });
      return refused('invalid_credentials');
    }
    await this.deps.throttle.released(attempt);
    if (await isTotpOn(this.deps.db, user.user_id)) {
      const mfaToken = await this.deps.mfa.issueChallenge(user.user_id, client.ip, 'fed');
      await this.deps.audit.record('mfa_challenge_issued', context, { factors: MFA_FACTORS.join(' '), idp: name });
      return { kind: 'mfa_required', mfaToken, factors: MFA_FACTORS, returnTo };
    }
    try {
      const pair = await this.deps.sessions.openSession(user, client, ['fed']);
      await this.deps.audit.record('login_succeeded', { ...context, sessionId: pair.session.id }, { idp: name });
      return { kind: 'signed_in', pair, returnTo };
    } catch (err) {
      if (err instanceof AppError && (err.code === 'email_not_verified' || err.code === 'invalid_credentials')) return refused(err.code);
      throw err;
    }
  }

  async #pending(token: string | undefined, binding: string | undefined) {
    const row = token && binding ? await findSignup(this.deps.db, digest(token)) : undefined;
    if (!row || row.binding_hash !== digest(binding!) || row.expires_at.getTime() <= this.deps.clock.now()) {
      throw new AppError('not_found', { detail: 'No sign-up is pending in this browser; sign in with the provider again.' });
    }
    return row;
  }

  /** What /complete-sign-up shows: what the provider gave, and a username suggestion when it is free. */
  async pendingSignUp(token: string | undefined, binding: string | undefined) {
    const row = await this.#pending(token, binding);
    const hint = row.username_hint && /^[A-Za-z0-9_.-]{3,32}$/.test(row.username_hint) ? row.username_hint : undefined;
    const free = hint !== undefined && (await takenFields(this.deps.db, { username: hint })).length === 0;
    return { provider: row.provider, email: row.email, email_verified: row.email_verified, name: row.name, username: free ? hint : null };
  }

  /** Makes the account of a pending sign-up and signs it in (rule 3). */
  async completeSignUp(token: string | undefined, binding: string | undefined, input: { username: string; dob: string }, client: ClientInfo): Promise<{ pair: TokenPair; returnTo: string }> {
    const row = await this.#pending(token, binding);
    const dobMessage = dobProblem(input.dob, new Date(this.deps.clock.now()));
    if (dobMessage !== undefined) throw validationFailed([{ field: 'dob', message: dobMessage }]);
    const taken = await takenFields(this.deps.db, { username: input.username, email: row.email });
    if (taken.includes('username')) throw new AppError('username_taken', { errors: [{ field: 'username', message: 'is already taken' }] });
    if (taken.includes('email')) throw new AppError('email_taken', { errors: [{ field: 'email', message: 'is already in use' }] });
    // Single use: of two completions racing, one makes the account.
    if (!(await deleteSignup(this.deps.db, row.token_hash))) throw new AppError('not_found');
    let user: UserRecord;
    try {
      user = await insertUserWithIdentity(
        this.deps.db,
        { username: input.username, name: row.name, dob: input.dob, email: row.email, email_verified: row.email_verified },
        { provider: row.provider, subject: row.subject, at: new Date(this.deps.clock.now()) },
        (trx, created) =>
          this.deps.events.record(trx, {
            type: 'user.created',
            userId: String(created.user_id),
            data: { username: created.username, name: created.name, email: created.email, email_verified: created.email_verified, provider: row.provider },
          }),
      );
    } catch (err) {
      const constraint = uniqueViolation(err);
      if (constraint === undefined) throw err;
      throw new AppError(constraint.includes('username') ? 'username_taken' : 'email_taken');
    }
    await this.deps.audit.record('user_registered', { userId: user.user_id, ...client }, { idp: row.provider });
    const pair = await this.deps.sessions.openSession(user, client, ['fed']);
    await this.deps.audit.record('login_succeeded', { userId: user.user_id, sessionId: pair.session.id, ...client }, { idp: row.provider });
    return { pair, returnTo: row.return_to };
  }

  async identities(caller: Caller) {
    const rows = await listIdentities(this.deps.db, caller.userId);
    return rows.map((r) => ({
      id: String(r.identity_id),
      provider: r.provider,
      email: r.email,
      created_at: r.created_at.toISOString(),
      last_used_at: r.last_used_at?.toISOString() ?? null,
    }));
  }

  /** Unlinks one identity, never the last way in (409 last_sign_in_method). */
  async unlink(caller: Caller, identityId: string): Promise<void> {
    if (!/^[1-9][0-9]{0,17}$/.test(identityId)) throw new AppError('not_found');
    const rows = await listIdentities(this.deps.db, caller.userId);
    if (!rows.some((r) => String(r.identity_id) === identityId)) throw new AppError('not_found', { detail: 'You have no linked account with that id.' });
    const removed = await unlinkUnlessLastWayIn(this.deps.db, caller.userId, identityId);
    if (removed === 'last_way_in') throw new AppError('last_sign_in_method');
    if (!removed) throw new AppError('not_found');
    await this.deps.audit.record('identity_unlinked', caller, { provider: removed.provider });
  }
}
