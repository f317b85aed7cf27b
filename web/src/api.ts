/**
 * The API client. The access token lives in memory only; the refresh token is an HttpOnly
 * cookie the script never sees (cookie mode, `X-Token-Delivery: cookie`), so a reload signs the
 * user back in with one refresh, and an expired access token is renewed once, transparently.
 */

import { createClient, ProblemError, type paths } from '@user-management/client';

// The types of the API come from the server's schemas (the client package's api-types.ts, generated
// from its OpenAPI document by `npm run docs:api`): a changed schema breaks the web app's type check.
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
/** A problem+json answer, or one the page makes up (a cancelled passkey prompt) with the same fields. */
export { ProblemError as ApiError };

let currentUser: User | undefined;
let accessToken: string | undefined;
const listeners = new Set<() => void>();
const notify = () => {
  for (const l of listeners) l();
};

/**
 * The client package does the HTTP: the tokens, the one refresh at a time across tabs (Web Lock
 * `ums-refresh`), problem+json as errors. The page keeps who is signed in, in memory.
 */
const client = createClient({
  baseUrl: '',
  tokenDelivery: 'cookie',
  lockName: 'ums-refresh',
  tokens: {
    get: () => (accessToken === undefined ? undefined : { accessToken }),
    set: (tokens) => {
      accessToken = tokens?.accessToken;
      remember(tokens !== undefined);
      if (!tokens) currentUser = undefined;
      notify();
    },
  },
  onTokenPair: (pair) => {
    currentUser = pair.user;
  },
});

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

export function setUser(user: User): void {
  currentUser = user;
  notify();
}

export function forget(): void {
  remember(false);
  accessToken = undefined;
  currentUser = undefined;
  notify();
}

/**
 * Trades the refresh cookie for a new access token. Only a refused cookie (401) signs the user
 * out: an outage or a throttle leaves the session as it is, to try again.
 */
export async function refresh(): Promise<boolean> {
  const renewed = await client.refresh();
  if (!renewed) forget();
  return renewed;
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

const endListeners = new Set<() => void>();
/** The session ended under the user (revoked elsewhere, expired): the client says so when a refresh is refused. */
client.onSessionEnded(() => {
  for (const l of endListeners) l();
});
export function onSessionEnded(listener: () => void): void {
  endListeners.add(listener);
}

/**
 * A call as the signed-in user. An access token refused as such (401 `invalid_token`) is renewed
 * once and the call repeated (by the client); any other 401 (a wrong code, say) is the answer
 * itself, never sent twice. The pages build paths with ids in them, so this one is untyped; the
 * answers' types come from `Answer`.
 */
export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init = body === undefined ? {} : { body };
  let result: { data?: unknown; error?: unknown; response: Response };
  try {
    result = await client.raw.request(method.toLowerCase() as never, path as never, init as never);
  } catch (err) {
    throw err instanceof ProblemError ? err : new ProblemError({ status: 0, code: 'network_error', detail: 'The service could not be reached.' });
  }
  if (result.response.ok) return result.data as T;
  const error = result.error as Partial<Problem> | undefined;
  const problem: Problem =
    error && typeof error.code === 'string'
      ? ({ ...error, status: error.status ?? result.response.status, detail: error.detail ?? '' } as Problem)
      : { status: result.response.status, code: 'unknown', detail: `The service answered ${result.response.status}.` };
  // MFA_REQUIRED_FOR (API-ADMIN.md): this session may only set up a second factor.
  if (problem.code === 'mfa_setup_required') for (const l of setupListeners) l();
  throw new ProblemError(problem, result.response);
}

const setupListeners = new Set<() => void>();
/** Called when the service answers that a second factor must be set up first. */
export function onMfaSetupRequired(listener: () => void): void {
  setupListeners.add(listener);
}

/** Calls that do not need a session (sign up, sign in). */
export async function publicCall<T>(method: string, path: string, body?: unknown): Promise<T> {
  return call<T>(method, path, body);
}

/** Signs in through any of the sign-in endpoints, in cookie mode. */
/** A sign-in is about to happen by a redirect (another provider): the next page load asks for a refresh. */
export function expectSignIn(): void {
  remember(true);
}

/** Signs in through any of the sign-in endpoints (in cookie mode: the client sends the header and keeps the token). */
export async function signIn(path: string, body: unknown): Promise<void> {
  await call<TokenPair>('POST', path, body);
}

/**
 * The session speaks for `orgId` from now on (null: for none). The new pair comes in cookie mode,
 * as a refresh's does: its access token carries `org_id` and `org_role`.
 */
export async function switchOrganization(orgId: string | null): Promise<void> {
  await call<TokenPair>('POST', '/v1/sessions/organization', { org_id: orgId });
}

/** Ends this session; on failure the user stays signed in and the error is thrown to be shown. */
export async function signOut(): Promise<void> {
  try {
    await call('DELETE', '/v1/sessions/current');
  } catch (err) {
    // Already ended (revoked elsewhere): signed out all the same.
    if (!(err instanceof ProblemError && err.problem.status === 401)) throw err;
  }
  forget();
}
