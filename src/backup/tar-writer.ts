/**
 * Writes tar headers that busybox tar, GNU tar and TarStreamCheck read alike: ustar headers, GNU
 * long names and long link targets ('L' and 'K', which busybox honours where it ignores pax
 * `linkpath`), GNU base-256 for numbers too large for octal, and a pax record only for a fractional
 * mtime (GNU tar restores it to the nanosecond; busybox keeps the whole seconds of the header).
 */

export const BLOCK = 512;

export type TarWriteType = 'file' | 'hardlink' | 'symlink' | 'directory' | 'fifo' | 'char-device' | 'block-device';

const TYPE_FLAGS: Record<TarWriteType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  'char-device': '3',
  'block-device': '4',
  directory: '5',
  fifo: '6',
};

export interface TarWriteEntry {
  /** Raw bytes; a directory's name should end in "/". */
  name: Buffer;
  type: TarWriteType;
  /** Permission bits, setuid/setgid/sticky included (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of data that follow (regular files only). */
  size: number;
  /** Nanoseconds since the epoch. */
  mtimeNs: bigint;
  linkName?: Buffer;
  devMajor?: number;
  devMinor?: number;
}

/** A number field: octal with a NUL when it fits, else GNU base-256 (high bit of the first byte set). */
function writeNumber(block: Buffer, offset: number, width: number, value: number | bigint): void {
  const big = BigInt(value);
  if (big < 0n) throw new Error(`negative tar number ${big}`);
  if (big < 8n ** BigInt(width - 1)) {
    block.write(big.toString(8).padStart(width - 1, '0'), offset, width - 1, 'latin1');
    block[offset + width - 1] = 0;
    return;
  }
  let rest = big;
  for (let i = width - 1; i > 0; i--) {
    block[offset + i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  if (rest !== 0n) throw new Error(`tar number ${big} too large`);
  block[offset] = 0x80;
}

function header(name: Buffer, type: string, fields: { mode: number; uid: number; gid: number; size: number; mtime: bigint; linkName?: Buffer; devMajor?: number; devMinor?: number }): Buffer {
  const block = Buffer.alloc(BLOCK);
  name.copy(block, 0, 0, Math.min(name.length, 100));
  writeNumber(block, 100, 8, fields.mode);
  writeNumber(block, 108, 8, fields.uid);
  writeNumber(block, 116, 8, fields.gid);
  writeNumber(block, 124, 12, fields.size);
  writeNumber(block, 136, 12, fields.mtime < 0n ? 0n : fields.mtime);
  block.write(type, 156, 1, 'latin1');
  fields.linkName?.copy(block, 157, 0, Math.min(fields.linkName.length, 100));
  block.write('ustar\x0000', 257, 8, 'latin1');
  writeNumber(block, 329, 8, fields.devMajor ?? 0);
  writeNumber(block, 337, 8, fields.devMinor ?? 0);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return block;
}

function padded(data: Buffer): Buffer[] {
  const padding = -data.length & (BLOCK - 1);
  return padding === 0 ? [data] : [data, Buffer.alloc(padding)];
}

function longEntry(type: 'L' | 'K', value: Buffer): Buffer[] {
  const data = Buffer.concat([value, Buffer.alloc(1)]);
  return [header(Buffer.from('././@LongLink'), type, { mode: 0o644, uid: 0, gid: 0, size: data.length, mtime: 0n }), ...padded(data)];
}

function paxRecord(key: string, value: string): string {
  const rest = ` ${key}=${value}\n`;
  let length = rest.length + 1;
  while (String(length).length + rest.length !== length) length += 1;
  return `${length}${rest}`;
}

/** The blocks before an entry's data: metadata entries as needed, then its header. */
export function entryHeader(entry: TarWriteEntry): Buffer {
  const blocks: Buffer[] = [];
  const seconds = entry.mtimeNs >= 0n ? entry.mtimeNs / 1_000_000_000n : 0n;
  const fraction = entry.mtimeNs >= 0n ? entry.mtimeNs % 1_000_000_000n : 0n;
  if (fraction !== 0n) {
    const records = Buffer.from(paxRecord('mtime', `${seconds}.${fraction.toString().padStart(9, '0').replace(/0+$/, '')}`));
    blocks.push(header(Buffer.from('./PaxHeaders/entry'), 'x', { mode: 0o644, uid: 0, gid: 0, size: records.length, mtime: seconds }), ...padded(records));
  }
  if (entry.name.length > 100) blocks.push(...longEntry('L', entry.name));
  if (entry.linkName && entry.linkName.length > 100) blocks.push(...longEntry('K', entry.linkName));
  blocks.push(
    header(entry.name, TYPE_FLAGS[entry.type], {
      mode: entry.mode & 0o7777,
      uid: entry.uid,
      gid: entry.gid,
      size: entry.type === 'file' ? entry.size : 0,
      mtime: seconds,
      ...(entry.linkName ? { linkName: entry.linkName } : {}),
      ...(entry.devMajor !== undefined ? { devMajor: entry.devMajor } : {}),
      ...(entry.devMinor !== undefined ? { devMinor: entry.devMinor } : {}),
    }),
  );
  return Buffer.concat(blocks);
}

/** Zero bytes that complete a file's data of `size` bytes to whole blocks. */
export function dataPadding(size: number): Buffer {
  return Buffer.alloc(-size & (BLOCK - 1));
}

/** tar's end-of-archive marker: two zero blocks. */
export function endOfArchive(): Buffer {
  return Buffer.alloc(2 * BLOCK);
}
