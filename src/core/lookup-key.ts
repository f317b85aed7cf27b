/**
 * The lookup key of a username or email: ASCII letters lower-cased, as the database's
 * username_key/email_key hold them, and nothing else folded. Identifiers are ASCII, so a
 * Unicode look-alike (the Kelvin sign K, a fullwidth letter) never reaches an ASCII account,
 * and a NUL (which PostgreSQL text cannot hold) simply matches nothing.
 */
export function lookupKey(value: string): string {
  return value.replace(/[A-Z]/g, (c) => c.toLowerCase()).replace(/\u0000/g, '\uFFFD');
}
