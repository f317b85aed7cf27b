import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Secret, TOTP } from 'otpauth';
import { AdminService } from '../src/admin/service.js';
import { loadConfig } from '../src/config.js';
import { startOfNextStep } from './helpers/clock.js';
import { bearer, login, problem, registerUser, startTestService, type TestService } from './helpers/app.js';

/** API-ADMIN.md, Second factor required (MFA_REQUIRED_FOR). */

/** The code at the service's clock (a test moves it to the start of a step instead of waiting). */
function codeFor(secret: string, timestamp: number): string {
  return new TOTP({ secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30 }).generate({ timestamp });
}

for (const mode of ['roles', 'all'] as const) {
  describe(`MFA_REQUIRED_FOR=${mode}`, () => {
    let svc: TestService;
    let cli: AdminService;
    before(async () => {
      svc = await startTestService({ mfaRequiredFor: mode });
      cli = new AdminService(svc.db);
    });
    after(() => svc.close());

    const call = (method: string, url: string, token: string, payload?: unknown) =>
      svc.app.inject({ method: method as 'GET', url, headers: bearer(token), ...(payload !== undefined ? { payload: payload as object } : {}) });

    it('when a covered user without a second factor signs in, then the session may only set one up, read the profile and sign out; once set up, everything works', async () => {
      const user = await registerUser(svc.app);
      await cli.changeRole(user.username, 'support', true);
      const { accessToken: token } = await login(svc.app, user);
      assert.equal((await call('GET', '/v1/users/me', token)).statusCode, 200);
      assert.equal((await call('GET', '/v1/users/me/mfa', token)).statusCode, 200);
      for (const [method, url] of [
        ['GET', '/v1/admin/users'],
        ['GET', '/v1/sessions'],
        ['GET', '/v1/users/me/events'],
        ['PATCH', '/v1/users/me'],
      ] as const) {
        const res = await call(method, url, token, method === 'PATCH' ? { name: 'X' } : undefined);
        assert.equal(res.statusCode, 403, `${method} ${url}`);
        assert.equal(problem(res).code, 'mfa_setup_required');
      }
      // Set up TOTP with this very session: from the next request on, the role's permissions apply.
      const setup = await call('POST', '/v1/users/me/mfa/totp', token, { current_password: user.password });
      assert.equal(setup.statusCode, 201, setup.body);
      startOfNextStep(svc.clock);
      const confirm = await call('POST', '/v1/users/me/mfa/totp/confirm', token, { code: codeFor(setup.json().secret, svc.clock.now()) });
      assert.equal(confirm.statusCode, 200, confirm.body);
      assert.equal((await call('GET', '/v1/admin/users?limit=1', token)).statusCode, 200);
      assert.equal((await call('GET', '/v1/sessions', token)).statusCode, 200);
      // Turned off again: back to set-up only, at once.
      assert.equal((await call('DELETE', '/v1/users/me/mfa/totp', token, { current_password: user.password })).statusCode, 204);
      assert.equal(problem(await call('GET', '/v1/sessions', token)).code, 'mfa_setup_required');
      assert.equal((await call('DELETE', '/v1/sessions/current', token)).statusCode, 204, 'signing out works');
    });

    it(`when a user holding no role signs in, then ${mode === 'all' ? 'they are covered too' : 'nothing is required of them'}`, async () => {
      const user = await registerUser(svc.app);
      const { accessToken: token } = await login(svc.app, user);
      const res = await call('GET', '/v1/sessions', token);
      if (mode === 'all') assert.equal(problem(res).code, 'mfa_setup_required');
      else assert.equal(res.statusCode, 200);
    });
  });
}

describe('MFA_REQUIRED_FOR setting', () => {
  it('when it is not none, roles or all, then the configuration is refused naming it', () => {
    assert.equal(loadConfig({}).mfaRequiredFor, 'none');
    assert.equal(loadConfig({ MFA_REQUIRED_FOR: 'roles' }).mfaRequiredFor, 'roles');
    assert.throws(() => loadConfig({ MFA_REQUIRED_FOR: 'admins' }), /MFA_REQUIRED_FOR must be none, roles or all/);
  });
});
