import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeProtectedHeader, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { buildApp } from '../src/app.js';
import type { App } from '../src/http/types.js';
import { AccessTokens } from '../src/auth/access-tokens.js';
import { VerifiedTokenCache } from '../src/auth/token-cache.js';
import { bearer, login, registerUser, startTestService, type TestService } from './helpers/app.js';

/** Polls until `check` passes or `ms` run out; answers how long it took. */
async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < ms) {
    if (await check()) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`not within ${ms} ms`);
}

describe('fast path: cached sessions and tokens', () => {
  let svc: TestService;
  let other: App;
  before(async () => {
    svc = await startTestService();
    other = await buildApp({ config: svc.config, db: svc.handle, testHooks: true }); // a second instance on the same database
  });
  after(async () => {
    await other.close();
    await svc.close();
  });

  const me = (app: App, token: string) => app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(token) });

  async function cachedSession() {
    const user = await registerUser(svc.app);
    const session = await login(svc.app, user);
    assert.equal((await me(svc.app, session.accessToken)).statusCode, 200); // now cached on svc.app
    assert.equal((await me(other, session.accessToken)).statusCode, 200); // and on the other instance
    return { user, session };
  }

  it('when a cached session logs out, then the same instance refuses its token at once', async () => {
    const { session } = await cachedSession();
    await svc.app.inject({ method: 'DELETE', url: '/v1/sessions/current', headers: bearer(session.accessToken) });
    assert.equal((await me(svc.app, session.accessToken)).statusCode, 401);
  });

  it('when a cached session logs out on one instance, then another instance refuses it within 1 s', async () => {
    const { session } = await cachedSession();
    await svc.app.inject({ method: 'DELETE', url: '/v1/sessions/current', headers: bearer(session.accessToken) });
    const took = await within(1000, async () => (await me(other, session.accessToken)).statusCode === 401);
    assert.ok(took < 1000);
  });

  it('when a cached session is revoked by another session, or all sessions end, then both instances refuse it', async () => {
    const { user, session } = await cachedSession();
    const second = await login(svc.app, user);
    await me(other, second.accessToken);
    await other.inject({ method: 'DELETE', url: `/v1/sessions/${session.sessionId}`, headers: bearer(second.accessToken) });
    assert.equal((await me(other, session.accessToken)).statusCode, 401, 'at once on the answering instance');
    await within(1000, async () => (await me(svc.app, session.accessToken)).statusCode === 401);
    await svc.app.inject({ method: 'DELETE', url: '/v1/sessions', headers: bearer(second.accessToken) });
    assert.equal((await me(svc.app, second.accessToken)).statusCode, 401);
    await within(1000, async () => (await me(other, second.accessToken)).statusCode === 401);
  });

  it('when the password changes on one instance, then a session cached on the other is refused within 1 s', async () => {
    const { user, session } = await cachedSession();
    const caller = await login(other, user);
    const res = await other.inject({
      method: 'PUT',
      url: '/v1/users/me/password',
      headers: bearer(caller.accessToken),
      payload: { current_password: user.password, new_password: 'fast path new passphrase' },
    });
    assert.equal(res.statusCode, 204);
    assert.equal((await me(other, session.accessToken)).statusCode, 401);
    await within(1000, async () => (await me(svc.app, session.accessToken)).statusCode === 401);
    assert.equal((await me(other, caller.accessToken)).statusCode, 200, 'the caller stays signed in');
  });

  it('when a cached session reaches its absolute expiry or idle timeout, then it is refused from the cached state', async () => {
    const cache = (svc.app as unknown as { sessionCacheForTests: { get(id: string): { expires_at: Date; last_used_at: Date } | undefined } }).sessionCacheForTests;
    const idle = await cachedSession();
    const idleEntry = cache.get(idle.session.sessionId)!;
    assert.ok(idleEntry, 'the session is cached');
    const longAgo = new Date(Date.now() - svc.config.sessionIdleTtlS * 1000 - 1000);
    idleEntry.last_used_at = longAgo;
    // Idle here may be in use elsewhere: the database is asked, and it says the same.
    assert.equal((await me(svc.app, idle.session.accessToken)).statusCode, 200, 'used elsewhere: still alive');
    await svc.db.updateTable('user_sessions').set({ last_used_at: longAgo }).where('session_id', '=', idle.session.sessionId).execute();
    cache.get(idle.session.sessionId)!.last_used_at = longAgo;
    assert.equal((await me(svc.app, idle.session.accessToken)).statusCode, 401, 'idle');
    const expired = await cachedSession();
    cache.get(expired.session.sessionId)!.expires_at = new Date(Date.now() - 1000);
    assert.equal((await me(svc.app, expired.session.accessToken)).statusCode, 401, 'absolute');
  });

  it('when the notification channel is down, then every check asks the database', async () => {
    const { session } = await cachedSession();
    // End the session behind the service's back: no notification is sent.
    await svc.db.updateTable('user_sessions').set({ is_active: false }).where('session_id', '=', session.sessionId).execute();
    assert.equal((await me(svc.app, session.accessToken)).statusCode, 200, 'the cached state answers while the channel is up');
    (svc.app as unknown as { sessionCacheForTests: { setEnabled(on: boolean): void } }).sessionCacheForTests.setEnabled(false);
    try {
      assert.equal((await me(svc.app, session.accessToken)).statusCode, 401);
    } finally {
      (svc.app as unknown as { sessionCacheForTests: { setEnabled(on: boolean): void } }).sessionCacheForTests.setEnabled(true);
    }
  });
});

