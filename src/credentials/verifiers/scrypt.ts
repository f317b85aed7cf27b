import { createCipheriv } from 'node:crypto';
import { fromBase64, LIMITS, sameBytes, scryptKey, type Verifier } from './common.js';

function scryptCostProblem(logN: number, r: number, p: number): string | undefined {
  if (logN < 1 || logN > LIMITS.scryptLogN || r < 1 || p < 1 || p > LIMITS.scryptP || 128 * 2 ** logN * r > LIMITS.scryptMemoryBytes) {
    return 'has scrypt parameters outside the accepted limits';
  }
  return undefined;
}

const SCRYPT_PHC = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,2})\$([A-Za-z0-9+/.]+={0,2})\$([A-Za-z0-9+/.]+={0,2})$/;

/** scrypt as a PHC string (passlib's `$scrypt$ln=…,r=…,p=…$salt$hash`, its adapted base64 or the standard one). */
export const scryptPhcVerifier: Verifier = {
  name: 'scrypt',
  matches: (hash) => hash.startsWith('$scrypt$'),
  problem(hash) {
    const match = SCRYPT_PHC.exec(hash);
    if (!match || !fromBase64(match[4]!) || !fromBase64(match[5]!)) return 'is not a well-formed scrypt PHC string';
    return scryptCostProblem(Number(match[1]), Number(match[2]), Number(match[3]));
  },
  async verify(hash, password) {
    if (this.problem(hash)) return false;
    const [, ln, r, p, salt, key] = SCRYPT_PHC.exec(hash)!;
    const expected = fromBase64(key!)!;
    return sameBytes(await scryptKey(password, fromBase64(salt!)!, expected.length, { N: 2 ** Number(ln), r: Number(r), p: Number(p) }), expected);
  },
};

/**
 * Firebase's modified scrypt, stored as
 * `$firebase-scrypt$ln=<mem_cost>,r=<rounds>$<salt separator>$<signer key>$<salt>$<hash>` (base64
 * parts): the project's parameters, given once at import, travel with each hash. The key derived
 * from the password and salt‖separator encrypts the signer key with AES-256-CTR (zero IV); the
 * result is the stored hash (github.com/firebase/scrypt).
 */
const FIREBASE = /^\$firebase-scrypt\$ln=(\d{1,2}),r=(\d{1,3})\$([A-Za-z0-9+/]*={0,2})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

export function firebaseHash(params: { saltSeparator: string; signerKey: string; rounds: number; memCost: number }, salt: string, hash: string): string {
  return `$firebase-scrypt$ln=${params.memCost},r=${params.rounds}$${params.saltSeparator}$${params.signerKey}$${salt}$${hash}`;
}

export const firebaseScryptVerifier: Verifier = {
  name: 'firebase-scrypt',
  matches: (hash) => hash.startsWith('$firebase-scrypt$'),
  problem(hash) {
    const match = FIREBASE.exec(hash);
    if (!match || !fromBase64(match[4]!) || !fromBase64(match[5]!) || !fromBase64(match[6]!)) return 'is not a well-formed Firebase scrypt hash';
    return scryptCostProblem(Number(match[1]), Number(match[2]), 1);
  },
  async verify(hash, password) {
    if (this.problem(hash)) return false;
    const [, memCost, rounds, separator, signerKey, salt, stored] = FIREBASE.exec(hash)!;
    const saltBytes = Buffer.concat([fromBase64(salt!)!, Buffer.from(separator!, 'base64')]);
    const derived = await scryptKey(password, saltBytes, 64, { N: 2 ** Number(memCost), r: Number(rounds), p: 1 });
    const cipher = createCipheriv('aes-256-ctr', derived.subarray(0, 32), Buffer.alloc(16));
    const result = Buffer.concat([cipher.update(fromBase64(signerKey!)!), cipher.final()]);
    return sameBytes(result, fromBase64(stored!)!);
  },
};

const BETTER_AUTH = /^([0-9a-f]{32}):([0-9a-f]{128})$/;

/**
 * Better Auth's default: `salt:key` in hex, scrypt N=16384 r=16 p=1 with a 64-byte key, the
 * password in NFKC and the salt used as its hex text (not the bytes it spells).
 */
export const betterAuthVerifier: Verifier = {
  name: 'better-auth-scrypt',
  matches: (hash) => BETTER_AUTH.test(hash),
  problem: (hash) => (BETTER_AUTH.test(hash) ? undefined : 'is not a Better Auth scrypt hash'),
  async verify(hash, password) {
    const match = BETTER_AUTH.exec(hash);
    if (!match) return false;
    const key = await scryptKey(password.normalize('NFKC'), match[1]!, 64, { N: 16384, r: 16, p: 1 });
    return sameBytes(key, Buffer.from(match[2]!, 'hex'));
  },
};
