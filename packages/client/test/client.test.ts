/**
 * The client against a running service over HTTP: typed calls, the tokens kept and sent,
 * problem+json as ProblemError, and refresh: once for concurrent callers, once across "tabs"
 * (a Web Lock), safe when an answer is lost (the retry rule), and the end of a session.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GOOD_PASSWORD, uniqueName } from '../../../test/helpers/app.js';
import { startListeningService } from '../../../test/helpers/listening-service.js';
import { createClient, memoryTokenStore, ProblemError, type ClientOptions, type UserManagementClient } from '@user-management/client';

type Svc = Awaited<ReturnType<typeof startListeningService>>;
let svc: Svc;

before(async () => {
  svc = await startListeningService();
});
after(() => svc.close());

/** Every request the client sends, as `METHOD /path`. */
function recordingFetch(log: string[]): typeof fetch {
  return (input, init) => {
    const request = input instanceof Request ? input : new Request(input, init);
    log.push(`${request.method} ${new URL(request.url).pathname}`);
    return fetch(request);
  };
}

function newClient(extra: Partial<ClientOptions> = {}): { client: UserManagementClient; log: string[] } {
  const log: string[] = [];
  return { client: createClient({ baseUrl: svc.url, fetch: recordingFetch(log), ...extra }), log };
}

async function registered(client: UserManagementClient) {
  const username = uniqueName('client');
  const user = await client.POST('/v1/users', { body: { username, name: 'Ada Lovelace', dob: '1990-12-10', email: `${username}@example.com`, password: GOOD_PASSWORD } });
  return { user, username };
}

/** Moves the service's clock past the access token's lifetime: the next call is refused as expired. */
const expireAccessTokens = () => svc.clock.advance((svc.config.accessTokenTtlS + 60) * 1000);

