import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { decodeJwt } from 'jose';
import type { Kysely } from 'kysely';
import type { AccessTokens } from '../auth/access-tokens.js';
import type { ClientInfo } from '../core/caller.js';
import type { Clock } from '../core/clock.js';
import type { Revocation } from '../core/revocation.js';
import { hashSecret, newSecret } from '../core/secrets.js';
import type { Database } from '../db/schema.js';
import { AppError } from '../errors.js';
import { findSessionSignIn } from '../sessions/repository.js';
import type { SessionsService } from '../sessions/service.js';
import { parseRefreshToken } from '../sessions/refresh-tokens.js';
import { findUserById, toUser } from '../users/repository.js';
import { toClientView, type ClientView } from './clients.js';
import type { IdTokenAlg, IdTokenKeys } from './keys.js';
import {
  clientSessionIds,
  deleteGrant,
  findClient,
  findClientSession,
  findCode,
  findGrant,
  findRequest,
  insertClientSession,
  insertCode,
  insertRequest,
  listGrants,
  recordIssuedSession,
  saveGrant,
  spendCode,
  takeRequest,
  type RequestRow,
} from './repository.js';


/** The OpenID scopes; any other scope a client is registered with is a resource scope. */
export const OPENID_SCOPES = ['openid', 'profile', 'email', 'offline_access'] as const;

/** How long a code lives (RFC 6749 4.1.2 recommends at most 10 minutes; one is plenty). */
export const CODE_TTL_MS = 60_000;
/** How long a person has to sign in and consent. */
export const REQUEST_TTL_MS = 10 * 60_000;

/** An OAuth error (RFC 6749 5.2, 4.1.2.1; OpenID Core 3.1.2.6), answered in that shape, never as problem+json. */
export class OAuthError extends Error {
  constructor(
    readonly error: string,
    readonly description: string,
    readonly status = 400,
  ) {
    super(description);
  }
}