describe('verified-token cache', () => {
  it('when more tokens verify than the bound, then the cache stays at its bound', () => {
    const cache = new VerifiedTokenCache(3);
    const exp = Date.now() / 1000 + 600;
    for (let i = 0; i < 10; i++) cache.set(`token-${i}`, { userId: '1', sessionId: String(i), expiresAt: exp, kid: 'k' });
    assert.equal(cache.size, 3);
    assert.equal(cache.get('token-0'), undefined);
    assert.ok(cache.get('token-9'));
  });

  it('when a cached token passes its exp, then it is dropped', () => {
    const cache = new VerifiedTokenCache(3);
    cache.set('t', { userId: '1', sessionId: '1', expiresAt: Date.now() / 1000 - 1, kid: 'k' });
    assert.equal(cache.get('t'), undefined);
    assert.equal(cache.size, 0);
  });

  describe('with a service', () => {
    let svc: TestService;
    before(async () => {
      svc = await startTestService();
    });
    after(() => svc.close());

    it('when a token never verified (forged, tampered), then it is never cached', async () => {
      const tokens = (svc.app as unknown as { accessTokensForTests: AccessTokens }).accessTokensForTests;
      const before = tokens.cache.size;
      const user = await registerUser(svc.app);
      const { accessToken } = await login(svc.app, user);
      const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
      await exportJWK(publicKey);
      const forged = await new SignJWT({ sid: '1' })
        .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: decodeProtectedHeader(accessToken).kid! })
        .setSubject(user.id)
        .setIssuer(svc.config.jwtIssuer)
        .setAudience(svc.config.jwtAudience)
        .setIssuedAt()
        .setExpirationTime('5m')
        .setJti('x')
        .sign(privateKey);
      const [h, p, s] = accessToken.split('.');
      const tampered = `${h}.${p!.slice(0, -2)}AA.${s}`;
      for (const token of [forged, tampered, 'not.a.token']) {
        assert.equal((await svc.app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(token) })).statusCode, 401);
      }
      assert.equal(tokens.cache.size, before, 'nothing cached for refused tokens');
      assert.equal((await svc.app.inject({ method: 'GET', url: '/v1/users/me', headers: bearer(accessToken) })).statusCode, 200);
      assert.equal(tokens.cache.size, before + 1);
    });
  });
});
