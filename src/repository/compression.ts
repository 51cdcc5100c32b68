/**
 * zstd as restic uses it (level 3, no checksum) for blobs and unpacked files. A blob comes whole (a
 * chunk) or in pieces (a tree of a large directory, never joined into one buffer: its JSON is
 * hashed and compressed piece by piece).
 */
import zlib from 'node:zlib';

/** restic's largest chunk: the output buffer of blob compression. */
const MAX_CHUNK = 8 * 1024 * 1024;

const ZSTD_OPTIONS = {
  params: {
    [zlib.constants.ZSTD_c_compressionLevel]: 3,
    // restic writes no checksum: the MAC and the blob ID already cover the data.
    [zlib.constants.ZSTD_c_checksumFlag]: 0,
  },
};

/**
 * A blob's plaintext: `length` bytes, either one buffer (`whole`) or pieces in order, which may be
 * asked for more than once. A piece is valid only until the next one is asked for: a large tree's
 * pieces are its blocks decompressed one by one into the same buffer.
 */
export interface BlobSource {
  length: number;
  whole?: Buffer;
  pieces(): Iterable<Uint8Array>;
}

/** A blob that is one buffer. */
export function wholeBlob(data: Buffer): BlobSource {
  return { length: data.length, whole: data, pieces: () => [data] };
}

/** The blob as one buffer: itself when it is one. */
export function joinedBlob(source: BlobSource): Buffer {
  if (source.whole) return source.whole;
  const joined = Buffer.allocUnsafe(source.length);
  let at = 0;
  for (const piece of source.pieces()) {
    joined.set(piece, at);
    at += piece.length;
  }
  if (at !== source.length) throw new Error(`a blob of ${source.length} bytes gave ${at}`);
  return joined;
}

export function compress(data: Buffer): Buffer {
  return zlib.zstdCompressSync(data, ZSTD_OPTIONS);
}

const MAX_DECOMPRESS_CHUNK = 16 * 1024 * 1024;

/**
 * With the length known, the output is one buffer of that length (up to 16 MiB: a length read from
 * an index is not allocated whole before the data shows it), not 16 KiB pieces joined at the end.
 */
export function decompress(data: Buffer, expectedLength?: number): Buffer {
  if (!expectedLength) return zlib.zstdDecompressSync(data);
  const chunkSize = Math.min(Math.max(expectedLength, zlib.constants.Z_MIN_CHUNK), MAX_DECOMPRESS_CHUNK);
  return zlib.zstdDecompressSync(data, { maxOutputLength: expectedLength, chunkSize });
}

interface ZstdHandle {
  writeSync(flush: number, input: Uint8Array, inOffset: number, inLength: number, out: Uint8Array, outOffset: number, outLength: number): void;
  reset(): void;
}

/**
 * One zstd context kept from call to call. zstdCompressSync and zstdDecompressSync make a stream,
 * a native context and output pieces per call: many times slower for a small blob, and garbage
 * that waits for the GC. Node has no public API for a reused context, so this drives the stream's
 * native handle as zlib's own sync path does; without that handle (another Node), `open` says so
 * and the caller falls back to the one-call functions. Same parameters, same bytes.
 */
class ReusedZstd {
  private engine: (zlib.ZstdCompress | zlib.ZstdDecompress) | undefined;
  private handle: ZstdHandle | undefined;
  private state: Uint32Array | undefined;
  private readonly make: () => zlib.ZstdCompress | zlib.ZstdDecompress;

  constructor(make: () => zlib.ZstdCompress | zlib.ZstdDecompress) {
    this.make = make;
  }

  /** Whether the native handle is there (opening it on first use). */
  protected open(): boolean {
    if (this.handle) return true;
    const engine = this.make() as (zlib.ZstdCompress | zlib.ZstdDecompress) & { _handle?: ZstdHandle; _writeState?: Uint32Array };
    if (typeof engine._handle?.writeSync !== 'function' || !(engine._writeState instanceof Uint32Array)) {
      engine.destroy();
      return false;
    }
    engine.on('error', () => undefined); // thrown from write() instead
    this.engine = engine;
    this.handle = engine._handle;
    this.state = engine._writeState;
    return true;
  }

  /** One call over input[offset..] into out[outOffset..]: [output bytes written, input bytes taken]. */
  protected write(directive: number, input: Uint8Array, offset: number, out: Uint8Array, outOffset: number, outLength: number): [number, number] {
    const inLength = input.length - offset;
    this.handle!.writeSync(directive, input, offset, inLength, out, outOffset, outLength);
    // zlib reports a failure by destroying the stream, its 'error' event comes later.
    if (this.engine!.destroyed) {
      const failure = this.engine!.errored ?? new Error('zstd failed');
      this.close();
      throw failure;
    }
    return [outLength - this.state![0]!, inLength - this.state![1]!];
  }

  /** Starts the context over (a frame left unfinished). */
  protected reset(): void {
    this.handle!.reset();
  }

  private close(): void {
    this.engine?.destroy();
    this.engine = this.handle = this.state = undefined;
  }
}

/**
 * A large blob's first SAMPLE_BYTES are compressed and flushed first: when they do not shrink below
 * SAMPLE_SHARE, the blob is stored as it is without compressing the rest. Random and already
 * compressed data (a third of the bench's mixed claim) cost zstd a full pass for nothing: 0.8 s of
 * the main thread for 1 GiB of it. The flush ends a zstd block early, which costs a compressible
 * blob a few bytes.
 */
