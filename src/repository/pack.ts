/**
 * Pack files (doc/design.rst, "Pack Format"): `blob || blob || ... || encrypted header || header
 * length (uint32 LE)`. Each blob is encrypted on its own; the header lists, per blob, its type, its
 * length in the pack, its uncompressed length when compressed, and its ID. The pack's ID is the
 * SHA-256 of the whole file.
 */
import { decrypt, encrypt, OVERHEAD, sha256, type MasterKey } from './crypto.ts';

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
/** restic's MaxHeaderSize. */
const MAX_HEADER_SIZE = 16 * 1024 * 1024 + HEADER_LENGTH_SIZE;

/** Blobs at least this large are kept as they come; smaller ones are copied into shared segments. */
const OWN_BUFFER_SIZE = 64 * 1024;
const SEGMENT_SIZE = 1024 * 1024;

/**
 * Collects encrypted blobs of one pack, in memory (a pack is about 16 MiB). Small blobs are copied
 * into 1 MiB segments: kept as they come, each would pin a whole slab of Node's Buffer pool (8 KiB
 * for a 60-byte blob), which for a pack of small files costs a hundred times its size.
 */
export class PackWriter {
  readonly blobs: PackedBlob[] = [];
  private readonly parts: Buffer[] = [];
  /** Where each blob's bytes are: [part, offset in it]. */
  private readonly where: [number, number][] = [];
  private segment: Buffer | undefined;
  private segmentUsed = 0;
  private size = 0;

  get length(): number {
    return this.size;
  }

  get count(): number {
    return this.blobs.length;
  }

  /** Adds an already encrypted (and maybe compressed) blob. */
  add(type: BlobType, id: string, encrypted: Buffer, uncompressedLength?: number): PackedBlob {
    const blob: PackedBlob = { type, id, offset: this.size, length: encrypted.length };
    if (uncompressedLength !== undefined) blob.uncompressedLength = uncompressedLength;
    if (encrypted.length >= OWN_BUFFER_SIZE) {
      this.closeSegment();
      this.where.push([this.parts.length, 0]);
      this.parts.push(encrypted);
    } else {
      if (!this.segment || this.segmentUsed + encrypted.length > this.segment.length) {
        this.closeSegment();
        this.segment = Buffer.allocUnsafeSlow(SEGMENT_SIZE);
        this.segmentUsed = 0;
      }
      encrypted.copy(this.segment, this.segmentUsed);
      this.where.push([this.parts.length, this.segmentUsed]);
      this.segmentUsed += encrypted.length;
    }
    this.blobs.push(blob);
    this.size += encrypted.length;
    return blob;
  }

  /** Ends the segment being filled: it becomes a part of the used length. */
  private closeSegment(): void {
    if (this.segment && this.segmentUsed > 0) this.parts.push(this.segment.subarray(0, this.segmentUsed));
    this.segment = undefined;
    this.segmentUsed = 0;
  }

  /** The encrypted bytes of a blob already added (for reading back what is not yet written). */
  blobBytes(index: number): Buffer {
    const [part, offset] = this.where[index]!;
    const length = this.blobs[index]!.length;
    const buffer = part < this.parts.length ? this.parts[part]! : this.segment!;
    return buffer.subarray(offset, offset + length);
  }

  /** The whole pack file and its ID. */
  finish(key: MasterKey): { id: string; bytes: Buffer; blobs: PackedBlob[] } {
    this.closeSegment();
    const header = encodeHeader(this.blobs);
    const encryptedHeader = encrypt(key, header);
    const length = Buffer.alloc(HEADER_LENGTH_SIZE);
    length.writeUInt32LE(encryptedHeader.length);
    const bytes = Buffer.concat([...this.parts, encryptedHeader, length]);
    return { id: sha256(bytes).toString('hex'), bytes, blobs: this.blobs };
  }
}

export function encodeHeader(blobs: PackedBlob[]): Buffer {
  const entries: Buffer[] = [];
  for (const blob of blobs) {
    const compressed = blob.uncompressedLength !== undefined && blob.uncompressedLength !== 0;
    const entry = Buffer.alloc(compressed ? COMPRESSED_ENTRY : PLAIN_ENTRY);
    entry[0] = (blob.type === 'data' ? 0 : 1) + (compressed ? 2 : 0);
    entry.writeUInt32LE(blob.length, 1);
    if (compressed) entry.writeUInt32LE(blob.uncompressedLength!, 5);
    Buffer.from(blob.id, 'hex').copy(entry, compressed ? 9 : 5);
    entries.push(entry);
  }
  return Buffer.concat(entries);
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
