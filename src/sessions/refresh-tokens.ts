import { createHmac, timingSafeEqual } from 'node:crypto';
import { hashSecret, newSecret } from '../core/secrets.js';

/**
 * Refresh tokens are `<session id>.<generation>.<secret>.<tag>`. Only SHA-256 hashes of secrets
 * are stored.
 *
 * - Each rotation derives the next secret from the one presented: next = HMAC(server key, secret).
 *   A retry of the token just rotated (API.md, REFRESH_RETRY_S) answers the same successor again
 *   without it being stored, so a retry never forks the session.
 * - The tag, an HMAC of the session id, the generation (how many rotations the session had when
 *   the token was issued) and the secret, proves that the server issued the token. An older
 *   token presented again is then recognised as genuine in one HMAC, however many rotations ago
 *   it was replaced (theft: RFC 9700 4.14.2), while a forged one fails its tag and revokes nothing.
 *
 * Tokens of the earlier form `<session id>.<secret>` are refused: one could be made from any
 * tagged token by dropping its generation and tag, and would then be replayed without ending the
 * session. A session signed in before the tag signs in again.
 */

const TOKEN_SHAPE = /^([1-9][0-9]{0,17})\.(0|[1-9][0-9]{0,9})\.([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{22})$/;

export interface ParsedRefreshToken {
  sessionId: string;
  generation: number;
  secret: string;
  tag: string;
}

export function parseRefreshToken(token: string): ParsedRefreshToken | undefined {
  const match = TOKEN_SHAPE.exec(token);
  return match ? { sessionId: match[1]!, generation: Number(match[2]), secret: match[3]!, tag: match[4]! } : undefined;
}

// ASVS 5.0 V7.2.3: 256 bits from the CSPRNG.
export { hashSecret, newSecret };

/** The server-side key's two uses: deriving a session's next secret, and tagging its tokens. */
export class RefreshChain {
  constructor(private readonly key: Buffer) {}

  next(secret: string): string {
    return createHmac('sha256', this.key).update(secret).digest('base64url');
  }

  format(sessionId: string, generation: number, secret: string): string {
    return `${sessionId}.${generation}.${secret}.${this.#tag(sessionId, generation, secret)}`;
  }

  /** Whether the server issued this token (its tag checks out); says nothing of whether it is still current. */
  issued(token: ParsedRefreshToken): boolean {
    const expected = Buffer.from(this.#tag(token.sessionId, token.generation, token.secret));
    const presented = Buffer.from(token.tag);
    return presented.length === expected.length && timingSafeEqual(presented, expected);
  }

  // The "tag." prefix keeps these inputs apart from next()'s (a bare 43-character secret).
  #tag(sessionId: string, generation: number, secret: string): string {
    return createHmac('sha256', this.key).update(`tag.${sessionId}.${generation}.${secret}`).digest().subarray(0, 16).toString('base64url');
  }
}
