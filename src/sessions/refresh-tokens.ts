import { createHash, createHmac, randomBytes } from 'node:crypto';

/**
 * Refresh tokens are `<session id>.<secret>`. Only SHA-256 hashes of secrets are stored.
 *
 * Each rotation derives the next secret from the one presented: next = HMAC(server key, secret).
 * That makes the chain of a session's tokens one-way and checkable forward:
 * - a retry of the token just rotated (API.md, REFRESH_RETRY_S) answers the same successor
 *   again without it being stored, so a retry never forks the session;
 * - an older token, presented again, is recognised as genuine by walking it forward to the
 *   current hash (theft: RFC 9700 4.14.2), while a forged one never reaches it and revokes nothing.
 */

const SECRET_SHAPE = /^([1-9][0-9]{0,17})\.([A-Za-z0-9_-]{43})$/;

/**
 * How far back an unknown token is walked: bounds the work a forged token costs (well under a
 * millisecond). A token replayed more rotations ago than this is refused without ending the session.
 */
export const MAX_WALK = 64;

export interface ParsedRefreshToken {
  sessionId: string;
  secret: string;
}

export function parseRefreshToken(token: string): ParsedRefreshToken | undefined {
  const match = SECRET_SHAPE.exec(token);
  return match ? { sessionId: match[1]!, secret: match[2]! } : undefined;
}

export function formatRefreshToken(sessionId: string, secret: string): string {
  return `${sessionId}.${secret}`;
}

// ASVS 5.0 V7.2.3: 256 bits from the CSPRNG.
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('base64url');
}

export class RefreshChain {
  constructor(private readonly key: Buffer) {}

  next(secret: string): string {
    return createHmac('sha256', this.key).update(secret).digest('base64url');
  }

  /**
   * How many rotations ago `secret` was the session's token (0 = it is the current one), or
   * undefined when it never was (walking at most `maxSteps`).
   */
  stepsBehind(secret: string, currentHash: string, maxSteps: number): number | undefined {
    let s = secret;
    for (let steps = 0; steps <= Math.min(maxSteps, MAX_WALK); steps++) {
      if (hashSecret(s) === currentHash) return steps;
      s = this.next(s);
    }
    return undefined;
  }
}
