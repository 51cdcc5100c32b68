/**
 * restic's index files (doc/design.rst, "Indexing") read from their bytes, without JSON.parse: a
 * file lists up to 50,000 blobs, and parsed it was an object and an ID string for each, some 10 MB
 * of heap at once, for blobs that end as 48 bytes each in the index's tables (index.ts).
 *
 *   {"supersedes": [...], "packs": [{"id": "<hex>", "blobs": [{"id": "<hex>", "type": "data",
 *     "offset": 0, "length": 38, "uncompressed_length": 64}, ...]}, ...]}
 *
 * Keys may come in any order and unknown ones are skipped, as JSON.parse would let the caller do;
 * `null` where a list is expected is an empty list, as restic reads it. What this reader does not
 * take (a string with escapes where it needs the text, a pack's blobs before its ID, a number that
 * is not a whole one, any JSON error) throws UnusualIndexFile, and the caller parses the file whole.
 */
import { BACKSLASH, CLOSE_ARRAY, CLOSE_OBJECT, COLON, COMMA, OPEN_ARRAY, OPEN_OBJECT, QUOTE } from './json-bytes.ts';
import type { BlobType } from './pack.ts';

/** A file left to JSON.parse. */
export class UnusualIndexFile extends Error {
  constructor(at: number) {
    super(`index file: left to JSON.parse at byte ${at}`);
    this.name = 'UnusualIndexFile';
  }
}

/** Called for each pack before its blobs: returns the number the blobs are filed under. */
type PackVisitor = (packId: string) => number;
/** Called for each blob: its ID is the 64 lowercase hex digits at `idAt` in the file's bytes. */
type BlobVisitor = (type: BlobType, idAt: number, pack: number, offset: number, length: number, uncompressedLength: number) => void;

const ID_HEX = 64;

const KEYS = {
  packs: Buffer.from('packs'),
  blobs: Buffer.from('blobs'),
  id: Buffer.from('id'),
  type: Buffer.from('type'),
  offset: Buffer.from('offset'),
  length: Buffer.from('length'),
  uncompressedLength: Buffer.from('uncompressed_length'),
  data: Buffer.from('data'),
  tree: Buffer.from('tree'),
  null: Buffer.from('null'),
};

export function readIndexFile(bytes: Buffer, visitPack: PackVisitor, visitBlob: BlobVisitor): void {
  const json = new JsonBytes(bytes);
  json.object((key) => {
    if (!json.is(key, KEYS.packs)) return json.skipValue();
    json.list(() => readPack(json, bytes, visitPack, visitBlob));
  });
  json.end();
}

function readPack(json: JsonBytes, bytes: Buffer, visitPack: PackVisitor, visitBlob: BlobVisitor): void {
  let packId: string | undefined;
  let pack = -1;
  json.object((key) => {
    if (json.is(key, KEYS.id)) {
      const [start, end] = json.plainString();
      packId = bytes.toString('latin1', start, end);
      pack = visitPack(packId);
    } else if (json.is(key, KEYS.blobs)) {
      // Blobs before their pack's ID (none of restic's): only an empty list is taken here.
      json.list(packId === undefined ? () => { throw new UnusualIndexFile(json.at); } : () => readBlob(json, bytes, packId!, pack, visitBlob));
    } else {
      json.skipValue();
    }
  });
}

function readBlob(json: JsonBytes, bytes: Buffer, packId: string, pack: number, visitBlob: BlobVisitor): void {
  let idAt = -1;
  let idEnd = -1;
  let type: BlobType | string | undefined;
  let offset = 0;
  let length = 0;
  let uncompressedLength = 0;
  json.object((key) => {
    if (json.is(key, KEYS.id)) [idAt, idEnd] = json.plainString();
    else if (json.is(key, KEYS.type)) {
      const span = json.plainString();
      type = json.is(span, KEYS.data) ? 'data' : json.is(span, KEYS.tree) ? 'tree' : bytes.toString('utf8', span[0], span[1]);
    } else if (json.is(key, KEYS.offset)) offset = json.wholeNumber();
    else if (json.is(key, KEYS.length)) length = json.wholeNumber();
    else if (json.is(key, KEYS.uncompressedLength)) uncompressedLength = json.wholeNumber();
    else json.skipValue();
  });
  if (idAt < 0 || !isLowerHex(bytes, idAt, idEnd)) {
    throw new Error(`index: invalid blob ID ${idAt < 0 ? 'undefined' : JSON.stringify(bytes.toString('utf8', idAt, idEnd))} in pack ${packId}`);
  }
  if (type !== 'data' && type !== 'tree') throw new Error(`index: invalid blob type ${JSON.stringify(type)} in pack ${packId}`);
  visitBlob(type, idAt, pack, offset, length, uncompressedLength);
}

/** Each byte's value as a lowercase hex digit, or -1. */
export const HEX_VALUE = new Int8Array(256).fill(-1);
for (let digit = 0; digit < 16; digit++) HEX_VALUE[digit.toString(16).charCodeAt(0)] = digit;

