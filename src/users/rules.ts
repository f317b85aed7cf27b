import { systemClock } from '../core/clock.js';
/**
 * Field rules of API.md that JSON Schema cannot state. The request schemas run them (so one answer
 * names every bad field) and the service runs them again on what it is given.
 */

const CONTROL_CHARACTERS = /\p{Cc}/u;
export const MAX_AGE_YEARS = 150;
/** RFC 5321, 4.5.3.1.1: a local part is at most 64 octets. */
export const MAX_LOCAL_PART_OCTETS = 64;

/** name: 1–100 code points after trimming, no control characters. */
export function nameProblem(name: string): string | undefined {
  const trimmed = name.trim();
  const length = [...trimmed].length;
  if (length < 1 || length > 100) return 'must be 1 to 100 characters after trimming';
  if (CONTROL_CHARACTERS.test(trimmed)) return 'must not contain control characters';
  return undefined;
}

/** dob: a real calendar date, not in the future (UTC), not more than 150 years ago. */
export function dobProblem(dob: string, now = new Date(systemClock.now())): string | undefined {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(dob);
  const date = match ? new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]))) : undefined;
  if (!date || Number.isNaN(date.getTime()) || date.toISOString().slice(0, 10) !== dob) return 'must be a real date, YYYY-MM-DD';
  const today = now.toISOString().slice(0, 10);
  const oldest = new Date(Date.UTC(now.getUTCFullYear() - MAX_AGE_YEARS, now.getUTCMonth(), now.getUTCDate())).toISOString().slice(0, 10);
  if (dob > today) return 'must not be in the future';
  if (dob < oldest) return `must not be more than ${MAX_AGE_YEARS} years ago`;
  return undefined;
}

/**
 * A new email address, beyond its shape (the `email` format of the schema): at most 64 octets
 * before the @. Addresses only looked up (a password reset request) are not held to it, so one
 * accepted before the rule still finds its account.
 */
export function newEmailProblem(email: string): string | undefined {
  const at = email.lastIndexOf('@');
  if (at > 0 && Buffer.byteLength(email.slice(0, at)) > MAX_LOCAL_PART_OCTETS) return `must have at most ${MAX_LOCAL_PART_OCTETS} characters before the @`;
  return undefined;
}
