/**
 * Pack files (doc/design.rst, "Pack Format"): `blob || blob || ... || encrypted header || header
 * length (uint32 LE)`. Each blob is encrypted on its own; the header lists, per blob, its type, its
 * length in the pack, its uncompressed length when compressed, and its ID. The pack's ID is the
 * SHA-256 of the whole file.
 */
import crypto from 'node:crypto';
import type { SpoolFile } from './backends/backend.ts';
import { decrypt, encryptInto, OVERHEAD, sha256, type MasterKey } from './crypto.ts';

export type BlobType = 'data' | 'tree';

export interface PackedBlob {
  type: BlobType;
  /** SHA-256 of the plaintext, hex. */
  id: string;
  offset: number;
  /** Bytes in the pack (encrypted, and compressed when uncompressedLength is set). */
  length: number;
  /** The plaintext's length when the blob is compressed; undefined (restic's 0) when not. */
  uncompressedLength?: number;
}

/** Plain entry: type (1), length (4), ID (32); compressed entry adds the uncompressed length (4) after the length. */
const PLAIN_ENTRY = 37;
const COMPRESSED_ENTRY = 41;
const HEADER_LENGTH_SIZE = 4;
/**
 * At most this many blobs in a pack. Small blobs that compress well (a million files of a few KiB)
 * put 160,000 in 16 MiB: the pack's list and its index file (24 MB of JSON, compressed and encrypted
 * in copies) took 100 MB for a moment. Until its pack is written, each blob is a JS object and an ID
 * string (~200 bytes) in up to three packs at once (the one filling, the one waiting, the one being
 * written): at 50,000 a blob, a mover over a million such files held some 150,000 of them.
 */
export const MAX_BLOBS_PER_PACK = 10_000;
/** A pack's buffer starts at this size and doubles as blobs come. */
const FIRST_BUFFER = 1024 * 1024;
/** restic's MaxHeaderSize. */
const MAX_HEADER_SIZE = 16 * 1024 * 1024 + HEADER_LENGTH_SIZE;

/** A pack's buffer starts at this size and doubles as blobs come; a spooled pack's goes to its file at this size. */
const SPOOL_WRITE = FIRST_BUFFER;

/** A pack once its header is on: in memory (`bytes`), or in its spool file, to commit under `id`. */
export interface FinishedPack {
  id: string;
  blobs: PackedBlob[];
  bytes?: Buffer;
  spool?: SpoolFile;
}

/**
 * Collects the encrypted blobs of one pack. Where the backend builds files in place (a local
 * repository: `spool`), blobs go through a buffer of about a megabyte into the pack's file as they
 * come, and the pack's ID is hashed on the way: a pack never sits whole in memory. Otherwise they
 * collect in one buffer, reused from pack to pack: blobs are sealed in place and the header is
 * added behind them, so a pack costs its buffer and nothing per blob (no list of blob buffers, each
 * pinning a slab of Node's pool, and no concatenated copy to write). That buffer grows by doubling
 * up to `capacity` bytes, blobs and header (a backup's tree pack, or a small backup's data pack,
 * never needs 16 MiB); a blob too large for an empty pack gets a buffer of its own, dropped once
 * that pack is written.
 */
export class PackWriter {
  private list: PackedBlob[] = [];
  private readonly capacity: number;
  private buffer: Buffer | undefined;
  /** A buffer of a pack since written, for the next pack to start in. */
  private spare: Buffer | undefined;
  private readonly keepsSpare: boolean;
  private size = 0;
  private readonly openSpool: (() => Promise<SpoolFile>) | undefined;
  /** The file of the pack filling, once its first blob came, and the hash of what went into it. */
  private spool: { file: SpoolFile; hash: crypto.Hash } | undefined;
  /** Bytes of the pack already in its file: the buffer holds the ones after them. */
  private spooled = 0;

  /**
   * `keepsSpare`: recycle() keeps a written pack's buffer for the next pack; otherwise it is let go.
   * `spool`: makes a file for each pack (Backend.spool).
   */
  constructor(capacity = 16 * 1024 * 1024, { keepsSpare = true, spool }: { keepsSpare?: boolean; spool?: () => Promise<SpoolFile> } = {}) {
    this.capacity = capacity;
    this.keepsSpare = keepsSpare;
    this.openSpool = spool;
  }

  get blobs(): PackedBlob[] {
    return this.list;
  }

  get length(): number {
    return this.size;
  }

  get count(): number {
    return this.list.length;
  }

  /** Whether a blob of `sealedLength` bytes (OVERHEAD included) still fits, with the header it adds. */
  fits(sealedLength: number): boolean {
    return this.list.length < MAX_BLOBS_PER_PACK && this.size + sealedLength + headerSpace(this.list.length + 1) <= this.capacity;
  }

