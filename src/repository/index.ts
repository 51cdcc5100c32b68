/**
 * Index files (doc/design.rst, "Indexing"): which pack holds each blob, where, how long, and its
 * uncompressed length when compressed. Opening a repository loads every index file.
 *
 * Memory: blobs are held in flat tables, 48 bytes a blob (binary ID, pack number, offset, length,
 * uncompressed length) sorted by ID and searched by bisection, not as one JS object per blob (about
 * 350 bytes each): a million blobs take about 48 MB. Blobs added since the last sort wait unsorted at
 * the tables' end, found through a small hash of their positions, and are merged in batches; those
 * read from index files go straight into the tables and are sorted once.
 */
import { HEX_VALUE, readIndexFile, UnusualIndexFile } from './index-file-reader.ts';
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

/** Blobs added one by one that wait unsorted before they are merged into the sorted table. */
const MERGE_AT = 50_000;
/** Slots of the hash of those blobs' positions: a power of two, at most a quarter used. */
const TAIL_SLOTS = 2 ** 18;
const ID_SIZE = 32;

const FIELD_NAMES = ['packs', 'offsets', 'lengths', 'uncompressed'] as const;

/** Entries a table grows by at least: growing in place costs no copy, so by little. */
const GROWTH = 65_536;

/** Entries a table's arrays reserve address space for (no memory until used): 16 million blobs of a type. */
const RESERVED_ENTRIES = 2 ** 24;

/**
 * `buffer` with room for `entries` of `size` bytes: resized in place (a resizable ArrayBuffer
 * commits pages as it grows), or, past its reserve, copied into one that reserves twice as much.
 * Copying a million entries into a larger table held both for a moment: 120 MB where 48 were used.
 */
function resized(buffer: ArrayBuffer, entries: number, size: number): ArrayBuffer {
  const bytes = entries * size;
  if (buffer.resizable && bytes <= buffer.maxByteLength) {
    buffer.resize(bytes);
    return buffer;
  }
  const larger = new ArrayBuffer(bytes, { maxByteLength: Math.max(2 * entries, RESERVED_ENTRIES) * size });
  new Uint8Array(larger).set(new Uint8Array(buffer));
  return larger;
}

/**
 * Positions start..end-1 ordered by the ID at each, ties by position. Numbers are sorted, not
 * Buffers compared: each key is an ID's first 29 bits above its position (24 bits), exact in a
 * double; only runs of equal prefixes (a few in a million) are then compared whole.
 */
function orderById(ids: Buffer, start: number, end: number): Uint32Array {
  const count = end - start;
  const compareIds = (a: number, b: number) => ids.compare(ids, b * ID_SIZE, (b + 1) * ID_SIZE, a * ID_SIZE, (a + 1) * ID_SIZE) || a - b;
  const order = new Uint32Array(count);
  if (count >= POSITION_RANGE) {
    for (let k = 0; k < count; k++) order[k] = start + k;
    return order.sort(compareIds);
  }
  const keys = new Float64Array(count);
  for (let k = 0; k < count; k++) keys[k] = (ids.readUInt32BE((start + k) * ID_SIZE) >>> 3) * POSITION_RANGE + k;
  keys.sort();
  for (let k = 0; k < count; k++) order[k] = start + (keys[k]! % POSITION_RANGE);
  for (let run = 0; run < count; ) {
    const prefix = Math.floor(keys[run]! / POSITION_RANGE);
    let next = run + 1;
    while (next < count && Math.floor(keys[next]! / POSITION_RANGE) === prefix) next += 1;
    if (next - run > 1) order.subarray(run, next).sort(compareIds);
    run = next;
  }
  return order;
}

/** Positions a sort key holds below an ID's prefix: 29 + 24 bits fit a double's 53. */
const POSITION_RANGE = 2 ** 24;

/** Entries to merge into a table: sorted, each new to it. */
interface Tail {
  ids: Buffer;
  packs: Uint32Array;
  offsets: Uint32Array;
  lengths: Uint32Array;
  uncompressed: Uint32Array;
  count: number;
}