const SAMPLE_AT = 256 * 1024;
const SAMPLE_BYTES = 64 * 1024;
const SAMPLE_SHARE = 0.97;

/** Compresses blobs through one context, into one output buffer. */
export class BlobCompressor extends ReusedZstd {
  private out: Buffer | undefined;

  constructor() {
    super(() => zlib.createZstdCompress(ZSTD_OPTIONS));
  }

  /**
   * The blob compressed when that is shorter, else undefined. A result that fits the output buffer
   * (every chunk's) is valid until the next call; a larger one is a buffer of its own.
   */
  compress(source: BlobSource): Buffer | undefined {
    const limit = source.length - 1;
    if (limit <= 0) return undefined;
    if (!this.open()) {
      const compressed = compress(joinedBlob(source));
      return compressed.length <= limit ? compressed : undefined;
    }
    this.out ??= Buffer.allocUnsafeSlow(MAX_CHUNK);
    const output = new OutputPieces(this.out, limit);
    const finished = this.feed(source, output);
    if (!finished) {
      // Not shorter: the frame is unfinished, so the context starts over.
      this.reset();
      return undefined;
    }
    return output.result();
  }

  /**
   * A whole blob is one call that ends the frame; pieces are taken each as it comes (a piece is
   * valid only until the next), then an empty input ends the frame. False once the output reaches
   * the limit.
   */
  private feed(source: BlobSource, output: OutputPieces): boolean {
    const whole = source.whole;
    if (whole && whole.length >= SAMPLE_AT) {
      if (!this.step(zlib.constants.ZSTD_e_flush, whole.subarray(0, SAMPLE_BYTES), output)) return false;
      if (output.length >= SAMPLE_BYTES * SAMPLE_SHARE) return false;
      return this.step(zlib.constants.ZSTD_e_end, whole.subarray(SAMPLE_BYTES), output);
    }
    if (whole) return this.step(zlib.constants.ZSTD_e_end, whole, output);
    for (const piece of source.pieces()) if (!this.step(zlib.constants.ZSTD_e_continue, piece, output)) return false;
    return this.step(zlib.constants.ZSTD_e_end, EMPTY, output);
  }

  /** One directive over `input`, calling again while the output fills; false when the limit is reached. */
  private step(directive: number, input: Uint8Array, output: OutputPieces): boolean {
    let offset = 0;
    for (;;) {
      const room = output.room();
      if (!room) return false;
      const [written, taken] = this.write(directive, input, offset, room.buffer, room.offset, room.length);
      output.wrote(written);
      offset += taken;
      const outLeft = room.length - written;
      // Output room left means zstd took all the input and, at a flush or the end, wrote out all it held.
      if (outLeft > 0 && (offset === input.length || directive !== zlib.constants.ZSTD_e_continue)) return true;
      if (outLeft > 0 && taken === 0) throw new Error('zstd compression made no progress');
    }
  }
}

/**
 * Decompresses whole frames of known length into a buffer of the caller's, reused from frame to
 * frame (a large tree's blocks as they are read back in order).
 */
export class FrameDecompressor extends ReusedZstd {
  constructor() {
    super(() => zlib.createZstdDecompress());
  }

  /** The frame's `length` bytes, in `out` when it is that large (else in a buffer of their own). */
  decompress(frame: Buffer, length: number, out: Buffer): Buffer {
    if (length > out.length || !this.open()) return decompress(frame, length);
    this.reset();
    let written = 0;
    let offset = 0;
    while (offset < frame.length) {
      const [wrote, taken] = this.write(zlib.constants.ZSTD_e_end, frame, offset, out, written, out.length - written);
      written += wrote;
      offset += taken;
      if (wrote === 0 && taken === 0) break;
    }
    if (written !== length || offset !== frame.length) throw new Error(`a zstd frame of ${length} bytes decompressed to ${written}`);
    return out.subarray(0, length);
  }
}

const EMPTY = new Uint8Array(0);

/** Where compressed bytes go: the reused buffer first, then buffers of their own, never `limit` bytes or more in all. */
class OutputPieces {
  private readonly full: Buffer[] = [];
  private current: Buffer;
  private used = 0;
  private total = 0;
  private readonly limit: number;

  constructor(first: Buffer, limit: number) {
    this.limit = limit;
    this.current = first.subarray(0, Math.min(first.length, limit));
  }

  /** Room for more output, or undefined when the limit is reached. */
  room(): { buffer: Buffer; offset: number; length: number } | undefined {
    if (this.used === this.current.length) {
      if (this.total >= this.limit) return undefined;
      this.full.push(this.current);
      this.current = Buffer.allocUnsafeSlow(Math.min(MAX_CHUNK, this.limit - this.total));
      this.used = 0;
    }
    return { buffer: this.current, offset: this.used, length: this.current.length - this.used };
  }

  /** Bytes written so far. */
  get length(): number {
    return this.total;
  }

  wrote(bytes: number): void {
    this.used += bytes;
    this.total += bytes;
  }

  result(): Buffer {
    const last = this.current.subarray(0, this.used);
    return this.full.length === 0 ? last : Buffer.concat([...this.full, last]);
  }
}
