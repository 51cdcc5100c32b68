/**
 * A directory's nodes held as the JSON its tree blob holds, not as Node objects. A file's Node is
 * about 1.3 KB of JS objects (a Buffer name, three BigInt times, a content array of hex strings);
 * its JSON is about 300 bytes. A directory of 100,000 files is held while it is archived, and its
 * parent snapshot's tree while it is compared: as objects, 130 MB each; as JSON, 35 MB (and the
 * new directory's JSON, placed in name order as a data mover reads, is kept compressed).
 *
 *   TreeNodes      the nodes of a directory being archived, encoded as they are placed;
 *   NodesByName    a parent snapshot's directory, each node decoded when it is looked up.
 */
import zlib from 'node:zlib';
import { decompress, FrameDecompressor, joinedBlob } from './compression.ts';
import { decodeNode, encodeNode, goQuote, type Node } from './tree.ts';
import { BACKSLASH, CLOSE_ARRAY, CLOSE_OBJECT, COMMA, OPEN_ARRAY, OPEN_OBJECT, QUOTE } from './json-bytes.ts';

/** Encoded nodes go into blocks of this size; a larger one gets a block of its own. */
const BLOCK_SIZE = 1024 * 1024;
const OPEN = Buffer.from('{"nodes":[');
const CLOSE = Buffer.from(']}\n');
/**
 * Nodes placed out of name order are written out this many bytes at a time, each window gathered in
 * one pass over the arena's blocks, which stay compressed: a directory of 200,000 files held 70 MB
 * of JSON for its sort, and now some 9 MB and one window.
 */
const SORT_WINDOW_BYTES = 16 * 1024 * 1024;

/** Bytes copied into blocks of BLOCK_SIZE (a larger piece gets a block of its own), each block filled from its start. */
class Arena {
  private readonly blocks: Buffer[] = [];
  /** Bytes used in each block. */
  private readonly used: number[] = [];
  /** Blocks held compressed, by index: their bytes are read only in order, by contents(). */
  private readonly packed = new Set<number>();
  private readonly packing: boolean;
  private decompressor: FrameDecompressor | undefined;
  private scratch: Buffer | undefined;

  /** `packing`: a block is compressed once full (for JSON read mostly in order, by contents()). */
  constructor(packing = false) {
    this.packing = packing;
  }

  /** Copies `bytes`, then `suffix` if given, into one block; returns the block and the offset they start at. */
  append(bytes: Buffer, suffix?: number): [number, number] {
    const size = bytes.length + (suffix === undefined ? 0 : 1);
    let last = this.blocks.length - 1;
    if (last < 0 || this.used[last]! + size > this.blocks[last]!.length) {
      if (last >= 0 && this.packing) this.pack(last);
      this.blocks.push(Buffer.allocUnsafeSlow(Math.max(size, BLOCK_SIZE)));
      this.used.push(0);
      last += 1;
    }
    const at = this.used[last]!;
    bytes.copy(this.blocks[last]!, at);
    if (suffix !== undefined) this.blocks[last]![at + bytes.length] = suffix;
    this.used[last] = at + size;
    return [last, at];
  }

  /** Bytes at a place append() gave, where they lie; the arena must not be packing. */
  slice(block: number, at: number, length: number): Buffer {
    return this.blocks[block]!.subarray(at, at + length);
  }

  /** Bytes at a place append() gave, decompressing their block if it is packed (for the odd node read out of turn). */
  read(block: number, at: number, length: number): Buffer {
    const bytes = this.packed.has(block) ? decompress(this.blocks[block]!) : this.blocks[block]!;
    return bytes.subarray(at, at + length);
  }

  /**
   * Every block's bytes, in order, each valid until the next is asked for: a packed block is
   * decompressed into the same buffer each time (a directory of 100,000 files is 35 of them, read
   * twice to hash and compress; a buffer of its own each made 70 MB of garbage at once).
   */
  *contents(): Generator<Buffer> {
    for (const [index, block] of this.blocks.entries()) {
      if (!this.packed.has(index)) {
        yield block.subarray(0, this.used[index]);
        continue;
      }
      this.scratch ??= Buffer.allocUnsafeSlow(BLOCK_SIZE);
      yield (this.decompressor ??= new FrameDecompressor()).decompress(block, this.used[index]!, this.scratch);
    }
  }

