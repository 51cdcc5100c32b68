/**
 * The blob compressor: whole blobs and blobs in pieces (a large directory's tree) come out as zstd
 * frames of the same plaintext, larger than its output buffer too; a blob that does not shrink is
 * left uncompressed and the context goes on working.
 */
import crypto from 'node:crypto';
import test from 'ava';
import zlib from 'node:zlib';
import { BlobCompressor, compress, decompress, FrameDecompressor, joinedBlob, wholeBlob, type BlobSource } from '../../src/repository/compression.ts';
import { sha256, sha256Pieces } from '../../src/repository/crypto.ts';

/** Text that compresses about 3:1, different all along (no long repeats). */
function text(bytes: number): Buffer {
  const lines: string[] = [];
  let length = 0;
  for (let i = 0; length < bytes; i++) {
    const line = `{"name":"f${i}","inode":${(i * 7919) % 1_000_003},"content":["${crypto.createHash('sha256').update(String(i)).digest('hex')}"]},`;
    lines.push(line);
    length += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

const inPieces = (data: Buffer, size: number): BlobSource => ({
  length: data.length,
  *pieces() {
    for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
  },
});

test('a blob in pieces compresses to a frame of its bytes, as the whole blob does; its hash is the whole\'s', (t) => {
  const compressor = new BlobCompressor();
  const data = text(300_000);
  const whole = Buffer.from(compressor.compress(wholeBlob(data))!);
  t.deepEqual(decompress(whole, data.length), data);
  const pieces = compressor.compress(inPieces(data, 333))!;
  t.true(pieces.length < data.length);
  t.deepEqual(decompress(pieces, data.length), data);
  t.deepEqual(sha256Pieces(inPieces(data, 333).pieces()), sha256(data));
});

test('an output larger than the reused buffer (8 MiB) continues in buffers of its own', (t) => {
  const compressor = new BlobCompressor();
  // Random hex: about 2:1, so 20 MB of it is some 10 MB compressed.
  const data = Buffer.from(crypto.randomBytes(10 * 1024 * 1024).toString('hex'));
  const compressed = compressor.compress(inPieces(data, 1024 * 1024))!;
  t.true(compressed.length > 8 * 1024 * 1024 && compressed.length < data.length, String(compressed.length));
  t.true(decompress(compressed, data.length).equals(data));
});

test('a blob that does not shrink is left as it is, whole or in pieces; the next one compresses', (t) => {
  const compressor = new BlobCompressor();
  const random = crypto.randomBytes(100_000);
  t.is(compressor.compress(wholeBlob(random)), undefined);
  t.is(compressor.compress(inPieces(random, 4096)), undefined);
  t.is(compressor.compress(wholeBlob(Buffer.from('x'))), undefined, 'one byte cannot shrink');
  const data = text(50_000);
  t.deepEqual(decompress(compressor.compress(inPieces(data, 1000))!, data.length), data);
});

test('a large blob whose first 64 KiB do not shrink is left as it is, the rest not tried; one whose first 64 KiB do is one frame of it all', (t) => {
  const compressor = new BlobCompressor();
  const randomStart = Buffer.concat([crypto.randomBytes(64 * 1024), text(1024 * 1024)]);
  t.is(compressor.compress(wholeBlob(randomStart)), undefined, 'judged by its sample');
  const textStart = Buffer.concat([text(64 * 1024), crypto.randomBytes(64 * 1024), text(1024 * 1024)]);
  const compressed = compressor.compress(wholeBlob(textStart))!;
  t.true(compressed.length < textStart.length / 2, String(compressed.length));
  t.deepEqual(decompress(compressed, textStart.length), textStart, 'the context started over after the blob it gave up on');
  t.deepEqual(zlib.zstdDecompressSync(compressed), textStart, 'one frame, as any zstd reads it');
});

/** Pieces copied one after another into one buffer, as a large tree's blocks are read back: each is valid until the next. */
const inOneBuffer = (data: Buffer, size: number): BlobSource => ({
  length: data.length,
  *pieces() {
    const scratch = Buffer.alloc(size);
    for (let at = 0; at < data.length; at += size) yield scratch.subarray(0, data.copy(scratch, 0, at, at + size));
  },
});

test('pieces that share one buffer are each taken before the next is asked for: hash, compression and joining', (t) => {
  const data = text(200_000);
  const source = inOneBuffer(data, 1000);
  t.deepEqual(sha256Pieces(source.pieces()), sha256(data));
  t.deepEqual(decompress(new BlobCompressor().compress(source)!, data.length), data);
  t.deepEqual(joinedBlob(source), data);
  t.deepEqual(joinedBlob(inOneBuffer(crypto.randomBytes(5000), 700)).length, 5000);
});

test('frames decompress into one reused buffer; a frame larger than it, or damaged, is not taken for another', (t) => {
  const decompressor = new FrameDecompressor();
  const out = Buffer.alloc(64 * 1024);
  const texts = [text(60_000), text(1), text(64 * 1024)];
  for (const data of texts) {
    const result = decompressor.decompress(compress(data), data.length, out);
    t.is(result.buffer, out.buffer);
    t.deepEqual(result, data);
  }
  const large = text(100_000);
  t.deepEqual(decompressor.decompress(compress(large), large.length, out), large);
  t.throws(() => decompressor.decompress(compress(large).subarray(0, 1000), large.length, Buffer.alloc(large.length)));
  t.throws(() => decompressor.decompress(compress(texts[0]!), texts[0]!.length - 1, out), { message: /decompressed to/ });
  t.deepEqual(decompressor.decompress(compress(texts[0]!), texts[0]!.length, out), texts[0]);
});