/**
 * One blob type's entries: parallel flat arrays, sorted by ID up to `sorted`. Entries read from
 * index files are appended unsorted behind them and sorted once, on the next lookup or compact().
 * Entries added one by one (the packs a backup writes) are appended too, and found until the next
 * merge through `tail`, an open-addressing hash of their positions by their IDs' first four bytes:
 * no JS object, array or ID string is kept for each, as a Map of them did (some 150 bytes a blob).
 */
class BlobTable {
  private ids = Buffer.alloc(0);
  private packs = new Uint32Array(0);
  private offsets = new Uint32Array(0);
  private lengths = new Uint32Array(0);
  private uncompressed = new Uint32Array(0);
  private count = 0;
  private sorted = 0;
  /** Positions + 1 of the entries added since the last merge (0: an empty slot); made on first use. */
  private tail: Int32Array | undefined;
  /** How many entries `tail` finds: while the table has others unsorted, it finds none of them. */
  private hashed = 0;
  /** The ID being looked up, decoded. */
  private readonly lookup = Buffer.alloc(ID_SIZE);

  get size(): number {
    this.merge();
    return this.count;
  }

  add(id: string, pack: number, offset: number, length: number, uncompressedLength: number): void {
    // Entries appended from index files are sorted first: the unsorted part is then all hashed.
    if (this.hashed !== this.count - this.sorted) this.merge();
    const at = this.count;
    this.append(id, pack, offset, length, uncompressedLength);
    this.tail ??= new Int32Array(TAIL_SLOTS);
    let slot = this.ids.readUInt32BE(at * ID_SIZE) & (TAIL_SLOTS - 1);
    while (this.tail[slot] !== 0) slot = (slot + 1) & (TAIL_SLOTS - 1);
    this.tail[slot] = at + 1;
    this.hashed += 1;
    if (this.hashed >= MERGE_AT) this.merge();
  }

  /** The position of an ID among the entries added since the last merge, or -1. */
  private findInTail(id: Buffer): number {
    if (this.hashed === 0) return -1;
    for (let slot = id.readUInt32BE(0) & (TAIL_SLOTS - 1); this.tail![slot] !== 0; slot = (slot + 1) & (TAIL_SLOTS - 1)) {
      const at = this.tail![slot]! - 1;
      if (this.ids.compare(id, 0, ID_SIZE, at * ID_SIZE, at * ID_SIZE + ID_SIZE) === 0) return at;
    }
    return -1;
  }

  /** Entries held, sorted or not. */
  get length(): number {
    return this.count;
  }

  /** Drops the entries appended after the first `count` (an index file given up half read). */
  truncate(count: number): void {
    if (count < this.sorted + this.hashed) throw new Error('only entries appended from an index file can be dropped');
    this.count = Math.min(this.count, count);
  }

  /** append() of an ID given as 64 lowercase hex digits at `at` in `bytes` (checked by the reader). */
  appendHex(bytes: Buffer, at: number, pack: number, offset: number, length: number, uncompressedLength: number): void {
    this.grow(this.count + 1);
    const out = this.count * ID_SIZE;
    for (let i = 0; i < ID_SIZE; i++) this.ids[out + i] = (HEX_VALUE[bytes[at + 2 * i]!]! << 4) | HEX_VALUE[bytes[at + 2 * i + 1]!]!;
    this.setFields(pack, offset, length, uncompressedLength);
  }

  /** Appends an entry unsorted at the table's end (read from an index file, or through add()): no JS object per blob. */
  append(id: string, pack: number, offset: number, length: number, uncompressedLength: number): void {
    this.grow(this.count + 1);
    this.ids.write(id, this.count * ID_SIZE, ID_SIZE, 'hex');
    this.setFields(pack, offset, length, uncompressedLength);
  }

  private setFields(pack: number, offset: number, length: number, uncompressedLength: number): void {
    this.packs[this.count] = pack;
    this.offsets[this.count] = offset;
    this.lengths[this.count] = length;
    this.uncompressed[this.count] = uncompressedLength;
    this.count += 1;
  }