  get blockCount(): number {
    return this.blocks.length;
  }

  /** The bytes its blocks take, packed or not. */
  get heldBytes(): number {
    return this.blocks.reduce((sum, block) => sum + block.length, 0);
  }

  private pack(index: number): void {
    this.blocks[index] = zlib.zstdCompressSync(this.blocks[index]!.subarray(0, this.used[index]), PACK_OPTIONS);
    this.packed.add(index);
  }
}

/** One node from its JSON bytes. */
export function decodeNodeJson(json: Buffer): Node {
  return decodeNode(JSON.parse(json.toString('utf8')) as Record<string, unknown>);
}

/** Fast: a tree's JSON shrinks some 8 times at level 1, and the blocks are read back once. */
const PACK_OPTIONS = { params: { [zlib.constants.ZSTD_c_compressionLevel]: 1 } };

/** A node's JSON block that is one of `sources`, not the arena's. */
const BORROWED = 0x80000000;

/** Per node: the block and offset of its name, the name's length, the block and offset of its JSON, the JSON's length. */
const FIELDS = 6;

export class TreeNodes {
  private readonly names = new Arena();
  /**
   * Each node's JSON followed by a comma: nodes placed in order are the tree's bytes as they lie,
   * and its full blocks are kept compressed (35 MB of JSON for 100,000 files take some 5).
   */
  private readonly json = new Arena(true);
  private readonly sortWindowBytes: number;
  private entries = new Uint32Array(FIELDS * 64);
  private entryCount = 0;
  private jsonBytes = 0;
  /** Placed in strictly increasing name order so far, none taken back: the tree needs no sort. */
  private ordered = true;
  /** Nodes taken back out (take()), by index: left out of the tree. */
  private readonly removed = new Set<number>();
  /** What borrowed nodes' JSON lies in (addBorrowed). */
  private readonly sources: ArrayBuffer[] = [];
  /** Name (latin1) -> index of the node placed under it last, built on the first take(). */
  private byName: Map<string, number> | undefined;

  /** `sortWindowBytes`: how much of a tree placed out of order is gathered at a time (tests give less). */
  constructor(options: { sortWindowBytes?: number } = {}) {
    this.sortWindowBytes = options.sortWindowBytes ?? SORT_WINDOW_BYTES;
  }

  get count(): number {
    return this.entryCount - this.removed.size;
  }

  /** The bytes the nodes' own JSON takes in memory (borrowed nodes' not counted): compressed, far less than `length`. */
  get heldJsonBytes(): number {
    return this.json.heldBytes;
  }

  /**
   * Takes a placed node back out by name, decoded, or undefined: for what a tar changes after
   * placing it (a hard link's target, a directory it comes back to). Such a tree is then sorted.
   */
  take(name: Buffer): Node | undefined {
    if (!this.byName) {
      this.byName = new Map();
      for (let index = 0; index < this.entryCount; index++) if (!this.removed.has(index)) this.byName.set(this.name(index).toString('latin1'), index);
    }
    const key = name.toString('latin1');
    const index = this.byName.get(key);
    if (index === undefined) return undefined;
    this.ordered = false;
    const node = decodeNodeJson(this.nodeJson(index));
    this.byName.delete(key);
    this.removed.add(index);
    this.jsonBytes -= this.field(index, 5);
    return node;
  }

  add(node: Node): void {
    this.addEncoded(node.name, Buffer.from(encodeNode(node)));
  }

  /** Places a node already encoded, named `name`: its JSON is copied. */
  addEncoded(name: Buffer, json: Buffer): void {
    if (this.ordered && this.entryCount > 0 && Buffer.compare(this.name(this.entryCount - 1), name) >= 0) this.ordered = false;
    const [jsonBlock, jsonAt] = this.json.append(json, COMMA);
    this.addEntry(name, jsonBlock, jsonAt, json.length);
  }

