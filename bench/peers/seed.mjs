// Seeding and sign-in helpers for the Better Auth peer (better-auth-server.mjs).
//
// baseUrl is the server root, e.g. "http://127.0.0.1:4100" (a trailing
// "/api/auth" is accepted too). Uses the global fetch of Node >= 20.
//
//   import { seedPeer, signIn } from './peers/seed.mjs';
//   const users = await seedPeer('http://127.0.0.1:4100', 300);
//   const headers = await signIn('http://127.0.0.1:4100', users[0].email, users[0].password);
//   await fetch('http://127.0.0.1:4100/api/auth/get-session', { headers });

export const PEER_PASSWORD = 'violet lantern orbit 4217';

/** Email of the i-th seeded user (i counts from 0). */
export function peerEmail(i) {
  return `peer${i}@example.com`;
}

/** "http://host:port[/api/auth][/]" -> "http://host:port/api/auth". */
export function authBase(baseUrl) {
  const root = String(baseUrl).replace(/\/+$/, '').replace(/\/api\/auth$/, '');
  return `${root}/api/auth`;
}

async function postJson(url, body) {
  const res = await fetch(url, {
    method: 'POST',
    // Origin is required here: Node's fetch (undici) always sends
    // `Sec-Fetch-Mode: cors`, and on sign-up/sign-in Better Auth then demands a
    // trusted Origin (403 MISSING_OR_NULL_ORIGIN without one). curl and
    // autocannon send no Sec-Fetch-* headers and pass without it.
    headers: { 'content-type': 'application/json', origin: new URL(url).origin },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`POST ${url} -> ${res.status} ${text.slice(0, 200)}`);
  return { res, json: text ? JSON.parse(text) : null };
}

/**
 * Signs up n users peer0@example.com .. peer<n-1>@example.com with
 * PEER_PASSWORD, at most `concurrency` requests in flight (default 8).
 * Returns [{ email, password }] in index order. Throws on the first failure
 * (e.g. 422 USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL on a database that is not fresh).
 */
export async function seedPeer(baseUrl, n, { concurrency = 8, password = PEER_PASSWORD } = {}) {
  const url = `${authBase(baseUrl)}/sign-up/email`;
  const users = Array.from({ length: n }, (_, i) => ({ email: peerEmail(i), password }));
  let next = 0;
  let failed = null;
  async function worker() {
    while (failed === null && next < users.length) {
      const u = users[next++];
      try {
        await postJson(url, { email: u.email, password: u.password, name: u.email.split('@')[0] });
      } catch (err) {
        failed ??= err;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, n)) }, worker));
  if (failed) throw failed;
  return users;
}

/**
 * Signs in and returns the headers a GET /api/auth/get-session needs:
 * { cookie: 'better-auth.session_token=<token>.<signature>' } (the signed
 * cookie from Set-Cookie, not the bare `token` of the JSON body).
 */
export async function signIn(baseUrl, email, password = PEER_PASSWORD) {
  const { res } = await postJson(`${authBase(baseUrl)}/sign-in/email`, { email, password });
  const setCookies = typeof res.headers.getSetCookie === 'function'
    ? res.headers.getSetCookie()
    : [res.headers.get('set-cookie') ?? ''];
  const pairs = setCookies.map((c) => c.split(';', 1)[0].trim()).filter((p) => p.includes('session_token='));
  if (pairs.length === 0) throw new Error(`sign-in for ${email}: no session_token in Set-Cookie`);
  return { cookie: pairs.join('; ') };
}
