import { fromBase64, LIMITS, pbkdf2Key, sameBytes, type Verifier } from './common.js';

const DIGESTS: Record<string, string> = { '': 'sha1', '-sha1': 'sha1', '-sha256': 'sha256', '-sha512': 'sha512' };

// `$pbkdf2-sha256$i=27500,l=64$salt$hash` (PHC) or passlib's `$pbkdf2-sha256$29000$salt$hash`.
const PBKDF2_PHC = /^\$pbkdf2(-sha1|-sha256|-sha512)?\$(?:i=(\d{1,8})(?:,l=\d{1,4})?|(\d{1,8}))\$([A-Za-z0-9+/.]+={0,2})\$([A-Za-z0-9+/.]+={0,2})$/;

/** PBKDF2 as a PHC string (also what the Keycloak reader turns Keycloak's credential data into). */
export const pbkdf2PhcVerifier: Verifier = {
  name: 'pbkdf2',
  matches: (hash) => hash.startsWith('$pbkdf2$') || hash.startsWith('$pbkdf2-'),
  problem(hash) {
    const match = PBKDF2_PHC.exec(hash);
    if (!match || !fromBase64(match[4]!) || !fromBase64(match[5]!)) return 'is not a well-formed PBKDF2 PHC string';
    const iterations = Number(match[2] ?? match[3]);
    if (iterations < 1 || iterations > LIMITS.pbkdf2Iterations) return `has PBKDF2 iterations outside 1..${LIMITS.pbkdf2Iterations}`;
    return undefined;
  },
  async verify(hash, password) {
    if (this.problem(hash)) return false;
    const [, digest, i, rounds, salt, key] = PBKDF2_PHC.exec(hash)!;
    const expected = fromBase64(key!)!;
    return sameBytes(await pbkdf2Key(password, fromBase64(salt!)!, Number(i ?? rounds), expected.length, DIGESTS[digest ?? '']!), expected);
  },
};

// Django's PBKDF2PasswordHasher: `pbkdf2_sha256$iterations$salt$hash`, the salt used as its text,
// the key as long as the digest, in standard base64.
const DJANGO = /^pbkdf2_(sha256|sha1)\$(\d{1,8})\$([^$]{1,128})\$([A-Za-z0-9+/]+={0,2})$/;

export const djangoVerifier: Verifier = {
  name: 'django-pbkdf2',
  matches: (hash) => hash.startsWith('pbkdf2_'),
  problem(hash) {
    const match = DJANGO.exec(hash);
    if (!match) return 'is not a well-formed Django PBKDF2 hash';
    const iterations = Number(match[2]);
    if (iterations < 1 || iterations > LIMITS.pbkdf2Iterations) return `has PBKDF2 iterations outside 1..${LIMITS.pbkdf2Iterations}`;
    return undefined;
  },
  async verify(hash, password) {
    if (this.problem(hash)) return false;
    const [, digest, iterations, salt, key] = DJANGO.exec(hash)!;
    const expected = Buffer.from(key!, 'base64');
    return sameBytes(await pbkdf2Key(password, salt!, Number(iterations), expected.length, digest!), expected);
  },
};
