/**
 * Content-defined chunking, a port of restic/chunker v0.4.0 (Rabin fingerprints over a 64-byte
 * window). Same polynomial, same data: same chunk boundaries as restic, hence the same blob IDs.
 *
 * The polynomial has degree 53, beyond a JS number's exact range, so polynomial arithmetic is BigInt
 * (only when building the tables). The rolling digest stays below 2^53 between bytes but needs XOR,
 * which JS numbers do on 32 bits only: it is kept as two 32-bit halves.
 */
import crypto from 'node:crypto';

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

interface Tables {
  outHi: Uint32Array;
  outLo: Uint32Array;
  modHi: Uint32Array;
  modLo: Uint32Array;
  polShift: number;
}

const tableCache = new Map<bigint, Tables>();

function tablesFor(pol: bigint): Tables {
  const cached = tableCache.get(pol);
  if (cached) return cached;
  const k = degree(pol);
  if (k < 9 || k > 53) throw new Error(`chunker polynomial 0x${pol.toString(16)} must have a degree from 9 to 53`);
  const tables: Tables = { outHi: new Uint32Array(256), outLo: new Uint32Array(256), modHi: new Uint32Array(256), modLo: new Uint32Array(256), polShift: k - 8 };
  for (let b = 0; b < 256; b++) {
    // The digest's contribution of byte b once it is WINDOW_SIZE-1 bytes old, to XOR it out.
    let h = polMod(BigInt(b), pol);
    for (let i = 0; i < WINDOW_SIZE - 1; i++) h = polMod(h << 8n, pol);
    tables.outHi[b] = Number(h >> 32n);
    tables.outLo[b] = Number(h & 0xffffffffn);
    // Only the reduction of b<<k: the b<<k term that restic's table also holds cancels the bits
    // shifted out, which here are masked off instead.
    const m = polMod(BigInt(b) << BigInt(k), pol);
    tables.modHi[b] = Number(m >> 32n);
    tables.modLo[b] = Number(m & 0xffffffffn);
  }
  tableCache.set(pol, tables);
  return tables;
}

/**
 * Finds chunk boundaries in a byte stream fed in pieces of any size. `push` returns the offsets
 * (within the pushed buffer) after which a chunk ends; the bytes after the last boundary belong to
 * the next chunk, which the caller ends itself at the end of the stream.
 */
export class Chunker {
  private readonly t: Tables;
  private readonly window = new Uint8Array(WINDOW_SIZE);
  private wpos = 0;
  private hi = 0;
  private lo = 0;
  /** Bytes to pass unhashed at the start of a chunk (the first MinSize - 64). */
  private pre = 0;
  /** Bytes of the current chunk so far. */
  private count = 0;
  private readonly hiMask: number;
  private readonly loMask: number;

  constructor(polynomial: bigint) {
    this.t = tablesFor(polynomial);
    const shift = this.t.polShift;
    // Masks keeping the digest's bits below polShift (the top 8 bits go through the mod table).
    this.hiMask = shift >= 32 ? (2 ** (shift - 32) - 1) >>> 0 : 0;
    this.loMask = shift >= 32 ? 0xffffffff : (2 ** shift - 1) >>> 0;
    this.reset();
  }

  /** Bytes of the chunk in progress. */
  get pending(): number {
    return this.count;
  }

  /** Starts a new chunk (also what a new file does). */
  reset(): void {
    this.window.fill(0);
    this.wpos = 0;
    this.hi = 0;
    this.lo = 0;
    this.count = 0;
    this.slide(1);
    this.pre = MIN_SIZE - WINDOW_SIZE;
  }

  private slide(b: number): void {
    const out = this.window[this.wpos]!;
    this.window[this.wpos] = b;
    this.wpos = (this.wpos + 1) % WINDOW_SIZE;
    this.hi ^= this.t.outHi[out]!;
    this.lo ^= this.t.outLo[out]!;
    this.update(b);
  }

  private update(b: number): void {
    const shift = this.t.polShift;
    const index = shift >= 32 ? (this.hi >>> (shift - 32)) & 0xff : ((this.hi << (32 - shift)) | (this.lo >>> shift)) & 0xff;
    const hi = this.hi & this.hiMask;
    const lo = this.lo & this.loMask;
    this.hi = (((hi << 8) | (lo >>> 24)) ^ this.t.modHi[index]!) >>> 0;
    this.lo = (((lo << 8) | b) ^ this.t.modLo[index]!) >>> 0;
  }

  /**
   * Feeds bytes; returns the end offsets in `data` of the chunks that end inside it. `digests`, when
   * given, receives the digest at each cut (restic/chunker's Chunk.Cut).
   */
  push(data: Uint8Array, digests?: bigint[]): number[] {
    const cuts: number[] = [];
    let i = 0;
    const n = data.length;
    while (i < n) {
      if (this.pre > 0) {
        const skip = Math.min(this.pre, n - i);
        this.pre -= skip;
        this.count += skip;
        i += skip;
        continue;
      }
      // Hot loop: the rolling hash with locals, written back at a cut or at the end.
      const { outHi, outLo, modHi, modLo, polShift } = this.t;
      const window = this.window;
      const hiMask = this.hiMask;
      const loMask = this.loMask;
      let hi = this.hi;
      let lo = this.lo;
      let wpos = this.wpos;
      let count = this.count;
      let cut = -1;
      for (; i < n; i++) {
        const b = data[i]!;
        const out = window[wpos]!;
        window[wpos] = b;
        wpos = (wpos + 1) & (WINDOW_SIZE - 1);
        hi ^= outHi[out]!;
        lo ^= outLo[out]!;
        const index = polShift >= 32 ? (hi >>> (polShift - 32)) & 0xff : ((hi << (32 - polShift)) | (lo >>> polShift)) & 0xff;
        const h = hi & hiMask;
        const l = lo & loMask;
        hi = (((h << 8) | (l >>> 24)) ^ modHi[index]!) >>> 0;
        lo = (((l << 8) | b) ^ modLo[index]!) >>> 0;
        count++;
        if (((lo & SPLIT_MASK) === 0 || count >= MAX_SIZE) && count >= MIN_SIZE) {
          cut = i + 1;
          break;
        }
      }
      if (cut >= 0) {
        cuts.push(cut);
        digests?.push((BigInt(hi) << 32n) | BigInt(lo));
        i = cut;
        this.reset();
      } else {
        this.hi = hi;
        this.lo = lo;
        this.wpos = wpos;
        this.count = count;
      }
    }
    return cuts;
  }
}