  /**
   * Places a node as a parent snapshot's tree holds it, named `name`: its JSON is referred to where
   * it lies, not copied, and must not change while this lives. An unchanged directory of 200,000
   * files held its tree twice (60 MB each) without this.
   */
  addBorrowed(name: Buffer, json: Buffer): void {
    // The arena no longer holds the tree's bytes in order.
    this.ordered = false;
    if (this.sources.at(-1) !== json.buffer) this.sources.push(json.buffer as ArrayBuffer);
    this.addEntry(name, BORROWED | (this.sources.length - 1), json.byteOffset, json.length);
  }

  private addEntry(name: Buffer, jsonBlock: number, jsonAt: number, jsonLength: number): void {
    const [nameBlock, nameAt] = this.names.append(name);
    if (FIELDS * (this.entryCount + 1) > this.entries.length) {
      const grown = new Uint32Array(this.entries.length * 2);
      grown.set(this.entries);
      this.entries = grown;
    }
    this.entries.set([nameBlock, nameAt, name.length, jsonBlock, jsonAt, jsonLength], FIELDS * this.entryCount);
    this.byName?.set(name.toString('latin1'), this.entryCount);
    this.entryCount += 1;
    this.jsonBytes += jsonLength;
  }

  private field(index: number, field: number): number {
    return this.entries[FIELDS * index + field]!;
  }

  private name(index: number): Buffer {
    return this.names.slice(this.field(index, 0), this.field(index, 1), this.field(index, 2));
  }

  private nodeJson(index: number): Buffer {
    const block = this.field(index, 3);
    if (block & BORROWED) return Buffer.from(this.sources[block & ~BORROWED]!, this.field(index, 4), this.field(index, 5));
    return this.json.read(block, this.field(index, 4), this.field(index, 5));
  }

  /** The tree blob's length in bytes. */
  get length(): number {
    return OPEN.length + this.jsonBytes + Math.max(0, this.count - 1) + CLOSE.length;
  }

  /**
   * The tree blob, `{"nodes":[...]}\n` sorted by name as bytes, as pieces (a BlobSource: each
   * valid until the next is asked for): the blocks as they are when the nodes were placed in order,
   * else windows of the sorted nodes. Two nodes of one name are an error.
   */
  *pieces(): Generator<Buffer> {
    yield OPEN;
    if (this.ordered) {
      // Every node's JSON is followed by its comma; the last one's is left out.
      const last = this.json.blockCount - 1;
      let index = 0;
      for (const block of this.json.contents()) yield index++ === last ? block.subarray(0, block.length - 1) : block;
    } else {
      yield* this.sortedWindows();
    }
    yield CLOSE;
  }

  /**
   * The nodes in name order, a window of up to sortWindowBytes at a time (or one node larger than
   * that), each gathered in one pass over the nodes as placed: the arena's blocks are decompressed
   * in turn and every node of the window copied to its place.
   */
  private *sortedWindows(): Generator<Buffer> {
    const order = this.sorted();
    const rank = new Int32Array(this.entryCount).fill(-1);
    // Where each node starts in the nodes' bytes, its comma first (but the first node's).
    const start = new Float64Array(order.length + 1);
    let largest = 0;
    for (const [position, index] of order.entries()) {
      rank[index] = position;
      const length = this.field(index, 5);
      largest = Math.max(largest, length);
      start[position + 1] = start[position]! + (position > 0 ? 1 : 0) + length;
    }
    const window = Buffer.allocUnsafeSlow(Math.max(largest + 1, Math.min(this.sortWindowBytes, start[order.length]!)));
    for (let first = 0; first < order.length; ) {
      let end = first + 1;
      while (end < order.length && start[end + 1]! - start[first]! <= window.length) end++;
      const base = start[first]!;
      const blocks = this.json.contents();
      let blockIndex = -1;
      let block: Buffer | undefined;
      for (let index = 0; index < this.entryCount; index++) {
        const position = rank[index]!;
        if (position < first || position >= end) continue;
        let at = start[position]! - base;
        if (position > 0) window[at++] = COMMA;
        const jsonBlock = this.field(index, 3);
        const jsonAt = this.field(index, 4);
        const length = this.field(index, 5);
        if (jsonBlock & BORROWED) {
          window.set(new Uint8Array(this.sources[jsonBlock & ~BORROWED]!, jsonAt, length), at);
          continue;
        }
        // The arena's blocks hold the nodes in the order they were placed: each is read once a pass.
        while (blockIndex < jsonBlock) {
          block = blocks.next().value as Buffer;
          blockIndex += 1;
        }
        block!.copy(window, at, jsonAt, jsonAt + length);
      }
      blocks.return(undefined);
      yield window.subarray(0, start[end]! - base);
      first = end;
    }
  }

