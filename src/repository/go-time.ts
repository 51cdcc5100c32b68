/**
 * Go's time.Time as restic's snapshot files use it, to the nanosecond: RFC 3339 parsing and
 * formatting (encoding/json's form), the wall clock in the zone a time was written with, ISO weeks,
 * and Time.AddDate's calendar arithmetic. JavaScript's Date keeps milliseconds and knows only UTC
 * and the process's zone, which is not enough to decide the same things restic decides.
 *
 * A time keeps the zone Go gives it when it parses one: "Z" is UTC; an offset that the process's
 * local zone (TZ) has at that instant makes it Local, so calendar arithmetic follows that zone's
 * daylight saving rules; any other offset is a fixed zone (time/format_rfc3339.go, parseRFC3339).
 */
import { civilFromDays, daysFromCivil } from './time.ts';

export type GoLocation = 'UTC' | 'Local' | 'Fixed';

export interface GoTime {
  /** Whole seconds since 1970-01-01T00:00:00Z; negative before. */
  readonly unix: number;
  /** Nanoseconds into that second, 0 to 999,999,999. */
  readonly nanos: number;
  /** Seconds east of UTC the time is shown in: its wall clock is unix + offset. */
  readonly offset: number;
  readonly location: GoLocation;
}

/** Go's zero time.Time, 0001-01-01T00:00:00Z. */
export const GO_ZERO_TIME: GoTime = { unix: -62_135_596_800, nanos: 0, offset: 0, location: 'UTC' };

/** The process's local zone offset at an instant, in seconds east of UTC (what Go's Local.lookup gives). */
export function localOffsetAt(unix: number): number {
  return -Math.round(new Date(unix * 1000).getTimezoneOffset() * 60);
}

export function fromDate(date: Date): GoTime {
  const ms = date.getTime();
  if (!Number.isFinite(ms)) throw new RangeError('invalid date');
  const unix = Math.floor(ms / 1000);
  return { unix, nanos: (ms - unix * 1000) * 1_000_000, offset: localOffsetAt(unix), location: 'Local' };
}

/** -1, 0 or 1 as a is before, equal to or after b (as instants; the zones do not matter). */
export function compareTimes(a: GoTime, b: GoTime): number {
  if (a.unix !== b.unix) return a.unix < b.unix ? -1 : 1;
  if (a.nanos !== b.nanos) return a.nanos < b.nanos ? -1 : 1;
  return 0;
}

export interface CivilTime {
  year: number;
  /** 1 to 12 */
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

/** The wall clock a time shows in its own zone: what Go's Year(), Month(), Day(), Hour() return. */
export function civil(t: GoTime): CivilTime {
  const wall = t.unix + t.offset;
  const days = Math.floor(wall / 86_400);
  const secs = wall - days * 86_400;
  return {
    ...civilFromDays(days),
    hour: Math.floor(secs / 3600),
    minute: Math.floor((secs % 3600) / 60),
    second: secs % 60,
  };
}

/** Go's Time.ISOWeek: the ISO 8601 year and week (1 to 53) of the wall-clock date. */
export function isoWeek(t: GoTime): { year: number; week: number } {
  const { year, month, day } = civil(t);
  const days = daysFromCivil(year, month, day);
  // 1970-01-01 was a Thursday; Monday = 0.
  const weekday = (((days + 3) % 7) + 7) % 7;
  // The week belongs to the year of its Thursday.
  const thursday = days - weekday + 3;
  const isoYear = civilFromDays(thursday).year;
  const week = Math.floor((thursday - daysFromCivil(isoYear, 1, 1)) / 7) + 1;
  return { year: isoYear, week };
}

/**
 * Go's Time.AddDate: the wall clock moved by whole years, months and days, normalised like Go's
 * Date (October 31 plus one month is December 1), then placed back in the time's zone. In Local
 * that takes the zone's offset at the new date, the way Go's Date resolves it across a daylight
 * saving change.
 */
export function addDate(t: GoTime, years: number, months: number, days: number): GoTime {
  const c = civil(t);
  const m0 = c.month - 1 + months;
  const year = c.year + years + Math.floor(m0 / 12);
  const month = (((m0 % 12) + 12) % 12) + 1;
  const wallAsUtc = (daysFromCivil(year, month, 1) + c.day - 1 + days) * 86_400 + c.hour * 3600 + c.minute * 60 + c.second;
  let offset = t.offset;
  if (t.location === 'UTC') offset = 0;
  else if (t.location === 'Local') {
    // Go's Date: look up the offset at the wall clock read as UTC; if the instant that gives is
    // outside that offset's period, take the offset in effect at that instant instead.
    offset = localOffsetAt(wallAsUtc - localOffsetAt(wallAsUtc));
  }
  const unix = wallAsUtc - offset;
  return { unix, nanos: t.nanos, offset: t.location === 'Local' ? localOffsetAt(unix) : offset, location: t.location };
}

/** Go's t.Add(time.Hour * n): an exact number of hours, whatever the calendar. */
export function addHours(t: GoTime, hours: number): GoTime {
  const unix = t.unix + hours * 3600;
  return { ...t, unix, offset: t.location === 'Local' ? localOffsetAt(unix) : t.offset };
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:(Z)|([+-])(\d{2}):(\d{2}))$/;

/** Parses a time as restic writes one in JSON (RFC 3339 with up to nanoseconds), as Go does. */
export function parseRFC3339(text: string): GoTime {
  const m = RFC3339.exec(text);
  if (!m) throw new RangeError(`not an RFC 3339 time: ${JSON.stringify(text)}`);
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 59) {
    throw new RangeError(`time out of range: ${JSON.stringify(text)}`);
  }
  // Go reads up to nine digits of a fraction and ignores the rest.
  const nanos = m[7] ? Number(m[7].slice(0, 9).padEnd(9, '0')) : 0;
  const wallAsUtc = daysFromCivil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
  if (m[8]) return { unix: wallAsUtc, nanos, offset: 0, location: 'UTC' };
  const [hh, mm] = [Number(m[10]), Number(m[11])];
  if (hh > 23 || mm > 59) throw new RangeError(`time zone offset out of range: ${JSON.stringify(text)}`);
  const offset = (m[9] === '-' ? -1 : 1) * (hh * 3600 + mm * 60);
  const unix = wallAsUtc - offset;
  return { unix, nanos, offset, location: localOffsetAt(unix) === offset ? 'Local' : 'Fixed' };
}

function daysIn(year: number, month: number): number {
  return daysFromCivil(month === 12 ? year + 1 : year, month === 12 ? 1 : month + 1, 1) - daysFromCivil(year, month, 1);
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** time.RFC3339Nano as encoding/json writes it: trailing zeros of the fraction dropped, "Z" for offset 0. */
export function formatRFC3339Nano(t: GoTime): string {
  const c = civil(t);
  const year = c.year < 0 ? `-${pad(-c.year, 4)}` : pad(c.year, 4);
  let text = `${year}-${pad(c.month)}-${pad(c.day)}T${pad(c.hour)}:${pad(c.minute)}:${pad(c.second)}`;
  if (t.nanos !== 0) text += `.${pad(t.nanos, 9).replace(/0+$/, '')}`;
  if (t.offset === 0) return `${text}Z`;
  const abs = Math.abs(t.offset);
  return `${text}${t.offset < 0 ? '-' : '+'}${pad(Math.floor(abs / 3600))}:${pad(Math.floor((abs % 3600) / 60))}`;
}
