/**
 * The claim's files as the helper's `stat` sees them, before anything is read: what makes a backup
 * into a repository incremental on the wire. The client compares each file's size, mtime, ctime and
 * inode with the parent snapshot (restic's rule, src/repository/incremental.ts) and asks tar only for
 * what changed.
 *
 * One record per path, from `find . -exec stat -c FORMAT`:
 *   `<nonce> <mode hex> <uid> <gid> <size> <inode> <links> <dev> <major hex> <minor hex> <mtime> <ctime> <name>`
 * the times as `%y`/`%z` print them (`2026-12-06 06:47:31.635665144 +0000`, three words each). A
 * name may hold any byte but NUL, newlines too, so a record ends where the next one begins: a newline
 * followed by the nonce, random per listing, which no name can know in advance.
 *
 * The first record is the helper's capabilities: the incremental copy hands tar a NUL-separated list
 * through `xargs -0` and `tar --no-recursion`, which a minimal image may lack (then the whole claim is
 * read, as before).
 */
import { randomBytes } from 'node:crypto';
import type { ListedEntry } from '../repository/incremental.ts';
import { nodeTypeOfMode } from '../repository/tree.ts';
import { daysFromCivil, digitsAt, fractionAt } from '../repository/time.ts';

const STAT_FORMAT = '%f %u %g %s %i %h %d %t %T %y %z %n';
/** Words before the name: the nonce, nine numbers, two times of three words. */
const FIXED_WORDS = 16;

export function newListingNonce(): string {
  return `nkvm-${randomBytes(12).toString('hex')}`;
}

/** The listing command's script: capabilities first, then every path below `root` (`.` first, parents before children). */
export function listingScript(root: string, nonce: string): string {
  return [
    `cd ${root} || exit 2`,
    'caps=""',
    // Both are build options of busybox; GNU tools have them.
    'printf "" | xargs -0 true 2>/dev/null && caps="${caps}xargs0,"',
    'tar --help 2>&1 | grep -q -- --no-recursion && caps="${caps}no-recursion,"',
    `printf '%s caps %s\\n' ${nonce} "$caps"`,
    `find . -exec stat -c '${nonce} ${STAT_FORMAT}' -- {} +`,
  ].join('\n');
}

export interface ListingCapabilities {
  xargsNul: boolean;
  noRecursion: boolean;
}

