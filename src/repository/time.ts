/**
 * Timestamps as restic writes them: Go's RFC3339Nano ("2006-01-02T15:04:05.999999999Z07:00"), with
 * nanoseconds kept exactly as BigInt (a Date has milliseconds only).
 */

/** 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z: what RFC 3339 can write. */
const MIN_NS = BigInt(Date.UTC(2000, 0, 1) - 2000 * 365.2425 * 86_400_000) * 1_000_000n;
const MAX_NS = BigInt(Date.UTC(9999, 11, 31, 23, 59, 59)) * 1_000_000n + 999_999_999n;

/**
 * Nanoseconds since the epoch, as RFC3339Nano in UTC: trailing zeros of the fraction dropped, no
 * fraction when it is zero. A time outside years 0 to 9999 is clamped to them (restic's fixTime moves
 * such years into range too, rather than fail a backup over a bogus mtime).
 */
export function formatTime(ns: bigint): string {
  if (ns < MIN_NS) ns = MIN_NS;
  if (ns > MAX_NS) ns = MAX_NS;
  let seconds = ns / 1_000_000_000n;
  let fraction = ns % 1_000_000_000n;
  if (fraction < 0n) {
    fraction += 1_000_000_000n;
    seconds -= 1n;
  }
  const date = new Date(Number(seconds) * 1000);
  const year = date.getUTCFullYear();
  const pad = (value: number, width = 2) => String(value).padStart(width, '0');
  const base = `${pad(year, 4)}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}T${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}`;
  const digits = fraction === 0n ? '' : `.${fraction.toString().padStart(9, '0').replace(/0+$/, '')}`;
  return `${base}${digits}Z`;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9})\d*)?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** An RFC 3339 time (any offset, any fraction up to nanoseconds) as nanoseconds since the epoch. */
export function parseTime(text: string): bigint {
  const match = RFC3339.exec(text);
  if (!match) throw new Error(`not an RFC 3339 time: ${JSON.stringify(text)}`);
  const [, year, month, day, hour, minute, second, fraction, , sign, offsetHours, offsetMinutes] = match;
  const ms = Date.UTC(Number(year), Number(month) - 1, Number(day), Number(hour), Number(minute), Number(second));
  // Date.UTC maps years 0-99 to 1900-1999.
  const date = new Date(ms);
  if (Number(year) < 100) date.setUTCFullYear(Number(year));
  let seconds = BigInt(date.getTime() / 1000);
  if (sign) {
    const offset = BigInt(Number(offsetHours) * 3600 + Number(offsetMinutes) * 60);
    seconds += sign === '+' ? -offset : offset;
  }
  return seconds * 1_000_000_000n + BigInt((fraction ?? '').padEnd(9, '0') || '0');
}

export function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}
