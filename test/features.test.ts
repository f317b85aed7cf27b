import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Type } from 'typebox';
import type { AppDependencies } from '../src/dependencies.js';
import type { Feature } from '../src/http/types.js';
import { bearer, login, problem, registerUser, startTestService, type TestService } from './helpers/app.js';

/**
 * A feature with its own body format and error format, as the OAuth endpoints will have
 * (RFC 6749: form bodies in, `{ "error": ... }` out), beside the service's JSON and
 * problem+json; and a route behind a permission. See docs/architecture.md.
 */
const oauthLike: Feature<AppDependencies> = async (app) => {
  // Only inside this plugin: the rest of the service still takes JSON only.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
  app.setErrorHandler((err: { validation?: unknown; statusCode?: number }, _request, reply) => {
    const error = err.validation ? 'invalid_request' : err.statusCode === 415 ? 'invalid_request' : 'server_error';
    return reply.code(error === 'server_error' ? 500 : 400).type('application/json').send({ error, error_description: 'The request is not valid here.' });
  });
  app.post('/test/token', { schema: { body: Type.Object({ grant_type: Type.Literal('client_credentials') }, { additionalProperties: false }) } }, async (request) => ({
    granted: request.body.grant_type,
  }));
};

/** A feature of the usual kind (JSON, problem+json) with a route that needs a permission. */
const adminLike: Feature<AppDependencies> = async (app, { requireCaller }) => {
  app.get('/test/admin', { onRequest: requireCaller({ permission: 'users:read' }) }, async () => ({ ok: true }));
};

describe('features: own body parsers, own error format, permissions', () => {
  let svc: TestService;
  let granted: TestService;
  before(async () => {
    svc = await startTestService({}, {}, { features: [oauthLike, adminLike] });
    granted = await startTestService({}, {}, { features: [oauthLike, adminLike], permissions: { permissionsOf: async () => new Set(['users:read']) } });
  });
  after(async () => {
    await svc.close();
    await granted.close();
  });

  it('when a feature takes form bodies, then its route reads one, and answers its own error format for a bad one', async () => {
    const ok = await svc.app.inject({ method: 'POST', url: '/test/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'grant_type=client_credentials' });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.deepEqual(ok.json(), { granted: 'client_credentials' });

    const bad = await svc.app.inject({ method: 'POST', url: '/test/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'grant_type=password' });
    assert.equal(bad.statusCode, 400);
    assert.match(String(bad.headers['content-type']), /^application\/json/);
    assert.equal(bad.json().error, 'invalid_request');

    const json = await svc.app.inject({ method: 'POST', url: '/test/token', payload: { grant_type: 'client_credentials' } });
    assert.equal(json.statusCode, 400, 'JSON is not what this feature takes');
    assert.equal(json.json().error, 'invalid_request');
  });

  it('when a form body goes to the rest of the service, then it is still 415 problem+json', async () => {
    const res = await svc.app.inject({ method: 'POST', url: '/v1/sessions', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'username=a&password=b' });
    assert.equal(res.statusCode, 415);
    assert.equal(problem(res).code, 'unsupported_media_type');
  });

  it('when a route needs a permission the caller lacks (none by default), then 403 forbidden names it; with it, the route answers', async () => {
    const user = await registerUser(svc.app);
    const session = await login(svc.app, user);
    const refused = await svc.app.inject({ method: 'GET', url: '/test/admin', headers: bearer(session.accessToken) });
    assert.equal(refused.statusCode, 403);
    const body = problem(refused);
    assert.equal(body.code, 'forbidden');
    assert.match(body.detail, /users:read/);

    const noToken = await svc.app.inject({ method: 'GET', url: '/test/admin' });
    assert.equal(noToken.statusCode, 401);
    assert.equal(problem(noToken).code, 'invalid_token');

    const other = await registerUser(granted.app);
    const allowed = await granted.app.inject({ method: 'GET', url: '/test/admin', headers: bearer((await login(granted.app, other)).accessToken) });
    assert.equal(allowed.statusCode, 200, allowed.body);
    assert.deepEqual(allowed.json(), { ok: true });
  });
});
