/** What a verified access token says. */
export interface AccessClaims {
  userId: string;
  sessionId: string;
  /** `exp`, in seconds since the epoch. */
  expiresAt: number;
  kid: string;
  /** The organization the token speaks for, and the role it was issued with (API-ORGS.md). */
  orgId?: string;
  orgRole?: string;
}

/**
 * A small, bounded cache of access tokens whose signature and claims already checked out,
 * keyed by the whole token (as API gateways do), so a token used again skips the signature
 * check. An entry is dropped at the token's `exp`; a token that never verified is never here.
 * The session is still checked on every request.
 */
export class VerifiedTokenCache {
  #entries = new Map<string, AccessClaims>();

  constructor(readonly maxEntries = 10_000) {}

  get size(): number {
    return this.#entries.size;
  }

  get(token: string, nowS = Date.now() / 1000): AccessClaims | undefined {
    const claims = this.#entries.get(token);
    if (!claims) return undefined;
    if (claims.expiresAt <= nowS) {
      this.#entries.delete(token);
      return undefined;
    }
    return claims;
  }

  set(token: string, claims: AccessClaims): void {
    if (this.#entries.size >= this.maxEntries) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(token, claims);
  }
}
