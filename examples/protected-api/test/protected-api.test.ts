/**
 * The example API against a real running service: a user registers and logs in there, then
 * calls the example with the access token; without one, or after logging out, it is refused.
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { GOOD_PASSWORD, uniqueName } from '../../../test/helpers/app.js';
import { startListeningService } from '../../../test/helpers/listening-service.js';
import { createProtectedApi, verifierSettings } from '../app.js';

type Svc = Awaited<ReturnType<typeof startListeningService>>;

describe('examples/protected-api', () => {
  let svc: Svc;
  let api: Server;
  let apiUrl: string;

  before(async () => {
    svc = await startListeningService();
    // As server.ts starts it, with AUTH_ISSUER naming the running service.
    const app = createProtectedApi(verifierSettings({ AUTH_ISSUER: svc.url }));
    api = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise<void>((resolve) => api.close(() => resolve()));
    await svc.close();
  });

  const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

  it('when a user of the service calls it with their token, then 200 with their orders; without a token or after logout, 401', async () => {
    const username = uniqueName('shopper');
    const registered = await post(`${svc.url}/v1/users`, { username, name: 'Shopper', dob: '1990-12-10', email: `${username}@example.com`, password: GOOD_PASSWORD });
    assert.equal(registered.status, 201);
    const user = (await registered.json()) as { id: string };
    const loggedIn = await post(`${svc.url}/v1/sessions`, { username, password: GOOD_PASSWORD });
    assert.equal(loggedIn.status, 201);
    const { access_token: token } = (await loggedIn.json()) as { access_token: string };
    const auth = { authorization: `Bearer ${token}` };

    const created = await post(`${apiUrl}/orders`, { item: 'teapot' }, auth);
    assert.equal(created.status, 201);
    const listed = await fetch(`${apiUrl}/orders`, { headers: auth });
    assert.equal(listed.status, 200);
    assert.deepEqual(await listed.json(), { user: user.id, orders: [{ item: 'teapot' }] });

    const anonymous = await fetch(`${apiUrl}/orders`);
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    assert.equal(((await anonymous.json()) as { code: string }).code, 'invalid_token');
    assert.equal((await fetch(`${apiUrl}/health`)).status, 200, 'routes outside /orders stay open');

    const logout = await fetch(`${svc.url}/v1/sessions/current`, { method: 'DELETE', headers: auth });
    assert.equal(logout.status, 204);
    const afterLogout = await fetch(`${apiUrl}/orders`, { headers: auth });
    assert.equal(afterLogout.status, 401, 'checkSession: the ended session is refused before the token expires');
    assert.match(afterLogout.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"/);
  });
});
