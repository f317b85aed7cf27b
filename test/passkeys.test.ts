import assert from 'node:assert/strict';
import { startOfNextMinute } from './helpers/clock.js';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { decodeJwt } from 'jose';
import { loadConfig } from '../src/config.js';
import { countPasskeys } from '../src/passkeys/repository.js';
import { SoftAuthenticator } from './helpers/authenticator.js';
import {
  JSON_TYPE,
  bearer,
  login,
  problem,
  registerUser,
  startTestService,
  type LoggedIn,
  type RegisteredUser,
  type TestService,
} from './helpers/app.js';

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const TOKEN_PAIR_KEYS = ['access_token', 'expires_in', 'refresh_token', 'session', 'token_type', 'user'];
const PASSKEY_KEYS = ['created_at', 'id', 'last_used_at', 'name'];

function assertProblem(res: LightMyRequestResponse, status: number, code: string, label = ''): void {
  assert.equal(res.statusCode, status, `${label} ${res.body}`);
  assert.equal(problem(res).code, code, label);
}

describe('passkeys', () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService();
  });
  after(() => svc.close());

  const passkeyRows = (userId: string) => svc.db.selectFrom('user_passkeys').selectAll().where('user_id', '=', userId).orderBy('passkey_id').execute();
  const challengeRow = (challenge: string) => svc.db.selectFrom('webauthn_challenges').selectAll().where('challenge', '=', challenge).executeTakeFirst();
  const sessionCount = async (userId: string) => (await svc.db.selectFrom('user_sessions').select('session_id').where('user_id', '=', userId).execute()).length;
  const events = async (userId: string, event: string) =>
    svc.db.selectFrom('audit_events').selectAll().where('user_id', '=', userId).where('event', '=', event).orderBy('event_id').execute();

  const creationOptions = (token: string) => svc.app.inject({ method: 'POST', url: '/v1/users/me/passkeys/options', headers: bearer(token) });
  const addPasskey = (token: string, body: unknown) => svc.app.inject({ method: 'POST', url: '/v1/users/me/passkeys', headers: bearer(token), payload: body as object });
  const requestOptions = () => svc.app.inject({ method: 'POST', url: '/v1/sessions/passkey/options' });
  const signIn = (response: unknown) => svc.app.inject({ method: 'POST', url: '/v1/sessions/passkey', payload: { response } as object });

  /** A user, signed in just now with a password, with a passkey added on a new authenticator. */
  async function userWithPasskey(name = 'Laptop'): Promise<{ user: RegisteredUser; session: LoggedIn; auth: SoftAuthenticator; passkey: any }> {
    const user = await registerUser(svc.app);
    const session = await login(svc.app, user);
    const auth = new SoftAuthenticator();
    const options = await creationOptions(session.accessToken);
    assert.equal(options.statusCode, 200, options.body);
    const res = await addPasskey(session.accessToken, { name, response: auth.register(options.json()) });
    assert.equal(res.statusCode, 201, res.body);
    return { user, session, auth, passkey: res.json() };
  }

  async function freshChallenge(): Promise<{ challenge: string }> {
    const res = await requestOptions();
    assert.equal(res.statusCode, 200, res.body);
    return res.json();
  }

  describe('adding a passkey', () => {
    it('when a freshly signed-in user asks for creation options and answers them, then 201 with the passkey, a stored credential, the challenge used up, and it is listed', async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      const optionsRes = await creationOptions(session.accessToken);
      assert.equal(optionsRes.statusCode, 200, optionsRes.body);
      assert.equal(optionsRes.headers['content-type'], JSON_TYPE);
      const options = optionsRes.json();
      assert.equal(options.rp.id, 'localhost');
      assert.equal(options.user.name, user.username);
      assert.match(options.user.id, /^[A-Za-z0-9_-]{43}$/, 'a 32-byte user handle');
      assert.notEqual(options.user.id, Buffer.from(user.id).toString('base64url'), 'the handle is not the user id');
      assert.equal(options.authenticatorSelection.residentKey, 'required');
      assert.equal(options.authenticatorSelection.userVerification, 'required');
      assert.deepEqual(options.excludeCredentials, []);
      assert.equal(options.attestation, 'none');
      assert.ok(options.pubKeyCredParams.some((p: { alg: number }) => p.alg === -7), 'ES256 is offered');
      const stored = await challengeRow(options.challenge);
      assert.ok(stored, 'the challenge is kept server-side');
      assert.equal(stored.purpose, 'register');
      assert.equal(String(stored.user_id), user.id);
      const ttl = stored.expires_at.getTime() - Date.now();
      assert.ok(ttl > 4 * 60_000 && ttl <= 5 * 60_000, `valid for 5 minutes (${ttl} ms)`);

      const auth = new SoftAuthenticator();
      const res = await addPasskey(session.accessToken, { name: '  Work laptop ', response: auth.register(options) });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.headers['content-type'], JSON_TYPE);
      const body = res.json();
      assert.deepEqual(Object.keys(body).sort(), PASSKEY_KEYS);
      assert.match(body.id, /^[0-9]+$/);
      assert.equal(body.name, 'Work laptop', 'trimmed');
      assert.match(body.created_at, TIMESTAMP);
      assert.equal(body.last_used_at, null);

      const rows = await passkeyRows(user.id);
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.passkey_id, body.id);
      assert.equal(rows[0]!.credential_id, auth.id);
      assert.equal(rows[0]!.counter, '0');
      assert.equal(rows[0]!.transports, 'internal hybrid');
      assert.equal(rows[0]!.device_type, 'singleDevice');
      assert.equal(rows[0]!.backed_up, false);
      assert.equal(rows[0]!.last_used_at, null);
      assert.equal(await challengeRow(options.challenge), undefined, 'the challenge is used up');
      assert.equal(await countPasskeys(svc.db, user.id), 1);

      const added = await events(user.id, 'passkey_added');
      assert.equal(added.length, 1);
      assert.equal(String(added[0]!.session_id), session.sessionId);
      assert.deepEqual(JSON.parse(added[0]!.details!), { passkey_id: body.id, backed_up: false });

      const list = await svc.app.inject({ method: 'GET', url: '/v1/users/me/passkeys', headers: bearer(session.accessToken) });
      assert.equal(list.statusCode, 200, list.body);
      assert.deepEqual(list.json(), { passkeys: [body] });

      const again = (await creationOptions(session.accessToken)).json();
      assert.deepEqual(
        again.excludeCredentials.map((c: { id: string }) => c.id),
        [auth.id],
        'the user\'s passkeys are excluded from the next registration',
      );
      assert.equal(again.user.id, options.user.id, 'the user handle is stable');
    });

    it('when the same credential is registered twice, by its user or by another, then 409 passkey_exists and no second row', async () => {
      const { user, session, auth } = await userWithPasskey();
      const again = await addPasskey(session.accessToken, { name: 'Again', response: auth.register((await creationOptions(session.accessToken)).json()) });
      assertProblem(again, 409, 'passkey_exists', 'same user');

      const other = await registerUser(svc.app);
      const otherSession = await login(svc.app, other);
      const stolen = await addPasskey(otherSession.accessToken, { name: 'Mine now', response: auth.register((await creationOptions(otherSession.accessToken)).json()) });
      assertProblem(stolen, 409, 'passkey_exists', 'another user');
      assert.equal((await passkeyRows(user.id)).length, 1);
      assert.equal((await passkeyRows(other.id)).length, 0);
    });

    it('when the registration response does not verify (wrong origin, wrong RP id, no user verification, wrong type, garbage attestation), then 400 invalid_passkey and nothing stored', async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      const cases: Array<[string, (options: any) => unknown]> = [
        ['wrong origin', (o) => new SoftAuthenticator({ origin: 'https://evil.example' }).register(o)],
        ['wrong RP id', (o) => new SoftAuthenticator({ rpId: 'evil.example' }).register(o)],
        ['no user verification', (o) => new SoftAuthenticator({ noUserVerification: true }).register(o)],
        ['an assertion type', (o) => new SoftAuthenticator().register(o, { clientData: { type: 'webauthn.get' } })],
        ['garbage attestation', (o) => {
          const r = new SoftAuthenticator().register(o);
          return { ...r, response: { ...r.response, attestationObject: Buffer.from('not cbor at all').toString('base64url') } };
        }],
        ['no challenge', (o) => new SoftAuthenticator().register(o, { clientData: { challenge: undefined } })],
      ];
      for (const [label, make] of cases) {
        const options = (await creationOptions(session.accessToken)).json();
        const res = await addPasskey(session.accessToken, { name: 'Bad', response: make(options) });
        assertProblem(res, 400, 'invalid_passkey', label);
      }
      assert.deepEqual(await passkeyRows(user.id), []);
      assert.deepEqual(await events(user.id, 'passkey_added'), []);
    });

    it('when the body is malformed (no name, blank name, control characters, response not an object, extra field), then 400 validation_failed', async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      const response = new SoftAuthenticator().register((await creationOptions(session.accessToken)).json());
      const bodies: Array<[string, unknown, string]> = [
        ['no name', { response }, 'name'],
        ['blank name', { name: '   ', response }, 'name'],
        ['control character', { name: 'a\u0007b', response }, 'name'],
        ['response a string', { name: 'x', response: 'nope' }, 'response'],
        ['bad base64url', { name: 'x', response: { ...response, response: { ...response.response, clientDataJSON: '%%%' } } }, 'response'],
        ['extra field', { name: 'x', response, admin: true }, ''],
      ];
      for (const [label, body, field] of bodies) {
        const res = await addPasskey(session.accessToken, body);
        assertProblem(res, 400, 'validation_failed', label);
        if (field) assert.ok(problem(res).errors?.some((e) => e.field.includes(field)), `${label}: ${res.body}`);
      }
      assert.deepEqual(await passkeyRows(user.id), []);
      const empty = await svc.app.inject({ method: 'POST', url: '/v1/users/me/passkeys', headers: { ...bearer(session.accessToken), 'content-type': 'text/plain' }, payload: 'x' });
      assertProblem(empty, 415, 'unsupported_media_type');
    });

    it('when a challenge made for signing in, another user\'s, or an expired one is used to add a passkey, then 400 invalid_passkey', async () => {
      const user = await registerUser(svc.app);
      const session = await login(svc.app, user);
      const own = (await creationOptions(session.accessToken)).json();

      const signInChallenge = await freshChallenge();
      const purpose = await addPasskey(session.accessToken, { name: 'x', response: new SoftAuthenticator().register({ ...own, challenge: signInChallenge.challenge }) });
      assertProblem(purpose, 400, 'invalid_passkey', 'sign-in challenge');
      assert.ok(await challengeRow(signInChallenge.challenge), 'a challenge of the other purpose is left alone');

      const other = await registerUser(svc.app);
      const otherSession = await login(svc.app, other);
      const othersOptions = (await creationOptions(otherSession.accessToken)).json();
      const foreign = await addPasskey(session.accessToken, { name: 'x', response: new SoftAuthenticator().register({ ...own, challenge: othersOptions.challenge }) });
      assertProblem(foreign, 400, 'invalid_passkey', 'another user\'s challenge');
      assert.ok(await challengeRow(othersOptions.challenge), 'it still belongs to its user');

      await svc.db.updateTable('webauthn_challenges').set({ expires_at: new Date(Date.now() - 1000) }).where('challenge', '=', own.challenge).execute();
      const expired = await addPasskey(session.accessToken, { name: 'x', response: new SoftAuthenticator().register(own) });
      assertProblem(expired, 400, 'invalid_passkey', 'expired');
      assert.deepEqual(await passkeyRows(user.id), []);
    });

    it('when the session was opened more than 15 minutes ago, then adding or removing answers 403 reauthentication_required and nothing changes; listing still works', async () => {
      const { user, session, auth, passkey } = await userWithPasskey();
      const options = (await creationOptions(session.accessToken)).json();
      await svc.db.updateTable('user_sessions').set({ created_at: new Date(Date.now() - 16 * 60_000) }).where('session_id', '=', session.sessionId).execute();

      assertProblem(await creationOptions(session.accessToken), 403, 'reauthentication_required', 'options');
      const add = await addPasskey(session.accessToken, { name: 'Late', response: new SoftAuthenticator().register(options) });
      assertProblem(add, 403, 'reauthentication_required', 'add');
      assert.ok(await challengeRow(options.challenge), 'the refused request did not use the challenge up');
      const del = await svc.app.inject({ method: 'DELETE', url: `/v1/users/me/passkeys/${passkey.id}`, headers: bearer(session.accessToken) });
      assertProblem(del, 403, 'reauthentication_required', 'delete');
      assert.deepEqual((await passkeyRows(user.id)).map((r) => r.credential_id), [auth.id]);

      const list = await svc.app.inject({ method: 'GET', url: '/v1/users/me/passkeys', headers: bearer(session.accessToken) });
      assert.equal(list.statusCode, 200);
      assert.equal(list.json().passkeys.length, 1);

      // Signing in again (here with the passkey itself) makes a fresh session that may.
      const fresh = await signIn(auth.assert(await freshChallenge()));
      assert.equal(fresh.statusCode, 201, fresh.body);
      assert.equal((await creationOptions(fresh.json().access_token)).statusCode, 200);
    });

    it('when no or a bad token is given, then 401 invalid_token', async () => {
      const res = await svc.app.inject({ method: 'POST', url: '/v1/users/me/passkeys/options' });
      assertProblem(res, 401, 'invalid_token');
      assertProblem(await svc.app.inject({ method: 'GET', url: '/v1/users/me/passkeys', headers: bearer('x.y.z') }), 401, 'invalid_token');
    });
  });

  describe('signing in with a passkey', () => {
    it('when a passkey sign-in completes, then the account\'s failed password logins from that address are forgiven, as after any completed sign-in', async () => {
      const { user, auth } = await userWithPasskey();
      for (let i = 0; i < 2; i++) {
        const wrong = await svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: 'not the password at all' } });
        assert.equal(wrong.statusCode, 401);
      }
      const throttleRow = () => svc.db.selectFrom('login_throttles').select('failures').where('throttle_key', '=', `account:${user.id}|127.0.0.1`).executeTakeFirst();
      assert.equal((await throttleRow())?.failures, 2);
      const res = await signIn(auth.assert(await freshChallenge()));
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(await throttleRow(), undefined);
    });

    it('when the assertion verifies, then 201 with the login body, amr swk mfa in the token (kept across refresh), the counter and last use stored, and the challenge used up', async () => {
      const { user, auth, passkey } = await userWithPasskey();
      const optionsRes = await requestOptions();
      assert.equal(optionsRes.statusCode, 200, optionsRes.body);
      const options = optionsRes.json();
      assert.deepEqual(options.allowCredentials ?? [], []);
      assert.equal(options.userVerification, 'required');
      assert.equal(options.rpId, 'localhost');
      const stored = await challengeRow(options.challenge);
      assert.equal(stored?.purpose, 'authenticate');
      assert.equal(stored?.user_id, null);

      const res = await svc.app.inject({ method: 'POST', url: '/v1/sessions/passkey', headers: { 'user-agent': 'passkeys-test/1.0' }, payload: { response: auth.assert(options) } });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.headers['content-type'], JSON_TYPE);
      assert.equal(res.headers['cache-control'], 'no-store');
      const body = res.json();
      assert.deepEqual(Object.keys(body).sort(), TOKEN_PAIR_KEYS);
      assert.equal(body.user.id, user.id);
      assert.deepEqual(decodeJwt(body.access_token).amr, ['swk', 'mfa']);

      const sessionRow = await svc.db.selectFrom('user_sessions').selectAll().where('session_id', '=', body.session.id).executeTakeFirstOrThrow();
      assert.equal(String(sessionRow.user_id), user.id);
      assert.equal(sessionRow.amr, 'swk mfa');
      assert.equal(sessionRow.user_agent, 'passkeys-test/1.0');
      const [row] = await passkeyRows(user.id);
      assert.equal(row!.counter, '1');
      assert.ok(row!.last_used_at && Date.now() - row!.last_used_at.getTime() < 10_000, 'last_used_at is set');
      assert.equal(await challengeRow(options.challenge), undefined);

      const list = (await svc.app.inject({ method: 'GET', url: '/v1/users/me/passkeys', headers: bearer(body.access_token) })).json();
      assert.equal(list.passkeys[0].id, passkey.id);
      assert.equal(list.passkeys[0].last_used_at, row!.last_used_at!.toISOString());

      const refreshed = await svc.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: body.refresh_token } });
      assert.equal(refreshed.statusCode, 200, refreshed.body);
      assert.deepEqual(decodeJwt(refreshed.json().access_token).amr, ['swk', 'mfa']);

      const logins = await events(user.id, 'passkey_login');
      assert.equal(logins.length, 1);
      assert.equal(String(logins[0]!.session_id), body.session.id);
      assert.deepEqual(JSON.parse(logins[0]!.details!), { passkey_id: passkey.id });
    });

    it('when an assertion is replayed, then 401 invalid_credentials and no second session', async () => {
      const { user, auth } = await userWithPasskey();
      const assertion = auth.assert(await freshChallenge());
      assert.equal((await signIn(assertion)).statusCode, 201);
      const sessions = await sessionCount(user.id);
      const replay = await signIn(assertion);
      assertProblem(replay, 401, 'invalid_credentials', 'replay');
      assert.equal(problem(replay).detail, 'The passkey could not be verified.', 'no word of a username or password, which were not sent');
      assert.equal(await sessionCount(user.id), sessions);
      const failed = await events(user.id, 'passkey_login_failed');
      assert.equal(failed.length, 0, 'an unknown challenge names no user');
    });

    it('when a challenge made for adding a passkey is used to sign in, then 401 invalid_credentials and the challenge stays with its user', async () => {
      const { user, session, auth } = await userWithPasskey();
      const registerOptions = (await creationOptions(session.accessToken)).json();
      const sessions = await sessionCount(user.id);
      assertProblem(await signIn(auth.assert(registerOptions)), 401, 'invalid_credentials');
      assert.equal(await sessionCount(user.id), sessions);
      assert.equal((await challengeRow(registerOptions.challenge))?.purpose, 'register');
    });

    it('when the challenge has expired, then 401 invalid_credentials', async () => {
      const { user, auth } = await userWithPasskey();
      const options = await freshChallenge();
      await svc.db.updateTable('webauthn_challenges').set({ expires_at: new Date(Date.now() - 1000) }).where('challenge', '=', options.challenge).execute();
      const sessions = await sessionCount(user.id);
      assertProblem(await signIn(auth.assert(options)), 401, 'invalid_credentials');
      assert.equal(await sessionCount(user.id), sessions);
      assert.equal((await passkeyRows(user.id))[0]!.counter, '0', 'nothing recorded');
    });

    it('when the signature counter does not go up, then 401 invalid_credentials and the stored counter is kept', async () => {
      const { user, auth } = await userWithPasskey();
      assert.equal((await signIn(auth.assert(await freshChallenge(), { counter: 7 }))).statusCode, 201);
      const sessions = await sessionCount(user.id);
      assertProblem(await signIn(auth.assert(await freshChallenge(), { counter: 3 })), 401, 'invalid_credentials', 'backwards');
      assertProblem(await signIn(auth.assert(await freshChallenge(), { counter: 7 })), 401, 'invalid_credentials', 'the same');
      assert.equal(await sessionCount(user.id), sessions);
      assert.equal((await passkeyRows(user.id))[0]!.counter, '7');
      const failed = await events(user.id, 'passkey_login_failed');
      assert.deepEqual(failed.map((e) => JSON.parse(e.details!).reason), ['not_verified', 'not_verified']);
      assert.equal((await signIn(auth.assert(await freshChallenge(), { counter: 8 }))).statusCode, 201, 'a higher one works');
    });

    it('when the credential is unknown, signed by another key, from another origin or without user verification, then 401 invalid_credentials and no session', async () => {
      const { user, auth } = await userWithPasskey();
      const sessions = await sessionCount(user.id);

      assertProblem(await signIn(new SoftAuthenticator().assert(await freshChallenge())), 401, 'invalid_credentials', 'unknown credential');

      const impostor = new SoftAuthenticator();
      const forged = impostor.assert(await freshChallenge());
      forged.id = auth.id;
      forged.rawId = auth.id;
      assertProblem(await signIn(forged), 401, 'invalid_credentials', 'another key');

      const phished = new SoftAuthenticator({ origin: 'https://evil.example' });
      Object.assign(phished, { credentialId: auth.credentialId, privateKey: auth.privateKey, counter: 100, userHandle: auth.userHandle });
      assertProblem(await signIn(phished.assert(await freshChallenge())), 401, 'invalid_credentials', 'another origin');

      const lazy = new SoftAuthenticator({ noUserVerification: true });
      Object.assign(lazy, { credentialId: auth.credentialId, privateKey: auth.privateKey, counter: 200, userHandle: auth.userHandle });
      assertProblem(await signIn(lazy.assert(await freshChallenge())), 401, 'invalid_credentials', 'no user verification');

      const wrongHandle = auth.assert(await freshChallenge());
      wrongHandle.response.userHandle = Buffer.from('someone else').toString('base64url');
      assertProblem(await signIn(wrongHandle), 401, 'invalid_credentials', 'another user handle');

      const garbled = auth.assert(await freshChallenge());
      garbled.response.clientDataJSON = Buffer.from('{not json').toString('base64url');
      assertProblem(await signIn(garbled), 401, 'invalid_credentials', 'clientDataJSON not JSON');

      assert.equal(await sessionCount(user.id), sessions);
      const reasons = (await events(user.id, 'passkey_login_failed')).map((e) => JSON.parse(e.details!).reason);
      assert.deepEqual(reasons, ['not_verified', 'not_verified', 'not_verified', 'user_handle_mismatch']);
      for (const e of await events(user.id, 'passkey_login_failed')) assert.doesNotMatch(e.details!, /signature|public_key|clientData/i);
    });

    it('when the body is malformed, then 400 validation_failed', async () => {
      for (const payload of [{}, { response: 'x' }, { response: { id: 'a' } }, { response: {}, extra: 1 }]) {
        const res = await svc.app.inject({ method: 'POST', url: '/v1/sessions/passkey', payload });
        assertProblem(res, 400, 'validation_failed', JSON.stringify(payload));
      }
    });

    it('when the user is disabled, then 401 invalid_credentials and no session, and the passkey works again once enabled', async () => {
      const { user, auth } = await userWithPasskey();
      await svc.db.updateTable('users').set({ disabled_at: new Date() }).where('user_id', '=', user.id).execute();
      const sessions = await sessionCount(user.id);
      assertProblem(await signIn(auth.assert(await freshChallenge())), 401, 'invalid_credentials');
      assert.equal(await sessionCount(user.id), sessions);
      assert.equal((await passkeyRows(user.id))[0]!.last_used_at, null);
      assert.deepEqual((await events(user.id, 'passkey_login_failed')).map((e) => JSON.parse(e.details!).reason), ['disabled']);
      await svc.db.updateTable('users').set({ disabled_at: null }).where('user_id', '=', user.id).execute();
      assert.equal((await signIn(auth.assert(await freshChallenge()))).statusCode, 201);
    });
  });

  describe('removing a passkey', () => {
    it('when the owner deletes it, then 204, the row and its sign-ins are gone, and an audit event records it', async () => {
      const { user, session, auth, passkey } = await userWithPasskey();
      const res = await svc.app.inject({ method: 'DELETE', url: `/v1/users/me/passkeys/${passkey.id}`, headers: bearer(session.accessToken) });
      assert.equal(res.statusCode, 204, res.body);
      assert.equal(res.body, '');
      assert.deepEqual(await passkeyRows(user.id), []);
      const removed = await events(user.id, 'passkey_removed');
      assert.deepEqual(removed.map((e) => JSON.parse(e.details!)), [{ passkey_id: passkey.id }]);
      assertProblem(await signIn(auth.assert(await freshChallenge())), 401, 'invalid_credentials', 'signing in with it');
      const again = await svc.app.inject({ method: 'DELETE', url: `/v1/users/me/passkeys/${passkey.id}`, headers: bearer(session.accessToken) });
      assertProblem(again, 404, 'not_found', 'deleting it again');
    });

    it('when someone else\'s passkey, or an id that is not a number, is deleted, then 404 not_found and it stays', async () => {
      const owner = await userWithPasskey();
      const other = await registerUser(svc.app);
      const otherSession = await login(svc.app, other);
      for (const id of [owner.passkey.id, 'abc', '0', '99999999999999999999']) {
        const res = await svc.app.inject({ method: 'DELETE', url: `/v1/users/me/passkeys/${id}`, headers: bearer(otherSession.accessToken) });
        assertProblem(res, 404, 'not_found', id);
      }
      assert.equal((await passkeyRows(owner.user.id)).length, 1);
      assert.deepEqual(await events(other.id, 'passkey_removed'), []);
    });

    it('when the user is deleted, then the passkeys and challenges go with it (ON DELETE CASCADE)', async () => {
      const { user, session } = await userWithPasskey();
      const options = (await creationOptions(session.accessToken)).json();
      await svc.db.deleteFrom('users').where('user_id', '=', user.id).execute();
      assert.deepEqual(await passkeyRows(user.id), []);
      assert.equal(await challengeRow(options.challenge), undefined);
    });
  });

  describe('garbled responses', () => {
    const GARBAGE = ['AAAA', Buffer.from('{}').toString('base64url'), Buffer.from('{"challenge":123}').toString('base64url'), Buffer.from([0xa1, 0x61, 0x78, 0xff]).toString('base64url'), 'A'.repeat(3000)];

    it('when any part of a registration or an assertion is replaced by garbage, then a problem answer (400 or 401), never a 500, and nothing stored', async () => {
      const { user, session, auth } = await userWithPasskey();
      const sessions = await sessionCount(user.id);
      for (const field of ['clientDataJSON', 'attestationObject', 'id']) {
        for (const junk of GARBAGE) {
          const good = new SoftAuthenticator().register((await creationOptions(session.accessToken)).json());
          const bad = field === 'id' ? { ...good, id: junk, rawId: junk } : { ...good, response: { ...good.response, [field]: junk } };
          const res = await addPasskey(session.accessToken, { name: 'x', response: bad });
          assert.ok(res.statusCode === 400, `register ${field}=${junk.slice(0, 20)}: ${res.statusCode} ${res.body}`);
          assert.match(problem(res).code, /^(invalid_passkey|validation_failed)$/);
        }
      }
      for (const field of ['clientDataJSON', 'authenticatorData', 'signature', 'userHandle', 'id']) {
        for (const junk of GARBAGE) {
          const good = auth.assert(await freshChallenge());
          const bad = field === 'id' ? { ...good, id: junk, rawId: junk } : { ...good, response: { ...good.response, [field]: junk } };
          const res = await signIn(bad);
          assert.ok(res.statusCode === 401 || res.statusCode === 400, `sign in ${field}=${junk.slice(0, 20)}: ${res.statusCode} ${res.body}`);
          assert.match(problem(res).code, /^(invalid_credentials|validation_failed)$/);
        }
      }
      assert.equal((await passkeyRows(user.id)).length, 1);
      assert.equal(await sessionCount(user.id), sessions);
    });
  });

  describe('relying party', () => {
    it('when WEBAUTHN_RP_ID is a parent domain of PUBLIC_URL, then passkeys are scoped to it and only PUBLIC_URL is an accepted origin', async () => {
      const site = await startTestService({}, { PUBLIC_URL: 'https://app.example.com', WEBAUTHN_RP_ID: 'example.com' });
      try {
        const user = await registerUser(site.app);
        const session = await login(site.app, user);
        const options = (await site.app.inject({ method: 'POST', url: '/v1/users/me/passkeys/options', headers: bearer(session.accessToken) })).json();
        assert.equal(options.rp.id, 'example.com');
        const auth = new SoftAuthenticator({ origin: 'https://app.example.com', rpId: 'example.com' });
        const added = await site.app.inject({ method: 'POST', url: '/v1/users/me/passkeys', headers: bearer(session.accessToken), payload: { name: 'Phone', response: auth.register(options) } });
        assert.equal(added.statusCode, 201, added.body);

        const requestOpts = (await site.app.inject({ method: 'POST', url: '/v1/sessions/passkey/options' })).json();
        assert.equal(requestOpts.rpId, 'example.com');
        const ok = await site.app.inject({ method: 'POST', url: '/v1/sessions/passkey', payload: { response: auth.assert(requestOpts) } });
        assert.equal(ok.statusCode, 201, ok.body);

        auth.origin = 'https://other.example.com'; // a sibling site under the same RP id
        const sibling = (await site.app.inject({ method: 'POST', url: '/v1/sessions/passkey/options' })).json();
        assertProblem(await site.app.inject({ method: 'POST', url: '/v1/sessions/passkey', payload: { response: auth.assert(sibling) } }), 401, 'invalid_credentials');
      } finally {
        await site.close();
      }
    });

    it('when WEBAUTHN_RP_ID is not the host of PUBLIC_URL or a domain it belongs to, or is an IP address, then the settings are refused', () => {
      assert.equal(loadConfig({ PUBLIC_URL: 'https://app.example.com' }).webauthnRpId, 'app.example.com');
      assert.equal(loadConfig({ PORT: '8080' }).webauthnRpId, 'localhost');
      assert.throws(() => loadConfig({ PUBLIC_URL: 'https://app.example.com', WEBAUTHN_RP_ID: 'xample.com' }), /WEBAUTHN_RP_ID/);
      assert.throws(() => loadConfig({ PUBLIC_URL: 'https://app.example.com', WEBAUTHN_RP_ID: 'evil.com' }), /WEBAUTHN_RP_ID/);
      assert.throws(() => loadConfig({ PUBLIC_URL: 'http://10.0.0.1:3000', WEBAUTHN_RP_ID: '10.0.0.1' }), /WEBAUTHN_RP_ID/);
    });
  });

  describe('throttling', () => {
    it('when one address asks past RATE_LIMIT_PER_MINUTE, then 429 too_many_requests on the passkey sign-in routes', async () => {
      const limited = await startTestService({ rateLimitPerMinute: 2 });
      try {
        startOfNextMinute(limited.clock); // the calls count in one window
        const call = (url: string, payload?: object) => limited.app.inject({ method: 'POST', url, ...(payload ? { payload } : {}) });
        for (let i = 0; i < 2; i++) assert.equal((await call('/v1/sessions/passkey/options')).statusCode, 200);
        const third = await call('/v1/sessions/passkey/options');
        assertProblem(third, 429, 'too_many_requests', 'options');
        assert.ok(Number(third.headers['retry-after']) >= 1);
        const bogus = new SoftAuthenticator().assert({ challenge: 'unknown' });
        for (let i = 0; i < 2; i++) assertProblem(await call('/v1/sessions/passkey', { response: bogus }), 401, 'invalid_credentials');
        assertProblem(await call('/v1/sessions/passkey', { response: bogus }), 429, 'too_many_requests', 'sign-in');
      } finally {
        await limited.close();
      }
    });
  });
});
