/** Dates read one way across the pages, in the browser's language: "9 December 1985". */

const LONG_DATE = { dateStyle: 'long' } as const;

/** A calendar date (`YYYY-MM-DD`, a date of birth): the same day in every time zone. */
export function calendarDate(value: string): string {
  const [y, m, d] = value.split('-').map(Number);
  if (!y || !m || !d) return value;
  return new Intl.DateTimeFormat(undefined, { ...LONG_DATE, timeZone: 'UTC' }).format(new Date(Date.UTC(y, m - 1, d)));
}

/** The day of a moment (RFC 3339), in the user's time zone. */
export function dayOf(timestamp: string): string {
  return new Intl.DateTimeFormat(undefined, LONG_DATE).format(new Date(timestamp));
}

/** A moment (RFC 3339) with its time, in the user's time zone: "9 December 1985 at 14:05". */
export function moment(timestamp: string): string {
  return new Intl.DateTimeFormat(undefined, { dateStyle: 'long', timeStyle: 'short' }).format(new Date(timestamp));
}
