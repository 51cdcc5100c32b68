/**
 * Compression on every core, the way pigz does it: the input is cut into blocks, each block is
 * compressed on its own by the async zlib API (which runs in libuv's thread pool, so several blocks
 * are compressed at once on different cores), and the results are emitted in input order.
 *
 * Concatenated gzip members are one valid .gz file (RFC 1952 §2.2) and concatenated zstd frames one
 * valid .zst file, so gunzip, `tar -xz`, `zstd -d` and Node's decompressors all read the output as
 * the original bytes. The price is that each block starts with an empty dictionary: the output is a
 * little larger than one stream's.
 *
 * zstd at its default level needs no more than one core (ZSTD_ONE_CORE_LEVELS): there the input goes
 * straight into one frame after another, a block's worth each, with no block gathered first.
 *
 * Why not zstd's own workers (ZSTD_c_nbWorkers)? Node's binding does not drive a multi-threaded
 * context to the end of its frame: on Node 26.10 the stream dies with an uncaught
 * ERR_STREAM_PUSH_AFTER_EOF, and zlib.zstdCompress reports success with truncated (even empty)
 * output. See nodejs/node#59899.
 */
import os from 'node:os';
import { Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';
import type { Compression } from './artifacts.ts';

export interface ParallelCompressOptions {
  /** gzip 0-9 (default 6, as gzip and zlib); zstd 1-22 (default 3, as the zstd CLI). */
  level?: number;
  /** Input bytes per block: large enough that a lost dictionary costs little, small enough to spread. */
  blockBytes?: number;
  /**
   * Blocks in flight: being compressed, or compressed and waiting for the consumer. Memory is a few
   * blocks for each (the input, zlib's output buffer, the result), whatever the size of the data.
   * More than libuv's thread pool has threads (UV_THREADPOOL_SIZE, 4 by default) would only queue.
   * With one, there are no blocks: the input goes straight into one frame after another.
   */
  concurrency?: number;
}

/** One gzip member or zstd frame being compressed on a stream of its own. */
interface Frame {
  /** Compresses `data` into the frame; `done` once the stream took it (its output has come out). */
  write(data: Buffer, done: (error: Error | null) => void): void;
  /** Ends the frame; `done` once its last output came out and its stream is free for the next. */
  end(done: (error: Error | null) => void): void;
  /** Drops the frame and closes its stream (the compressor was destroyed). */
  abort(): void;
}

interface Compress {
  /** Starts a member or frame, on a stream kept from an earlier one if there is one; its output goes to `onPiece` as it comes. */
  frame(onPiece: (piece: Buffer) => void): Frame;
  /** Closes the streams kept for the next frame; a frame still under way closes its own when done. */
  close(): void;
}

/**
 * Measured on a tar of /usr against one stream: gzip blocks of 1 MiB cost 0.2% in size (deflate's
 * window is 32 KiB) and larger ones are barely faster. zstd at level 3 looks back 2 MiB: 1 MiB blocks
 * cost 4.5%, 8 MiB 0.8%; 8 MiB is also the job size `zstd -T0` itself uses at that level.
 */
const DEFAULT_BLOCK_BYTES = { gzip: 1024 * 1024, zstd: 8 * 1024 * 1024 };

/**
 * zlib's output buffer. Each one is filled by the compressed pieces of several blocks in turn and
 * handed on as slices of it, so what a block allocates is about what it compresses to. The one-shot
 * zlib.zstdCompress allocated a buffer of the worst case per block (8 MiB, though a block of text
 * fills a third of it) and a joined copy, both alive while their block waited its turn: they
 * outlived two scavenges and filled the old generation. A 1 GiB backup (zstd, three runs each) then
 * took 75-110 forced full collections and 5.1-5.2 s of CPU, at 217-229 MiB peak RSS; now 42-48,
 * 4.0-4.2 s and 193-198 MiB. gzip's 1 MiB blocks compress to a third of that: with 256 KiB buffers
 * a 1 GiB gzip backup peaked at 147-149 MiB instead of 152-160 (three runs each, in turns, the same
 * time); zstd's 8 MiB blocks were no smaller with them, and a little slower.
 */
const OUTPUT_CHUNK_BYTES = { gzip: 256 * 1024, zstd: 1024 * 1024 };

/**
 * zstd up to this level compresses one frame at a time, on one core, straight from the input. It
 * compresses several hundred MB/s a core there, more than an exec stream through the API server
 * brings; blocks in flight would only hold memory. A 1 GiB backup here (the API server, the kubelet
 * and tar beside us on 2 cores) peaked at 142-147 MiB that way, against 198-212 with three 8 MiB
 * blocks in flight, in about the same time (7.8-8.0 s against 7.5-8.0, three runs each, in turns).
 * gzip, and zstd at higher levels, compress in blocks on every core from the start.
 */
const ZSTD_ONE_CORE_LEVELS = 3;

/**
 * What the input is gathered into before it goes into a frame straight. Each write is a job in the
 * pool, and the input (the exec stream, and through it tar) waits while it runs: in 256 KiB stages a
 * backup of a million files of 4 KiB took 24 CPU-seconds against 18-21 in blocks; in 1 MiB stages,
 * 21 against 21.5, at 170 MiB peak against 203.
 */
const STAGE_BYTES = 1024 * 1024;

/**
 * One block more than cores, so a core that finishes a block finds the next one ready; no more than
 * the thread pool has threads, as more would only wait there.
 */
export function defaultConcurrency(): number {
  return Math.min(os.availableParallelism() + 1, Number(process.env.UV_THREADPOOL_SIZE) || 4);
}

export function createParallelGzip(options: ParallelCompressOptions = {}): Transform {
  const zlibOptions = { level: options.level ?? 6, chunkSize: OUTPUT_CHUNK_BYTES.gzip };
  // Z_FINISH ends the member; deflate then takes no more input until reset() starts the next.
  // (@types/node declares reset() on Deflate, not on Gzip, which has it all the same.)
  const compress = framesOn(() => zlib.createGzip(zlibOptions) as zlib.Gzip & zlib.ZlibReset, zlib.constants.Z_FINISH, (stream) => stream.reset());
  return new BlockCompressor(compress, options.blockBytes ?? DEFAULT_BLOCK_BYTES.gzip, options.concurrency);
}

export function createParallelZstd(options: ParallelCompressOptions = {}): Transform {
  const level = options.level ?? 3;
  const params = {
    [zlib.constants.ZSTD_c_compressionLevel]: level,
    // Each frame carries a checksum of its content, as the zstd CLI writes by default: `zstd -t` and
    // every decompressor can then tell a damaged artifact; gzip members carry their CRC-32 anyway.
    [zlib.constants.ZSTD_c_checksumFlag]: 1,
  };
  // ZSTD_e_end ends the frame; the next write starts another.
  const compress = framesOn(() => zlib.createZstdCompress({ params, chunkSize: OUTPUT_CHUNK_BYTES.zstd }), zlib.constants.ZSTD_e_end);
  const concurrency = options.concurrency ?? (level <= ZSTD_ONE_CORE_LEVELS ? 1 : undefined);
  return new BlockCompressor(compress, options.blockBytes ?? DEFAULT_BLOCK_BYTES.zstd, concurrency);
}

/**
 * Compresses each block into a member or frame of its own on a stream kept for the next block: the
 * block is written, then flushed with `endFlag`, which ends the member or frame. A stream
 * compresses one frame at a time; the pool holds one per frame under way.
 */
function framesOn<S extends zlib.Gzip | zlib.ZstdCompress>(newStream: () => S, endFlag: number, afterFrame?: (stream: S) => void): Compress {
  const idle: S[] = [];
  let closed = false;
  const close = () => {
    closed = true;
    for (const stream of idle.splice(0)) stream.close();
  };
  const frame = (onPiece: (piece: Buffer) => void): Frame => {
    const stream = idle.pop() ?? newStream();
    let failure: Error | undefined;
    // The callbacks waiting on the stream: a failed stream answers them all through 'error'.
    const waiting = new Set<(error: Error | null) => void>();
    const answer = (done: (error: Error | null) => void, error: Error | null) => {
      if (waiting.delete(done)) done(error);
    };
    const onError = (error: Error) => {
      failure = error;
      stream.off('data', onPiece);
      for (const done of [...waiting]) answer(done, error);
    };
    stream.on('data', onPiece).once('error', onError);
    return {
      write(data, done) {
        if (failure) return done(failure);
        waiting.add(done);
        stream.write(data, () => {
          if (!stream.destroyed) answer(done, null);
        });
      },
      end(done) {
        if (failure) return done(failure);
        waiting.add(done);
        stream.flush(endFlag, () => {
          // A failed stream calls back too; 'error' has answered then.
          if (stream.destroyed) return;
          stream.off('data', onPiece).off('error', onError);
          if (closed) stream.close();
          else {
            afterFrame?.(stream);
            idle.push(stream);
          }
          answer(done, null);
        });
      },
      abort() {
        waiting.clear();
        stream.off('data', onPiece);
        stream.close();
      },
    };
  };
  return { frame, close };
}

/** The transform for an artifact's compression; none for an uncompressed tar. */
export function parallelCompressor(compression: Compression, options: ParallelCompressOptions = {}): Transform | undefined {
  switch (compression) {
    case 'gzip':
      return createParallelGzip(options);
    case 'zstd':
      return createParallelZstd(options);
    case 'none':
      return undefined;
  }
}

class BlockCompressor extends Transform {
  readonly #compress: Compress;
  readonly #blockBytes: number;
  readonly #concurrency: number;
  /** Blocks in input order, from dispatch until pushed; `out` is set once compressed. */
  readonly #inFlight: { out?: Buffer[] }[] = [];
  /** Input blocks whose compression is done, reused so a long stream allocates only a few. */
  readonly #spare: Buffer[] = [];
  /**
   * With one block in flight, the input goes straight into a frame as it comes, STAGE_BYTES at a
   * time (one job in the pool each), each write answered once its stage is compressed: no block to
   * gather it in.
   */
  #direct: { frame: Frame; written: number } | undefined;
  #stage: Buffer | undefined;
  #staged = 0;
  /** The write waiting on the direct frame, answered by _destroy if it never is. */
  #directWrite: TransformCallback | undefined;
  #block: Buffer | undefined;
  #filled = 0;
  #dispatched = 0;
  /** push() asked to stop: completed blocks wait in #inFlight until the consumer calls _read. */
  #readerFull = false;
  /** A write held back because #inFlight is full: the rest of its chunk and its callback. */
  #held: { chunk: Buffer; callback: TransformCallback } | undefined;
  #flushCallback: TransformCallback | undefined;

  constructor(compress: Compress, blockBytes: number, concurrency = defaultConcurrency()) {
    super();
    this.#compress = compress;
    this.#blockBytes = blockBytes;
    this.#concurrency = concurrency;
    if (!(Number.isInteger(blockBytes) && blockBytes >= 1 && Number.isInteger(concurrency) && concurrency >= 1)) throw new RangeError('blockBytes and concurrency must be whole numbers, at least 1');
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#take(chunk, callback);
  }

  override _flush(callback: TransformCallback): void {
    if (this.#direct || this.#staged > 0) {
      return this.#writeStage(true, (error) => {
        if (error) return callback(error);
        this.#compress.close();
        callback();
      });
    }
    try {
      // Empty input still gets one (empty) member or frame: a zero-byte file is not valid gzip or zstd.
      if (this.#filled > 0 || this.#dispatched === 0) this.#dispatch();
    } catch (error) {
      return callback(error as Error);
    }
    this.#flushCallback = callback;
    this.#emit();
  }

  override _read(size: number): void {
    this.#readerFull = false;
    this.#emit();
    super._read(size);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // Blocks already in the pool cannot be cancelled; their callbacks see `destroyed` and drop the
    // result. A held write must still be called back: until it is, Node leaves the writes queued
    // behind it, and their callbacks, waiting forever.
    const held = this.#held ?? (this.#directWrite && { callback: this.#directWrite });
    this.#direct?.frame.abort();
    this.#direct = undefined;
    this.#directWrite = undefined;
    this.#stage = undefined;
    this.#staged = 0;
    this.#compress.close();
    this.#inFlight.length = 0;
    this.#spare.length = 0;
    this.#block = undefined;
    this.#held = undefined;
    this.#flushCallback = undefined;
    callback(error);
    held?.callback(error ?? Object.assign(new Error('the stream was destroyed before this write was compressed'), { code: 'ERR_STREAM_DESTROYED' }));
  }

  /**
   * Copies the chunk into blocks, dispatching each full one; holds the rest while #inFlight is full.
   * With one block in flight, stages it for the direct frame instead.
   */
  #take(chunk: Buffer, callback: TransformCallback): void {
    if (this.#concurrency === 1) return this.#takeDirect(chunk, callback);
    let offset = 0;
    try {
      while (offset < chunk.length) {
        if (this.#inFlight.length >= this.#concurrency) {
          this.#held = { chunk: chunk.subarray(offset), callback };
          return;
        }
        this.#block ??= this.#spare.pop() ?? Buffer.allocUnsafe(this.#blockBytes);
        const copied = chunk.copy(this.#block, this.#filled, offset);
        offset += copied;
        this.#filled += copied;
        if (this.#filled === this.#blockBytes) this.#dispatch();
      }
    } catch (error) {
      // zlib refused its options (a level out of range): failing the write fails the stream.
      return callback(error as Error);
    }
    callback();
  }

  /** Stages the chunk for the direct frame, writing each full stage; answers once all of it is staged. */
  #takeDirect(chunk: Buffer, callback: TransformCallback): void {
    let offset = 0;
    while (offset < chunk.length) {
      this.#stage ??= Buffer.allocUnsafe(Math.min(STAGE_BYTES, this.#blockBytes));
      const frameRoom = this.#blockBytes - (this.#direct?.written ?? 0) - this.#staged;
      const copied = chunk.copy(this.#stage, this.#staged, offset, offset + Math.min(this.#stage.length - this.#staged, frameRoom));
      offset += copied;
      this.#staged += copied;
      const frameFull = copied === frameRoom;
      if (this.#staged === this.#stage.length || frameFull) {
        this.#directWrite = callback;
        return this.#writeStage(frameFull, (error) => {
          this.#directWrite = undefined;
          if (error) callback(error);
          else this.#takeDirect(chunk.subarray(offset), callback);
        });
      }
    }
    callback();
  }

  /** Writes what is staged into the direct frame (started if need be), and ends the frame if `end`. */
  #writeStage(end: boolean, done: (error: Error | null) => void): void {
    let direct = this.#direct;
    try {
      direct ??= this.#direct = { frame: this.#compress.frame((piece) => void (this.destroyed || this.push(piece))), written: 0 };
    } catch (error) {
      // zlib refused its options (a level out of range): failing the write fails the stream.
      return done(error as Error);
    }
    const staged = this.#stage!.subarray(0, this.#staged);
    direct.frame.write(staged, (error) => {
      if (this.destroyed) return;
      if (error) return done(error);
      direct.written += staged.length;
      this.#staged = 0;
      if (!end) return done(null);
      direct.frame.end((error) => {
        if (this.destroyed) return;
        this.#direct = undefined;
        if (error) return done(error);
        this.#dispatched += 1;
        done(null);
      });
    });
  }

  #dispatch(): void {
    const block = this.#block ?? Buffer.alloc(0);
    const entry: { out?: Buffer[] } = {};
    this.#inFlight.push(entry);
    this.#dispatched += 1;
    const out: Buffer[] = [];
    const frame = this.#compress.frame((piece) => out.push(piece));
    const failed = (error: Error | null) => {
      if (error && !this.destroyed) this.destroy(error);
    };
    frame.write(block.subarray(0, this.#filled), failed);
    frame.end((error) => {
      if (this.destroyed) return;
      if (error) return void this.destroy(error);
      entry.out = out;
      if (block.length === this.#blockBytes) this.#spare.push(block);
      this.#emit();
    });
    this.#block = undefined;
    this.#filled = 0;
  }

  /** Pushes the compressed blocks at the head, in order, then lets a held write or the flush go on. */
  #emit(): void {
    while (!this.#readerFull && !this.destroyed && this.#inFlight[0]?.out) {
      // A block's pieces go on together: push() asks to stop only for the next block.
      for (const piece of this.#inFlight.shift()!.out!) this.#readerFull = !this.push(piece);
    }
    if (this.#held && this.#inFlight.length < this.#concurrency) {
      const { chunk, callback } = this.#held;
      this.#held = undefined;
      this.#take(chunk, callback);
    }
    if (this.#flushCallback && this.#inFlight.length === 0) {
      const callback = this.#flushCallback;
      this.#flushCallback = undefined;
      this.#compress.close();
      callback();
    }
  }
}
