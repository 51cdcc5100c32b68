/**
 * Index files (doc/design.rst, "Indexing"): which pack holds each blob, where, how long, and its
 * uncompressed length when compressed. Opening a repository loads every index file.
 *
 * Memory: one Map entry per blob (about 200 bytes with its hex ID): a million blobs is about 200 MB.
 * Not bounded yet; a compact binary table (IDs as bytes, sorted, binary search) is the next step.
 */
import type { BlobType, PackedBlob } from './pack.ts';

export interface IndexEntry {
  type: BlobType;
  pack: string;
  offset: number;
  length: number;
  uncompressedLength?: number;
}

interface IndexJson {
  supersedes?: string[] | null;
  packs?: { id: string; blobs: { id: string; type: BlobType; offset: number; length: number; uncompressed_length?: number }[] | null }[] | null;
}

/** restic starts a new index file after this many blobs (its indexMaxBlobs). */
export const MAX_BLOBS_PER_INDEX_FILE = 50_000;

export class Index {
  private readonly data = new Map<string, IndexEntry>();
  private readonly tree = new Map<string, IndexEntry>();

  private map(type: BlobType): Map<string, IndexEntry> {
    return type === 'data' ? this.data : this.tree;
  }

  get size(): number {
    return this.data.size + this.tree.size;
  }

  has(type: BlobType, id: string): boolean {
    return this.map(type).has(id);
  }

  get(type: BlobType, id: string): IndexEntry | undefined {
    return this.map(type).get(id);
  }

  addPack(packId: string, blobs: PackedBlob[]): void {
    for (const blob of blobs) {
      const entry: IndexEntry = { type: blob.type, pack: packId, offset: blob.offset, length: blob.length };
      if (blob.uncompressedLength) entry.uncompressedLength = blob.uncompressedLength;
      this.map(blob.type).set(blob.id, entry);
    }
  }

  /** Adds what an index file lists (parsed leniently: null lists are empty). */
  addFile(plaintext: Buffer): void {
    const json = JSON.parse(plaintext.toString('utf8')) as IndexJson;
    for (const pack of json.packs ?? []) {
      this.addPack(
        pack.id,
        (pack.blobs ?? []).map((b) => ({ id: b.id, type: b.type, offset: b.offset, length: b.length, ...(b.uncompressed_length ? { uncompressedLength: b.uncompressed_length } : {}) })),
      );
    }
  }

  packs(): Set<string> {
    const packs = new Set<string>();
    for (const map of [this.data, this.tree]) for (const entry of map.values()) packs.add(entry.pack);
    return packs;
  }
}

/** Index files for new packs: restic's JSON, split every MAX_BLOBS_PER_INDEX_FILE blobs (a pack is never split). */
export function encodeIndexFiles(packs: { id: string; blobs: PackedBlob[] }[]): Buffer[] {
  const files: Buffer[] = [];
  let current: string[] = [];
  let blobs = 0;
  const flush = () => {
    if (current.length > 0) files.push(Buffer.from(`{"packs":[${current.join(',')}]}\n`));
    current = [];
    blobs = 0;
  };
  for (const pack of packs) {
    if (blobs > 0 && blobs + pack.blobs.length > MAX_BLOBS_PER_INDEX_FILE) flush();
    current.push(
      JSON.stringify({
        id: pack.id,
        blobs: pack.blobs.map((b) => ({ id: b.id, type: b.type, offset: b.offset, length: b.length, ...(b.uncompressedLength ? { uncompressed_length: b.uncompressedLength } : {}) })),
      }),
    );
    blobs += pack.blobs.length;
  }
  flush();
  return files;
}
