/**
 * Block-parallel gzip and zstd: the output read back by Node and by the system gunzip, tar and zstd;
 * memory bounded by a slow consumer; errors and aborts that end the stream.
 */
import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import zlib from 'node:zlib';
import { createParallelGzip, createParallelZstd, parallelCompressor, type ParallelCompressOptions } from '../../src/backup/parallel-compress.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

const FORMATS = {
  gzip: { create: createParallelGzip, decompress: () => zlib.createGunzip(), system: ['gzip', '-dc'], tarExtract: ['-xzf'] },
  zstd: { create: createParallelZstd, decompress: () => zlib.createZstdDecompress(), system: ['zstd', '-dcq'], tarExtract: ['--zstd', '-xf'] },
} as const;
type Format = keyof typeof FORMATS;

/** Random, then text, then zeros, then random again: what compresses not at all, well, and totally. */
function mixedData(): Buffer {
  const text = Buffer.from(Array.from({ length: 200_000 }, (_, i) => `line ${i}: ${(i * 7919) % 10007}\n`).join(''));
  return Buffer.concat([randomBytes(MiB), text.subarray(0, 1.5 * MiB), Buffer.alloc(MiB), randomBytes(300 * KiB + 17)]);
}

/** Cuts `data` into chunks cycling through `sizes`, so chunk edges fall anywhere in a block. */
function chunked(data: Buffer, sizes: number[]): Buffer[] {
  const chunks: Buffer[] = [];
  for (let offset = 0, i = 0; offset < data.length; i += 1) {
    chunks.push(data.subarray(offset, offset + sizes[i % sizes.length]!));
    offset += sizes[i % sizes.length]!;
  }
  return chunks;
}

