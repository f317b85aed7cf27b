/**
 * Attacks on access tokens (JWTs). Where the point is that one thing is wrong, the token is signed
 * with the service's REAL private key (read from signing_keys), and a control shows that the same
 * token with that one thing right is accepted, so each test proves its specific check.
 * Every attack tries to PATCH the victim's profile, and the database must stay as it was.
 * OWASP ASVS 5.0 L2: V9.1 (token source and integrity), V9.2 (token content), V14.2.1.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, createPublicKey } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { bearer, login, registerUser, startTestService, uniqueName, type LoggedIn, type RegisteredUser, type TestService } from '../helpers/app.js';
import {
  accessClaims,
  accessHeader,
  assertInvalidToken,
  assertNothingChanged,
  compactJws,
  dbState,
  ed25519Signer,
  hmacSigner,
  serviceSigningKey,
  type ServiceKey,
} from './support.js';

describe('security: access tokens (JWT)', () => {
  let svc: TestService;
  let victim: RegisteredUser;
  let victimSession: LoggedIn;
  let other: RegisteredUser;
  let otherSession: LoggedIn;
  let key: ServiceKey;
  /** An attacker's own Ed25519 key pair. */
  const attacker = generateKeyPairSync('ed25519');
  /** A server an attacker controls; counts requests, to show the service never fetches from it. */
  let attackerServer: Server;
  let attackerUrl: string;
  let attackerHits = 0;

  before(async () => {
    svc = await startTestService();
    victim = await registerUser(svc.app, { username: uniqueName('victim') });
    victimSession = await login(svc.app, victim);
    other = await registerUser(svc.app, { username: uniqueName('other') });
    otherSession = await login(svc.app, other);
    key = await serviceSigningKey(svc.db);
    const attackerJwk = { ...attacker.publicKey.export({ format: 'jwk' }), kid: 'attacker-key', alg: 'EdDSA', use: 'sig' };
    attackerServer = createServer((req, res) => {
      attackerHits += 1;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [attackerJwk] }));
    });
    await new Promise<void>((resolve) => attackerServer.listen(0, '127.0.0.1', resolve));
    attackerUrl = `http://127.0.0.1:${(attackerServer.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise<void>((resolve) => attackerServer.close(() => resolve()));
    await svc.close();
  });

  const me = (token: string) => svc.app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(token) });
  /** Signed by the service's own key: only what the overrides change is wrong. */
  const realSigned = (header: Record<string, unknown> = {}, claims: Record<string, unknown> = {}) =>
    compactJws(accessHeader(key.kid, header), accessClaims(svc, victim, victimSession, claims), ed25519Signer(key.privateKey));

  /**
   * The attack: the forged token tries to change the victim's profile. 401 invalid_token with a
   * Bearer challenge, and the database exactly as before.
   */
  async function assertRefused(token: string): Promise<void> {
    const before = await dbState(svc.db);
    const res = await svc.app.inject({ method: 'PATCH', url: '/v1/users/me', headers: bearer(token), payload: { name: 'Pwned By Token' } });
    assertInvalidToken(res);
    const read = await me(token);
    assertInvalidToken(read);
    await assertNothingChanged(svc.db, before);
  }

  /** The control: the same construction with nothing wrong is accepted. */
  async function assertAccepted(token: string): Promise<void> {
    const res = await me(token);
    assert.equal(res.statusCode, 200, `the control token is accepted: ${res.body}`);
    assert.equal(res.json().id, victim.id);
  }

  describe('algorithm (V9.1.2)', () => {
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      it(`V9.1.2: when a token says alg "${alg}" and has no signature, then 401 invalid_token and nothing changes`, async () => {
        await assertRefused(compactJws(accessHeader(key.kid, { alg }), accessClaims(svc, victim, victimSession)));
      });
    }

    it('V9.1.2: when a token says alg none but keeps a genuine signature of other content, then 401 invalid_token and nothing changes', async () => {
      const genuineSignature = victimSession.accessToken.split('.')[2]!;
      const unsigned = compactJws(accessHeader(key.kid, { alg: 'none' }), accessClaims(svc, victim, victimSession));
      await assertRefused(`${unsigned}${genuineSignature}`);
    });

    it('V9.1.2: when a token is HS256, MACed with the JWKS "x" string of the public key as secret (alg confusion), then 401 invalid_token and nothing changes', async () => {
      const jwks = (await svc.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json() as { keys: Array<{ kid: string; x: string }> };
      const published = jwks.keys.find((k) => k.kid === key.kid);
      assert.ok(published, 'the key is in the JWKS');
      await assertRefused(compactJws(accessHeader(key.kid, { alg: 'HS256' }), accessClaims(svc, victim, victimSession), hmacSigner(published.x)));
    });

    it('V9.1.2: when a token is HS256, MACed with the raw 32 public-key bytes as secret, then 401 invalid_token and nothing changes', async () => {
      const raw = Buffer.from(key.publicJwk.x, 'base64url');
      assert.equal(raw.length, 32);
      await assertRefused(compactJws(accessHeader(key.kid, { alg: 'HS256' }), accessClaims(svc, victim, victimSession), hmacSigner(raw)));
    });

    it('V9.1.2: when a token is HS256, MACed with the public key as SPKI PEM (the classic confusion secret), then 401 invalid_token and nothing changes', async () => {
      const pem = createPublicKey({ key: key.publicJwk, format: 'jwk' }).export({ format: 'pem', type: 'spki' }).toString();
      await assertRefused(compactJws(accessHeader(key.kid, { alg: 'HS256' }), accessClaims(svc, victim, victimSession), hmacSigner(pem)));
    });

    it('V9.1.2: when a token says ES256 but carries a genuine Ed25519 signature, then 401 invalid_token and nothing changes', async () => {
      await assertRefused(realSigned({ alg: 'ES256' }));
    });

    it('V9.1.1: when a genuine token has its signature removed, then 401 invalid_token and nothing changes', async () => {
      const [h, p] = victimSession.accessToken.split('.');
      await assertRefused(`${h}.${p}.`);
    });
  });

  describe('payload integrity and subject (V9.1.1, V8.2.2)', () => {
    it('V9.1.1: when the payload of a genuine token is changed to sub = another user (signature kept), then 401 invalid_token and nothing changes', async () => {
      const [h, , s] = victimSession.accessToken.split('.');
      const claims = JSON.parse(Buffer.from(victimSession.accessToken.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
      const tampered = `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: other.id })).toString('base64url')}.${s}`;
      await assertRefused(tampered);
      assert.equal((await me(victimSession.accessToken)).statusCode, 200, 'the untampered token works');
    });

    it("V8.2.2: when a token signed with the real key names another user as sub with the victim's session, then 401 invalid_token and nothing changes", async () => {
      await assertAccepted(realSigned());
      await assertRefused(realSigned({}, { sub: other.id }));
      assert.equal((await me(otherSession.accessToken)).json().name, 'Test User', "the other user's profile is untouched");
    });

    it('V9.1.1: when a token signed with the real key has no sid claim, then 401 invalid_token and nothing changes', async () => {
      await assertRefused(realSigned({}, { sid: undefined }));
    });

    it('V9.1.1: when a token signed with the real key has a sub that is not an id ("1 OR 1=1"), then 401 invalid_token and nothing changes', async () => {
      await assertRefused(realSigned({}, { sub: '1 OR 1=1' }));
    });
  });

  describe('claim types (V15.3.5)', () => {
    it('V15.3.5: when a token signed with the real key has exp as a string far in the future, then 401 invalid_token and nothing changes', async () => {
      await assertRefused(realSigned({}, { exp: '99999999999' }));
    });

    it("V15.3.5: when a token signed with the real key has the victim's id as a JSON number in sub, then 401 invalid_token and nothing changes", async () => {
      await assertRefused(realSigned({}, { sub: Number(victim.id) }));
    });

    it('V15.3.5: when a token signed with the real key has sid as an array of session ids, then 401 invalid_token and nothing changes', async () => {
      await assertRefused(realSigned({}, { sid: [victimSession.sessionId, otherSession.sessionId] }));
    });
  });

  describe('lifetime (V9.2.1)', () => {
    it('V9.2.1: when a token signed with the real key expired a minute ago, then 401 invalid_token and nothing changes', async () => {
      const now = Math.floor(Date.now() / 1000);
      await assertAccepted(realSigned({}, { iat: now - 600, exp: now + 60 }));
      await assertRefused(realSigned({}, { iat: now - 600, exp: now - 60 }));
    });

    it('V9.2.1: when a token signed with the real key is not valid for another 5 minutes (nbf), then 401 invalid_token and nothing changes', async () => {
      const now = Math.floor(Date.now() / 1000);
      await assertAccepted(realSigned({}, { nbf: now }));
      await assertRefused(realSigned({}, { nbf: now + 300 }));
    });

    it('V9.2.1: when a token signed with the real key has no exp at all, then 401 invalid_token and nothing changes', async () => {
      await assertRefused(realSigned({}, { exp: undefined }));
    });
  });

  describe('issuer, audience and type (V9.1.3, V9.2.2, V9.2.3)', () => {
    it('V9.1.3: when a token signed with the real key names another issuer, then 401 invalid_token and nothing changes', async () => {
      await assertAccepted(realSigned());
      await assertRefused(realSigned({}, { iss: 'https://evil.example' }));
    });

    it('V9.2.3: when a token signed with the real key names another audience, then 401 invalid_token and nothing changes', async () => {
      await assertRefused(realSigned({}, { aud: 'https://other-service.example' }));
    });

    it('V9.2.3: when a token signed with the real key has no audience, then 401 invalid_token and nothing changes', async () => {
      await assertRefused(realSigned({}, { aud: undefined }));
    });

    it('V9.2.2: when a token signed with the real key has typ "JWT" instead of "at+jwt" (e.g. an ID token), then 401 invalid_token and nothing changes', async () => {
      await assertAccepted(realSigned({ typ: 'at+jwt' }));
      await assertRefused(realSigned({ typ: 'JWT' }));
    });

    it('V9.2.2: when a token signed with the real key has no typ, then 401 invalid_token and nothing changes', async () => {
      await assertRefused(realSigned({ typ: undefined }));
    });
  });

  describe('key selection (V9.1.3)', () => {
    it('V9.1.3: when a token signed with the real key names an unknown kid, then 401 invalid_token and nothing changes', async () => {
      await assertRefused(realSigned({ kid: randomBytes(32).toString('base64url') }));
    });

    it('V9.1.3: when a token signed with the real key has no kid, then 401 invalid_token and nothing changes', async () => {
      await assertRefused(realSigned({ kid: undefined }));
    });

    it('V9.1.3: when the kid is a path traversal ("../../x"), then 401 invalid_token, nothing changes and the keys are intact', async () => {
      await assertRefused(realSigned({ kid: '../../../../../dev/null' }));
      await assertRefused(realSigned({ kid: '../../x' }));
    });

    it("V9.1.3: when the kid is SQL (\"' OR 1=1 --\"), then 401 invalid_token, nothing changes and the keys are intact", async () => {
      await assertRefused(realSigned({ kid: "' OR 1=1 --" }));
    });

    it("V9.1.3: when a token embeds the attacker's key as a jwk header and is signed by it (no kid), then 401 invalid_token and nothing changes", async () => {
      const jwk = attacker.publicKey.export({ format: 'jwk' });
      await assertRefused(compactJws(accessHeader(key.kid, { kid: undefined, jwk }), accessClaims(svc, victim, victimSession), ed25519Signer(attacker.privateKey)));
    });

    it("V9.1.3: when a token embeds the attacker's key as a jwk header next to the service's kid and is signed by the attacker, then 401 invalid_token and nothing changes", async () => {
      const jwk = { ...attacker.publicKey.export({ format: 'jwk' }), kid: key.kid };
      await assertRefused(compactJws(accessHeader(key.kid, { jwk }), accessClaims(svc, victim, victimSession), ed25519Signer(attacker.privateKey)));
    });

    it("V9.1.3: when a token's jku header points at the attacker's JWKS, then 401 invalid_token, nothing changes and the URL is never fetched", async () => {
      const hitsBefore = attackerHits;
      const token = compactJws(
        accessHeader('attacker-key', { jku: `${attackerUrl}/jwks.json` }),
        accessClaims(svc, victim, victimSession),
        ed25519Signer(attacker.privateKey),
      );
      await assertRefused(token);
      assert.equal(attackerHits, hitsBefore, 'the service never fetched the jku URL');
    });

    it("V9.1.3: when a token's x5u header points at the attacker's server, then 401 invalid_token, nothing changes and the URL is never fetched", async () => {
      const hitsBefore = attackerHits;
      const token = compactJws(
        accessHeader('attacker-key', { x5u: `${attackerUrl}/cert.pem` }),
        accessClaims(svc, victim, victimSession),
        ed25519Signer(attacker.privateKey),
      );
      await assertRefused(token);
      assert.equal(attackerHits, hitsBefore, 'the service never fetched the x5u URL');
    });

    it('V9.1.1: when a token signed with the real key lists an unknown critical header (crit), then 401 invalid_token and nothing changes', async () => {
      await assertRefused(realSigned({ crit: ['urn:example:must-understand'], 'urn:example:must-understand': true }));
    });
  });

  describe('transport (V14.2.1)', () => {
    it('V14.2.1: when a genuine access token is sent in the query string instead of the Authorization header, then 401 invalid_token and nothing changes', async () => {
      const before = await dbState(svc.db);
      const res = await svc.app.inject({ method: 'PATCH', url: `/v1/users/me?access_token=${victimSession.accessToken}`, payload: { name: 'Pwned By Query' } });
      assertInvalidToken(res);
      await assertNothingChanged(svc.db, before);
    });

    it('V9.2.2: when a refresh token is presented as a bearer access token, then 401 invalid_token and nothing changes', async () => {
      await assertRefused(victimSession.refreshToken);
    });
  });

  it('control: the genuine tokens of both users still work, and neither profile changed', async () => {
    const a = await me(victimSession.accessToken);
    const b = await me(otherSession.accessToken);
    assert.equal(a.statusCode, 200);
    assert.equal(b.statusCode, 200);
    assert.equal(a.json().name, 'Test User');
    assert.equal(b.json().name, 'Test User');
  });
});
