/**
 * The API client. The access token lives in memory only; the refresh token is an HttpOnly
 * cookie the script never sees (cookie mode, `X-Token-Delivery: cookie`), so a reload signs the
 * user back in with one refresh, and an expired access token is renewed once, transparently.
 */

import type { paths } from './api-types.js';

// The types of the API come from the server's schemas (api-types.ts, generated from its OpenAPI
// document by `npm run docs:api`): a changed schema breaks the web app's type check, not its users.
type Body<R> = R extends { content: { 'application/json': infer B } } ? B : R extends { content: { 'application/problem+json': infer B } } ? B : never;
/** The body of the answer `status` to `method path`. */
export type Answer<P extends keyof paths, M extends keyof paths[P], S extends number> = paths[P][M] extends { responses: infer R } ? (S extends keyof R ? Body<R[S]> : never) : never;

export type User = Answer<'/v1/users/me', 'get', 200>;
export type SessionInfo = Answer<'/v1/sessions', 'get', 200>['sessions'][number];
export type MfaState = Answer<'/v1/users/me/mfa', 'get', 200>;
export type Passkey = Answer<'/v1/users/me/passkeys', 'get', 200>['passkeys'][number];
export type TotpSetup = Answer<'/v1/users/me/mfa/totp', 'post', 201>;
export type RecoveryCodes = Answer<'/v1/users/me/mfa/totp/confirm', 'post', 200>;
export type PasswordPolicy = Answer<'/v1/password-policy', 'get', 200>;
type TokenPair = Answer<'/v1/sessions', 'post', 201>;
type ServerProblem = Answer<'/v1/users', 'post', 400>;
/** A problem the server sent, or one the page makes up (a cancelled passkey prompt) with the same fields. */
export type Problem = Pick<ServerProblem, 'status' | 'code' | 'detail' | 'errors'> & Partial<ServerProblem> & { [extension: string]: unknown };

export class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail);
  }
}

const COOKIE_MODE = { 'x-token-delivery': 'cookie' };

let accessToken: string | undefined;
let currentUser: User | undefined;
const listeners = new Set<() => void>();

export const auth = {
  get user(): User | undefined {
    return currentUser;
  },
  get signedIn(): boolean {
    return accessToken !== undefined;
  },
  onChange(listener: () => void): void {
    listeners.add(listener);
  },
  /** The organization the session speaks for (the access token's `org_id`, API-ORGS.md), if any. */
  get orgId(): string | undefined {
    if (!accessToken) return undefined;
    try {
      const claims = JSON.parse(atob(accessToken.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))) as { org_id?: unknown };
      return typeof claims.org_id === 'string' ? claims.org_id : undefined;
    } catch {
      return undefined;
    }
  },
};

function signedIn(pair: TokenPair): void {
  remember(true);
  accessToken = pair.access_token;
  currentUser = pair.user;
  for (const l of listeners) l();
}

export function setUser(user: User): void {
  currentUser = user;
  for (const l of listeners) l();
}

export function forget(): void {
  remember(false);
  accessToken = undefined;
  currentUser = undefined;
  for (const l of listeners) l();
}