async function collect(source: Readable, ...transforms: Transform[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(source, ...transforms, new Writable({ write: (chunk, _e, cb) => (out.push(chunk), cb()) }));
  return Buffer.concat(out);
}

function compress(format: Format, data: Buffer, options: ParallelCompressOptions = {}, chunkSizes = [64 * KiB]): Promise<Buffer> {
  return collect(Readable.from(chunked(data, chunkSizes)), FORMATS[format].create(options));
}

function tempDir(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-parallel-compress-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Decompresses a file with the system tool (`gzip -dc` / `zstd -dcq`), which also checks CRCs and checksums. */
function systemDecompress(format: Format, file: string): Buffer {
  const [command, ...args] = FORMATS[format].system;
  return execFileSync(command, [...args, file], { maxBuffer: 64 * MiB });
}

/** 64 KiB random pieces up to `total`, one every `delayMs` (0: as fast as asked); counts what was pulled. */
function countingSource(total: number, delayMs = 0) {
  const blockBytes = 64 * KiB;
  const piece = randomBytes(blockBytes);
  const counter = {
    blockBytes,
    pulled: 0,
    stream: new Readable({
      read() {
        const push = () => {
          this.push(counter.pulled < total ? piece : null);
          counter.pulled = Math.min(counter.pulled + piece.length, total);
        };
        if (delayMs > 0) setTimeout(push, delayMs);
        else push();
      },
    }),
    sha256() {
      const hash = createHash('sha256');
      for (let i = 0; i < total / blockBytes; i += 1) hash.update(piece);
      return hash.digest('hex');
    },
  };
  return counter;
}

async function sha256(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk);
  return hash.digest('hex');
}

for (const format of ['gzip', 'zstd'] as const) {
  test(`${format}: any block size and chunking round-trips through Node and the system ${format}`, async (t) => {
    const data = mixedData();
    const dir = tempDir(t);
    // A block smaller than most chunks, an odd size, gzip's default, and zstd's (larger than the input).
    for (const blockBytes of [1000, 100_003, MiB, 8 * MiB]) {
      const compressed = await compress(format, data, { blockBytes, concurrency: 3 }, [1, 4093, 65_536, 1_000_003, 7]);
      const label = `block ${blockBytes}`;
      t.true((await collect(Readable.from([compressed]), FORMATS[format].decompress())).equals(data), label);
      const file = path.join(dir, `${blockBytes}.${format}`);
      fs.writeFileSync(file, compressed);
      t.true(systemDecompress(format, file).equals(data), label);
    }
  });

  test(`${format}: empty input is a valid ${format} file of nothing`, async (t) => {
    const compressed = await collect(Readable.from([]), FORMATS[format].create());
    t.true(compressed.length > 0);
    t.is((await collect(Readable.from([compressed]), FORMATS[format].decompress())).length, 0);
    const file = path.join(tempDir(t), `empty.${format}`);
    fs.writeFileSync(file, compressed);
    t.is(systemDecompress(format, file).length, 0);
  });

  test(`${format}: a tar made by GNU tar, compressed in small blocks, extracts with tar ${FORMATS[format].tarExtract.join(' ')}`, async (t) => {
    const dir = tempDir(t);
    const source = path.join(dir, 'source');
    const files: Record<string, Buffer> = {
      'random.bin': randomBytes(300 * KiB),
      'logs/app.log': Buffer.from('GET /healthz 200\n'.repeat(40_000)),
      'logs/deep/zeros': Buffer.alloc(MiB),
      'logs/deep/empty': Buffer.alloc(0),
    };
    for (const [name, content] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(source, name)), { recursive: true });
      fs.writeFileSync(path.join(source, name), content);
    }
    const tar = execFileSync('tar', ['-cf', '-', '-C', source, '.'], { maxBuffer: 64 * MiB });
    const archive = path.join(dir, `archive.tar.${format}`);
    await pipeline(Readable.from(chunked(tar, [10_000])), FORMATS[format].create({ blockBytes: 64 * KiB }), fs.createWriteStream(archive));

    const target = path.join(dir, 'target');
    fs.mkdirSync(target);
    execFileSync('tar', [...FORMATS[format].tarExtract, archive, '-C', target]);
    for (const [name, content] of Object.entries(files)) t.true(fs.readFileSync(path.join(target, name)).equals(content), name);
  });

  test(`${format}: a consumer that does not read stops the producer after a few blocks`, async (t) => {
    // A fast source, and one slower than compression: then no write ever waits for a free slot, and
    // only the consumer's backpressure can stop it.
    for (const [total, delayMs] of [[32 * MiB, 0], [8 * MiB, 5]] as const) {
      const source = countingSource(total, delayMs);
      const compressor = FORMATS[format].create({ blockBytes: source.blockBytes, concurrency: 2, level: 1 });
      source.stream.pipe(compressor);
      await sleep(300);
      // Two blocks in flight, one being filled, one pushed, and about one in each stream buffer in front.
      t.true(source.pulled <= 6 * source.blockBytes, `source delay ${delayMs}: pulled ${source.pulled} bytes while nothing was read`);
      t.true(source.pulled >= 2 * source.blockBytes, `source delay ${delayMs}: pulled only ${source.pulled} bytes`);
      t.is(await sha256(compressor.pipe(FORMATS[format].decompress())), source.sha256());
    }
  });

  test(`${format}: a slow reader keeps the source only a few blocks ahead`, async (t) => {
    const source = countingSource(32 * MiB);
    let delivered = 0;
    let mostAhead = 0;
    const hash = createHash('sha256');
    const reader = new Writable({
      write(chunk: Buffer, _e, cb) {
        delivered += chunk.length;
        mostAhead = Math.max(mostAhead, source.pulled - delivered);
        hash.update(chunk);
        if (delivered % MiB < chunk.length) setTimeout(cb, 2);
        else cb();
      },
    });
    await pipeline(source.stream, FORMATS[format].create({ blockBytes: source.blockBytes, concurrency: 2, level: 1 }), FORMATS[format].decompress(), reader);
    t.is(hash.digest('hex'), source.sha256());
    // The few blocks of the test above, plus the decompressor's buffers; the input is 512 blocks.
    t.true(mostAhead <= 10 * source.blockBytes, `${mostAhead} bytes pulled ahead of the reader`);
  });

  test(`${format}: destroying mid-stream ends it, answers every write, and drops blocks still in the pool`, async (t) => {
    const compressor = FORMATS[format].create({ blockBytes: 256 * KiB, concurrency: 2 });
    const errors: Error[] = [];
    compressor.on('error', (error) => errors.push(error));
    // Two blocks go to the pool, the third write waits for a free slot, the fourth is queued by Node.
    const written = [0, 1, 2, 3].map(() => new Promise<Error | null | undefined>((resolve) => compressor.write(randomBytes(256 * KiB), resolve)));
    compressor.destroy(new Error('aborted by the test'));
    const pushedAfterDestroy: Buffer[] = [];
    compressor.on('data', (chunk: Buffer) => pushedAfterDestroy.push(chunk));
    const results = await Promise.race([Promise.all(written), sleep(1000, 'a write callback is still waiting')]);
    t.deepEqual(
      Array.isArray(results) ? results.map((result) => result?.message ?? null) : results,
      [null, null, 'aborted by the test', 'aborted by the test'],
    );
    await sleep(300); // the blocks in the pool finish
    t.deepEqual(errors.map((error) => error.message), ['aborted by the test']);
    t.deepEqual(pushedAfterDestroy, []);
  });

  test(`${format}: an aborted pipeline rejects and stops reading its source`, async (t) => {
    const controller = new AbortController();
    let pulled = 0;
    const source = new Readable({
      read() {
        pulled += 64 * KiB;
        this.push(randomBytes(64 * KiB));
        if (pulled === 4 * MiB) controller.abort();
      },
    });
    const sink = new Writable({ write: (_chunk, _e, cb) => void setTimeout(cb, 1) });
    await t.throwsAsync(pipeline(source, FORMATS[format].create({ blockBytes: 256 * KiB }), sink, { signal: controller.signal }), { name: 'AbortError' });
    t.true(source.destroyed);
    const pulledAtAbort = pulled;
    await sleep(100);
    t.is(pulled, pulledAtAbort);
  });
}