  /** Room for `capacity` entries: each array grows in place, keeping what it holds, by steps of GROWTH (grown pages are resident). */
  private grow(capacity: number): void {
    if (capacity <= this.packs.length) return;
    const size = Math.max(capacity, this.packs.length + GROWTH);
    this.ids = Buffer.from(resized(this.ids.buffer as ArrayBuffer, size, ID_SIZE));
    for (const field of FIELD_NAMES) this[field] = new Uint32Array(resized(this[field].buffer as ArrayBuffer, size, 4));
  }

  /**
   * Appends the recent entries, sorts what is unsorted (only that: the table may hold a million
   * blobs, the tail 50,000) and merges it into the sorted head in place, from the back: no second
   * table, no sort of the whole. Of a blob in two packs (restic allows it), the entry added first stays.
   */
  merge(): void {
    if (this.sorted === this.count) return;
    if (this.hashed > 0) {
      this.tail!.fill(0);
      this.hashed = 0;
    }
    const head = this.sorted;
    if (head === 0) return this.sortInPlace();
    const tail = this.newEntries(head);
    const ids = this.ids;
    let i = head - 1;
    let to = head + tail.count - 1;
    for (let j = tail.count - 1; j >= 0; j--) {
      // Head entries after the tail's move up, making room for it.
      while (i >= 0 && ids.compare(tail.ids, j * ID_SIZE, (j + 1) * ID_SIZE, i * ID_SIZE, (i + 1) * ID_SIZE) > 0) this.moveEntry(i--, to--);
      tail.ids.copy(ids, to * ID_SIZE, j * ID_SIZE, (j + 1) * ID_SIZE);
      for (const field of FIELD_NAMES) this[field][to] = tail[field][j]!;
      to -= 1;
    }
    this.count = this.sorted = head + tail.count;
  }

  /** The entries after `head`, sorted, without those the head holds or that came earlier in the tail. */
  private newEntries(head: number): Tail {
    const ids = this.ids;
    // Ties by position: the earlier entry first, and it is the one kept.
    const order = orderById(ids, head, this.count);
    const tail: Tail = { ids: Buffer.allocUnsafeSlow(order.length * ID_SIZE), packs: new Uint32Array(order.length), offsets: new Uint32Array(order.length), lengths: new Uint32Array(order.length), uncompressed: new Uint32Array(order.length), count: 0 };
    for (const at of order) {
      const from = at * ID_SIZE;
      if (tail.count > 0 && ids.compare(tail.ids, (tail.count - 1) * ID_SIZE, tail.count * ID_SIZE, from, from + ID_SIZE) === 0) continue;
      if (this.find(ids.subarray(from, from + ID_SIZE), head) >= 0) continue;
      ids.copy(tail.ids, tail.count * ID_SIZE, from, from + ID_SIZE);
      for (const field of FIELD_NAMES) tail[field][tail.count] = this[field][at]!;
      tail.count += 1;
    }
    return tail;
  }

  /**
   * Sorts the whole table where it lies (after loading the index files: a million entries), the
   * first of equal IDs kept: each position takes its entry along the permutation's cycles, so no
   * second table is made.
   */
  private sortInPlace(): void {
    const order = orderById(this.ids, 0, this.count);
    const done = new Uint8Array(this.count);
    const held = Buffer.allocUnsafe(ID_SIZE);
    const heldFields = new Uint32Array(FIELD_NAMES.length);
    for (let start = 0; start < this.count; start++) {
      if (done[start] || order[start] === start) continue;
      this.ids.copy(held, 0, start * ID_SIZE, (start + 1) * ID_SIZE);
      FIELD_NAMES.forEach((field, f) => (heldFields[f] = this[field][start]!));
      let to = start;
      for (let from = order[to]!; from !== start; to = from, from = order[to]!) {
        this.moveEntry(from, to);
        done[to] = 1;
      }
      held.copy(this.ids, to * ID_SIZE);
      FIELD_NAMES.forEach((field, f) => (this[field][to] = heldFields[f]!));
      done[to] = 1;
    }
    // Equal IDs are now side by side, the first added first: keep it.
    let kept = 0;
    for (let k = 0; k < this.count; k++) {
      if (kept > 0 && this.ids.compare(this.ids, (kept - 1) * ID_SIZE, kept * ID_SIZE, k * ID_SIZE, (k + 1) * ID_SIZE) === 0) continue;
      if (kept !== k) this.moveEntry(k, kept);
      kept += 1;
    }
    this.count = this.sorted = kept;
  }