  /** Indexes of the nodes kept, by name as bytes. */
  private sorted(): Int32Array {
    // The names side by side in one buffer, sorted by their bytes without a string or a Map for each:
    // for 200,000 names those took 21 MB, at the moment the tree is written.
    const kept = this.entryCount - this.removed.size;
    const indexes = new Int32Array(kept);
    const starts = new Uint32Array(kept + 1);
    let total = 0;
    for (let index = 0, k = 0; index < this.entryCount; index++) {
      if (this.removed.has(index)) continue;
      indexes[k++] = index;
      total += this.field(index, 2);
    }
    const names = Buffer.allocUnsafe(total);
    for (let k = 0; k < kept; k++) starts[k + 1] = starts[k]! + this.name(indexes[k]!).copy(names, starts[k]!);
    const order = sortByBytes(names, starts);
    if (order.duplicate !== undefined) {
      const name = names.subarray(starts[order.duplicate]!, starts[order.duplicate + 1]!);
      throw new Error(`two entries named ${JSON.stringify(goQuote(name))} in one directory`);
    }
    return order.sorted.map((k) => indexes[k]!);
  }
}

/**
 * The order of the byte strings `bytes[starts[k]..starts[k + 1])` (a shorter one before those it
 * begins), by a most-significant-byte radix sort; a small range is finished by insertion. Says which
 * string occurs twice, if one does.
 */
export function sortByBytes(bytes: Uint8Array, starts: Uint32Array): { sorted: Int32Array; duplicate?: number } {
  const count = starts.length - 1;
  const sorted = Int32Array.from({ length: count }, (_, k) => k);
  const scratch = new Int32Array(count);
  const length = (k: number) => starts[k + 1]! - starts[k]!;
  /** The byte at `depth` plus one, or 0 past the string's end. */
  const digit = (k: number, depth: number) => (depth < length(k) ? bytes[starts[k]! + depth]! + 1 : 0);
  const compareFrom = (a: number, b: number, depth: number) => {
    const la = length(a);
    const lb = length(b);
    for (let d = depth; d < la && d < lb; d++) {
      const difference = bytes[starts[a]! + d]! - bytes[starts[b]! + d]!;
      if (difference !== 0) return difference;
    }
    return la - lb;
  };
  const ranges: number[] = [0, count, 0];
  while (ranges.length > 0) {
    const depth = ranges.pop()!;
    const end = ranges.pop()!;
    const start = ranges.pop()!;
    if (end - start <= 32) {
      for (let i = start + 1; i < end; i++) {
        const k = sorted[i]!;
        let j = i - 1;
        for (; j >= start; j--) {
          const order = compareFrom(sorted[j]!, k, depth);
          if (order === 0) return { sorted, duplicate: k };
          if (order < 0) break;
          sorted[j + 1] = sorted[j]!;
        }
        sorted[j + 1] = k;
      }
      continue;
    }
    const counts = new Int32Array(258);
    for (let i = start; i < end; i++) counts[digit(sorted[i]!, depth) + 1]! += 1;
    for (let d = 1; d < 258; d++) counts[d]! += counts[d - 1]!;
    // counts[d] is now where digit d's strings start, from `start`.
    for (let i = start; i < end; i++) {
      const k = sorted[i]!;
      scratch[start + counts[digit(k, depth)]!++] = k;
    }
    sorted.set(scratch.subarray(start, end), start);
    // After the scatter, counts[d] is where digit d + 1's strings start: digit 0 (ended here) first.
    if (counts[0]! > 1) return { sorted, duplicate: sorted[start + 1]! };
    for (let d = 1; d < 257; d++) {
      const from = start + counts[d - 1]!;
      const to = start + counts[d]!;
      if (to - from > 1) ranges.push(from, to, depth + 1);
    }
  }
  return { sorted };
}

