/**
 * Poly1305 (RFC 8439), the MAC of everything restic encrypts, as a WebAssembly loop: Node's crypto
 * has no Poly1305 on its own, and in JavaScript (16-bit limbs, as @noble/ciphers has it) it took
 * 2.7 s of a 1 GiB first backup's 6.5 s on the sealing worker. This is poly1305-donna's 32-bit
 * arithmetic (five 26-bit limbs, 64-bit products), which WebAssembly's i64 does natively.
 *
 * One instance per thread (the sealing worker has its own); a message is copied into its memory in
 * parts of INPUT_CAPACITY bytes.
 */
import { compileHotLoop, webAssembly } from '../wasm-compilation.ts';
import { control, global, I32, I64, i32, i64, local, wasmModule, type Code } from './wasm-encoding.ts';

/** Byte offsets in the module's memory: the key (r, then s), the tag, a padded last block, the input. */
const KEY = 0;
const TAG = 32;
const LAST_BLOCK = 48;
const INPUT = 64;
const INPUT_CAPACITY = 1024 * 1024;
const BLOCK = 16;
const LIMB = 0x3ffffff;
/** 2^128 in limbs: the bit set on each full block past its last byte. */
const HIGH_BIT = 1 << 24;

// Globals: the accumulator h, the clamped r and 5r (s1..s4), as 26-bit limbs.
const GH = [0, 1, 2, 3, 4];
const GR = [5, 6, 7, 8, 9];
const GS = [-1, 10, 11, 12, 13];

const get = local.get;
const set = local.set;
const sum = (...terms: Code[]): Code => terms.reduce((a, b) => i64.add(a, b));
const mask = (value: Code, bits: number = LIMB): Code => i64.and(value, i64.const(bits));
const shr = (value: Code, bits: number): Code => i64.shrU(value, i64.const(bits));

/** init(): h = 0 and r clamped, from the key at KEY. */
function init(): Code[] {
  const limb = (offset: number, shift: number, clamp: number) => mask(shr(i64.load32u(i32.const(KEY), offset), shift), clamp);
  const r = [limb(0, 0, 0x3ffffff), limb(3, 2, 0x3ffff03), limb(6, 4, 0x3ffc0ff), limb(9, 6, 0x3f03fff), limb(12, 8, 0x00fffff)];
  return [
    ...r.map((value, k) => global.set(GR[k]!, value)),
    ...[1, 2, 3, 4].map((k) => global.set(GS[k]!, i64.mul(global.get(GR[k]!), i64.const(5)))),
    ...GH.map((g) => global.set(g, i64.const(0))),
  ];
}

/** blocks(p, end, highBit): h = (h + block) * r for each 16-byte block in [p, end). */
function blocks(): Code[] {
  const [P, END, HIGH] = [0, 1, 2];
  const H = [3, 4, 5, 6, 7];
  const R = [8, 9, 10, 11, 12];
  const S = [-1, 13, 14, 15, 16];
  const D = [17, 18, 19, 20, 21];
  const [C, HIGH64] = [22, 23];
  const h = (k: number) => get(H[k]!);
  const r = (k: number) => get(R[k]!);
  const s = (k: number) => get(S[k]!);
  const product = (a: Code, b: Code) => i64.mul(a, b);
  const word = (offset: number, shift: number) => shr(i64.load32u(get(P), offset), shift);
  const carry = (k: number): Code[] => [
    set(C, shr(get(D[k]!), 26)),
    set(H[k]!, mask(get(D[k]!))),
    ...(k < 4 ? [set(D[k + 1]!, i64.add(get(D[k + 1]!), get(C)))] : []),
  ];
  return [
    ...GH.map((g, k) => set(H[k]!, global.get(g))),
    ...GR.map((g, k) => set(R[k]!, global.get(g))),
    ...[1, 2, 3, 4].map((k) => set(S[k]!, global.get(GS[k]!))),
    set(HIGH64, i64.extendU(get(HIGH))),
    control.block(control.loop(
      control.brIf(1, i32.geU(get(P), get(END))),
      set(H[0]!, i64.add(h(0), mask(word(0, 0)))),
      set(H[1]!, i64.add(h(1), mask(word(3, 2)))),
      set(H[2]!, i64.add(h(2), mask(word(6, 4)))),
      set(H[3]!, i64.add(h(3), mask(word(9, 6)))),
      set(H[4]!, i64.add(h(4), i64.or(word(12, 8), get(HIGH64)))),
      set(D[0]!, sum(product(h(0), r(0)), product(h(1), s(4)), product(h(2), s(3)), product(h(3), s(2)), product(h(4), s(1)))),
      set(D[1]!, sum(product(h(0), r(1)), product(h(1), r(0)), product(h(2), s(4)), product(h(3), s(3)), product(h(4), s(2)))),
      set(D[2]!, sum(product(h(0), r(2)), product(h(1), r(1)), product(h(2), r(0)), product(h(3), s(4)), product(h(4), s(3)))),
      set(D[3]!, sum(product(h(0), r(3)), product(h(1), r(2)), product(h(2), r(1)), product(h(3), r(0)), product(h(4), s(4)))),
      set(D[4]!, sum(product(h(0), r(4)), product(h(1), r(3)), product(h(2), r(2)), product(h(3), r(1)), product(h(4), r(0)))),
      ...[0, 1, 2, 3, 4].flatMap(carry),
      set(H[0]!, i64.add(h(0), i64.mul(get(C), i64.const(5)))),
      set(C, shr(h(0), 26)),
      set(H[0]!, mask(h(0))),
      set(H[1]!, i64.add(h(1), get(C))),
      set(P, i32.add(get(P), i32.const(BLOCK))),
      control.br(0),
    )),
    ...GH.map((g, k) => global.set(g, h(k))),
  ];
}