/** `%y` as nanoseconds since the epoch: the offset applied, the fraction kept to the nanosecond. */
export function parseStatTime(text: string): bigint {
  const fail = () => new ListingFormatError(`a time stat printed as ${JSON.stringify(text)}`);
  // YYYY-MM-DD HH:MM:SS[.fraction] +HHMM, the year of any length and sign.
  const negative = text[0] === '-';
  const yearStart = negative ? 1 : 0;
  const yearEnd = text.indexOf('-', 1);
  const year = yearEnd - yearStart >= 4 ? digitsAt(text, yearStart, yearEnd - yearStart) : -1;
  const at = yearEnd + 1;
  if (year < 0 || text[at + 2] !== '-' || text[at + 5] !== ' ' || text[at + 8] !== ':' || text[at + 11] !== ':') throw fail();
  const fields = [digitsAt(text, at, 2), digitsAt(text, at + 3, 2), digitsAt(text, at + 6, 2), digitsAt(text, at + 9, 2), digitsAt(text, at + 12, 2)];
  if (fields.some((field) => field < 0)) throw fail();
  const [month, day, hour, minute, second] = fields as [number, number, number, number, number];
  let end = at + 14;
  let fraction = 0;
  if (text[end] === '.') {
    const start = end + 1;
    [fraction, end] = fractionAt(text, start);
    if (fraction < 0 || end - start > 9) throw fail();
  }
  const sign = text[end + 1];
  const hours = digitsAt(text, end + 2, 2);
  const minutes = digitsAt(text, end + 4, 2);
  if (text[end] !== ' ' || (sign !== '+' && sign !== '-') || hours < 0 || minutes < 0 || end + 6 !== text.length) throw fail();
  const offset = (hours * 3600 + minutes * 60) * (sign === '-' ? -1 : 1);
  const seconds = daysFromCivil(negative ? -year : year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
  return BigInt(seconds) * 1_000_000_000n + BigInt(fraction);
}

export class ListingFormatError extends Error {
  constructor(what: string) {
    super(`the claim's listing could not be read: ${what}`);
    this.name = 'ListingFormatError';
  }
}

/** One record (without the separator) into an entry. */
export function parseListingRecord(record: Buffer, nonce: string): ListedEntry {
  const words: string[] = [];
  let start = 0;
  for (let i = 0; i < record.length && words.length < FIXED_WORDS; i++) {
    if (record[i] === 0x20) {
      words.push(record.toString('latin1', start, i));
      start = i + 1;
    }
  }
  if (words.length < FIXED_WORDS || words[0] !== nonce) throw new ListingFormatError(`a record ${JSON.stringify(record.subarray(0, 200).toString('latin1'))}`);
  const [, modeHex, uid, gid, size, inode, links, dev, major, minor, ...times] = words;
  const rawMode = parseInt(modeHex!, 16);
  const type = nodeTypeOfMode(rawMode);
  if (type === 'irregular' || Number.isNaN(rawMode)) throw new ListingFormatError(`a mode ${JSON.stringify(modeHex)}`);
  return {
    path: Buffer.from(record.subarray(start)),
    type,
    mode: rawMode & 0o7777,
    uid: Number(uid),
    gid: Number(gid),
    size: Number(size),
    inode: Number(inode),
    links: Number(links),
    deviceId: Number(dev),
    rdevMajor: parseInt(major!, 16),
    rdevMinor: parseInt(minor!, 16),
    mtime: parseStatTime(times.slice(0, 3).join(' ')),
    ctime: parseStatTime(times.slice(3, 6).join(' ')),
  };
}

/**
 * Splits a listing into its records as it streams: the capabilities line first (`caps`), then one
 * ListedEntry per path. Memory: one record, whatever the listing's size.
 */
export async function* readListing(input: AsyncIterable<Buffer | Uint8Array>, nonce: string, onCapabilities?: (caps: ListingCapabilities) => void): AsyncGenerator<ListedEntry> {
  const separator = Buffer.from(`\n${nonce} `);
  const first = Buffer.from(`${nonce} `);
  let pending = Buffer.alloc(0);
  let sawFirst = false;
  let sawCaps = false;
  const take = (record: Buffer): ListedEntry | undefined => {
    if (!sawCaps) {
      const caps = record.toString('latin1');
      if (!caps.startsWith(`${nonce} caps `)) throw new ListingFormatError('it does not begin with the helper\'s capabilities');
      sawCaps = true;
      const list = caps.slice(`${nonce} caps `.length).split(',');
      onCapabilities?.({ xargsNul: list.includes('xargs0'), noRecursion: list.includes('no-recursion') });
      return undefined;
    }
    return parseListingRecord(record, nonce);
  };
  for await (const chunk of input) {
    pending = pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([pending, chunk]);
    if (!sawFirst) {
      if (pending.length < first.length) continue;
      if (!pending.subarray(0, first.length).equals(first)) throw new ListingFormatError(`it begins ${JSON.stringify(pending.subarray(0, 80).toString('latin1'))}`);
      sawFirst = true;
    }
    let from = 0;
    for (;;) {
      // A record ends at the next separator; one that ends this chunk may still go on.
      const at = pending.indexOf(separator, from + first.length);
      if (at < 0) break;
      const entry = take(pending.subarray(from, at));
      if (entry) yield entry;
      from = at + 1;
    }
    pending = pending.subarray(from);
  }
  if (!sawFirst) throw new ListingFormatError('it is empty');
  if (pending.at(-1) !== 0x0a) throw new ListingFormatError('its last record is cut');
  const entry = take(pending.subarray(0, -1));
  if (entry) yield entry;
}
