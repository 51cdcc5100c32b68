/**
 * The chunker's hot loop, restic/chunker's rolling Rabin digest, as a WebAssembly function. In
 * JavaScript the 64-bit digest has to be kept as two 32-bit halves; WebAssembly has 64-bit integers,
 * and the same loop runs 3-4 times as fast there (7-9 ns a byte against 2.5 on this project's bench
 * machine): in JavaScript it was most of a first backup's main thread.
 *
 * The module is a few hundred bytes, encoded here (./wasm-encoding.ts) rather than built by a
 * toolchain. In the text format it reads:
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

import { control, global, I32, I64, i32, i64, local, wasmModule } from './wasm-encoding.ts';

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

// $scan's parameters and locals, and the module's globals, by index.
const P = 0, END = 1, COUNT = 2, D = 3, W = 4, B = 5, OUT = 6;
const DIGEST = 0, WPOS = 1, SHIFT = 2;

/** The module's bytes, with the chunker's size limits built into its loop. */
export function rollingHashModule({ minSize, maxSize, splitMask }: Limits): Uint8Array {
  const get = local.get;
  const saveState = [global.set(DIGEST, get(D)), global.set(WPOS, get(W))];
  return wasmModule({
    memoryPages: MEMORY_PAGES,
    globals: [{ name: 'digest', type: I64 }, { name: 'wpos', type: I32 }, { name: 'shift', type: I64 }],
    functions: [{
      name: 'scan',
      params: [I32, I32, I32],
      results: [I32],
      locals: [I64, I32, I32, I32],
      body: [
        local.set(D, global.get(DIGEST)),
        local.set(W, global.get(WPOS)),
        control.block(control.loop(
          control.brIf(1, i32.geU(get(P), get(END))),
          local.set(B, i32.load8u(get(P))),
          local.set(OUT, i32.load8u(get(W), WINDOW)),
          i32.store8(get(W), get(B), WINDOW),
          local.set(W, i32.and(i32.add(get(W), i32.const(1)), i32.const(63))),
          local.set(D, i64.xor(get(D), i64.load(i32.shl(get(OUT), i32.const(3)), OUT_TABLE))),
          local.set(D, i64.xor(
            i64.or(i64.shl(get(D), i64.const(8)), i64.extendU(get(B))),
            i64.load(i32.shl(i32.wrap(i64.shrU(get(D), global.get(SHIFT))), i32.const(3)), MOD_TABLE),
          )),
          local.set(P, i32.add(get(P), i32.const(1))),
          local.set(COUNT, i32.add(get(COUNT), i32.const(1))),
          control.brIf(0, i32.ltU(get(COUNT), i32.const(minSize))),
          control.brIf(0, i32.and(
            i64.ne(i64.and(get(D), i64.const(splitMask)), i64.const(0)),
            i32.ltU(get(COUNT), i32.const(maxSize)),
          )),
          ...saveState,
          control.return(get(P)),
        )),
        ...saveState,
        i32.const(-1),
      ],
    }],
  });
}
