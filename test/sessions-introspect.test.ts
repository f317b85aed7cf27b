import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { bearer, GOOD_PASSWORD, JSON_TYPE, login, registerUser, startTestService, type TestService } from './helpers/app.js';
import { assertInvalidToken } from './security/support.js';

/** POST /v1/sessions/introspect: what the verifier's checkSession asks (packages/verifier). */
describe('POST /v1/sessions/introspect', () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService();
  });
  after(() => svc.close());

  const introspect = (token?: string) => svc.app.inject({ method: 'POST', url: '/v1/sessions/introspect', headers: token ? bearer(token) : {} });

  it('when the token\'s session is active, then 200 with active, the user and the session, and no-store', async () => {
    const user = await registerUser(svc.app);
    const session = await login(svc.app, user);
    const res = await introspect(session.accessToken);
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers['content-type'], JSON_TYPE);
    assert.deepEqual(res.json(), { active: true, sub: user.id, sid: session.sessionId });
    assert.equal(res.headers['cache-control'], 'no-store');
  });

  it('when the session has ended (logout, or a password change from another session), or there is no token, then 401 invalid_token', async () => {
    const user = await registerUser(svc.app);
    const loggedOut = await login(svc.app, user);
    await svc.app.inject({ method: 'DELETE', url: '/v1/sessions/current', headers: bearer(loggedOut.accessToken) });
    assertInvalidToken(await introspect(loggedOut.accessToken), 'after logout');

    const other = await login(svc.app, user);
    const changer = await login(svc.app, user);
    const changed = await svc.app.inject({ method: 'PUT', url: '/v1/users/me/password', headers: bearer(changer.accessToken), payload: { current_password: GOOD_PASSWORD, new_password: 'amber falcon river 9031' } });
    assert.equal(changed.statusCode, 204);
    assertInvalidToken(await introspect(other.accessToken), 'another session after a password change');
    assert.equal((await introspect(changer.accessToken)).statusCode, 200, 'the changing session stays');

    assertInvalidToken(await introspect(), 'no token');
  });
});
