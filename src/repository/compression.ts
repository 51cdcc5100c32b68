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

/** A blob's plaintext: `length` bytes, given as pieces in order, which may be asked for more than once. */
export interface BlobSource {
  length: number;
  pieces(): Iterable<Uint8Array>;
}

/** A blob that is one buffer. */
export function wholeBlob(data: Buffer): BlobSource {
  return { length: data.length, pieces: () => [data] };
}

/** The blob as one buffer: itself when it is one piece. */
export function joinedBlob(source: BlobSource): Buffer {
  const pieces = [...source.pieces()];
  return pieces.length === 1 && Buffer.isBuffer(pieces[0]) ? pieces[0] : Buffer.concat(pieces);
}

export function compress(data: Buffer): Buffer {
  return zlib.zstdCompressSync(data, ZSTD_OPTIONS);
}

export function decompress(data: Buffer, expectedLength?: number): Buffer {
  return zlib.zstdDecompressSync(data, expectedLength ? { maxOutputLength: Math.max(expectedLength, 1) } : {});
}

interface ZstdHandle {
  writeSync(flush: number, input: Uint8Array, inOffset: number, inLength: number, out: Uint8Array, outOffset: number, outLength: number): void;
  reset(): void;
}

/**
 * Compresses blobs through one zstd context kept from blob to blob, into one output buffer.
 * zstdCompressSync makes a stream, a native context and 16 KiB output pieces per call: 13 times
 * slower for a small blob, and garbage that waits for the GC. Node has no public API for a reused
 * context, so this drives the stream's native handle as zlib's own sync path does; without that
 * handle (another Node), it falls back to zstdCompressSync. Same parameters, same bytes.
 */
export class BlobCompressor {
  private engine: zlib.ZstdCompress | undefined;
  private handle: ZstdHandle | undefined;
  private state: Uint32Array | undefined;
  private out: Buffer | undefined;

  /**
   * The blob compressed when that is shorter, else undefined. A result that fits the output buffer
   * (every chunk's) is valid until the next call; a larger one is a buffer of its own.
   */
  compress(source: BlobSource): Buffer | undefined {
    const limit = source.length - 1;
    if (limit <= 0) return undefined;
    if (!this.handle && !this.open()) {
      const compressed = compress(joinedBlob(source));
      return compressed.length <= limit ? compressed : undefined;
    }
    this.out ??= Buffer.allocUnsafeSlow(MAX_CHUNK);
    const output = new OutputPieces(this.out, limit);
    const finished = this.write(source.pieces(), output);
    if (!finished) {
      // Not shorter: the frame is unfinished, so the context starts over.
      this.handle!.reset();
      return undefined;
    }
    return output.result();
  }

  /** Feeds every piece, the last one ending the frame (a whole blob is one call); false once the output reaches the limit first. */
  private write(pieces: Iterable<Uint8Array>, output: OutputPieces): boolean {
    let held: Uint8Array | undefined;
    for (const piece of pieces) {
      if (held && !this.step(zlib.constants.ZSTD_e_continue, held, output)) return false;
      held = piece;
    }
    return this.step(zlib.constants.ZSTD_e_end, held ?? EMPTY, output);
  }

  /** One directive over `input`, calling again while the output fills; false when the limit is reached. */
  private step(directive: number, input: Uint8Array, output: OutputPieces): boolean {
    let offset = 0;
    for (;;) {
      const room = output.room();
      if (!room) return false;
      const inLength = input.length - offset;
      this.handle!.writeSync(directive, input, offset, inLength, room.buffer, room.offset, room.length);
      // zlib reports a failure by destroying the stream, its 'error' event comes later.
      if (this.engine!.destroyed) {
        const failure = this.engine!.errored ?? new Error('zstd compression failed');
        this.close();
        throw failure;
      }
      const [outLeft, inLeft] = [this.state![0]!, this.state![1]!];
      output.wrote(room.length - outLeft);
      offset += inLength - inLeft;
      // Output room left means zstd took all the input and, at the end, finished the frame.
      if (outLeft > 0 && (inLeft === 0 || directive === zlib.constants.ZSTD_e_end)) return true;
      if (outLeft > 0 && inLeft === inLength) throw new Error('zstd compression made no progress');
    }
  }

  private open(): boolean {
    const engine = zlib.createZstdCompress(ZSTD_OPTIONS) as zlib.ZstdCompress & { _handle?: ZstdHandle; _writeState?: Uint32Array };
    if (typeof engine._handle?.writeSync !== 'function' || !(engine._writeState instanceof Uint32Array)) {
      engine.destroy();
      return false;
    }
    engine.on('error', () => undefined); // thrown from compress() instead
    this.engine = engine;
    this.handle = engine._handle;
    this.state = engine._writeState;
    return true;
  }

  private close(): void {
    this.engine?.destroy();
    this.engine = this.handle = this.state = undefined;
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

  wrote(bytes: number): void {
    this.used += bytes;
    this.total += bytes;
  }

  result(): Buffer {
    const last = this.current.subarray(0, this.used);
    return this.full.length === 0 ? last : Buffer.concat([...this.full, last]);
  }
}
