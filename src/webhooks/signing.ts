import { createHmac, randomBytes } from 'node:crypto';

/** A new endpoint secret (Standard Webhooks): `whsec_` and the base64 of 24 random bytes. */
export function newEndpointSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

/**
 * The `webhook-signature` header (Standard Webhooks 1.0): `v1,` and the base64 HMAC-SHA256 of
 * `id.timestamp.body` under the secret's bytes, one per secret, space-separated (both sign during
 * a rotation).
 */
export function signatureHeader(secrets: readonly string[], messageId: string, timestampS: number, body: string): string {
  return secrets
    .map((secret) => {
      const key = Buffer.from(secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret, 'base64');
      return `v1,${createHmac('sha256', key).update(`${messageId}.${timestampS}.${body}`).digest('base64')}`;
    })
    .join(' ');
}
