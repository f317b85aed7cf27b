import { createHash, randomBytes } from 'node:crypto';

/** 256 random bits, base64url: refresh-token secrets, mail tokens, mfa tokens. */
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** How a high-entropy secret is stored: its SHA-256 (enough from 112 bits, ASVS V6.5.2). */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('base64url');
}