  private moveEntry(from: number, to: number): void {
    this.ids.copy(this.ids, to * ID_SIZE, from * ID_SIZE, (from + 1) * ID_SIZE);
    for (const field of FIELD_NAMES) this[field][to] = this[field][from]!;
  }

  /**
   * Position of an ID in the sorted table, or -1. The search compares IDs' first four bytes as
   * numbers, and whole IDs only where those are equal: a Buffer.compare at each of its 18 steps (a
   * call into C++ each) took 4.0-4.9 µs a lookup among 200,000, this 1.6-1.9.
   */
  private find(id: Buffer, count = this.sorted): number {
    const ids = this.ids;
    const key = ((id[0]! << 24) | (id[1]! << 16) | (id[2]! << 8) | id[3]!) >>> 0;
    let low = 0;
    let high = count - 1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      const at = middle * ID_SIZE;
      const prefix = ((ids[at]! << 24) | (ids[at + 1]! << 16) | (ids[at + 2]! << 8) | ids[at + 3]!) >>> 0;
      const order = prefix !== key ? (prefix < key ? -1 : 1) : ids.compare(id, 0, ID_SIZE, at, at + ID_SIZE);
      if (order === 0) return middle;
      if (order < 0) low = middle + 1;
      else high = middle - 1;
    }
    return -1;
  }

  get(id: string): [number, number, number, number] | undefined {
    if (this.hashed !== this.count - this.sorted) this.merge();
    // Decoded into one buffer, no regular expression: an unchanged backup looks up every file's blobs.
    if (this.count === 0 || id.length !== 2 * ID_SIZE || this.lookup.write(id, 'hex') !== ID_SIZE) return undefined;
    const binary = this.lookup;
    // The table's first entry of an ID is the one kept: the sorted part's, when both have it.
    let at = this.find(binary);
    if (at < 0) at = this.findInTail(binary);
    return at < 0 ? undefined : [this.packs[at]!, this.offsets[at]!, this.lengths[at]!, this.uncompressed[at]!];
  }

  *packNumbers(): Iterable<number> {
    this.merge();
    for (let i = 0; i < this.count; i++) yield this.packs[i]!;
  }
}

export class Index {
  private readonly tables: Record<BlobType, BlobTable> = { data: new BlobTable(), tree: new BlobTable() };
  private readonly packIds: string[] = [];
  private readonly packNumbers = new Map<string, number>();

  get size(): number {
    return this.tables.data.size + this.tables.tree.size;
  }

  has(type: BlobType, id: string): boolean {
    return this.tables[type].get(id) !== undefined;
  }

  get(type: BlobType, id: string): IndexEntry | undefined {
    const found = this.tables[type].get(id);
    if (!found) return undefined;
    const [pack, offset, length, uncompressedLength] = found;
    const entry: IndexEntry = { type, pack: this.packIds[pack]!, offset, length };
    if (uncompressedLength) entry.uncompressedLength = uncompressedLength;
    return entry;
  }

  private packNumber(packId: string): number {
    let number = this.packNumbers.get(packId);
    if (number === undefined) {
      number = this.packIds.length;
      this.packIds.push(packId);
      this.packNumbers.set(packId, number);
    }
    return number;
  }

  addPack(packId: string, blobs: PackedBlob[]): void {
    const pack = this.packNumber(packId);
    for (const blob of blobs) {
      if (!/^[0-9a-f]{64}$/.test(blob.id)) throw new Error(`index: invalid blob ID ${JSON.stringify(blob.id)} in pack ${packId}`);
      if (blob.type !== 'data' && blob.type !== 'tree') throw new Error(`index: invalid blob type ${JSON.stringify(blob.type)} in pack ${packId}`);
      this.tables[blob.type].add(blob.id, pack, blob.offset, blob.length, blob.uncompressedLength ?? 0);
    }
  }