// zstd clamps any level into its range, so only gzip has an option zlib refuses.
test('gzip: a level zlib refuses fails the stream and stops the source, also for empty input', async (t) => {
  for (const input of [[randomBytes(3 * MiB)], []]) {
    const source = Readable.from(input);
    await t.throwsAsync(collect(source, createParallelGzip({ level: 42 })), { code: 'ERR_OUT_OF_RANGE' });
    t.true(source.destroyed);
  }
});

test('parallelCompressor picks the format by name; none is no transform', async (t) => {
  const data = mixedData();
  t.true(zlib.gunzipSync(await collect(Readable.from([data]), parallelCompressor('gzip')!)).equals(data));
  t.true(zlib.zstdDecompressSync(await collect(Readable.from([data]), parallelCompressor('zstd')!)).equals(data));
  t.is(parallelCompressor('none'), undefined);
});

test('gzip output is one member per block, each one complete on its own', async (t) => {
  const data = mixedData();
  const compressed = await compress('gzip', data, { blockBytes: MiB });
  // Each member starts with the magic, deflate, no flags and mtime 0, as zlib writes it.
  const header = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
  const starts: number[] = [];
  for (let at = compressed.indexOf(header); at !== -1; at = compressed.indexOf(header, at + 1)) starts.push(at);
  t.is(starts.length, Math.ceil(data.length / MiB));
  starts.forEach((start, i) => {
    const member = compressed.subarray(start, starts[i + 1]);
    t.true(zlib.gunzipSync(member).equals(data.subarray(i * MiB, (i + 1) * MiB)), `member ${i}`);
  });
});