  /** Encrypts a (maybe compressed) blob into the pack. */
  async seal(key: MasterKey, type: BlobType, id: string, stored: Uint8Array, uncompressedLength?: number): Promise<PackedBlob> {
    const buffer = await this.room(stored.length + OVERHEAD);
    const blob = this.record(type, id, encryptInto(key, stored, buffer, this.size - this.spooled), uncompressedLength);
    await this.spill(false);
    return blob;
  }

  /** Adds an already encrypted (and maybe compressed) blob; a large one goes straight to the pack's file. */
  async add(type: BlobType, id: string, encrypted: Uint8Array, uncompressedLength?: number): Promise<PackedBlob> {
    if (this.openSpool && encrypted.length >= SPOOL_WRITE) {
      await this.spill(true);
      await this.toSpool(encrypted);
    } else {
      (await this.room(encrypted.length)).set(encrypted, this.size - this.spooled);
    }
    const blob = this.record(type, id, encrypted.length, uncompressedLength);
    await this.spill(false);
    return blob;
  }

  private record(type: BlobType, id: string, length: number, uncompressedLength: number | undefined): PackedBlob {
    const blob: PackedBlob = { type, id, offset: this.size, length };
    if (uncompressedLength !== undefined) blob.uncompressedLength = uncompressedLength;
    this.list.push(blob);
    this.size += length;
    return blob;
  }

  /** The buffer, with room for `length` more bytes and the header. */
  private async room(length: number): Promise<Buffer> {
    if (this.openSpool) {
      await this.openedSpool();
      if (this.buffer && this.size - this.spooled + length + headerSpace(this.list.length + 1) > this.buffer.length) await this.spill(true);
    }
    const held = this.size - this.spooled;
    const needed = held + length + headerSpace(this.list.length + 1);
    if (this.buffer && needed <= this.buffer.length) return this.buffer;
    if (!this.buffer && this.spare && needed <= this.spare.length) {
      [this.buffer, this.spare] = [this.spare, undefined];
      return this.buffer;
    }
    // A spooled pack's buffer is only as large as a blob needs; a pack in memory doubles its own.
    const grown = this.openSpool ? FIRST_BUFFER : Math.min(this.capacity, this.buffer ? this.buffer.length * 2 : FIRST_BUFFER);
    // allocUnsafeSlow: outside Node's pool; pages never written cost no memory.
    const buffer = Buffer.allocUnsafeSlow(Math.max(needed, grown));
    this.buffer?.copy(buffer, 0, 0, held);
    this.buffer = buffer;
    return buffer;
  }

  /** Moves what the buffer holds into the pack's file: all of it, or once it is SPOOL_WRITE. */
  private async spill(all: boolean): Promise<void> {
    const held = this.size - this.spooled;
    if (!this.spool || held === 0 || (!all && held < SPOOL_WRITE)) return;
    await this.toSpool(this.buffer!.subarray(0, held));
  }

  /** The pack's file, made with its first bytes. */
  private async openedSpool(): Promise<{ file: SpoolFile; hash: crypto.Hash }> {
    this.spool ??= { file: await this.openSpool!(), hash: crypto.createHash('sha256') };
    return this.spool;
  }

  private async toSpool(bytes: Uint8Array): Promise<void> {
    const spool = await this.openedSpool();
    spool.hash.update(bytes);
    await spool.file.append(bytes);
    this.spooled += bytes.length;
  }

  /** The encrypted bytes of a blob already added (for reading back what is not yet written). */
  async blobBytes(index: number): Promise<Buffer> {
    const { offset, length } = this.list[index]!;
    if (offset < this.spooled) return this.spool!.file.read(offset, length);
    return this.buffer!.subarray(offset - this.spooled, offset - this.spooled + length);
  }

  /**
   * The whole pack and its ID, the writer empty for the next. A pack in memory is a view of the
   * writer's buffer: handOver() before adding more, and write it.
   */
  async finish(key: MasterKey): Promise<FinishedPack> {
    const header = encodeHeader(this.list);
    const buffer = await this.room(0);
    const at = this.size - this.spooled;
    const headerLength = encryptInto(key, header, buffer, at);
    buffer.writeUInt32LE(headerLength, at + headerLength);
    const blobs = this.list;
    if (!this.spool) {
      const bytes = buffer.subarray(0, at + headerLength + HEADER_LENGTH_SIZE);
      return { id: sha256(bytes).toString('hex'), bytes, blobs };
    }
    this.size += headerLength + HEADER_LENGTH_SIZE;
    await this.spill(true);
    const { file, hash } = this.spool;
    this.empty();
    return { id: hash.digest('hex'), blobs, spool: file };
  }