/** The nodes as a TreeNodes (a TreeNodes as it is). */
export function treeNodesOf(nodes: Node[] | TreeNodes): TreeNodes {
  if (nodes instanceof TreeNodes) return nodes;
  const tree = new TreeNodes();
  for (const node of nodes) tree.add(node);
  return tree;
}

/** A tree blob of nodes, sorted by name as bytes; two nodes with one name are an error. */
export function encodeTree(nodes: Node[] | TreeNodes): Buffer {
  return joinedBlob(treeNodesOf(nodes));
}

/**
 * A tree blob's nodes by name. The blob is kept; each node's place in it is found by one pass over
 * its bytes, and the node is decoded only when it is looked up. Names are looked up as bytes in a
 * table of their own (open addressing over an FNV-1a hash): a Map keyed by strings made a string of
 * every name twice, at 1-2 µs a file of an unchanged backup of many small files.
 */
export class NodesByName {
  private readonly blob: Buffer;
  /** Per node, four numbers: [start, end) of its JSON in the blob, then [start, end) of its name's bytes there, or -1 where the name had to be decoded (in `decodedNames`). */
  private readonly spans: Int32Array;
  /** Names of the nodes whose JSON name has escapes or does not come first, decoded, by node index. */
  private readonly decodedNames = new Map<number, Buffer>();
  /** Node index + 1 by hash slot; 0 is an empty slot. */
  private readonly slots: Int32Array;
  private readonly duplicates: boolean;

  constructor(blob: Buffer) {
    this.blob = blob;
    const spans: number[] = [];
    for (const [start, end] of nodeSpans(blob)) {
      const name = rawNameSpan(blob, start, end);
      if (name) spans.push(start, end, name[0], name[1]);
      else {
        this.decodedNames.set(spans.length / 4, decodeNodeJson(blob.subarray(start, end)).name);
        spans.push(start, end, -1, -1);
      }
    }
    this.spans = Int32Array.from(spans);
    const count = spans.length / 4;
    let size = 16;
    while (size < count * 2) size *= 2;
    this.slots = new Int32Array(size);
    let duplicates = false;
    for (let index = 0; index < count; index++) {
      const name = this.decodedNames.get(index) ?? blob.subarray(this.spans[4 * index + 2], this.spans[4 * index + 3]);
      const slot = this.slotOf(fnv1a(name, 0, name.length), name);
      // A name twice: the later node is found, as a Map's last set would be.
      if (this.slots[slot] !== 0) duplicates = true;
      this.slots[slot] = index + 1;
    }
    this.duplicates = duplicates;
  }

  /** Nodes in the tree, each of its own name; -1 for a tree that names one twice, which no other tree equals. */
  get count(): number {
    return this.duplicates ? -1 : this.spans.length / 4;
  }

  /** Bytes of the tree blob. */
  get bytes(): number {
    return this.blob.length;
  }

  /** Every node, decoded, in the tree's order. */
  *nodes(): Generator<Node> {
    for (let i = 0; i < this.spans.length; i += 4) yield decodeNodeJson(this.blob.subarray(this.spans[i], this.spans[i + 1]));
  }

  /** The node named `name` (raw bytes), or undefined. */
  get(name: Buffer): Node | undefined {
    const json = this.json(name);
    return json && decodeNodeJson(json);
  }

