/**
 * Watches a tar stream as it passes through, without changing it: counts entries and bytes, checks
 * every header's checksum, and records whether the archive ended with its end-of-archive marker (two
 * zero blocks). A stream cut short anywhere (a dropped connection, a killed tar) lacks that marker,
 * which is how a truncated backup is told apart from a complete one.
 *
 * It can also report every entry's metadata (onEntry). A restore extracts with busybox tar, so where
 * tar readers disagree on how a header reads (busybox against GNU tar and the standard), the archive
 * is refused here: otherwise what is checked would not be what gets extracted.
 */
import { Transform, type TransformCallback } from 'node:stream';

const BLOCK = 512;
/**
 * Metadata entries are held in memory until the entry they describe. busybox tar ignores pax headers
 * larger than this, so a larger one would describe the next entry here but not there.
 */
const MAX_METADATA_BYTES = 0xfffff;

/** Entries that only describe the next entry (pax headers, GNU long names), not file-system objects. */
const METADATA_TYPES = new Set(['x', 'g', 'L', 'K']);
/**
 * Entry types with no data blocks whatever their size field says (as busybox tar reads them). Every
 * other type, unknown ones included, is followed by `size` bytes of data.
 */
const TYPES_WITHOUT_DATA = new Set(['1', '2', '3', '4', '5', '6']);

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'directory' | 'fifo' | 'char-device' | 'block-device' | 'other';

const ENTRY_TYPES: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char-device',
  '4': 'block-device',
  '5': 'directory',
  '6': 'fifo',
};

export interface TarEntry {
  /** The entry's path exactly as stored (raw bytes: names may be non-UTF-8), after applying ustar prefix, GNU long name ('L') or pax 'path'. */
  name: Buffer;
  /** Link target for symlinks and hard links (GNU 'K' long link or pax 'linkpath' applied), else an empty Buffer. */
  linkName: Buffer;
  type: TarEntryType;
  /** Permission bits, setuid, setgid and sticky included. */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of data stored for the entry: 0 for all but regular files (and unknown types). */
  size: number;
  /** Seconds since the epoch (the integer part of a fractional pax mtime). */
  mtime: number;
  /** Nanoseconds since the epoch: a fractional pax mtime exactly, else `mtime` whole (always set by the reader). */
  mtimeNs?: bigint;
  /** Device numbers of character and block devices (always set by the reader, 0 for other entries). */
  devMajor?: number;
  devMinor?: number;
}

export interface TarStreamCheckOptions {
  /**
   * Archives one after another, as `xargs tar` writes them (GNU tar's --ignore-zeros): entries after
   * an end-of-archive marker are read on, and the stream is complete if it ends with one.
   */
  concatenated?: boolean;
  /** Called once per file-system entry, in archive order; what it throws fails the stream. */
  onEntry?: (entry: TarEntry) => void;
  /**
   * Called with the contents of the regular file `onEntry` last reported, in pieces, padding left
   * out; the pieces are views of the chunk being inspected, valid until the next one.
   */
  onData?: (data: Buffer) => void;
}

export interface TarSummary {
  /** Bytes of the whole tar stream, end marker and padding included. */
  bytes: number;
  /** File-system entries (files, directories, links, devices), as `tar -t | wc -l` counts them. */
  entries: number;
  regularFiles: number;
  directories: number;
  /** Bytes of regular file contents. */
  contentBytes: number;
  /** True once two zero blocks were seen where a header was due. */
  complete: boolean;
}

/** What metadata entries said about the entry that follows them. */
interface NextEntry {
  /** From 'L' or pax 'path', whichever came last (as busybox tar applies them). */
  name?: Buffer;
  /** From 'K'. */
  longLink?: Buffer;
  /** From pax 'linkpath', which busybox tar ignores. */
  paxLinkPath?: Buffer;
  uid?: number;
  gid?: number;
  size?: number;
  mtime?: number;
  mtimeNs?: bigint;
}

/** A metadata entry being collected: its type, where its header is, its data so far. */
interface Metadata {
  type: string;
  at: number;
  data: Buffer;
  filled: number;
}

/** A number field: octal text, or GNU base-256 (high bit of the first byte set) for large values. */
function parseOctal(field: Buffer): number {
  if (field[0]! & 0x80) {
    let value = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!;
    return value;
  }
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  // Anything else is refused rather than read leniently: busybox tar gives up on such a header.
  if (!/^[0-7]*$/.test(text)) throw new Error(`bad number ${JSON.stringify(text)}`);
  return text === '' ? 0 : parseInt(text, 8);
}

function checksumMatches(header: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
  try {
    return parseOctal(header.subarray(148, 156)) === sum;
  } catch {
    return false;
  }
}

/** Bytes up to the first NUL, as C tar implementations read names. */
function cString(bytes: Buffer): Buffer {
  const end = bytes.indexOf(0);
  return end === -1 ? bytes : bytes.subarray(0, end);
}

