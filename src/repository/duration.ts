/**
 * restic's Duration (internal/data/duration.go): years, months, days and hours, written "1y2m3d4h",
 * used by the --keep-within* options. Parsing follows restic byte for byte, including its error
 * messages, its acceptance of negative parts ("1y-5d", refused later by forget) and a unit given
 * twice meaning the last one ("1d2d" is 2d).
 */
import { UsageError } from '../errors.ts';

export interface Duration {
  readonly years: number;
  readonly months: number;
  readonly days: number;
  readonly hours: number;
}

export const ZERO_DURATION: Duration = { years: 0, months: 0, days: 0, hours: 0 };

export function isZeroDuration(d: Duration): boolean {
  return d.years === 0 && d.months === 0 && d.days === 0 && d.hours === 0;
}

/** restic's Duration.String(): "1y2m3d4h", zero parts left out, "" for zero. */
export function formatDuration(d: Duration): string {
  let s = '';
  if (d.years !== 0) s += `${d.years}y`;
  if (d.months !== 0) s += `${d.months}m`;
  if (d.days !== 0) s += `${d.days}d`;
  if (d.hours !== 0) s += `${d.hours}h`;
  return s;
}

// Go's unicode.IsSpace, which strings.TrimSpace uses (JavaScript's trim() differs: it trims U+FEFF
// and keeps U+0085).
const GO_SPACE = '\t\n\v\f\r \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000';

export function goTrimSpace(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && GO_SPACE.includes(s[start]!)) start++;
  while (end > start && GO_SPACE.includes(s[end - 1]!)) end--;
  return s.slice(start, end);
}

/** Go's %q of a single byte: strconv.QuoteRune of that byte's value as a rune. */
function quoteByte(b: number): string {
  const escapes: Record<number, string> = { 7: '\\a', 8: '\\b', 9: '\\t', 10: '\\n', 11: '\\v', 12: '\\f', 13: '\\r', 39: "\\'", 92: '\\\\' };
  const escaped = escapes[b];
  if (escaped) return `'${escaped}'`;
  if (b < 0x20 || b === 0x7f) return `'\\x${b.toString(16).padStart(2, '0')}'`;
  // Go's IsPrint: C1 controls, no-break space and soft hyphen are not printable.
  if ((b >= 0x80 && b <= 0xa0) || b === 0xad) return `'\\u${b.toString(16).padStart(4, '0')}'`;
  return `'${String.fromCharCode(b)}'`;
}

/**
 * restic's nextNumber: an optional "-" and ASCII digits at the start of input; the rest follows.
 * Works on UTF-8 bytes, as Go does.
 */
export function nextNumber(input: Uint8Array): { num: number; rest: Uint8Array } {
  if (input.length === 0) return { num: 0, rest: input };
  let negative = false;
  let digits = input;
  if (digits[0] === 0x2d) {
    negative = true;
    digits = digits.subarray(1);
  }
  let n = 0;
  while (n < digits.length && digits[n]! >= 0x30 && digits[n]! <= 0x39) n++;
  if (n === 0) throw new UsageError('no number found');
  const text = Buffer.from(digits.subarray(0, n)).toString('latin1');
  const num = Number(text);
  if (!Number.isSafeInteger(num)) {
    // restic panics here (strconv.Atoi out of range); a number this large means nothing as a duration.
    throw new UsageError(`strconv.Atoi: parsing ${JSON.stringify(text)}: value out of range`);
  }
  return { num: negative ? -num : num, rest: digits.subarray(n) };
}

/** restic's ParseDuration: "1y2m3d4h" in any order; throws restic's message for anything else. */
export function parseDuration(text: string): Duration {
  const d = { years: 0, months: 0, days: 0, hours: 0 };
  let s: Uint8Array = Buffer.from(goTrimSpace(text), 'utf8');
  while (s.length > 0) {
    const { num, rest } = nextNumber(s);
    if (rest.length === 0) throw new UsageError(`no unit found after number ${num}`);
    switch (rest[0]) {
      case 0x79: d.years = num; break;
      case 0x6d: d.months = num; break;
      case 0x64: d.days = num; break;
      case 0x68: d.hours = num; break;
      default:
        throw new UsageError(`invalid unit ${quoteByte(rest[0]!)} found after number ${num}`);
    }
    s = rest.subarray(1);
  }
  return d;
}