/** A secret compared in constant time with its stored hash. */
function secretMatches(secret: string, storedHash: string | null): boolean {
  if (storedHash === null) return false;
  const a = Buffer.from(hashSecret(secret));
  const b = Buffer.from(storedHash);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** PKCE S256 (RFC 7636 4.6). */
function s256(verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url');
}
const CLIENT_ID = /^[A-Za-z0-9_-]{1,64}$/;
const VSCHARS = /^[\x20-\x7e]*$/;
const PKCE_VERIFIER = /^[A-Za-z0-9._~-]{43,128}$/;
const PKCE_CHALLENGE = /^[A-Za-z0-9_-]{43}$/;

export interface AuthorizeParams {
  client_id?: string;
  redirect_uri?: string;
  response_type?: string;
  scope?: string;
  state?: string;
  nonce?: string;
  code_challenge?: string;
  code_challenge_method?: string;
  prompt?: string;
  max_age?: string;
  resource?: string;
  response_mode?: string;
  request?: string;
  request_uri?: string;
}

export type AuthorizeOutcome =
  /** The client or its redirect URI could not be trusted: no redirect (RFC 6749 4.1.2.1). */
  | { kind: 'refused'; error: string; description: string }
  | { kind: 'redirect'; location: string }
  | { kind: 'interaction'; location: string };

/** The browser session at the provider: one of our sessions, named by an HttpOnly cookie. */
export interface BrowserSession {
  userId: string;
  sessionId: string;
}

export interface TokenAnswer {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
  id_token?: string;
  refresh_token?: string;
}

export interface OidcDeps {
  db: Kysely<Database>;
  clock: Clock;
  tokens: AccessTokens;
  sessions: SessionsService;
  revocation: Revocation;
  idTokens: IdTokenKeys;
  issuer: string;
  /** The registered resources (RFC 8707) a token may be asked for. */
  resources: readonly string[];
  /** The HMAC key of the browser-session cookie. */
  cookieKey: Buffer;
}

/**
 * The service as an OpenID Provider (API-FEDERATION.md B): the authorization code flow with PKCE,
 * refresh, client credentials, ID tokens, userinfo, revocation, introspection, logout, consents,
 * and the clients an admin registers. A client's session is one of ours, opened from the browser
 * session (the web app's), so every revocation of part 1 applies to its tokens.
 */
export class OidcService {
  constructor(private readonly deps: OidcDeps) {}

  #now(): Date {
    return new Date(this.deps.clock.now());
  }

  // The browser session cookie: `<user id>.<session id>.<HMAC>`; the ids alone are guessable.

  browserCookie(session: BrowserSession): string {
    const body = `${session.userId}.${session.sessionId}`;
    return `${body}.${createHmac('sha256', this.deps.cookieKey).update(body).digest('base64url')}`;
  }

  async browserSession(cookie: string | undefined): Promise<BrowserSession | undefined> {
    const match = cookie ? /^([1-9][0-9]{0,17})\.([1-9][0-9]{0,17})\.([A-Za-z0-9_-]{43})$/.exec(cookie) : null;
    if (!match) return undefined;
    const expected = Buffer.from(this.browserCookie({ userId: match[1]!, sessionId: match[2]! }));
    const given = Buffer.from(cookie!);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return undefined;
    return this.deps.sessions.authenticate(match[1]!, match[2]!);
  }

  // The authorization endpoint (RFC 6749 4.1.1, OpenID Core 3.1.2)

  async authorize(params: AuthorizeParams, browser: BrowserSession | undefined): Promise<AuthorizeOutcome> {
    const client = await this.#client(params.client_id);
    if (!client || client.type === 'service') return { kind: 'refused', error: 'invalid_client', description: 'Unknown client_id.' };
    const view = toClientView(client);
    // Exact match (RFC 9700 4.1.3); never redirect to anything else.
    if (!params.redirect_uri || !view.redirect_uris.includes(params.redirect_uri)) {
      return { kind: 'refused', error: 'invalid_request', description: 'redirect_uri is not one registered for this client.' };
    }
    const back = (error: string, description: string): AuthorizeOutcome => ({ kind: 'redirect', location: this.#redirect(params.redirect_uri!, { error, error_description: description, state: params.state }) });
    if (params.request !== undefined) return back('request_not_supported', 'Request objects are not supported.');
    if (params.request_uri !== undefined) return back('request_uri_not_supported', 'request_uri is not supported.');
    if (params.response_type !== 'code') return back('unsupported_response_type', 'Only response_type=code is offered.');
    if (params.response_mode !== undefined && params.response_mode !== 'query') return back('invalid_request', 'Only response_mode=query is offered.');
    // PKCE for every client (RFC 9700 2.1.1), S256 only.
    if (!params.code_challenge) return back('invalid_request', 'code_challenge is required (PKCE, S256).');
    if (params.code_challenge_method !== 'S256') return back('invalid_request', 'code_challenge_method must be S256.');
    if (!PKCE_CHALLENGE.test(params.code_challenge)) return back('invalid_request', 'code_challenge is not a S256 challenge.');
    const scopes = (params.scope ?? '').split(' ').filter(Boolean);
    if (!scopes.length) return back('invalid_scope', 'scope is required.');
    const unknown = scopes.filter((s) => !view.scopes.includes(s));
    if (unknown.length) return back('invalid_scope', `Not allowed for this client: ${unknown.join(' ')}.`);
    if (params.resource !== undefined && !this.deps.resources.includes(params.resource)) return back('invalid_target', 'resource is not a registered resource.');
    const prompts = (params.prompt ?? '').split(' ').filter(Boolean);
    if (prompts.some((p) => !['none', 'login', 'consent', 'select_account'].includes(p)) || (prompts.includes('none') && prompts.length > 1)) {
      return back('invalid_request', 'prompt is none alone, or any of login, consent, select_account.');
    }
    let maxAge: number | null = null;
    if (params.max_age !== undefined) {
      if (!/^(0|[1-9][0-9]{0,8})$/.test(params.max_age)) return back('invalid_request', 'max_age is a number of seconds.');
      maxAge = Number(params.max_age);
    }
    // RFC 6749 A.5: state is VSCHARs; nonce is held to the same (and at most 512 characters).
    if (params.state !== undefined && (!VSCHARS.test(params.state) || params.state.length > 2000)) return back('invalid_request', 'state has characters outside %x20-7E, or is too long.');
    if (params.nonce !== undefined && (!VSCHARS.test(params.nonce) || params.nonce.length > 512)) return back('invalid_request', 'nonce has characters outside %x20-7E, or is too long.');

    const request: RequestRow = {
      request_hash: '',
      client_id: client.client_id,
      redirect_uri: params.redirect_uri,
      scope: scopes.join(' '),
      state: params.state ?? null,
      nonce: params.nonce ?? null,
      code_challenge: params.code_challenge,
      resource: params.resource ?? null,
      prompt: prompts.join(' ') || null,
      max_age: maxAge,
      created_at: this.#now(),
      expires_at: new Date(this.deps.clock.now() + REQUEST_TTL_MS),
    };

    // Single sign-on: a browser session that satisfies the request gets its code at once.
    const signIn = browser ? await this.#signInOf(browser) : undefined;
    const loginNeeded = !signIn || this.#loginNeeded(request, signIn.authTime, prompts.includes('login'));
    const consentNeeded = !view.first_party && (prompts.includes('consent') || !(await this.#consented(browser?.userId, view.client_id, scopes)));
    if (prompts.includes('none')) {
      if (loginNeeded) return back('login_required', 'Nobody is signed in here, or not recently enough.');
      if (consentNeeded) return back('consent_required', 'The person has not agreed to this client yet.');
    }
    if (!loginNeeded && !consentNeeded) {
      const code = await this.#issueCode(request, browser!, signIn!.authTime);
      return { kind: 'redirect', location: this.#redirect(request.redirect_uri, { code, state: params.state, iss: this.deps.issuer }) };
    }
    const id = newSecret();
    await insertRequest(this.deps.db, { ...request, request_hash: hashSecret(id) });
    return { kind: 'interaction', location: `/authorize-app?request=${encodeURIComponent(id)}` };
  }

  /** A client by id; an id that cannot be one (our ids are base64url) is not looked up. */
  async #client(clientId: string | undefined) {
    return clientId !== undefined && CLIENT_ID.test(clientId) ? findClient(this.deps.db, clientId) : undefined;
  }

  async #signInOf(browser: BrowserSession): Promise<{ authTime: Date; amr: string } | undefined> {
    const row = await findSessionSignIn(this.deps.db, browser.sessionId);
    return row ? { authTime: row.created_at, amr: row.amr } : undefined;
  }

  /** prompt=login wants a sign-in after the request; max_age one within so many seconds (OpenID Core 3.1.2.1). */
  #loginNeeded(request: Pick<RequestRow, 'max_age' | 'created_at'>, authTime: Date, promptLogin: boolean): boolean {
    if (promptLogin && authTime.getTime() < request.created_at.getTime()) return true;
    if (request.max_age !== null && this.deps.clock.now() - authTime.getTime() > request.max_age * 1000) return true;
    return false;
  }

  async #consented(userId: string | undefined, clientId: string, scopes: readonly string[]): Promise<boolean> {
    if (!userId) return false;
    const grant = await findGrant(this.deps.db, userId, clientId);
    if (!grant) return false;
    const granted = new Set(grant.scopes.split(' '));
    return scopes.every((s) => granted.has(s));
  }

  async #issueCode(request: Omit<RequestRow, 'request_hash' | 'state' | 'prompt' | 'max_age' | 'created_at' | 'expires_at'>, browser: BrowserSession, authTime: Date): Promise<string> {
    const code = newSecret();
    await insertCode(this.deps.db, {
      code_hash: hashSecret(code),
      client_id: request.client_id,
      user_id: browser.userId,
      browser_session_id: browser.sessionId,
      redirect_uri: request.redirect_uri,
      scope: request.scope,
      nonce: request.nonce,
      code_challenge: request.code_challenge,
      resource: request.resource,
      auth_time: authTime,
      expires_at: new Date(this.deps.clock.now() + CODE_TTL_MS),
    });
    return code;
  }

  #redirect(uri: string, params: Record<string, string | undefined>): string {
    const url = new URL(uri);
    for (const [name, value] of Object.entries(params)) if (value !== undefined) url.searchParams.set(name, value);
    return url.toString();
  }

  // The interaction: the web app, with the person signed in, shows and answers a waiting request.

  async #pending(id: string): Promise<{ request: RequestRow; client: ClientView }> {
    const request = await findRequest(this.deps.db, hashSecret(id), this.#now());
    const client = request && (await findClient(this.deps.db, request.client_id));
    if (!request || !client) throw new AppError('not_found', { detail: 'This sign-in request is unknown or expired: go back to the app and start again.' });
    return { request, client: toClientView(client) };
  }

  async describeRequest(id: string, browser: BrowserSession) {
    const { request, client } = await this.#pending(id);
    const signIn = await this.#signInOf(browser);
    const scopes = request.scope.split(' ');
    const prompts = (request.prompt ?? '').split(' ');
    return {
      client: { client_id: client.client_id, name: client.name, first_party: client.first_party },
      scopes,
      login_required: !signIn || this.#loginNeeded(request, signIn.authTime, prompts.includes('login')),
      consent_required: !client.first_party && (prompts.includes('consent') || !(await this.#consented(browser.userId, client.client_id, scopes))),
    };
  }

  /** The person's answer: a URL at the client to send the browser to (a code, or access_denied). */
  async answerRequest(id: string, browser: BrowserSession, allow: boolean): Promise<{ redirect_to: string }> {
    const { request, client } = await this.#pending(id);
    const signIn = await this.#signInOf(browser);
    if (!signIn || this.#loginNeeded(request, signIn.authTime, (request.prompt ?? '').split(' ').includes('login'))) {
      throw new AppError('reauthentication_required', { detail: 'This app asks for a fresh sign-in: sign in again, then answer.' });
    }
    if (!(await takeRequest(this.deps.db, request.request_hash))) throw new AppError('not_found', { detail: 'This sign-in request was answered already.' });
    const state = request.state ?? undefined;
    if (!allow) return { redirect_to: this.#redirect(request.redirect_uri, { error: 'access_denied', error_description: 'The person said no.', state }) };
    if (!client.first_party) await saveGrant(this.deps.db, browser.userId, client.client_id, request.scope.split(' '));
    const code = await this.#issueCode(request, browser, signIn.authTime);
    return { redirect_to: this.#redirect(request.redirect_uri, { code, state, iss: this.deps.issuer }) };
  }

  // Client authentication at the token, revocation and introspection endpoints (RFC 6749 2.3.1)

  async authenticateClient(basic: { id: string; secret: string } | undefined, body: Record<string, string | undefined>): Promise<ClientView> {
    const invalidClient = () => new OAuthError('invalid_client', 'Client authentication failed.', 401);
    if (basic && (body.client_secret !== undefined || (body.client_id !== undefined && body.client_id !== basic.id))) {
      throw new OAuthError('invalid_request', 'Use one way of client authentication.');
    }
    const clientId = basic?.id ?? body.client_id;
    const secret = basic?.secret ?? body.client_secret;
    if (!clientId) throw invalidClient();
    const row = await this.#client(clientId);
    if (!row) throw invalidClient();
    if (row.type === 'public') {
      if (secret !== undefined) throw invalidClient();
    } else if (secret === undefined || !secretMatches(secret, row.secret_hash)) {
      throw invalidClient();
    }
    return toClientView(row);
  }

  // The token endpoint (RFC 6749 4.1.3, 6, 4.4)

  async token(client: ClientView, body: Record<string, string | undefined>, from: ClientInfo): Promise<TokenAnswer> {
    switch (body.grant_type) {
      case 'authorization_code':
        if (client.type === 'service') throw new OAuthError('unauthorized_client', 'A service client uses client_credentials.');
        return this.#codeGrant(client, body, from);
      case 'refresh_token':
        if (client.type === 'service') throw new OAuthError('unauthorized_client', 'A service client uses client_credentials.');
        return this.#refreshGrant(client, body, from);
      case 'client_credentials':
        if (client.type !== 'service') throw new OAuthError('unauthorized_client', 'Only a service client may use client_credentials.');
        return this.#clientCredentials(client, body);
      case undefined:
        throw new OAuthError('invalid_request', 'grant_type is required.');
      default:
        throw new OAuthError('unsupported_grant_type', 'Offered: authorization_code, refresh_token, client_credentials.');
    }
  }

  async #codeGrant(client: ClientView, body: Record<string, string | undefined>, from: ClientInfo): Promise<TokenAnswer> {
    const invalidGrant = (why: string) => new OAuthError('invalid_grant', why);
    if (!body.code) throw new OAuthError('invalid_request', 'code is required.');
    const codeHash = hashSecret(body.code);
    const code = await findCode(this.deps.db, codeHash);
    if (!code) throw invalidGrant('The code is unknown.');
    if (code.client_id !== client.client_id) throw invalidGrant('The code was issued to another client.');
    if (!(await spendCode(this.deps.db, codeHash, this.#now()))) {
      // A replay (RFC 6749 4.1.2): what the code issued is revoked.
      if (code.issued_session_id) await this.deps.revocation.endNow(this.deps.db, { userId: String(code.user_id), sessionId: String(code.issued_session_id) }, 'revoked');
      throw invalidGrant('The code was used already.');
    }
    if (code.expires_at.getTime() <= this.deps.clock.now()) throw invalidGrant('The code has expired.');
    if (body.redirect_uri !== code.redirect_uri) throw invalidGrant('redirect_uri differs from the authorization request.');
    if (!body.code_verifier || !PKCE_VERIFIER.test(body.code_verifier)) throw invalidGrant('code_verifier is missing or malformed.');
    const a = Buffer.from(s256(body.code_verifier));
    const b = Buffer.from(code.code_challenge);
    if (a.length !== b.length || !timingSafeEqual(a, b)) throw invalidGrant('code_verifier does not match the code_challenge.');

    const userId = String(code.user_id);
    const browserSessionId = String(code.browser_session_id);
    // The browser session must still be usable: a logout between the code and its exchange ends the sign-in.
    if (!(await this.deps.sessions.authenticate(userId, browserSessionId))) throw invalidGrant('The sign-in behind the code has ended.');
    const user = await findUserById(this.deps.db, userId);
    const signIn = await findSessionSignIn(this.deps.db, browserSessionId);
    if (!user || !signIn) throw invalidGrant('The sign-in behind the code has ended.');
    let pair;
    try {
      pair = await this.deps.sessions.openSession(user, from, signIn.amr.split(' '), browserSessionId);
    } catch (err) {
      if (err instanceof AppError) throw invalidGrant('The account cannot sign in.');
      throw err;
    }
    const sessionId = pair.session.id;
    try {
      await insertClientSession(this.deps.db, { session_id: sessionId, client_id: client.client_id, user_id: userId, scope: code.scope, resource: code.resource, auth_time: code.auth_time });
      await recordIssuedSession(this.deps.db, codeHash, sessionId);
    } catch (err) {
      // No half-made client session: the session we just opened ends.
      await this.deps.revocation.endNow(this.deps.db, { userId, sessionId }, 'revoked').catch(() => {});
      throw err;
    }
    return this.#answer(client, { userId, sessionId, browserSessionId, scope: code.scope, resource: code.resource, authTime: code.auth_time, amr: signIn.amr, nonce: code.nonce }, pair.refresh_token);
  }

  async #answer(
    client: ClientView,
    grant: { userId: string; sessionId: string; browserSessionId: string; scope: string; resource: string | null; authTime: Date; amr: string; nonce: string | null },
    refreshToken: string | undefined,
  ): Promise<TokenAnswer> {
    const scopes = grant.scope.split(' ');
    const access = await this.deps.tokens.issue(grant.userId, grant.sessionId, grant.amr.split(' '), {
      clientId: client.client_id,
      scope: grant.scope,
      ...(grant.resource ? { audience: grant.resource } : {}),
    });
    const answer: TokenAnswer = { access_token: access.token, token_type: 'Bearer', expires_in: access.expiresIn, scope: grant.scope };
    if (scopes.includes('openid')) answer.id_token = await this.#idToken(client, grant, access.token);
    // offline_access (OpenID Core 11): a refresh token; a first-party client's without consent, others' after it.
    if (scopes.includes('offline_access') && refreshToken) answer.refresh_token = refreshToken;
    return answer;
  }

  async #idToken(client: ClientView, grant: { userId: string; browserSessionId: string; scope: string; authTime: Date; amr: string; nonce: string | null }, accessToken: string): Promise<string> {
    const now = Math.floor(this.deps.clock.now() / 1000);
    const user = await findUserById(this.deps.db, grant.userId);
    const claims: Record<string, unknown> = {
      iss: this.deps.issuer,
      sub: grant.userId,
      aud: client.client_id,
      azp: client.client_id,
      iat: now,
      exp: now + 600,
      auth_time: Math.floor(grant.authTime.getTime() / 1000),
      amr: grant.amr.split(' '),
      // The browser session (OpenID Front-Channel/Back-Channel Logout `sid`), the one logout ends.
      sid: grant.browserSessionId,
      at_hash: atHash(accessToken, client.id_token_signed_response_alg),
      ...(grant.nonce ? { nonce: grant.nonce } : {}),
      ...(user ? userClaims(toUser(user), grant.scope.split(' ')) : {}),
    };
    return this.deps.idTokens.sign(claims, client.id_token_signed_response_alg);
  }

  async #refreshGrant(client: ClientView, body: Record<string, string | undefined>, from: ClientInfo): Promise<TokenAnswer> {
    const invalidGrant = () => new OAuthError('invalid_grant', 'The refresh token is invalid, expired, used or revoked.');
    if (!body.refresh_token) throw new OAuthError('invalid_request', 'refresh_token is required.');
    const parsed = parseRefreshToken(body.refresh_token);
    const held = parsed && (await findClientSession(this.deps.db, parsed.sessionId));
    // A refresh token of another client (or of the service's own sessions) is refused, and spends nothing.
    if (!held || held.client_id !== client.client_id || !held.scope.split(' ').includes('offline_access')) throw invalidGrant();
    if (body.scope !== undefined && body.scope.split(' ').some((s) => !held.scope.split(' ').includes(s))) throw new OAuthError('invalid_scope', 'A refresh may narrow the scope, never widen it.');
    let pair;
    try {
      // Rotation, the retry rule (the same successor within REFRESH_RETRY_S) and reuse detection are part 1's.
      pair = await this.deps.sessions.refresh(body.refresh_token, from, { clientSession: true });
    } catch (err) {
      if (err instanceof AppError) throw invalidGrant();
      throw err;
    }
    const session = await findSessionSignIn(this.deps.db, String(held.session_id));
    return this.#answer(
      client,
      {
        userId: String(held.user_id),
        sessionId: String(held.session_id),
        browserSessionId: String(session?.parent_session_id ?? held.session_id),
        scope: body.scope ?? held.scope,
        resource: held.resource,
        authTime: held.auth_time,
        amr: session?.amr ?? '',
        nonce: null,
      },
      pair.refresh_token,
    );
  }

  async #clientCredentials(client: ClientView, body: Record<string, string | undefined>): Promise<TokenAnswer> {
    const asked = body.scope === undefined ? client.scopes.filter((s) => !(OPENID_SCOPES as readonly string[]).includes(s)) : body.scope.split(' ').filter(Boolean);
    const refused = asked.filter((s) => !client.scopes.includes(s) || (OPENID_SCOPES as readonly string[]).includes(s));
    if (refused.length) throw new OAuthError('invalid_scope', `Not allowed for this client: ${refused.join(' ')}.`);
    if (body.resource !== undefined && !this.deps.resources.includes(body.resource)) throw new OAuthError('invalid_target', 'resource is not a registered resource.');
    const access = await this.deps.tokens.issueForService(client.client_id, asked.join(' '), client.roles, body.resource);
    return { access_token: access.token, token_type: 'Bearer', expires_in: access.expiresIn, scope: asked.join(' ') };
  }

  // Userinfo (OpenID Core 5.3): the claims of the token's scopes.

  async userinfo(accessToken: string): Promise<Record<string, unknown>> {
    const claims = await this.deps.tokens.verify(accessToken).catch(() => undefined);
    if (!claims || !(await this.deps.sessions.authenticate(claims.userId, claims.sessionId))) throw new OAuthError('invalid_token', 'The access token is invalid, expired or revoked.', 401);
    const scopes = String(decodeJwt(accessToken).scope ?? '').split(' ');
    if (!scopes.includes('openid')) throw new OAuthError('insufficient_scope', 'The token was not issued for openid.', 403);
    const user = await findUserById(this.deps.db, claims.userId);
    if (!user) throw new OAuthError('invalid_token', 'The access token is invalid, expired or revoked.', 401);
    return { sub: claims.userId, ...userClaims(toUser(user), scopes) };
  }

  // Revocation (RFC 7009): a client ends its own tokens; an unknown token is answered 200 too.

  async revoke(client: ClientView, token: string | undefined): Promise<void> {
    if (!token) throw new OAuthError('invalid_request', 'token is required.');
    const session = await this.#sessionOfToken(token);
    if (!session || session.clientId !== client.client_id) return;
    await this.deps.revocation.endNow(this.deps.db, { userId: session.userId, sessionId: session.sessionId }, 'revoked');
  }

  async #sessionOfToken(token: string): Promise<{ userId: string; sessionId: string; clientId: string } | undefined> {
    const parsed = parseRefreshToken(token);
    if (parsed) {
      // Only the token itself names its session: the shape alone (a guessable session id) ends nothing.
      const held = await findClientSession(this.deps.db, parsed.sessionId);
      const current = held && (await findSessionSignIn(this.deps.db, parsed.sessionId));
      if (!held || !current || current.refresh_token_hash !== hashSecret(parsed.secret)) return undefined;
      return { userId: String(held.user_id), sessionId: String(held.session_id), clientId: held.client_id };
    }
    const claims = await this.deps.tokens.verify(token).catch(() => undefined);
    if (!claims) return undefined;
    const clientId = decodeJwt(token).client_id;
    return typeof clientId === 'string' ? { ...claims, clientId } : undefined;
  }

  // Introspection (RFC 7662), for confidential and service clients.

  async introspect(client: ClientView, token: string | undefined): Promise<Record<string, unknown>> {
    if (client.type === 'public') throw new OAuthError('unauthorized_client', 'Introspection is for confidential clients.');
    if (!token) throw new OAuthError('invalid_request', 'token is required.');
    const inactive = { active: false };
    const parsed = parseRefreshToken(token);
    if (parsed) {
      // A refresh token is described only to the client that holds it.
      const held = await findClientSession(this.deps.db, parsed.sessionId);
      if (!held || held.client_id !== client.client_id) return inactive;
      const current = await findSessionSignIn(this.deps.db, parsed.sessionId);
      if (!current || current.refresh_token_hash !== hashSecret(parsed.secret) || !(await this.deps.sessions.authenticate(String(held.user_id), String(held.session_id)))) return inactive;
      return { active: true, token_type: 'refresh_token', client_id: held.client_id, sub: String(held.user_id), scope: held.scope, exp: Math.floor(current.expires_at.getTime() / 1000), iss: this.deps.issuer };
    }
    const claims = await this.deps.tokens.verify(token).catch(() => undefined);
    if (!claims || !(await this.deps.sessions.authenticate(claims.userId, claims.sessionId))) return inactive;
    const payload = decodeJwt(token);
    return { active: true, token_type: 'access_token', client_id: payload.client_id, sub: payload.sub, scope: payload.scope, sid: payload.sid, exp: payload.exp, iat: payload.iat, iss: payload.iss, aud: payload.aud };
  }

  // RP-initiated logout (OpenID RP-Initiated Logout 1.0)

  async logout(params: { id_token_hint?: string; post_logout_redirect_uri?: string; state?: string; client_id?: string }, browser: BrowserSession | undefined): Promise<{ location?: string }> {
    const hint = params.id_token_hint ? await this.deps.idTokens.verifyHint(params.id_token_hint, this.deps.issuer) : undefined;
    if (params.id_token_hint && !hint) throw new OAuthError('invalid_request', 'id_token_hint is not an ID token of this provider.');
    const clientId = params.client_id ?? (typeof hint?.aud === 'string' ? hint.aud : undefined);
    if (params.client_id && hint && hint.aud !== params.client_id) throw new OAuthError('invalid_request', 'client_id differs from the id_token_hint.');
    let location: string | undefined;
    if (params.post_logout_redirect_uri !== undefined) {
      const client = await this.#client(clientId);
      if (!client || !toClientView(client).post_logout_redirect_uris.includes(params.post_logout_redirect_uri)) {
        throw new OAuthError('invalid_request', 'post_logout_redirect_uri is not one registered for this client.');
      }
      location = this.#redirect(params.post_logout_redirect_uri, { state: params.state });
    }
    // The browser session ends, and with it every client session opened from it (single sign-out).
    const ending = browser ?? (hint && typeof hint.sub === 'string' && typeof hint.sid === 'string' ? { userId: hint.sub, sessionId: hint.sid } : undefined);
    if (ending) await this.deps.revocation.endNow(this.deps.db, ending, 'logout');
    return location ? { location } : {};
  }

  // Consents, in the account app

  async listGrants(userId: string) {
    const rows = await listGrants(this.deps.db, userId);
    return { grants: rows.map((r) => ({ client_id: r.client_id, name: r.name, scopes: r.scopes.split(' '), created_at: r.created_at.toISOString() })) };
  }

  /** Withdraws the consent; the client's sessions (its refresh tokens, its access tokens) end with it. */
  async withdrawGrant(userId: string, clientId: string): Promise<void> {
    if (!(await deleteGrant(this.deps.db, userId, clientId))) throw new AppError('not_found', { detail: 'You have not agreed to a client with that id.' });
    for (const sessionId of await clientSessionIds(this.deps.db, userId, clientId)) await this.deps.revocation.endNow(this.deps.db, { userId, sessionId }, 'revoked');
  }
}

/** The claims of the profile and email scopes (OpenID Core 5.4). */
function userClaims(user: ReturnType<typeof toUser>, scopes: readonly string[]): Record<string, unknown> {
  return {
    ...(scopes.includes('profile') ? { name: user.name, preferred_username: user.username, ...(user.dob ? { birthdate: user.dob } : {}), updated_at: Math.floor(Date.parse(user.updated_at) / 1000) } : {}),
    ...(scopes.includes('email') ? { email: user.email, email_verified: user.email_verified } : {}),
  };
}

/** at_hash (OpenID Core 3.1.3.6): the left half of the access token's hash, the hash of the ID token's alg. */
function atHash(accessToken: string, alg: IdTokenAlg): string {
  // EdDSA with Ed25519 hashes with SHA-512 (OpenID's rule for it); RS256 with SHA-256.
  const digest = createHash(alg === 'RS256' ? 'sha256' : 'sha512').update(accessToken).digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}
