/**
 * The chunker's hot loop, restic/chunker's rolling Rabin digest, as a WebAssembly function. In
 * JavaScript the 64-bit digest has to be kept as two 32-bit halves; WebAssembly has 64-bit integers,
 * and the same loop runs 3-4 times as fast there (7 ns a byte against 2 on this project's bench
 * machine), which is most of a first backup's CPU.
 *
 * The module is a few hundred bytes, encoded here rather than built by a toolchain. In the text
 * format it reads:
 *
 *   (memory 17)                                   ;; tables, window, and up to INPUT_CAPACITY bytes
 *   (global $digest (mut i64)) (global $wpos (mut i32)) (global $shift (mut i64))
 *   (func $scan (param $p i32) (param $end i32) (param $count i32) (result i32)
 *     (local $d i64) (local $w i32) (local $b i32) (local $out i32)
 *     $d = $digest; $w = $wpos
 *     block $exhausted
 *       loop $next
 *         br_if $exhausted ($p >= $end)
 *         $b = load8_u($p); $out = load8_u(WINDOW + $w); store8(WINDOW + $w, $b); $w = ($w + 1) & 63
 *         $d ^= load64(OUT_TABLE + $out * 8)
 *         $d = (($d << 8) | $b) ^ load64(MOD_TABLE + ($d >> $shift) * 8)
 *         $p += 1; $count += 1
 *         br_if $next ($count < MIN_SIZE)
 *         br_if $next (($d & SPLIT_MASK) != 0 & $count < MAX_SIZE)
 *         $digest = $d; $wpos = $w; return $p                 ;; a cut after byte $p - 1
 *       end
 *     end
 *     $digest = $d; $wpos = $w; return -1)
 */

/** Byte offsets in the module's memory. */
export const OUT_TABLE = 0;
export const MOD_TABLE = 2048;
export const WINDOW = 4096;
export const INPUT = 8192;
/** Bytes scanned per call at most: pushes longer than this are copied in and scanned in parts. */
export const INPUT_CAPACITY = 1024 * 1024;
const MEMORY_PAGES = Math.ceil((INPUT + INPUT_CAPACITY) / 65536);

export interface RollingHashExports {
  memory: { buffer: ArrayBuffer };
  digest: { value: bigint };
  wpos: { value: number };
  shift: { value: bigint };
  /** Hashes bytes [p, end) of memory; returns the offset after a cut, or -1 with none. */
  scan(p: number, end: number, count: number): number;
}

interface Limits {
  minSize: number;
  maxSize: number;
  splitMask: number;
}

const I32 = 0x7f;
const I64 = 0x7e;
const VOID_BLOCK = 0x40;
const op = {
  block: 0x02, loop: 0x03, end: 0x0b, brIf: 0x0d, return: 0x0f,
  localGet: 0x20, localSet: 0x21, globalGet: 0x23, globalSet: 0x24,
  i64Load: 0x29, i32Load8U: 0x2d, i32Store8: 0x3a, i32Const: 0x41, i64Const: 0x42,
  i32LtU: 0x49, i32GeU: 0x4f, i64Ne: 0x52,
  i32Add: 0x6a, i32And: 0x71, i32Shl: 0x74,
  i64And: 0x83, i64Or: 0x84, i64Xor: 0x85, i64Shl: 0x86, i64ShrU: 0x88,
  i32WrapI64: 0xa7, i64ExtendI32U: 0xad,
} as const;

function unsignedLeb(value: number): number[] {
  const bytes: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    bytes.push(byte);
  } while (value !== 0);
  return bytes;
}

function signedLeb(value: number): number[] {
  const bytes: number[] = [];
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    const done = (value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0);
    bytes.push(done ? byte : byte | 0x80);
    if (done) return bytes;
  }
}

