import test from 'ava';
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { decompressor } from '../../src/backup/artifacts.ts';

// A restore sends each decompressed piece to the helper as one exec stdin frame: zlib's default
// 16 KiB pieces made a 1 GiB restore a third slower and twice the CPU (src/backup/artifacts.ts).
for (const [compression, compress] of [
  ['gzip', (data: Buffer) => zlib.gzipSync(data)],
  ['zstd', (data: Buffer) => zlib.zstdCompressSync(data)],
] as const) {
  test(`${compression}: an artifact decompresses into pieces of 256 KiB, not zlib's 16 KiB`, async (t) => {
    const data = Buffer.concat([randomBytes(2 * 1024 * 1024), Buffer.alloc(6 * 1024 * 1024)]);
    const stream = decompressor(compression)!;
    stream.end(compress(data));
    const pieces: Buffer[] = [];
    for await (const piece of stream) pieces.push(piece as Buffer);
    t.true(Buffer.concat(pieces).equals(data));
    t.true(pieces.length <= 8 * 4 + 1, `${pieces.length} pieces for 8 MiB`);
  });
}