  /**
   * Empties the writer for the next pack and lets go of its buffer, which holds the finished pack
   * until it is written; recycle() gives it back then, for a pack after the next. A spooled pack's
   * buffer stays: its bytes are in the file.
   */
  handOver(): Buffer | undefined {
    if (this.openSpool) return undefined;
    const buffer = this.buffer;
    this.empty();
    this.buffer = undefined;
    return buffer;
  }

  /** Takes back a buffer handed over (not one grown past the capacity) for the next pack to start in. */
  recycle(buffer: Buffer | undefined): void {
    if (this.keepsSpare && buffer && buffer.length <= this.capacity) this.spare = buffer;
  }

  /** Removes the file of a pack never finished (a backup that stops). */
  async discard(): Promise<void> {
    const spool = this.spool;
    this.empty();
    await spool?.file.discard();
  }

  /** No blobs, for the next pack (its file, if spooled, made with its first bytes). */
  private empty(): void {
    this.spool = undefined;
    this.list = [];
    this.size = this.spooled = 0;
  }
}

/** Room for the encrypted header of `count` blobs (each counted as compressed) and its length. */
function headerSpace(count: number): number {
  return count * COMPRESSED_ENTRY + OVERHEAD + HEADER_LENGTH_SIZE;
}

export function encodeHeader(blobs: PackedBlob[]): Buffer {
  let length = 0;
  for (const blob of blobs) length += blob.uncompressedLength ? COMPRESSED_ENTRY : PLAIN_ENTRY;
  const header = Buffer.alloc(length);
  let at = 0;
  for (const blob of blobs) {
    const compressed = blob.uncompressedLength !== undefined && blob.uncompressedLength !== 0;
    header[at] = (blob.type === 'data' ? 0 : 1) + (compressed ? 2 : 0);
    header.writeUInt32LE(blob.length, at + 1);
    if (compressed) header.writeUInt32LE(blob.uncompressedLength!, at + 5);
    header.write(blob.id, at + (compressed ? 9 : 5), 32, 'hex');
    at += compressed ? COMPRESSED_ENTRY : PLAIN_ENTRY;
  }
  return header;
}

/** A pack file's size as its blobs imply it: the blobs, the encrypted header of their entries, the header's length. */
export function packSize(blobs: readonly PackedBlob[]): number {
  let size = OVERHEAD + HEADER_LENGTH_SIZE;
  for (const blob of blobs) size += blob.length + (blob.uncompressedLength ? COMPRESSED_ENTRY : PLAIN_ENTRY);
  return size;
}

export class InvalidPackError extends Error {
  constructor(packId: string, reason: string) {
    super(`pack ${packId}: ${reason}`);
    this.name = 'InvalidPackError';
  }
}

/** Where the encrypted header sits, from the pack's last 4 bytes and its size. */
export function headerRange(packId: string, packSize: number, lastFour: Buffer): { offset: number; length: number } {
  const length = lastFour.readUInt32LE(0);
  if (length < OVERHEAD) throw new InvalidPackError(packId, `header length ${length} is too small`);
  if (length > packSize - HEADER_LENGTH_SIZE || length > MAX_HEADER_SIZE) throw new InvalidPackError(packId, `header length ${length} is larger than the file`);
  return { offset: packSize - HEADER_LENGTH_SIZE - length, length };
}

/** The blobs a pack's encrypted header lists, with their offsets. */
export function decodeHeader(key: MasterKey, packId: string, encryptedHeader: Buffer): PackedBlob[] {
  const header = decrypt(key, encryptedHeader, `header of pack ${packId}`);
  const blobs: PackedBlob[] = [];
  let offset = 0;
  for (let i = 0; i < header.length; ) {
    const kind = header[i]!;
    if (kind > 3) throw new InvalidPackError(packId, `invalid blob type ${kind} in header`);
    const compressed = kind >= 2;
    const size = compressed ? COMPRESSED_ENTRY : PLAIN_ENTRY;
    if (i + size > header.length) throw new InvalidPackError(packId, 'truncated header entry');
    const length = header.readUInt32LE(i + 1);
    const blob: PackedBlob = { type: kind % 2 === 0 ? 'data' : 'tree', id: '', offset, length };
    if (compressed) blob.uncompressedLength = header.readUInt32LE(i + 5);
    blob.id = header.subarray(i + (compressed ? 9 : 5), i + size).toString('hex');
    blobs.push(blob);
    offset += length;
    i += size;
  }
  return blobs;
}
