/**
 * Content-defined chunking, a port of restic/chunker v0.4.0 (Rabin fingerprints over a 64-byte
 * window). Same polynomial, same data: same chunk boundaries as restic, hence the same blob IDs.
 *
 * The polynomial has degree 53, beyond a JS number's exact range, so polynomial arithmetic is BigInt
 * (only when building the tables). The rolling digest runs in WebAssembly (./rolling-hash.ts), which
 * has 64-bit integers.
 */
import crypto from 'node:crypto';
import { compileHotLoop, webAssembly } from '../wasm-compilation.ts';
import { INPUT, INPUT_CAPACITY, OUT_TABLE, rollingHashModule, WINDOW, type RollingHashExports } from './rolling-hash.ts';

export const MIN_SIZE = 512 * 1024;
export const MAX_SIZE = 8 * 1024 * 1024;
const WINDOW_SIZE = 64;
/** Cut where the low 20 bits of the digest are zero: about 1 MiB on average. */
const SPLIT_MASK = (1 << 20) - 1;

function degree(x: bigint): number {
  return x === 0n ? -1 : x.toString(2).length - 1;
}

function polMod(x: bigint, d: bigint): bigint {
  const dd = degree(d);
  let diff = degree(x) - dd;
  while (x !== 0n && diff >= 0) {
    x ^= d << BigInt(diff);
    diff = degree(x) - dd;
  }
  return x;
}

function polMulMod(x: bigint, f: bigint, g: bigint): bigint {
  if (x === 0n || f === 0n) return 0n;
  let res = 0n;
  let a = polMod(x, g);
  for (let i = 0; i <= degree(f); i++) {
    if ((f >> BigInt(i)) & 1n) res ^= a;
    a = polMod(a << 1n, g);
  }
  return polMod(res, g);
}

function polGcd(x: bigint, f: bigint): bigint {
  while (f !== 0n) [x, f] = [f, polMod(x, f)];
  return x;
}

/** x^(2^p) - x mod g, as restic/chunker's qp. */
function qp(p: number, g: bigint): bigint {
  let res = 2n;
  for (let i = 1; i < 2 ** p; i *= 2) res = polMulMod(res, res, g);
  return polMod(res ^ 2n, g);
}

export function irreducible(x: bigint): boolean {
  for (let i = 1; i <= Math.floor(degree(x) / 2); i++) if (polGcd(x, qp(i, x)) !== 1n) return false;
  return true;
}

/** A random irreducible polynomial of degree 53, as restic/chunker's RandomPolynomial. */
export function randomPolynomial(): bigint {
  for (let i = 0; i < 1_000_000; i++) {
    let f = crypto.randomBytes(8).readBigUInt64LE(0) & ((1n << 54n) - 1n);
    f |= (1n << 53n) | 1n;
    if (irreducible(f)) return f;
  }
  throw new Error('unable to find a random irreducible polynomial');
}

/** restic/chunker's two tables, as its Go code builds them, in the layout the rolling hash reads. */
const tableCache = new Map<bigint, BigUint64Array>();

function tablesFor(pol: bigint): BigUint64Array {
  const cached = tableCache.get(pol);
  if (cached) return cached;
  const k = degree(pol);
  if (k < 9 || k > 53) throw new Error(`chunker polynomial 0x${pol.toString(16)} must have a degree from 9 to 53`);
  const tables = new BigUint64Array(512);
  for (let b = 0; b < 256; b++) {
    // The digest's contribution of byte b once it is WINDOW_SIZE-1 bytes old, to XOR it out.
    let h = polMod(BigInt(b), pol);
    for (let i = 0; i < WINDOW_SIZE - 1; i++) h = polMod(h << 8n, pol);
    tables[b] = h;
    // The reduction of the digest's top byte b once shifted past degree k, with b<<k itself to
    // cancel the bits shifted out.
    tables[256 + b] = polMod(BigInt(b) << BigInt(k), pol) | (BigInt(b) << BigInt(k));
  }
  tableCache.set(pol, tables);
  return tables;
}

/** The thread's one rolling hash: the chunker that pushed last has its state loaded in it. */
interface SharedRollingHash {
  exports: RollingHashExports;
  memory: Uint8Array;
  owner: Chunker | undefined;
  polynomial: bigint | undefined;
}
let shared: SharedRollingHash | undefined;