/** The name fields: `prefix/name` when the ustar prefix is set. */
function headerName(header: Buffer): Buffer {
  const name = cString(header.subarray(0, 100));
  const prefix = cString(header.subarray(345, 500));
  // Whatever the magic says: busybox tar joins any non-empty prefix, and it is what restores.
  return prefix.length === 0 ? name : Buffer.concat([prefix, Buffer.from('/'), name]);
}

/** pax extended header records, `<length> <key>=<value>\n` each, length counting the whole record. */
function paxRecords(data: Buffer): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  for (let offset = 0; offset < data.length; ) {
    const space = data.indexOf(0x20, offset);
    const digits = space === -1 ? '' : data.toString('latin1', offset, space);
    const length = /^[1-9][0-9]*$/.test(digits) ? Number(digits) : 0;
    const record = data.subarray(offset, offset + length);
    const equals = record.indexOf(0x3d, space - offset);
    if (length === 0 || record.length < length || equals === -1 || record[length - 1] !== 0x0a) throw new Error('malformed pax record');
    records.set(record.toString('utf8', space - offset + 1, equals), record.subarray(equals + 1, length - 1));
    offset += length;
  }
  return records;
}

/** A pax number; a fractional one (mtime) keeps its integer part. */
/** A pax time, `seconds[.fraction]`, as nanoseconds (digits past the ninth are dropped). */
function paxTimeNs(value: Buffer): bigint {
  const match = /^(-?)([0-9]+)(?:\.([0-9]*))?$/.exec(value.toString('latin1'));
  if (!match) throw new Error(`malformed pax mtime ${JSON.stringify(value.toString('latin1'))}`);
  const ns = BigInt(match[2]!) * 1_000_000_000n + BigInt((match[3] ?? '').slice(0, 9).padEnd(9, '0'));
  return match[1] === '-' ? -ns : ns;
}

function paxNumber(key: string, value: Buffer): number {
  const text = value.toString('latin1');
  if (!/^-?[0-9]+(\.[0-9]*)?$/.test(text)) throw new Error(`malformed pax ${key} ${JSON.stringify(text)}`);
  return Math.trunc(Number(text));
}

export class TarStreamCheck extends Transform {
  readonly summary: TarSummary = { bytes: 0, entries: 0, regularFiles: 0, directories: 0, contentBytes: 0, complete: false };
  private readonly onEntry: ((entry: TarEntry) => void) | undefined;
  private readonly onData: ((data: Buffer) => void) | undefined;
  /** Content bytes of the current regular file still to pass to onData. */
  private contentLeft = 0;
  /** Bytes inspected so far: where the next header or data byte sits in the stream. */
  private position = 0;
  /** Header bytes collected so far when a header straddles chunks. */
  private pending: Buffer = Buffer.alloc(0);
  /** Data (and padding) bytes still to pass before the next header. */
  private skip = 0;
  /** The metadata entry whose data is being collected, while `skip` counts down its blocks. */
  private metadata: Metadata | undefined;
  private next: NextEntry = {};
  private zeroBlocks = 0;
  private readonly concatenated: boolean;