describe('the client against a running service', () => {
  it('when a user registers, logs in and calls the API, then every answer is the typed body and the token is sent for them', async () => {
    const { client } = newClient();
    const { user, username } = await registered(client);
    assert.equal(user.username, username);
    assert.equal(await client.signedIn, false, 'registering opens no session');

    const pair = await client.login({ username, password: GOOD_PASSWORD });
    assert.equal(pair.token_type, 'Bearer');
    assert.equal(await client.signedIn, true);

    const me = await client.GET('/v1/users/me');
    assert.equal(me.id, user.id);
    const renamed = await client.PATCH('/v1/users/me', { body: { name: 'Ada King' } });
    assert.equal(renamed.name, 'Ada King');
    const { sessions } = await client.GET('/v1/sessions');
    assert.deepEqual(sessions.map((s) => s.current), [true]);
    const { client: phone } = newClient();
    const phonePair = await phone.login({ username, password: GOOD_PASSWORD });
    await client.DELETE('/v1/sessions/{id}', { params: { path: { id: phonePair.session.id } } });
    const revoked = await phone.GET('/v1/users/me').catch((e: unknown) => e);
    assert.ok(revoked instanceof ProblemError && revoked.code === 'invalid_token', 'the revoked session\'s client is refused');
    const introspection = await client.POST('/v1/sessions/introspect');
    assert.deepEqual(introspection, { active: true, sub: user.id, sid: pair.session.id });
    const policy = await client.GET('/v1/password-policy');
    assert.equal(typeof policy.min_length, 'number');
    const jwks = await client.GET('/.well-known/jwks.json');
    assert.ok(jwks.keys.length >= 1);

    await client.PUT('/v1/users/me/password', { body: { current_password: GOOD_PASSWORD, new_password: 'amber falcon river 9031' } });
    const again = await client.login({ username, password: 'amber falcon river 9031' });
    assert.ok(again.access_token);
  });

  it('when the API refuses, then the call rejects with a ProblemError carrying the problem (code, status, field errors)', async () => {
    const { client, log } = newClient();
    const { username } = await registered(client);

    const taken = await client.POST('/v1/users', { body: { username, name: 'X', dob: '1990-12-10', email: `other-${username}@example.com`, password: GOOD_PASSWORD } }).catch((e: unknown) => e);
    assert.ok(taken instanceof ProblemError);
    assert.equal(taken.status, 409);
    assert.equal(taken.code, 'username_taken');

    const invalid = await client.POST('/v1/users', { body: { username: 'x', name: '', dob: 'no', email: 'no', password: GOOD_PASSWORD } }).catch((e: unknown) => e);
    assert.ok(invalid instanceof ProblemError);
    assert.equal(invalid.code, 'validation_failed');
    assert.ok(invalid.problem.errors?.some((e) => e.field === 'username'), JSON.stringify(invalid.problem));

    log.length = 0;
    const wrong = await client.login({ username, password: 'not the password 1234' }).catch((e: unknown) => e);
    assert.ok(wrong instanceof ProblemError);
    assert.equal(wrong.code, 'invalid_credentials');
    assert.deepEqual(log, ['POST /v1/sessions'], 'a refused login is neither retried nor followed by a refresh');

    const anonymous = await client.GET('/v1/users/me').catch((e: unknown) => e);
    assert.ok(anonymous instanceof ProblemError);
    assert.equal(anonymous.code, 'invalid_token');
  });

  it('when two callers find the access token expired at once, then one refresh serves both and both calls succeed', async () => {
    const { client, log } = newClient();
    const { user, username } = await registered(client);
    await client.login({ username, password: GOOD_PASSWORD });
    expireAccessTokens();
    log.length = 0;
    const [a, b] = await Promise.all([client.GET('/v1/users/me'), client.GET('/v1/sessions')]);
    assert.equal(a.id, user.id);
    assert.equal(b.sessions.length, 1);
    assert.equal(log.filter((l) => l === 'POST /v1/sessions/refresh').length, 1, log.join(', '));
  });

  it('when two tabs (two clients sharing the tokens and a Web Lock) are refused at once, then only the first refreshes', async () => {
    const shared = memoryTokenStore();
    const log: string[] = [];
    const locks = new FakeLockManager();
    const navigatorBefore = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
    Object.defineProperty(globalThis, 'navigator', { value: { locks }, configurable: true });
    try {
      const tab1 = createClient({ baseUrl: svc.url, tokens: shared, fetch: recordingFetch(log) });
      const tab2 = createClient({ baseUrl: svc.url, tokens: shared, fetch: recordingFetch(log) });
      const { user, username } = await registered(tab1);
      await tab1.login({ username, password: GOOD_PASSWORD });
      expireAccessTokens();
      log.length = 0;
      const [a, b] = await Promise.all([tab1.GET('/v1/users/me'), tab2.GET('/v1/users/me')]);
      assert.deepEqual([a.id, b.id], [user.id, user.id]);
      assert.equal(log.filter((l) => l === 'POST /v1/sessions/refresh').length, 1, log.join(', '));
      assert.deepEqual(locks.requested, ['user-management-refresh', 'user-management-refresh']);
    } finally {
      if (navigatorBefore) Object.defineProperty(globalThis, 'navigator', navigatorBefore);
      else delete (globalThis as { navigator?: unknown }).navigator;
    }
  });

  it('when two clients without a lock refresh the same refresh token at once, then both go on (the retry rule) and the session stays active', async () => {
    const { client: first } = newClient();
    const { username } = await registered(first);
    const pair = await first.login({ username, password: GOOD_PASSWORD });
    const tokens = { accessToken: pair.access_token, refreshToken: pair.refresh_token! };
    const { client: a } = newClient({ tokens: memoryTokenStore({ ...tokens }) });
    const { client: b } = newClient({ tokens: memoryTokenStore({ ...tokens }) });
    assert.deepEqual(await Promise.all([a.refresh(), b.refresh()]), [true, true]);
    assert.ok((await a.GET('/v1/users/me')).id);
    assert.ok((await b.GET('/v1/users/me')).id);
    assert.ok((await first.GET('/v1/users/me')).id, 'the session was not taken for stolen');
  });

  it('when the answer to a refresh is lost, then the client presents the same refresh token again and the session goes on', async () => {
    let dropped = 0;
    const lossy: typeof fetch = async (input, init) => {
      const request = input instanceof Request ? input : new Request(input, init);
      const res = await fetch(request);
      if (new URL(request.url).pathname === '/v1/sessions/refresh' && dropped === 0) {
        dropped += 1;
        await res.body?.cancel();
        throw new TypeError('fetch failed'); // the service rotated the token; the client never saw it
      }
      return res;
    };
    const client = createClient({ baseUrl: svc.url, fetch: lossy });
    const { username } = await registered(client);
    await client.login({ username, password: GOOD_PASSWORD });
    expireAccessTokens();
    assert.ok((await client.GET('/v1/users/me')).id);
    assert.equal(dropped, 1);
    assert.equal(await client.refresh(), true, 'the refresh token the client holds now is the live one');
  });

  it('when the session has ended elsewhere, then the refresh is refused, the tokens are dropped, listeners are told and the call rejects', async () => {
    const { client } = newClient();
    const { username } = await registered(client);
    await client.login({ username, password: GOOD_PASSWORD });
    const { client: other } = newClient();
    await other.login({ username, password: GOOD_PASSWORD });
    let ended = 0;
    client.onSessionEnded(() => (ended += 1));
    await other.DELETE('/v1/sessions'); // log out everywhere
    const refused = await client.GET('/v1/users/me').catch((e: unknown) => e);
    assert.ok(refused instanceof ProblemError);
    assert.equal(refused.code, 'invalid_token');
    assert.equal(ended, 1);
    assert.equal(await client.signedIn, false);
  });

  it('when the user logs out, then the token is refused and the client holds none', async () => {
    const { client } = newClient();
    const { username } = await registered(client);
    const pair = await client.login({ username, password: GOOD_PASSWORD });
    await client.logout();
    assert.equal(await client.signedIn, false);
    const res = await fetch(`${svc.url}/v1/users/me`, { headers: { authorization: `Bearer ${pair.access_token}` } });
    assert.equal(res.status, 401);
    await client.logout(); // logged out already: nothing to do, no error
  });

  it('the types follow the OpenAPI document: an unknown path or a wrong body does not compile', () => {
    const { client } = newClient();
    // Never called: the point is the type check (npm run typecheck covers this file).
    const typeChecks = () => {
      // @ts-expect-error no such route
      void client.GET('/v1/no-such-route');
      // @ts-expect-error name must be a string
      void client.PATCH('/v1/users/me', { body: { name: 42 } });
      // @ts-expect-error POST /v1/users needs a body
      void client.POST('/v1/users');
    };
    assert.equal(typeof typeChecks, 'function');
  });
});

/** A Web Locks manager for Node (navigator.locks exists from Node 22): one holder per name at a time. */
class FakeLockManager {
  requested: string[] = [];
  #tails = new Map<string, Promise<unknown>>();
  request<T>(name: string, callback: () => Promise<T>): Promise<T> {
    this.requested.push(name);
    const previous = this.#tails.get(name) ?? Promise.resolve();
    const run = previous.then(callback, callback);
    this.#tails.set(name, run.catch(() => undefined));
    return run;
  }
}

