/**
 * The little of WebAssembly's binary format that the repository's two hand-written loops (the
 * chunker's rolling hash, Poly1305) need: a module of one memory, i32/i64 globals and exported
 * functions, with code written as expressions (`i64.add(a, b)` is `a`'s code, `b`'s code, the add).
 * A toolchain for a few hundred bytes of code would weigh more than this file.
 */

export type Code = number[];
export const I32 = 0x7f;
export const I64 = 0x7e;

export function unsignedLeb(value: number): number[] {
  const bytes: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    bytes.push(byte);
  } while (value !== 0);
  return bytes;
}

export function signedLeb(value: number | bigint): number[] {
  let rest = BigInt(value);
  const bytes: number[] = [];
  for (;;) {
    const byte = Number(rest & 0x7fn);
    rest >>= 7n;
    const done = (rest === 0n && (byte & 0x40) === 0) || (rest === -1n && (byte & 0x40) !== 0);
    bytes.push(done ? byte : byte | 0x80);
    if (done) return bytes;
  }
}

const vector = (items: number[][]): number[] => [...unsignedLeb(items.length), ...items.flat()];
const name = (text: string): number[] => vector([...Buffer.from(text)].map((byte) => [byte]));
const section = (id: number, content: number[]): number[] => [id, ...unsignedLeb(content.length), ...content];

const binary = (opcode: number) => (a: Code, b: Code): Code => [...a, ...b, opcode];
/** Alignment (log2 of bytes) and offset of a memory access. */
const memarg = (align: number, offset: number): number[] => [align, ...unsignedLeb(offset)];

export const local = {
  get: (index: number): Code => [0x20, index],
  set: (index: number, value: Code): Code => [...value, 0x21, index],
};
export const global = {
  get: (index: number): Code => [0x23, index],
  set: (index: number, value: Code): Code => [...value, 0x24, index],
};

export const i32 = {
  const: (value: number): Code => [0x41, ...signedLeb(value)],
  load8u: (address: Code, offset = 0): Code => [...address, 0x2d, ...memarg(0, offset)],
  store8: (address: Code, value: Code, offset = 0): Code => [...address, ...value, 0x3a, ...memarg(0, offset)],
  ltU: binary(0x49),
  geU: binary(0x4f),
  add: binary(0x6a),
  and: binary(0x71),
  shl: binary(0x74),
  wrap: (value: Code): Code => [...value, 0xa7],
};

export const i64 = {
  const: (value: number | bigint): Code => [0x42, ...signedLeb(value)],
  load: (address: Code, offset = 0): Code => [...address, 0x29, ...memarg(3, offset)],
  /** Four bytes, little endian, unaligned allowed, zero-extended. */
  load32u: (address: Code, offset = 0): Code => [...address, 0x35, ...memarg(0, offset)],
  /** The low four bytes. */
  store32: (address: Code, value: Code, offset = 0): Code => [...address, ...value, 0x3e, ...memarg(0, offset)],
  ne: binary(0x52),
  geS: binary(0x59),
  add: binary(0x7c),
  sub: binary(0x7d),
  mul: binary(0x7e),
  and: binary(0x83),
  or: binary(0x84),
  xor: binary(0x85),
  shl: binary(0x86),
  shrU: binary(0x88),
  extendU: (value: Code): Code => [...value, 0xad],
  /** `condition ? ifTrue : ifFalse`, both evaluated. */
  select: (ifTrue: Code, ifFalse: Code, condition: Code): Code => [...ifTrue, ...ifFalse, ...condition, 0x1b],
};

const VOID_BLOCK = 0x40;
export const control = {
  /** A block; `br_if 0` inside (outside any loop in it) leaves it. */
  block: (...body: Code[]): Code => [0x02, VOID_BLOCK, ...body.flat(), 0x0b],
  /** A loop; `br_if 0` inside (outside any block in it) goes round again. */
  loop: (...body: Code[]): Code => [0x03, VOID_BLOCK, ...body.flat(), 0x0b],
  br: (depth: number): Code => [0x0c, depth],
  brIf: (depth: number, condition: Code): Code => [...condition, 0x0d, depth],
  return: (value: Code = []): Code => [...value, 0x0f],
};

export interface WasmFunction {
  name: string;
  params: number[];
  results: number[];
  /** Types of the locals after the parameters, in index order. */
  locals: number[];
  body: Code[];
}

export interface WasmGlobal {
  name: string;
  type: number;
}

/** A module of one exported memory (`memory`), mutable globals starting at zero, and functions, all exported. */
export function wasmModule(spec: { memoryPages: number; globals: WasmGlobal[]; functions: WasmFunction[] }): Uint8Array {
  const { memoryPages, globals, functions } = spec;
  const types = functions.map((f) => [0x60, ...vector(f.params.map((t) => [t])), ...vector(f.results.map((t) => [t]))]);
  const bodies = functions.map((f) => {
    const runs: number[][] = [];
    for (const type of f.locals) {
      const last = runs.at(-1);
      if (last && last[1] === type) last[0]!++;
      else runs.push([1, type]);
    }
    const code = [...vector(runs), ...f.body.flat(), 0x0b];
    return [...unsignedLeb(code.length), ...code];
  });
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector(types)),
    ...section(3, vector(functions.map((_, i) => unsignedLeb(i)))),
    ...section(5, vector([[0x00, ...unsignedLeb(memoryPages)]])),
    ...section(6, vector(globals.map((g) => [g.type, 1, ...(g.type === I64 ? i64.const(0) : i32.const(0)), 0x0b]))),
    ...section(7, vector([
      [...name('memory'), 0x02, 0],
      ...globals.map((g, i) => [...name(g.name), 0x03, ...unsignedLeb(i)]),
      ...functions.map((f, i) => [...name(f.name), 0x00, ...unsignedLeb(i)]),
    ])),
    ...section(10, vector(bodies)),
  ]);
}
