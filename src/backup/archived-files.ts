/**
 * The regular files a tar stream archived, with the size and mtime each header gave, in memory that
 * does not grow with the claim: two 32-bit fingerprints per file (FNV-1a of its path; of its size
 * and mtime), gathered in a small batch and written to a scratch file once it fills (a table of
 * them in memory took 16 MiB for a million files, 24 while it grew). Where no scratch file can be
 * made (no writable temporary directory), the batches stay in memory, 8 bytes a file, and the
 * backup goes on. At the end the copy compares the few files the helper saw modified since tar
 * began, in one read of the file: one archived with another size or mtime changed after tar read
 * its header. A fingerprint collision (about one in four billion per lookup) can only hide such a
 * change or report one that was not.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export type ArchivedState = 'absent' | 'same' | 'changed';

export interface ArchivedFileState {
  name: Uint8Array;
  size: number;
  mtime: number;
}

/** Files a batch holds (8 bytes each) before it goes to the scratch file: a claim of fewer never writes one. */
const BATCH_FILES = 8192;
const RECORD_BYTES = 8;

function fnv1a(bytes: Uint8Array, seed = 0x811c9dc5): number {
  let hash = seed;
  for (const byte of bytes) hash = Math.imul(hash ^ byte, 0x01000193);
  return hash >>> 0;
}

function stateHash(size: number, mtime: number): number {
  return fnv1a(Buffer.from(`${size} ${mtime}`));
}

export class ArchivedFiles {
  private readonly batch = new Uint32Array(BATCH_FILES * 2);
  private batched = 0;
  private readonly scratchDir: string;
  /** The scratch file, once a batch filled: its descriptor and the records in it. */
  private scratch: { fd: number; records: number } | undefined;
  /** Full batches kept in memory, once a scratch file could not be made. */
  private kept: Uint32Array[] | undefined;

  /** `scratchDir`: where the scratch file goes (the system's temporary directory). */
  constructor(scratchDir = os.tmpdir()) {
    this.scratchDir = scratchDir;
  }

  /** Files added (a name added twice counts twice). */
  get count(): number {
    return (this.scratch?.records ?? 0) + (this.kept?.length ?? 0) * BATCH_FILES + this.batched;
  }

  add(name: Uint8Array, size: number, mtime: number): void {
    if (this.batched === BATCH_FILES) this.spill();
    this.batch[2 * this.batched] = fnv1a(name);
    this.batch[2 * this.batched + 1] = stateHash(size, mtime);
    this.batched += 1;
  }

  /**
   * How each file, now of its size and mtime, compares with what was archived last under its name:
   * one pass over what was added.
   */
  compare(files: readonly ArchivedFileState[]): ArchivedState[] {
    const wanted = new Map<number, number | undefined>(files.map((file) => [fnv1a(file.name), undefined]));
    const scan = (records: Uint32Array, count: number) => {
      for (let i = 0; i < count; i++) if (wanted.has(records[2 * i]!)) wanted.set(records[2 * i]!, records[2 * i + 1]!);
    };
    if (this.scratch) {
      const block = Buffer.allocUnsafeSlow(BATCH_FILES * RECORD_BYTES);
      const records = new Uint32Array(block.buffer, block.byteOffset, BATCH_FILES * 2);
      for (let position = 0; position < this.scratch.records * RECORD_BYTES; ) {
        const read = Math.floor(fs.readSync(this.scratch.fd, block, 0, block.length, position) / RECORD_BYTES);
        if (read === 0) throw new Error('the scratch file of archived files ended early');
        scan(records, read);
        position += read * RECORD_BYTES;
      }
    }
    for (const batch of this.kept ?? []) scan(batch, BATCH_FILES);
    scan(this.batch, this.batched);
    return files.map((file) => {
      const archived = wanted.get(fnv1a(file.name));
      if (archived === undefined) return 'absent';
      return archived === stateHash(file.size, file.mtime) ? 'same' : 'changed';
    });
  }

  /** Closes the scratch file; what was added is gone. */
  dispose(): void {
    if (!this.scratch) return;
    const { fd } = this.scratch;
    this.scratch = undefined;
    fs.closeSync(fd);
  }

  private spill(): void {
    if (!this.scratch && !this.kept) this.scratch = this.openScratch();
    if (!this.scratch) {
      (this.kept ??= []).push(this.batch.slice());
      this.batched = 0;
      return;
    }
    // Whole records: the file is read back in the same batches' worth.
    const bytes = Buffer.from(this.batch.buffer, this.batch.byteOffset, this.batched * RECORD_BYTES);
    let written = 0;
    while (written < bytes.length) written += fs.writeSync(this.scratch.fd, bytes, written, bytes.length - written, this.scratch.records * RECORD_BYTES + written);
    this.scratch.records += this.batched;
    this.batched = 0;
  }

  private openScratch(): { fd: number; records: number } | undefined {
    const file = path.join(this.scratchDir, `nkvm-archived-files-${process.pid}-${crypto.randomBytes(6).toString('hex')}`);
    let fd: number;
    try {
      fd = fs.openSync(file, 'wx+', 0o600);
    } catch {
      return undefined;
    }
    // Removed at once (libuv opens files for deletion on Windows too): a process that dies leaves nothing behind.
    fs.rmSync(file, { force: true });
    return { fd, records: 0 };
  }
}