const vector = (items: number[][]): number[] => [...unsignedLeb(items.length), ...items.flat()];
const name = (text: string): number[] => vector([...text].map((c) => [c.charCodeAt(0)]));
const section = (id: number, content: number[]): number[] => [id, ...unsignedLeb(content.length), ...content];
/** A memory access's immediates: alignment (log2) and offset. */
const memarg = (align: number, offset: number): number[] => [align, ...unsignedLeb(offset)];

// Parameters and locals of $scan, by index.
const P = 0, END = 1, COUNT = 2, D = 3, W = 4, B = 5, OUT = 6;
// Globals, by index.
const DIGEST = 0, WPOS = 1, SHIFT = 2;

function scanBody({ minSize, maxSize, splitMask }: Limits): number[] {
  const get = (local: number) => [op.localGet, local];
  const set = (local: number) => [op.localSet, local];
  const i32 = (value: number) => [op.i32Const, ...signedLeb(value)];
  const i64 = (value: number) => [op.i64Const, ...signedLeb(value)];
  const saveState = [...get(D), op.globalSet, DIGEST, ...get(W), op.globalSet, WPOS];
  const code = [
    op.globalGet, DIGEST, ...set(D), op.globalGet, WPOS, ...set(W),
    op.block, VOID_BLOCK,
    op.loop, VOID_BLOCK,
    ...get(P), ...get(END), op.i32GeU, op.brIf, 1,
    ...get(P), op.i32Load8U, ...memarg(0, 0), ...set(B),
    ...get(W), op.i32Load8U, ...memarg(0, WINDOW), ...set(OUT),
    ...get(W), ...get(B), op.i32Store8, ...memarg(0, WINDOW),
    ...get(W), ...i32(1), op.i32Add, ...i32(63), op.i32And, ...set(W),
    ...get(D), ...get(OUT), ...i32(3), op.i32Shl, op.i64Load, ...memarg(3, OUT_TABLE), op.i64Xor, ...set(D),
    ...get(D), ...i64(8), op.i64Shl, ...get(B), op.i64ExtendI32U, op.i64Or,
    ...get(D), op.globalGet, SHIFT, op.i64ShrU, op.i32WrapI64, ...i32(3), op.i32Shl, op.i64Load, ...memarg(3, MOD_TABLE),
    op.i64Xor, ...set(D),
    ...get(P), ...i32(1), op.i32Add, ...set(P),
    ...get(COUNT), ...i32(1), op.i32Add, ...set(COUNT),
    ...get(COUNT), ...i32(minSize), op.i32LtU, op.brIf, 0,
    ...get(D), ...i64(splitMask), op.i64And, ...i64(0), op.i64Ne, ...get(COUNT), ...i32(maxSize), op.i32LtU, op.i32And, op.brIf, 0,
    ...saveState, ...get(P), op.return,
    op.end,
    op.end,
    ...saveState, ...i32(-1),
    op.end,
  ];
  const locals = vector([[1, I64], [3, I32]]);
  return [...unsignedLeb(locals.length + code.length), ...locals, ...code];
}

/** The module's bytes, with the chunker's size limits built into its loop. */
export function rollingHashModule(limits: Limits): Uint8Array {
  const mutableGlobal = (type: number, init: number[]) => [type, 1, ...init, op.end];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector([[0x60, ...vector([[I32], [I32], [I32]]), ...vector([[I32]])]])),
    ...section(3, vector([[0]])),
    ...section(5, vector([[0x00, ...unsignedLeb(MEMORY_PAGES)]])),
    ...section(6, vector([
      mutableGlobal(I64, [op.i64Const, 0]),
      mutableGlobal(I32, [op.i32Const, 0]),
      mutableGlobal(I64, [op.i64Const, 0]),
    ])),
    ...section(7, vector([
      [...name('memory'), 0x02, 0],
      [...name('digest'), 0x03, DIGEST],
      [...name('wpos'), 0x03, WPOS],
      [...name('shift'), 0x03, SHIFT],
      [...name('scan'), 0x00, 0],
    ])),
    ...section(10, vector([scanBody(limits)])),
  ]);
}
