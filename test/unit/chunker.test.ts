import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { Chunker, irreducible, MAX_SIZE, MIN_SIZE, randomPolynomial } from '../../src/repository/chunker.ts';

/** Made by fixtures/chunker-golden (restic/chunker v0.4.0, the chunker restic uses). */
interface Golden {
  streams: { name: string; parts: { kind: 'random' | 'fill'; seed?: number; byte?: number; size: number }[] }[];
  results: { polynomial: string; stream: string; chunks: { start: number; length: number; cut: string }[] }[];
}
const golden = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, 'fixtures', 'chunker-golden.json'), 'utf8')) as Golden;

/** The generator's xorshift32 stream, little endian. */
function random(seed: number, size: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    for (let j = 0; j < 4 && i + j < size; j++) out[i + j] = (x >>> (8 * j)) & 0xff;
  }
  return out;
}

function build(name: string): Buffer {
  const stream = golden.streams.find((s) => s.name === name)!;
  return Buffer.concat(stream.parts.map((p) => (p.kind === 'random' ? random(p.seed!, p.size) : Buffer.alloc(p.size, p.byte ?? 0))));
}

/** Chunks `data` fed in pieces of `piece` bytes: [start, length, cut digest or undefined for the last]. */
function chunk(polynomial: bigint, data: Buffer, piece: number): { start: number; length: number; cut?: string }[] {
  const chunker = new Chunker(polynomial);
  const chunks: { start: number; length: number; cut?: string }[] = [];
  let start = 0;
  for (let offset = 0; offset < data.length; offset += piece) {
    const digests: bigint[] = [];
    const cuts = chunker.push(data.subarray(offset, offset + piece), digests);
    cuts.forEach((cut, i) => {
      chunks.push({ start, length: offset + cut - start, cut: digests[i]!.toString(16).padStart(16, '0') });
      start = offset + cut;
    });
  }
  if (start < data.length) chunks.push({ start, length: data.length - start });
  return chunks;
}

const streams = new Map<string, Buffer>();
for (const result of golden.results) {
  // 3 MiB + 1: more than the rolling hash takes in at once, so a push is scanned in parts.
  for (const piece of [1 << 20, 65_537, 3 * (1 << 20) + 1]) {
    test(`chunk boundaries as restic/chunker's: ${result.polynomial}, ${result.stream}, fed ${piece} bytes at a time`, (t) => {
      if (!streams.has(result.stream)) streams.set(result.stream, build(result.stream));
      const ours = chunk(BigInt(result.polynomial), streams.get(result.stream)!, piece);
      const theirs = result.chunks.map((c, i) => (i === result.chunks.length - 1 ? { start: c.start, length: c.length } : c));
      // The last chunk ends with the stream, not at a cut: restic reports the digest as it was then.
      const last = ours.at(-1);
      if (last && last.cut !== undefined && last.start + last.length === streams.get(result.stream)!.length) delete last.cut;
      t.deepEqual(ours, theirs);
    });
  }
}

test('two chunkers fed in turns keep apart: each cuts its stream as it would alone', (t) => {
  const [first, second] = golden.results.filter((r) => r.polynomial === golden.results[0]!.polynomial).slice(0, 2);
  const streamA = build(first!.stream);
  const streamB = build(second!.stream);
  const a = new Chunker(BigInt(first!.polynomial));
  const b = new Chunker(BigInt(second!.polynomial));
  const cutsA: number[] = [];
  const cutsB: number[] = [];
  for (let offset = 0; offset < Math.max(streamA.length, streamB.length); offset += 65_537) {
    for (const cut of a.push(streamA.subarray(offset, offset + 65_537))) cutsA.push(offset + cut);
    for (const cut of b.push(streamB.subarray(offset, offset + 65_537))) cutsB.push(offset + cut);
  }
  const ends = (r: Golden['results'][number]) => r.chunks.slice(0, -1).map((c) => c.start + c.length);
  t.deepEqual(cutsA, ends(first!));
  t.deepEqual(cutsB, ends(second!));
  t.true(cutsA.length > 0 && cutsB.length > 0);
});

test('the golden streams exercise a cut at the maximum size, at the minimum and a stream shorter than the minimum', (t) => {
  const lengths = golden.results.flatMap((r) => r.chunks.map((c) => c.length));
  t.true(lengths.includes(MAX_SIZE));
  t.true(lengths.includes(MIN_SIZE));
  t.true(lengths.some((l) => l < MIN_SIZE));
});

test('random polynomials are irreducible, of degree 53', (t) => {
  const p = randomPolynomial();
  t.is(p.toString(2).length - 1, 53);
  t.true(irreducible(p));
  t.true(irreducible(0x3da3358b4dc173n));
  t.false(irreducible((0x3da3358b4dc173n << 1n) ^ 0x3da3358b4dc173n)); // p times (x+1)
});