  /**
   * Adds what an index file lists (parsed leniently: null lists are empty), straight into the
   * tables. Read from its bytes (readIndexFile): JSON.parse made an object and an ID string for each
   * blob, some 10 MB of heap at once for a file of 50,000. A file the reader leaves (a string with
   * escapes where an ID is, a pack's blobs before its ID, a JSON error) is parsed whole instead.
   */
  addFile(plaintext: Buffer): void {
    const before = { data: this.tables.data.length, tree: this.tables.tree.length };
    try {
      readIndexFile(plaintext, (packId) => this.packNumber(packId), (type, idAt, pack, offset, length, uncompressedLength) => {
        this.tables[type].appendHex(plaintext, idAt, pack, offset, length, uncompressedLength);
      });
      return;
    } catch (error) {
      if (!(error instanceof UnusualIndexFile)) throw error;
      this.tables.data.truncate(before.data);
      this.tables.tree.truncate(before.tree);
    }
    const json = JSON.parse(plaintext.toString('utf8')) as IndexJson;
    for (const pack of json.packs ?? []) {
      const number = this.packNumber(pack.id);
      for (const b of pack.blobs ?? []) {
        if (!/^[0-9a-f]{64}$/.test(b.id)) throw new Error(`index: invalid blob ID ${JSON.stringify(b.id)} in pack ${pack.id}`);
        if (b.type !== 'data' && b.type !== 'tree') throw new Error(`index: invalid blob type ${JSON.stringify(b.type)} in pack ${pack.id}`);
        this.tables[b.type].append(b.id, number, b.offset, b.length, b.uncompressed_length ?? 0);
      }
    }
  }

  /** Sorts what was added into the compact tables (after loading the index files). */
  compact(): void {
    this.tables.data.merge();
    this.tables.tree.merge();
  }

  packs(): Set<string> {
    const packs = new Set<string>();
    for (const table of Object.values(this.tables)) for (const pack of table.packNumbers()) packs.add(this.packIds[pack]!);
    return packs;
  }
}

/** The most one blob's entry takes: its JSON, numbers of 10 digits, and a comma. */
const MAX_BLOB_JSON = 160;
/** The most a pack's JSON takes besides its blobs. */
const MAX_PACK_JSON = 100;

/**
 * Index files for new packs: restic's JSON, split every MAX_BLOBS_PER_INDEX_FILE blobs (a pack is
 * never split), one at a time. Each is written straight into one buffer, entry by entry: built as
 * objects, strings and their join, a file of 50,000 blobs took some 40 MB of heap at once.
 */
export function* encodeIndexFiles(packs: { id: string; blobs: PackedBlob[] }[]): Generator<Buffer> {
  let start = 0;
  while (start < packs.length) {
    let end = start;
    let blobs = 0;
    while (end < packs.length && (blobs === 0 || blobs + packs[end]!.blobs.length <= MAX_BLOBS_PER_INDEX_FILE)) blobs += packs[end++]!.blobs.length;
    yield encodeIndexFile(packs.slice(start, end), blobs);
    start = end;
  }
}

function encodeIndexFile(packs: { id: string; blobs: PackedBlob[] }[], blobs: number): Buffer {
  const file = Buffer.allocUnsafe(32 + packs.length * MAX_PACK_JSON + blobs * MAX_BLOB_JSON);
  let at = file.write('{"packs":[', 0, 'latin1');
  packs.forEach((pack, p) => {
    at += file.write(`${p > 0 ? ',' : ''}{"id":"${pack.id}","blobs":[`, at, 'latin1');
    pack.blobs.forEach((b, i) => {
      const uncompressed = b.uncompressedLength ? `,"uncompressed_length":${b.uncompressedLength}` : '';
      at += file.write(`${i > 0 ? ',' : ''}{"id":"${b.id}","type":"${b.type}","offset":${b.offset},"length":${b.length}${uncompressed}}`, at, 'latin1');
    });
    at += file.write(']}', at, 'latin1');
  });
  at += file.write(']}\n', at, 'latin1');
  return file.subarray(0, at);
}
