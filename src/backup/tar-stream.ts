/**
 * Watches a tar stream as it passes through, without changing it: counts entries and bytes, checks
 * every header's checksum, and records whether the archive ended with its end-of-archive marker (two
 * zero blocks). A stream cut short anywhere (a dropped connection, a killed tar) lacks that marker,
 * which is how a truncated backup is told apart from a complete one.
 */
import { Transform, type TransformCallback } from 'node:stream';

const BLOCK = 512;

/** Entries that only describe the next entry (pax headers, GNU long names), not file-system objects. */
const METADATA_TYPES = new Set(['x', 'g', 'L', 'K']);
/** Entry types whose size field counts data blocks that follow the header. */
const TYPES_WITH_DATA = new Set(['0', '\0', '7', ...METADATA_TYPES]);

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

function parseOctal(field: Buffer): number {
  // GNU base-256 for sizes of 8 GiB and more: high bit of the first byte set.
  if (field[0]! & 0x80) {
    let value = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!;
    return value;
  }
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  return text === '' ? 0 : parseInt(text, 8);
}

function checksumMatches(header: Buffer): boolean {
  const recorded = parseOctal(header.subarray(148, 156));
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
  return sum === recorded;
}

export class TarStreamCheck extends Transform {
  readonly summary: TarSummary = { bytes: 0, entries: 0, regularFiles: 0, directories: 0, contentBytes: 0, complete: false };
  /** Header bytes collected so far when a header straddles chunks. */
  private pending: Buffer = Buffer.alloc(0);
  /** Data (and padding) bytes still to skip before the next header. */
  private skip = 0;
  private zeroBlocks = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.summary.bytes += chunk.length;
    try {
      this.inspect(chunk);
    } catch (error) {
      callback(error as Error);
      return;
    }
    callback(null, chunk);
  }

  private inspect(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && !this.summary.complete) {
      if (this.skip > 0) {
        const skipped = Math.min(this.skip, chunk.length - offset);
        this.skip -= skipped;
        offset += skipped;
        continue;
      }
      const needed = BLOCK - this.pending.length;
      const piece = chunk.subarray(offset, offset + needed);
      offset += piece.length;
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
    if (!checksumMatches(header)) {
      throw new Error(`corrupt tar header at byte ${this.summary.bytes - BLOCK} (checksum mismatch)`);
    }
    const type = String.fromCharCode(header[156]!);
    const size = parseOctal(header.subarray(124, 136));
    if (TYPES_WITH_DATA.has(type)) this.skip = Math.ceil(size / BLOCK) * BLOCK;
    if (METADATA_TYPES.has(type)) return;
    this.summary.entries += 1;
    if (type === '5') this.summary.directories += 1;
    if (type === '0' || type === '\0' || type === '7') {
      this.summary.regularFiles += 1;
      this.summary.contentBytes += size;
    }
  }
}