function isLowerHex(bytes: Buffer, start: number, end: number): boolean {
  if (end - start !== ID_HEX) return false;
  for (let i = start; i < end; i++) if (HEX_VALUE[bytes[i]!]! < 0) return false;
  return true;
}

/** A cursor over JSON text in bytes; a key or string is its span [start, end) inside the quotes. */
class JsonBytes {
  private readonly bytes: Buffer;
  at = 0;

  constructor(bytes: Buffer) {
    this.bytes = bytes;
  }

  /** Whether the span holds exactly `text` (compared here: keys are short, a call into Buffer.compare costs more). */
  is(span: readonly [number, number], text: Buffer): boolean {
    const start = span[0];
    if (span[1] - start !== text.length) return false;
    for (let i = 0; i < text.length; i++) if (this.bytes[start + i] !== text[i]) return false;
    return true;
  }

  /** An object: `onKey` reads (or skips) each key's value. */
  object(onKey: (key: [number, number]) => void): void {
    this.expect(OPEN_OBJECT);
    if (this.peek() === CLOSE_OBJECT) {
      this.at += 1;
      return;
    }
    for (;;) {
      const key = this.plainString();
      this.expect(COLON);
      onKey(key);
      if (this.separator(CLOSE_OBJECT)) return;
    }
  }

  /** An array, or null for an empty one: `onItem` reads each item. */
  list(onItem: () => void): void {
    if (this.peek() !== OPEN_ARRAY) {
      this.literal(KEYS.null);
      return;
    }
    this.at += 1;
    if (this.peek() === CLOSE_ARRAY) {
      this.at += 1;
      return;
    }
    for (;;) {
      onItem();
      if (this.separator(CLOSE_ARRAY)) return;
    }
  }

  /** A string without escapes: its span. */
  plainString(): [number, number] {
    this.expect(QUOTE);
    const start = this.at;
    for (;;) {
      const byte = this.bytes[this.at];
      if (byte === undefined || byte === BACKSLASH) throw new UnusualIndexFile(this.at);
      if (byte === QUOTE) break;
      this.at += 1;
    }
    return [start, this.at++];
  }

  /** A number of digits only, within what a JS number holds exactly. */
  wholeNumber(): number {
    this.whitespace();
    let value = 0;
    const start = this.at;
    for (let byte = this.bytes[this.at]; byte !== undefined && byte >= 0x30 && byte <= 0x39; byte = this.bytes[++this.at]) value = value * 10 + (byte - 0x30);
    if (this.at === start || this.at - start > 15) throw new UnusualIndexFile(start);
    const next = this.bytes[this.at];
    if (next === 0x2e || next === 0x65 || next === 0x45) throw new UnusualIndexFile(this.at); // a fraction or an exponent
    return value;
  }

  /** Any value, passed over. */
  skipValue(): void {
    const first = this.peek();
    if (first === QUOTE) return void this.anyString();
    if (first === OPEN_OBJECT) return this.object(() => this.skipValue());
    if (first === OPEN_ARRAY) return this.list(() => this.skipValue());
    // A number, true, false or null: what runs up to the next delimiter.
    const start = this.at;
    while (this.at < this.bytes.length && !isDelimiter(this.bytes[this.at]!)) this.at += 1;
    if (this.at === start) throw new UnusualIndexFile(start);
  }

  /** Nothing but whitespace is left. */
  end(): void {
    this.whitespace();
    if (this.at !== this.bytes.length) throw new UnusualIndexFile(this.at);
  }

  private anyString(): void {
    this.expect(QUOTE);
    for (;;) {
      const byte = this.bytes[this.at++];
      if (byte === undefined) throw new UnusualIndexFile(this.at);
      if (byte === BACKSLASH) this.at += 1;
      else if (byte === QUOTE) return;
    }
  }

  private literal(text: Buffer): void {
    this.whitespace();
    if (this.bytes.compare(text, 0, text.length, this.at, this.at + text.length) !== 0) throw new UnusualIndexFile(this.at);
    this.at += text.length;
  }

  /** After an item: true at `close` (taken), false at a comma (taken). */
  private separator(close: number): boolean {
    const byte = this.peek();
    this.at += 1;
    if (byte === close) return true;
    if (byte === COMMA) return false;
    throw new UnusualIndexFile(this.at - 1);
  }

  private expect(byte: number): void {
    if (this.peek() !== byte) throw new UnusualIndexFile(this.at);
    this.at += 1;
  }

  /** The next byte that is not whitespace (the cursor left on it). */
  private peek(): number | undefined {
    this.whitespace();
    return this.bytes[this.at];
  }

  private whitespace(): void {
    for (let byte = this.bytes[this.at]; byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09; byte = this.bytes[++this.at]);
  }
}

function isDelimiter(byte: number): boolean {
  return byte === COMMA || byte === CLOSE_OBJECT || byte === CLOSE_ARRAY || byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}