test.serial('zstd output is one frame per block, each with its checksum, from streams kept for the next block and closed at the end', async (t) => {
  const data = mixedData();
  const blocks = Math.ceil(data.length / MiB);
  // The streams that ended a frame: one per block in flight, not one per block.
  const prototype = zlib.ZstdCompress.prototype as { flush: (...args: unknown[]) => void };
  const flush = prototype.flush;
  const streams = new Set<unknown>();
  prototype.flush = function (this: unknown, ...args: unknown[]) {
    streams.add(this);
    return flush.apply(this, args);
  };
  let compressed: Buffer;
  try {
    compressed = await compress('zstd', data, { blockBytes: MiB, concurrency: 2 });
  } finally {
    prototype.flush = flush;
  }
  t.true(streams.size >= 1 && streams.size <= 2, `${streams.size} streams for ${blocks} blocks`);
  t.true([...streams].every((stream) => (stream as zlib.ZstdCompress).destroyed), 'the streams are closed once the output ends');
  const file = path.join(tempDir(t), 'blocks.zst');
  fs.writeFileSync(file, compressed);
  // The zstd CLI tells the frames apart and checks each one's checksum.
  const listing = execFileSync('zstd', ['-lv', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  t.regex(listing, new RegExp(`# Zstandard Frames: ${blocks}\\n`));
  t.regex(listing, /Check: XXH64/);
  execFileSync('zstd', ['-tq', file]);
  t.true(zlib.zstdDecompressSync(compressed).equals(data));
});

/**
 * Compresses 16 MiB of random bytes (which come out about as large as they went in) in blocks of
 * `blockBytes`, a piece of 64 KiB at a time, one every `delayMs` (0: as fast as asked); how far the
 * source ran ahead of the output at most shows how many blocks were in flight at once.
 */
async function blocksAhead(blockBytes: number, compressor: Transform, decompressor: Transform, delayMs: number): Promise<number> {
  const data = randomBytes(16 * MiB);
  let pulled = 0;
  const source = new Readable({
    read() {
      const push = () => {
        this.push(pulled < data.length ? data.subarray(pulled, pulled + 64 * KiB) : null);
        pulled = Math.min(pulled + 64 * KiB, data.length);
      };
      if (delayMs > 0) setTimeout(push, delayMs);
      else push();
    },
  });
  let delivered = 0;
  let mostAhead = 0;
  const out: Buffer[] = [];
  const reader = new Writable({
    write(chunk: Buffer, _e, cb) {
      delivered += chunk.length;
      mostAhead = Math.max(mostAhead, pulled - delivered);
      out.push(chunk);
      cb();
    },
  });
  await pipeline(source, compressor, reader);
  if (!(await collect(Readable.from(out), decompressor)).equals(data)) throw new Error('the output does not decompress to the input');
  return mostAhead / blockBytes;
}

test('zstd at its default level compresses straight from the input, gzip in blocks on every core', async (t) => {
  // gzip -9 is far slower than this source: three blocks in flight (the one filling included).
  const gzip = await blocksAhead(256 * KiB, createParallelGzip({ blockBytes: 256 * KiB, concurrency: 3, level: 9 }), zlib.createGunzip(), 0);
  t.true(gzip >= 2.4, `gzip -9: only ${gzip} blocks ahead`);
  // zstd -3: no block gathered, each stage compressed while the input waits.
  const zstd = await blocksAhead(256 * KiB, createParallelZstd({ blockBytes: 256 * KiB }), zlib.createZstdDecompress(), 0);
  t.true(zstd <= 0.5, `zstd -3: ${zstd} blocks ahead`);
});

test('zstd straight from the input: frames of a block each, a destroyed stream answers its writes and pushes nothing more', async (t) => {
  const data = mixedData();
  // Frames of one stage, of several, and of less than one.
  for (const blockBytes of [MiB, 3 * MiB, 100_000]) {
    const compressed = await compress('zstd', data, { blockBytes, concurrency: 1 }, [1, 4093, 65_536, 1_000_003, 7]);
    t.true(zlib.zstdDecompressSync(compressed).equals(data), `blocks of ${blockBytes}`);
    const file = path.join(tempDir(t), 'direct.zst');
    fs.writeFileSync(file, compressed);
    t.true(systemDecompress('zstd', file).equals(data), `blocks of ${blockBytes}`);
    t.regex(execFileSync('zstd', ['-lv', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }), new RegExp(`# Zstandard Frames: ${Math.ceil(data.length / blockBytes)}\\n`));
  }

  const compressor = createParallelZstd({ blockBytes: 256 * KiB, concurrency: 1 });
  const errors: Error[] = [];
  compressor.on('error', (error) => errors.push(error));
  // The first write is being compressed in the pool when the stream is destroyed; Node queues the others.
  const written = [0, 1, 2].map(() => new Promise<Error | null | undefined>((resolve) => compressor.write(randomBytes(256 * KiB), resolve)));
  compressor.destroy(new Error('aborted by the test'));
  const pushedAfterDestroy: Buffer[] = [];
  compressor.on('data', (chunk: Buffer) => pushedAfterDestroy.push(chunk));
  const results = await Promise.race([Promise.all(written), sleep(1000, 'a write callback is still waiting')]);
  t.deepEqual(Array.isArray(results) ? results.map((result) => result?.message ?? null) : results, ['aborted by the test', 'aborted by the test', 'aborted by the test']);
  await sleep(300);
  t.deepEqual(errors.map((error) => error.message), ['aborted by the test']);
  t.deepEqual(pushedAfterDestroy, []);
});