  /** The JSON of the node named `name` (raw bytes) as the tree holds it, or undefined. */
  json(name: Buffer): Buffer | undefined {
    const entry = this.slots[this.slotOf(fnv1a(name, 0, name.length), name)]!;
    if (entry === 0) return undefined;
    return this.blob.subarray(this.spans[4 * (entry - 1)], this.spans[4 * (entry - 1) + 1]);
  }

  /** The slot that holds `name`, or the empty slot where it would go. */
  private slotOf(hash: number, name: Buffer): number {
    const mask = this.slots.length - 1;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const entry = this.slots[slot]!;
      if (entry === 0 || this.nameIs(entry - 1, name)) return slot;
    }
  }

  private nameIs(index: number, name: Buffer): boolean {
    const start = this.spans[4 * index + 2]!;
    if (start < 0) return this.decodedNames.get(index)!.equals(name);
    if (this.spans[4 * index + 3]! - start !== name.length) return false;
    const blob = this.blob;
    for (let i = 0; i < name.length; i++) if (blob[start + i] !== name[i]) return false;
    return true;
  }
}

/** 32-bit FNV-1a of bytes [start, end). */
function fnv1a(bytes: Buffer, start: number, end: number): number {
  let hash = 0x811c9dc5;
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193);
  return hash >>> 0;
}

/** `"<64 hex digits>"` */
const QUOTED_ID_LENGTH = 66;

/**
 * The content IDs of a node's JSON whose content, at `at`, is its last field: `[]}` or
 * `["<id>","<id>"]}` and nothing after. Undefined for anything else.
 */
export function trailingContent(json: Buffer, at: number): string[] | undefined {
  const ids: string[] = [];
  if (json[at++] !== OPEN_ARRAY) return undefined;
  if (json[at] === CLOSE_ARRAY) at += 1;
  else {
    for (;;) {
      if (json[at] !== QUOTE || json[at + QUOTED_ID_LENGTH - 1] !== QUOTE) return undefined;
      ids.push(json.toString('latin1', at + 1, at + QUOTED_ID_LENGTH - 1));
      at += QUOTED_ID_LENGTH;
      const next = json[at++];
      if (next === CLOSE_ARRAY) break;
      if (next !== COMMA) return undefined;
    }
  }
  return json[at] === CLOSE_OBJECT && at + 1 === json.length ? ids : undefined;
}

/**
 * [start, end) of each object in the tree's `nodes` array, found by depth over the bytes outside
 * strings: a node is an object opened at depth 2 (inside `{"nodes":[`). A tree blob holds only
 * `nodes`, as every restic version writes it.
 */
function* nodeSpans(blob: Buffer): Generator<[number, number]> {
  let depth = 0;
  let start = 0;
  for (let i = 0; i < blob.length; i++) {
    const byte = blob[i]!;
    if (byte === QUOTE) {
      for (i++; i < blob.length && blob[i] !== QUOTE; i++) if (blob[i] === BACKSLASH) i++;
    } else if (byte === OPEN_OBJECT || byte === OPEN_ARRAY) {
      if (depth === 2 && byte === OPEN_OBJECT) start = i;
      depth += 1;
    } else if (byte === CLOSE_OBJECT || byte === CLOSE_ARRAY) {
      depth -= 1;
      if (depth === 2 && byte === CLOSE_OBJECT) yield [start, i + 1];
    }
  }
}

const NAME_FIRST = Buffer.from('{"name":"');

/** [start, end) of a node's name bytes in the blob, where restic puts it (first) and with no escapes; else undefined (decode the node). */
function rawNameSpan(blob: Buffer, start: number, end: number): [number, number] | undefined {
  for (let i = 0; i < NAME_FIRST.length; i++) if (blob[start + i] !== NAME_FIRST[i]) return undefined;
  let close = start + NAME_FIRST.length;
  for (; close < end && blob[close] !== QUOTE; close++) if (blob[close] === BACKSLASH) return undefined;
  return [start + NAME_FIRST.length, close];
}
