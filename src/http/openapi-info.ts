import { packageVersion } from '../resources.js';

/**
 * The OpenAPI document's info block: the package's own version, and what the service does
 * (add a feature's line here when it lands; docs/api.md is generated from this document).
 */
export function openapiInfo(): { title: string; version: string; description: string } {
  return {
    title: 'User management service',
    version: packageVersion(),
    description: [
      'User management and authentication: registration, profiles, passwords with history and reset by mail, email verification,',
      'sessions with refresh-token rotation and reuse detection, asymmetric JWT access tokens verified through the JWKS,',
      'an authenticator app (TOTP) with recovery codes, passkeys (WebAuthn), the security event log and self-service deletion.',
      'Every error is application/problem+json with a stable `code`. The reference with examples: docs/api.md in the repository.',
    ].join(' '),
  };
}
