/**
 * The verifier against a real running service (its JWKS over HTTP, its session check), through
 * each middleware: Express, Fastify, Hono and a Next.js route handler. Every refused token is
 * built from the attacker's side; where one thing is wrong, the token is signed with the
 * service's real key, so the one wrong thing is what is refused.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { rotateKeys } from '../../../src/auth/keys.js';
import { loadDataCipher } from '../../../src/crypto/data-encryption.js';
import { login, registerUser, type LoggedIn, type RegisteredUser } from '../../../test/helpers/app.js';
import { startListeningService } from '../../../test/helpers/listening-service.js';
import { accessClaims, accessHeader, compactJws, ed25519Signer, hmacSigner, serviceSigningKey, type ServiceKey } from '../../../test/security/support.js';
import { createVerifier, type AccessTokenVerifier, type VerifierOptions } from '@user-management/verifier';
import { requireAccessToken as expressGuard } from '@user-management/verifier/express';
import { requireAccessToken as fastifyGuard } from '@user-management/verifier/fastify';
import { requireAccessToken as honoGuard } from '@user-management/verifier/hono';
import { withAccessToken } from '@user-management/verifier/next';

type Svc = Awaited<ReturnType<typeof startListeningService>>;
interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}
/** One protected route, `GET /whoami` answering the claims' sub and sid, behind one middleware. */
interface Protected {
  call(token?: string): Promise<Answer>;
  close(): Promise<void>;
}

const headersOf = (token?: string): Record<string, string> => (token === undefined ? {} : { authorization: `Bearer ${token}` });
const answerOf = async (res: Response): Promise<Answer> => ({ status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> });

const MIDDLEWARE: Record<string, (verifier: AccessTokenVerifier) => Promise<Protected>> = {
  async express(verifier) {
    const app = express();
    app.get('/whoami', expressGuard(verifier), (req, res) => {
      res.json({ sub: req.auth!.sub, sid: req.auth!.sid });
    });
    const server: Server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return {
      call: async (token) => answerOf(await fetch(`${base}/whoami`, { headers: headersOf(token) })),
      close: () => new Promise((resolve) => server.close(() => resolve())),
    };
  },
  async fastify(verifier) {
    const app = Fastify();
    app.get('/whoami', { onRequest: fastifyGuard(verifier) }, async (request) => ({ sub: request.auth!.sub, sid: request.auth!.sid }));
    await app.ready();
    return {
      call: async (token) => {
        const res = await app.inject({ method: 'GET', url: '/whoami', headers: headersOf(token) });
        return { status: res.statusCode, headers: new Headers(res.headers as Record<string, string>), body: res.json() };
      },
      close: () => app.close(),
    };
  },
  async hono(verifier) {
    const app = new Hono().get('/whoami', honoGuard(verifier), (c) => c.json({ sub: c.get('auth').sub, sid: c.get('auth').sid }));
    return { call: async (token) => answerOf(await app.request('/whoami', { headers: headersOf(token) })), close: async () => {} };
  },
  async next(verifier) {
    const GET = withAccessToken(async (_request, { auth }) => Response.json({ sub: auth.sub, sid: auth.sid }), verifier);
    return { call: async (token) => answerOf(await GET(new Request('http://api.test/whoami', { headers: headersOf(token) }), { params: Promise.resolve({}) })), close: async () => {} };
  },
};

let svc: Svc;
let user: RegisteredUser;
let session: LoggedIn;
let key: ServiceKey;
/** Each verifier's fetches of the JWKS, counted by URL path. */
let jwksFetches = 0;
const countingFetch: typeof fetch = (input, init) => {
  if (String(input instanceof Request ? input.url : input).endsWith('/.well-known/jwks.json')) jwksFetches += 1;
  return fetch(input, init);
};
const attacker = generateKeyPairSync('ed25519');

before(async () => {
  svc = await startListeningService();
  user = await registerUser(svc.app);
  session = await login(svc.app, user);
  key = await serviceSigningKey(svc.db);
});
after(() => svc.close());