  constructor(options: TarStreamCheckOptions = {}) {
    super();
    this.onEntry = options.onEntry;
    this.onData = options.onData;
    this.concatenated = options.concatenated ?? false;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.feed(chunk);
    } catch (error) {
      callback(error as Error);
      return;
    }
    callback(null, chunk);
  }

  /**
   * Inspects the next chunk of the stream synchronously, calling onEntry and onData as it goes, for a
   * consumer that reads the tar itself rather than piping it through.
   */
  feed(chunk: Buffer): void {
    this.summary.bytes += chunk.length;
    this.inspect(chunk);
  }

  private inspect(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && (this.concatenated || !this.summary.complete)) {
      if (this.skip > 0) {
        const data = chunk.subarray(offset, offset + this.skip);
        offset += data.length;
        this.position += data.length;
        this.skip -= data.length;
        if (this.metadata) this.collect(this.metadata, data);
        else if (this.contentLeft > 0) {
          const content = data.subarray(0, this.contentLeft);
          this.contentLeft -= content.length;
          this.onData?.(content);
        }
        continue;
      }
      const needed = BLOCK - this.pending.length;
      const piece = chunk.subarray(offset, offset + needed);
      offset += piece.length;
      this.position += piece.length;
      this.pending = this.pending.length === 0 && piece.length === BLOCK ? piece : Buffer.concat([this.pending, piece]);
      if (this.pending.length < BLOCK) return;
      const header = this.pending;
      this.pending = Buffer.alloc(0);
      this.onHeaderBlock(header);
    }
  }

  private onHeaderBlock(header: Buffer): void {
    if (header.every((byte) => byte === 0)) {
      this.zeroBlocks += 1;
      if (this.zeroBlocks >= 2) this.summary.complete = true;
      return;
    }
    this.zeroBlocks = 0;
    // Another archive follows the end of the last (concatenated): complete again only at its end.
    this.summary.complete = false;
    if (!checksumMatches(header)) throw new Error(`corrupt tar header at byte ${this.position - BLOCK} (checksum mismatch)`);
    // busybox tar takes a header without a name for a zero block and reads on from the next block,
    // which here would be this entry's data: the two would see different entries from then on.
    if (header[0] === 0 && header[345] === 0) throw this.headerError('it has no name, which busybox tar reads as an end-of-archive block');
    const type = String.fromCharCode(header[156]!);
    const size = this.number(header, 124, 12, 'size');
    const hasData = !TYPES_WITHOUT_DATA.has(type);
    if (hasData) this.skip = Math.ceil(size / BLOCK) * BLOCK;
    if (METADATA_TYPES.has(type)) {
      if (type === 'g') return; // global pax headers: nothing the restore needs
      if (size > MAX_METADATA_BYTES) throw this.headerError(`its '${type}' metadata of ${size} bytes is over the limit of ${MAX_METADATA_BYTES}`);
      this.metadata = { type, at: this.position - BLOCK, data: Buffer.alloc(size), filled: 0 };
      if (size === 0) this.collect(this.metadata, Buffer.alloc(0));
      return;
    }
    this.summary.entries += 1;
    if (type === '5') this.summary.directories += 1;
    if (ENTRY_TYPES[type] === 'file') {
      this.summary.regularFiles += 1;
      this.summary.contentBytes += size;
    }
    const entry = this.entry(header, type, hasData ? size : 0);
    this.contentLeft = entry.type === 'file' ? entry.size : 0;
    this.onEntry?.(entry);
  }

  /** The entry a header describes, with what metadata entries said before it; refused where tar readers disagree. */
  private entry(header: Buffer, type: string, size: number): TarEntry {
    const next = this.next;
    this.next = {};
    const name = next.name ?? headerName(header);
    const headerLink = next.longLink ?? cString(header.subarray(157, 257));
    const entryType = ENTRY_TYPES[type] ?? 'other';
    // GNU tar keeps the first 100 bytes of a long pax linkpath in the header: a prefix is consistent.
    if (next.paxLinkPath && !next.paxLinkPath.subarray(0, headerLink.length).equals(headerLink)) {
      throw this.headerError('its pax linkpath disagrees with its link name, which busybox tar uses instead');
    }
    if (next.size !== undefined && next.size !== size) throw this.headerError('its pax size disagrees with its size field, which busybox tar uses instead');
    const linkName = next.paxLinkPath ?? headerLink;
    if (entryType === 'file' && linkName.length > 0) throw this.headerError('it is a regular file with a link name, which busybox tar extracts as a hard link');
    if (entryType === 'file' && name.at(-1) === 0x2f) {
      throw this.headerError('it is a regular file whose name ends in "/", which GNU tar and some busybox builds extract as a directory');
    }
    const mtime = next.mtime ?? this.number(header, 136, 12, 'mtime');
    return {
      name,
      linkName: entryType === 'symlink' || entryType === 'hardlink' ? linkName : Buffer.alloc(0),
      type: entryType,
      mode: this.number(header, 100, 8, 'mode') & 0o7777,
      uid: next.uid ?? this.number(header, 108, 8, 'uid'),
      gid: next.gid ?? this.number(header, 116, 8, 'gid'),
      size,
      mtime,
      mtimeNs: next.mtimeNs ?? BigInt(mtime) * 1_000_000_000n,
      devMajor: entryType === 'char-device' || entryType === 'block-device' ? this.number(header, 329, 8, 'devmajor') : 0,
      devMinor: entryType === 'char-device' || entryType === 'block-device' ? this.number(header, 337, 8, 'devminor') : 0,
    };
  }

  private number(header: Buffer, offset: number, length: number, field: string): number {
    try {
      return parseOctal(header.subarray(offset, offset + length));
    } catch (error) {
      throw this.headerError(`${(error as Error).message} as its ${field}`);
    }
  }

  /** An error about the header just read, which ends at `position`. */
  private headerError(reason: string): Error {
    return new Error(`tar header at byte ${this.position - BLOCK} refused: ${reason}`);
  }

  /** Adds data to the metadata entry (its padding is dropped); at its end, applies it to `next`. */
  private collect(metadata: Metadata, data: Buffer): void {
    metadata.filled += data.copy(metadata.data, metadata.filled);
    if (this.skip > 0) return;
    this.metadata = undefined;
    const next = this.next;
    if (metadata.type === 'L') next.name = cString(metadata.data);
    if (metadata.type === 'K') next.longLink = cString(metadata.data);
    if (metadata.type !== 'x') return;
    let records;
    try {
      records = paxRecords(metadata.data);
    } catch (error) {
      throw new Error(`pax header at byte ${metadata.at} refused: ${(error as Error).message}`);
    }
    for (const [key, value] of records) {
      if (key === 'path') next.name = cString(value);
      else if (key === 'linkpath') next.paxLinkPath = cString(value);
      else if (key === 'uid' || key === 'gid' || key === 'size' || key === 'mtime') next[key] = paxNumber(key, value);
      if (key === 'mtime') next.mtimeNs = paxTimeNs(value);
    }
  }
}
