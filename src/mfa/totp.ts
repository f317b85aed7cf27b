import { Secret, TOTP } from 'otpauth';

/**
 * TOTP as RFC 6238 has it, with the parameters every authenticator app understands: SHA-1,
 * 6 digits, 30-second steps. A code of the step before or after is accepted too (clock drift,
 * RFC 6238 section 5.2); replays are refused by the caller with the step this answers.
 */
export const TOTP_PERIOD_S = 30;
export const TOTP_DIGITS = 6;
export const TOTP_WINDOW = 1;

/** A new secret: 160 bits (RFC 4226 section 4 recommends 160), as base32. */
export function newTotpSecret(): string {
  return new Secret({ size: 20 }).base32;
}

function totp(secretBase32: string, issuer = '', label = 'user'): TOTP {
  return new TOTP({ issuer, label, algorithm: 'SHA1', digits: TOTP_DIGITS, period: TOTP_PERIOD_S, secret: Secret.fromBase32(secretBase32) });
}

/** The otpauth:// URI an authenticator app reads from the QR code. */
export function otpauthUrl(secretBase32: string, issuer: string, accountName: string): string {
  return totp(secretBase32, issuer, accountName).toString();
}

/** The time step (RFC 6238 counter) the code belongs to, or undefined when it matches none within the window. */
export function matchTotpStep(secretBase32: string, code: string, now: number): number | undefined {
  if (!/^[0-9]{6}$/.test(code)) return undefined;
  const delta = totp(secretBase32).validate({ token: code, timestamp: now, window: TOTP_WINDOW });
  if (delta === null) return undefined;
  return TOTP.counter({ period: TOTP_PERIOD_S, timestamp: now }) + delta;
}
