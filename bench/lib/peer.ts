import pg from 'pg';
import { authBase, peerEmail, PEER_PASSWORD, seedPeer, signIn } from '../peers/seed.mjs';
import { load, type LoadResult } from './load.js';
import { startChild } from './processes.js';

export interface PeerResult {
  signIn: LoadResult;
  getSession: LoadResult;
  hash: string;
}

/**
 * Better Auth (bench/peers, its own package) with email and password on a fresh database of the
 * same PostgreSQL server: sign-in and get-session under the same load as ours.
 */
export async function runPeer(serverUrl: string, options: { connections: number; durationS: number; users: number }): Promise<PeerResult> {
  const name = `peer_bench_${process.pid}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${name} with (force)`);
  await admin.query(`create database ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const peer = await startChild(['bench/peers/better-auth-server.mjs'], { DATABASE_URL: url.toString(), BETTER_AUTH_LOG_LEVEL: 'error' }, 'better-auth listening');
  try {
    const hash = /password-hash=(\S+)/.exec(peer.output())?.[1] ?? 'unknown';
    await seedPeer(peer.url, options.users);
    const cookies = await Promise.all(Array.from({ length: 20 }, (_, i) => signIn(peer.url, peerEmail(i), PEER_PASSWORD)));
    let n = 0;
    let failed = 0;
    const signInRun = await load({
      route: 'Better Auth sign-in',
      url: `${authBase(peer.url)}/sign-in/email`,
      method: 'POST',
      connections: options.connections,
      durationS: options.durationS,
      settleUrl: `${authBase(peer.url)}/ok`,
      headers: { 'content-type': 'application/json', origin: peer.url },
      setup: () => ({ body: JSON.stringify({ email: peerEmail(n++ % options.users), password: PEER_PASSWORD }) }),
    });
    let k = 0;
    const getSession = await load({
      route: 'Better Auth get-session',
      url: `${authBase(peer.url)}/get-session`,
      connections: options.connections,
      durationS: options.durationS,
      settleUrl: `${authBase(peer.url)}/ok`,
      setup: () => ({ headers: { cookie: cookies[k++ % cookies.length]!.cookie } }),
      // No session is a 200 with `null`: count those as errors.
      onResponse: (_status, body) => {
        if (body === 'null') failed++;
      },
    });
    getSession.errors += failed;
    return { signIn: signInRun, getSession, hash };
  } finally {
    await peer.stop();
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.end();
  }
}