function sharedRollingHash(): SharedRollingHash {
  if (!shared) {
    const module = compileHotLoop(rollingHashModule({ minSize: MIN_SIZE, maxSize: MAX_SIZE, splitMask: SPLIT_MASK }));
    const exports = new webAssembly.Instance(module, {}).exports as RollingHashExports;
    shared = { exports, memory: new Uint8Array(exports.memory.buffer), owner: undefined, polynomial: undefined };
  }
  return shared;
}

/**
 * Finds chunk boundaries in a byte stream fed in pieces of any size. `push` returns the offsets
 * (within the pushed buffer) after which a chunk ends; the bytes after the last boundary belong to
 * the next chunk, which the caller ends itself at the end of the stream.
 *
 * Chunkers share one WebAssembly instance per thread: a backup makes one per file, and an instance
 * with its memory takes some 100 µs to make (100,000 small files took 57 s instead of 12). A
 * chunker's digest and window live in the instance while it is the last to push, and are copied
 * out when another one pushes.
 */
export class Chunker {
  private readonly polynomial: bigint;
  /** The digest's state while another chunker holds the instance: restic/chunker's reset state at first. */
  private readonly window = new Uint8Array(WINDOW_SIZE);
  private wpos = 0;
  private digest = 0n;
  /** Bytes to pass unhashed at the start of a chunk (the first MinSize - 64). */
  private pre = 0;
  /** Bytes of the current chunk so far. */
  private count = 0;

  constructor(polynomial: bigint) {
    tablesFor(polynomial); // an invalid polynomial fails here, not at the first push
    this.polynomial = polynomial;
    this.reset();
  }

  /** Bytes of the chunk in progress. */
  get pending(): number {
    return this.count;
  }

  /** Starts a new chunk (also what a new file does). */
  reset(): void {
    // restic/chunker's reset: an empty window and digest, then slide(1), which leaves the digest 1.
    this.window.fill(0);
    this.window[0] = 1;
    this.wpos = 1;
    this.digest = 1n;
    if (shared?.owner === this) shared.owner = undefined; // loaded again, reset, at the next push
    this.count = 0;
    this.pre = MIN_SIZE - WINDOW_SIZE;
  }

  /** The shared instance with this chunker's state in it. */
  private claim(): SharedRollingHash {
    const hash = sharedRollingHash();
    if (hash.owner === this) return hash;
    hash.owner?.saveFrom(hash);
    if (hash.polynomial !== this.polynomial) {
      new BigUint64Array(hash.memory.buffer, OUT_TABLE, 512).set(tablesFor(this.polynomial));
      hash.exports.shift.value = BigInt(degree(this.polynomial) - 8);
      hash.polynomial = this.polynomial;
    }
    hash.memory.set(this.window, WINDOW);
    hash.exports.wpos.value = this.wpos;
    hash.exports.digest.value = this.digest;
    hash.owner = this;
    return hash;
  }

  private saveFrom(hash: SharedRollingHash): void {
    this.window.set(hash.memory.subarray(WINDOW, WINDOW + WINDOW_SIZE));
    this.wpos = hash.exports.wpos.value;
    this.digest = hash.exports.digest.value;
  }

  /**
   * Feeds bytes; returns the end offsets in `data` of the chunks that end inside it. `digests`, when
   * given, receives the digest at each cut (restic/chunker's Chunk.Cut).
   */
  push(data: Uint8Array, digests?: bigint[]): number[] {
    const cuts: number[] = [];
    let i = 0;
    const n = data.length;
    // data[copiedFrom, copiedTo) sits in the module's memory at INPUT.
    let copiedFrom = 0;
    let copiedTo = 0;
    while (i < n) {
      if (this.pre > 0) {
        const skip = Math.min(this.pre, n - i);
        this.pre -= skip;
        this.count += skip;
        i += skip;
        continue;
      }
      const hash = this.claim();
      if (i >= copiedTo) {
        copiedFrom = i;
        copiedTo = Math.min(n, i + INPUT_CAPACITY);
        hash.memory.set(data.subarray(copiedFrom, copiedTo), INPUT);
      }
      const end = hash.exports.scan(INPUT + i - copiedFrom, INPUT + copiedTo - copiedFrom, this.count);
      if (end < 0) {
        this.count += copiedTo - i;
        i = copiedTo;
        continue;
      }
      i = end - INPUT + copiedFrom;
      cuts.push(i);
      digests?.push(hash.exports.digest.value);
      this.reset();
    }
    return cuts;
  }
}