const options = (extra: Partial<VerifierOptions> = {}): VerifierOptions => ({ issuer: svc.url, audience: svc.url, fetch: countingFetch, ...extra });
/** Signed by the service's real key: only what the overrides change is wrong. */
const realSigned = (header: Record<string, unknown> = {}, claims: Record<string, unknown> = {}) =>
  compactJws(accessHeader(key.kid, header), accessClaims(svc, user, session, claims), ed25519Signer(key.privateKey));

function assertRefused(answer: Answer, label: string): void {
  assert.equal(answer.status, 401, `${label}: ${JSON.stringify(answer.body)}`);
  assert.equal(answer.headers.get('content-type'), 'application/problem+json; charset=utf-8', label);
  assert.equal(answer.body.code, 'invalid_token', label);
  assert.equal(answer.body.status, 401, label);
  assert.match(answer.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"/, label);
}

for (const [name, make] of Object.entries(MIDDLEWARE)) {
  describe(`verifier through ${name}`, () => {
    let api: Protected;
    before(async () => {
      api = await make(createVerifier(options()));
    });
    after(() => api.close());

    it('when the token is the one login gave, then the route answers with its claims', async () => {
      const answer = await api.call(session.accessToken);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.deepEqual(answer.body, { sub: user.id, sid: session.sessionId });
    });

    it('when a token built the same way as the attacks below has nothing wrong, then it is accepted (the control)', async () => {
      assert.equal((await api.call(realSigned())).status, 200);
    });

    it('when there is no token, or not a Bearer one, then 401 invalid_token', async () => {
      assertRefused(await api.call(), 'no Authorization');
      assertRefused(await api.call('not-a-jwt'), 'garbage');
    });

    const attacks: Array<[string, () => string]> = [
      ['expired (exp a minute ago, beyond the leeway)', () => realSigned({}, { iat: Math.floor(Date.now() / 1000) - 1000, exp: Math.floor(Date.now() / 1000) - 60 })],
      ['for another audience', () => realSigned({}, { aud: 'https://other-api.example' })],
      ['from another issuer', () => realSigned({}, { iss: 'https://evil.example' })],
      ['of another type (typ JWT, e.g. an ID token)', () => realSigned({ typ: 'JWT' })],
      ['without typ', () => realSigned({ typ: undefined })],
      ['alg none, no signature', () => compactJws(accessHeader(key.kid, { alg: 'none' }), accessClaims(svc, user, session))],
      ['alg HS256 keyed with the public key (algorithm confusion)', () => compactJws(accessHeader(key.kid, { alg: 'HS256' }), accessClaims(svc, user, session), hmacSigner(key.publicJwk.x))],
      ['signed by the attacker under the service\'s kid', () => compactJws(accessHeader(key.kid), accessClaims(svc, user, session), ed25519Signer(attacker.privateKey))],
      ['without sid', () => realSigned({}, { sid: undefined })],
    ];
    for (const [what, token] of attacks) {
      it(`when the token is ${what}, then 401 invalid_token`, async () => {
        assertRefused(await api.call(token()), what);
      });
    }

    it('when tokens come with kids the JWKS does not have, then they are refused and the JWKS is fetched at most once for all of them (the cooldown)', async () => {
      const before = jwksFetches;
      for (let i = 0; i < 5; i++) {
        const forged = compactJws(accessHeader(`attacker-${i}`), accessClaims(svc, user, session), ed25519Signer(attacker.privateKey));
        assertRefused(await api.call(forged), `unknown kid ${i}`);
      }
      assert.ok(jwksFetches - before <= 1, `fetched ${jwksFetches - before} times`);
    });
  });
}

describe('checkSession: the session is asked for', () => {
  for (const [name, make] of Object.entries(MIDDLEWARE)) {
    it(`when the session has logged out, then ${name} refuses its still unexpired token`, async () => {
      const own = await login(svc.app, user);
      const api = await make(createVerifier(options({ checkSession: true, sessionCacheMs: 0 })));
      try {
        assert.equal((await api.call(own.accessToken)).status, 200, 'active before the logout');
        const logout = await fetch(`${svc.url}/v1/sessions/current`, { method: 'DELETE', headers: headersOf(own.accessToken) });
        assert.equal(logout.status, 204);
        assertRefused(await api.call(own.accessToken), 'after logout');
        const unchecked = await make(createVerifier(options()));
        assert.equal((await unchecked.call(own.accessToken)).status, 200, 'without checkSession the signature alone still passes: why checkSession exists');
        await unchecked.close();
      } finally {
        await api.close();
      }
    });
  }

  it('when an "active" answer is in the cache, then it is reused for sessionCacheMs and asked again after', async () => {
    const own = await login(svc.app, user);
    let clock = Date.now();
    let asked = 0;
    const verifier = createVerifier(options({
      checkSession: true,
      sessionCacheMs: 1000,
      now: () => clock,
      fetch: (input, init) => {
        if (String(input).endsWith('/v1/sessions/introspect')) asked += 1;
        return fetch(input, init);
      },
    }));
    assert.equal((await verifier.verify(own.accessToken)).sid, own.sessionId);
    assert.equal((await verifier.verify(own.accessToken)).sid, own.sessionId);
    assert.equal(asked, 1, 'the second check within the window is the cached answer');
    await fetch(`${svc.url}/v1/sessions/current`, { method: 'DELETE', headers: headersOf(own.accessToken) });
    clock += 1001;
    await assert.rejects(verifier.verify(own.accessToken), { code: 'invalid_token', status: 401 });
    assert.equal(asked, 2);
  });

  it('when the service cannot be asked, then 503 unavailable, not a pass', async () => {
    const own = await login(svc.app, user);
    const verifier = createVerifier(options({
      checkSession: true,
      introspectionUri: 'http://127.0.0.1:9/v1/sessions/introspect', // the discard port: nothing listens
    }));
    for (const [name, make] of Object.entries(MIDDLEWARE)) {
      const api = await make(verifier);
      const answer = await api.call(own.accessToken);
      await api.close();
      assert.equal(answer.status, 503, name);
      assert.equal(answer.body.code, 'unavailable', name);
    }
  });
});

// Last: it changes the service's signing key.
describe('key rotation: a token with a kid the cached JWKS does not have yet', () => {
  it('when the service starts signing with a new key, then each middleware fetches the JWKS again and accepts the new token', async () => {
    const verifiers = Object.fromEntries(Object.keys(MIDDLEWARE).map((name) => [name, createVerifier(options({ jwksCooldownMs: 0 }))]));
    const apis = Object.fromEntries(await Promise.all(Object.entries(MIDDLEWARE).map(async ([name, make]) => [name, await make(verifiers[name]!)] as const)));
    try {
      for (const api of Object.values(apis)) assert.equal((await api.call(session.accessToken)).status, 200, 'the old JWKS is cached');
      const rotated = await rotateKeys(svc.db, { publishDelayS: 0, accessTokenTtlS: svc.config.accessTokenTtlS, cipher: await loadDataCipher(svc.db, []) });
      await svc.app.keyStore.reload();
      const fresh = await login(svc.app, user);
      assert.equal(JSON.parse(Buffer.from(fresh.accessToken.split('.')[0]!, 'base64url').toString()).kid, rotated.kid, 'signed with the new key');
      for (const [name, api] of Object.entries(apis)) {
        const before = jwksFetches;
        const answer = await api.call(fresh.accessToken);
        assert.equal(answer.status, 200, `${name}: ${JSON.stringify(answer.body)}`);
        assert.equal(jwksFetches - before, 1, `${name} fetched the JWKS again`);
      }
    } finally {
      for (const api of Object.values(apis)) await api.close();
    }
  });
});