/** finish(): the tag, (h mod 2^130-5) + s mod 2^128, at TAG. */
function finish(): Code[] {
  const H = [0, 1, 2, 3, 4];
  const G = [5, 6, 7, 8, 9];
  const [C, F, TAKE_G] = [10, 11, 12];
  const h = (k: number) => get(H[k]!);
  const g = (k: number) => get(G[k]!);
  const wordOf = (value: Code) => mask(value, 0xffffffff);
  const words = [
    wordOf(i64.or(h(0), i64.shl(h(1), i64.const(26)))),
    wordOf(i64.or(shr(h(1), 6), i64.shl(h(2), i64.const(20)))),
    wordOf(i64.or(shr(h(2), 12), i64.shl(h(3), i64.const(14)))),
    wordOf(i64.or(shr(h(3), 18), i64.shl(h(4), i64.const(8)))),
  ];
  return [
    ...GH.map((index, k) => set(H[k]!, global.get(index))),
    // Carry h fully.
    ...[1, 2, 3].flatMap((k) => [set(C, shr(h(k), 26)), set(H[k]!, mask(h(k))), set(H[k + 1]!, i64.add(h(k + 1), get(C)))]),
    set(C, shr(h(4), 26)), set(H[4]!, mask(h(4))),
    set(H[0]!, i64.add(h(0), i64.mul(get(C), i64.const(5)))),
    set(C, shr(h(0), 26)), set(H[0]!, mask(h(0))),
    set(H[1]!, i64.add(h(1), get(C))),
    // g = h + 5 - 2^130: taken when not negative, i.e. when h >= 2^130 - 5.
    set(G[0]!, i64.add(h(0), i64.const(5))), set(C, shr(g(0), 26)), set(G[0]!, mask(g(0))),
    ...[1, 2, 3].flatMap((k) => [set(G[k]!, i64.add(h(k), get(C))), set(C, shr(g(k), 26)), set(G[k]!, mask(g(k)))]),
    set(G[4]!, i64.sub(i64.add(h(4), get(C)), i64.const(1 << 26))),
    set(TAKE_G, i64.geS(g(4), i64.const(0))),
    ...H.map((k) => set(k, i64.select(g(k), h(k), get(TAKE_G)))),
    // h mod 2^128, plus s, carried word by word.
    ...words.flatMap((word, k) => [
      set(F, k === 0 ? i64.add(word, i64.load32u(i32.const(KEY), 16)) : sum(word, i64.load32u(i32.const(KEY), 16 + 4 * k), shr(get(F), 32))),
      i64.store32(i32.const(TAG + 4 * k), get(F)),
    ]),
  ];
}

const MEMORY_PAGES = Math.ceil((INPUT + INPUT_CAPACITY) / 65536);

function poly1305Module(): Uint8Array {
  return wasmModule({
    memoryPages: MEMORY_PAGES,
    globals: [...['h0', 'h1', 'h2', 'h3', 'h4', 'r0', 'r1', 'r2', 'r3', 'r4', 's1', 's2', 's3', 's4'].map((name) => ({ name, type: I64 }))],
    functions: [
      { name: 'init', params: [], results: [], locals: [], body: init() },
      { name: 'blocks', params: [I32, I32, I32], results: [], locals: Array<number>(21).fill(I64), body: blocks() },
      { name: 'finish', params: [], results: [], locals: [...Array<number>(12).fill(I64), I32], body: finish() },
    ],
  });
}

interface Poly1305Exports {
  memory: { buffer: ArrayBuffer };
  init(): void;
  blocks(p: number, end: number, highBit: number): void;
  finish(): void;
}

let instance: { exports: Poly1305Exports; memory: Uint8Array } | undefined;

function poly1305Instance(): { exports: Poly1305Exports; memory: Uint8Array } {
  if (!instance) {
    const exports = new webAssembly.Instance(compileHotLoop(poly1305Module()), {}).exports as Poly1305Exports;
    instance = { exports, memory: new Uint8Array(exports.memory.buffer) };
  }
  return instance;
}

/** The 16-byte Poly1305 tag of `message` under the one-time key `r || s` (32 bytes). */
export function poly1305(message: Uint8Array, key: Uint8Array): Buffer {
  if (key.length !== 32) throw new Error(`a Poly1305 key is 32 bytes, got ${key.length}`);
  const { exports, memory } = poly1305Instance();
  memory.set(key, KEY);
  exports.init();
  const whole = message.length - (message.length % BLOCK);
  for (let at = 0; at < whole; at += INPUT_CAPACITY) {
    const part = message.subarray(at, Math.min(whole, at + INPUT_CAPACITY));
    memory.set(part, INPUT);
    exports.blocks(INPUT, INPUT + part.length, HIGH_BIT);
  }
  if (whole < message.length) {
    // The last, short block: its bytes, a 1, zeros; no bit past the block.
    memory.fill(0, LAST_BLOCK, LAST_BLOCK + BLOCK);
    memory.set(message.subarray(whole), LAST_BLOCK);
    memory[LAST_BLOCK + message.length - whole] = 1;
    exports.blocks(LAST_BLOCK, LAST_BLOCK + BLOCK, 0);
  }
  exports.finish();
  return Buffer.from(memory.subarray(TAG, TAG + 16));
}