async function send(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  const init: RequestInit = { method, headers: { ...headers }, credentials: 'same-origin' };
  if (body !== undefined) {
    (init.headers as Record<string, string>)['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  return fetch(path, init);
}

async function parse<T>(res: Response): Promise<T> {
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  const data = text ? JSON.parse(text) : undefined;
  if (!res.ok) {
    throw new ApiError(data && typeof data.code === 'string' ? data : { status: res.status, code: 'unknown', detail: `The service answered ${res.status}.` });
  }
  return data as T;
}

/**
 * Trades the refresh cookie for a new access token; one at a time across tabs (Web Locks, where
 * the page is a secure context). Only a refused cookie (401) signs the user out: an outage or a
 * throttle leaves the session as it is, to try again.
 */
export async function refresh(): Promise<boolean> {
  const run = async () => {
    const res = await send('POST', '/v1/sessions/refresh', undefined, COOKIE_MODE);
    if (res.status === 401) {
      // Read to the end: an unread body keeps the request open (the page never goes idle).
      await res.arrayBuffer().catch(() => undefined);
      sessionEnded();
      return false;
    }
    if (!res.ok) return parse<never>(res); // throws the problem (429, 503)
    signedIn(await res.json());
    return true;
  };
  return navigator.locks ? navigator.locks.request('ums-refresh', run) : run();
}

/**
 * Whether this browser may hold a refresh cookie: set when a sign-in succeeds, cleared when the
 * session ends. The cookie itself is HttpOnly; without this a signed-out page load would ask for
 * a refresh only to be refused (a red 401 in the console on every visit).
 */
const MAY_BE_SIGNED_IN = 'ums-may-be-signed-in';
function remember(signedInNow: boolean): void {
  try {
    if (signedInNow) localStorage.setItem(MAY_BE_SIGNED_IN, '1');
    else localStorage.removeItem(MAY_BE_SIGNED_IN);
  } catch {
    // Storage off: every load asks, as before.
  }
}
function mayBeSignedIn(): boolean {
  try {
    return localStorage.getItem(MAY_BE_SIGNED_IN) !== null;
  } catch {
    return true;
  }
}

/** At a page load: a refresh when this browser may hold a session, none when it cannot. */
export async function resume(): Promise<boolean> {
  return mayBeSignedIn() ? refresh() : false;
}

let policy: Promise<PasswordPolicy> | undefined;
/** The server's password rules (PASSWORD_MIN_LENGTH), asked once per page load. */
export function passwordPolicy(): Promise<PasswordPolicy> {
  policy ??= publicCall<PasswordPolicy>('GET', '/v1/password-policy').catch((err: unknown) => {
    policy = undefined;
    throw err;
  });
  return policy;
}

/** The session ended under the user (revoked elsewhere, expired): tell the page. */
function sessionEnded(): void {
  const wasSignedIn = accessToken !== undefined;
  forget();
  if (wasSignedIn) for (const l of endListeners) l();
}
const endListeners = new Set<() => void>();
export function onSessionEnded(listener: () => void): void {
  endListeners.add(listener);
}

/**
 * A call as the signed-in user. An access token refused as such (401 `invalid_token`) is renewed
 * once and the call repeated; any other 401 (a wrong code, say) is the answer itself, never
 * sent twice.
 */
export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const attempt = () => send(method, path, body, accessToken ? { authorization: `Bearer ${accessToken}` } : {});
  let res = await attempt();
  if (res.status === 401 && isTokenRefusal(res) && (await refresh())) res = await attempt();
  try {
    return await parse<T>(res);
  } catch (err) {
    // MFA_REQUIRED_FOR (API-ADMIN.md): this session may only set up a second factor.
    if (err instanceof ApiError && err.problem.code === 'mfa_setup_required') for (const l of setupListeners) l();
    throw err;
  }
}

const setupListeners = new Set<() => void>();
/** Called when the service answers that a second factor must be set up first. */
export function onMfaSetupRequired(listener: () => void): void {
  setupListeners.add(listener);
}

/** RFC 6750: a refused bearer token says so in WWW-Authenticate. */
function isTokenRefusal(res: Response): boolean {
  return /^Bearer\b/i.test(res.headers.get('www-authenticate') ?? '');
}

/** Calls that do not need a session (sign up, sign in). */
export async function publicCall<T>(method: string, path: string, body?: unknown): Promise<T> {
  return parse<T>(await send(method, path, body));
}

/** Signs in through any of the sign-in endpoints, in cookie mode. */
/** A sign-in is about to happen by a redirect (another provider): the next page load asks for a refresh. */
export function expectSignIn(): void {
  remember(true);
}

export async function signIn(path: string, body: unknown): Promise<void> {
  signedIn(await parse<TokenPair>(await send('POST', path, body, COOKIE_MODE)));
}

/**
 * The session speaks for `orgId` from now on (null: for none). The new pair comes in cookie mode,
 * as a refresh's does: its access token carries `org_id` and `org_role`.
 */
export async function switchOrganization(orgId: string | null): Promise<void> {
  const res = await send('POST', '/v1/sessions/organization', { org_id: orgId }, { ...COOKIE_MODE, ...(accessToken ? { authorization: `Bearer ${accessToken}` } : {}) });
  signedIn(await parse<TokenPair>(res));
}

/** Ends this session; on failure the user stays signed in and the error is thrown to be shown. */
export async function signOut(): Promise<void> {
  try {
    await call('DELETE', '/v1/sessions/current');
  } catch (err) {
    // Already ended (revoked elsewhere): signed out all the same.
    if (!(err instanceof ApiError && err.problem.status === 401)) throw err;
  }
  forget();
}
