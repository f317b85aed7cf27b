import { generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { PasswordHasher } from '../../src/credentials/hashing.js';
import type { Argon2Params } from '../../src/config.js';

/** Runs `task` with `inFlight` copies at a time for `durationMs`; answers completions per second. */
async function rate(durationMs: number, inFlight: number, task: () => Promise<unknown>): Promise<number> {
  let done = 0;
  const end = Date.now() + durationMs;
  const start = Date.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (Date.now() < end) {
        await task();
        done++;
      }
    }),
  );
  return Math.round(done / ((Date.now() - start) / 1000));
}

/** The machine's own Argon2id ceilings, with the service's parameters and this process's libuv pool. */
export async function argon2Ceilings(params: Argon2Params, durationMs: number, inFlight: number): Promise<{ hashPerS: number; verifyPerS: number }> {
  return { hashPerS: await argon2Rate(params, 'hash', durationMs, inFlight), verifyPerS: await argon2Rate(params, 'verify', durationMs, inFlight) };
}

/** Argon2id hashes or verifications per second, in this process. */
export async function argon2Rate(params: Argon2Params, what: 'hash' | 'verify', durationMs: number, inFlight: number): Promise<number> {
  const hasher = new PasswordHasher(params);
  const password = 'violet lantern orbit 4217';
  const phc = await hasher.hash(password);
  return rate(durationMs, inFlight, () => (what === 'hash' ? hasher.hash(password) : hasher.verify(phc, password)));
}

/** jose's EdDSA JWT verification rate, 64 in flight. */
export async function joseVerifyCeiling(durationMs: number): Promise<number> {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const token = await new SignJWT({ sid: '1' }).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt' }).setSubject('1').setExpirationTime('15m').sign(privateKey);
  return rate(durationMs, 64, () => jwtVerify(token, publicKey, { algorithms: ['EdDSA'] }));
}
