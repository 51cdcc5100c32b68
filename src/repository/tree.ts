/**
 * Trees (doc/design.rst, "Trees and Data"; restic internal/data/node.go, tree.go): a directory is a
 * JSON blob `{"nodes":[...]}\n`, its nodes strictly ordered by name compared as bytes. What restic's
 * Go code does implicitly is explicit here:
 * - names are byte strings, stored through Go's strconv.Quote without the outer quotes (so a newline
 *   is `\n` and a byte that is not UTF-8 is `\xff`), then JSON-escaped;
 * - `mode` is a Go os.FileMode: permission bits plus type and setuid/setgid/sticky bits of its own;
 * - times are RFC3339Nano strings, kept exactly as BigInt nanoseconds here;
 * - files have `"content": []` even when empty (null fails `restic check`), directories
 *   `"content": null` and a `subtree`; a symlink target that is not UTF-8 also goes in
 *   `linktarget_raw` (base64).
 */
import { formatTime, parseTime } from './time.ts';

export type NodeType = 'file' | 'dir' | 'symlink' | 'dev' | 'chardev' | 'fifo' | 'socket' | 'irregular';

/** Go's os.FileMode bits (io/fs). */
export const GoMode = {
  dir: 2 ** 31,
  append: 2 ** 30,
  exclusive: 2 ** 29,
  temporary: 2 ** 28,
  symlink: 2 ** 27,
  device: 2 ** 26,
  namedPipe: 2 ** 25,
  socket: 2 ** 24,
  setuid: 2 ** 23,
  setgid: 2 ** 22,
  charDevice: 2 ** 21,
  sticky: 2 ** 20,
  irregular: 2 ** 19,
} as const;

const TYPE_BITS: Record<NodeType, number> = {
  file: 0,
  dir: GoMode.dir,
  symlink: GoMode.symlink,
  dev: GoMode.device,
  chardev: GoMode.device + GoMode.charDevice,
  fifo: GoMode.namedPipe,
  socket: GoMode.socket,
  irregular: GoMode.irregular,
};

/** The node type of a file's st_mode (its S_IFMT bits, as lstat and `stat -c %f` give them). */
export function nodeTypeOfMode(mode: number): NodeType {
  switch (mode & 0o170000) {
    case 0o140000: return 'socket';
    case 0o120000: return 'symlink';
    case 0o100000: return 'file';
    case 0o060000: return 'dev';
    case 0o040000: return 'dir';
    case 0o020000: return 'chardev';
    case 0o010000: return 'fifo';
    default: return 'irregular';
  }
}

/** Unix permission bits (0o7777: setuid 0o4000, setgid 0o2000, sticky 0o1000) of a node type, as a Go os.FileMode. */
export function toGoFileMode(type: NodeType, unixMode: number): number {
  let mode = TYPE_BITS[type] + (unixMode & 0o777);
  if (unixMode & 0o4000) mode += GoMode.setuid;
  if (unixMode & 0o2000) mode += GoMode.setgid;
  if (unixMode & 0o1000) mode += GoMode.sticky;
  return mode;
}

/** The unix permission bits (0o7777) of a Go os.FileMode. */
export function fromGoFileMode(goMode: number): number {
  const bit = (value: number) => Math.floor(goMode / value) % 2 === 1;
  return (goMode % 0o1000) + (bit(GoMode.setuid) ? 0o4000 : 0) + (bit(GoMode.setgid) ? 0o2000 : 0) + (bit(GoMode.sticky) ? 0o1000 : 0);
}

export interface Node {
  /** Raw bytes: a name need not be UTF-8. */
  name: Buffer;
  type: NodeType;
  /** Go os.FileMode. */
  mode: number;
  /** Nanoseconds since the epoch. */
  mtime: bigint;
  atime: bigint;
  ctime: bigint;
  uid: number;
  gid: number;
  user?: string;
  group?: string;
  inode?: number;
  /** st_dev, which restic records only for hard links (links > 1). */
  deviceId?: number;
  size?: number;
  links?: number;
  /** Symlink target as raw bytes. */
  linkTarget?: Buffer;
  /** st_rdev of a device node. */
  device?: number;
  /** Data blob IDs (hex) of a file, in order; [] for an empty file. */
  content?: string[];
  /** Tree blob ID (hex) of a directory. */
  subtree?: string;
  /** Whatever else restic wrote (extended attributes, generic attributes, error), kept as it was. */
  extra?: Record<string, unknown>;
}

/** Go's unicode.IsPrint, close enough: letters, marks, numbers, punctuation, symbols and ASCII space. */
const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;

/** Go's strconv.Quote of a byte string, without the outer quotes. */
export function goQuote(bytes: Buffer): string {
  if (isPlainAscii(bytes)) return bytes.toString('latin1');
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const width = utf8Width(bytes, i);
    if (width === 0) {
      out += `\\x${bytes[i]!.toString(16).padStart(2, '0')}`;
      i += 1;
      continue;
    }
    const char = bytes.toString('utf8', i, i + width);
    const code = char.codePointAt(0)!;
    i += width;
    if (char === '"' || char === '\\') out += `\\${char}`;
    else if (PRINTABLE.test(char)) out += char;
    else if (code === 7) out += '\\a';
    else if (code === 8) out += '\\b';
    else if (code === 12) out += '\\f';
    else if (code === 10) out += '\\n';
    else if (code === 13) out += '\\r';
    else if (code === 9) out += '\\t';
    else if (code === 11) out += '\\v';
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else if (code < 0x10000) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += `\\U${code.toString(16).padStart(8, '0')}`;
  }
  return out;
}

/** Printable ASCII without a quote or backslash: quoted as it is (most names; the general path tests each character). */
function isPlainAscii(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    if (byte < 0x20 || byte > 0x7e || byte === 0x22 || byte === 0x5c) return false;
  }
  return true;
}

/** Bytes of the valid UTF-8 sequence at `i` (as Go decodes: no surrogates, no overlongs), or 0. */
function utf8Width(b: Buffer, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const cont = (k: number) => i + k < b.length && (b[i + k]! & 0xc0) === 0x80;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (!cont(1) || !cont(2)) return 0;
    const c1 = b[i + 1]!;
    if (c === 0xe0 && c1 < 0xa0) return 0;
    if (c === 0xed && c1 > 0x9f) return 0;
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    const c1 = b[i + 1]!;
    if (c === 0xf0 && c1 < 0x90) return 0;
    if (c === 0xf4 && c1 > 0x8f) return 0;
    return 4;
  }
  return 0;
}

export function isValidUtf8(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; ) {
    const width = utf8Width(bytes, i);
    if (width === 0) return false;
    i += width;
  }
  return true;
}

const SIMPLE_ESCAPES: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 0x5c, "'": 0x27, '"': 0x22 };

/** Go's strconv.Unquote of `"` + text + `"`, as bytes. */
export function goUnquote(text: string): Buffer {
  const parts: Buffer[] = [];
  let literal = '';
  const flush = () => {
    if (literal) parts.push(Buffer.from(literal, 'utf8'));
    literal = '';
  };
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (char !== '\\') {
      if (char === '"' || char === '\n') throw new Error(`invalid quoted name ${JSON.stringify(text)}`);
      literal += char;
      continue;
    }
    const escape = text[++i];
    if (escape === undefined) throw new Error(`invalid quoted name ${JSON.stringify(text)}`);
    if (escape in SIMPLE_ESCAPES) {
      literal += String.fromCharCode(SIMPLE_ESCAPES[escape]!);
    } else if (escape === 'x') {
      flush();
      parts.push(Buffer.from([parseHex(text.slice(i + 1, i + 3), text)]));
      i += 2;
    } else if (escape === 'u' || escape === 'U') {
      const digits = escape === 'u' ? 4 : 8;
      literal += String.fromCodePoint(parseHex(text.slice(i + 1, i + 1 + digits), text));
      i += digits;
    } else if (escape >= '0' && escape <= '7') {
      const octal = text.slice(i, i + 3);
      if (!/^[0-7]{3}$/.test(octal) || parseInt(octal, 8) > 255) throw new Error(`invalid quoted name ${JSON.stringify(text)}`);
      flush();
      parts.push(Buffer.from([parseInt(octal, 8)]));
      i += 2;
    } else {
      throw new Error(`invalid escape \\${escape} in quoted name ${JSON.stringify(text)}`);
    }
  }
  flush();
  return Buffer.concat(parts);
}

function parseHex(digits: string, text: string): number {
  if (!/^[0-9a-fA-F]+$/.test(digits)) throw new Error(`invalid quoted name ${JSON.stringify(text)}`);
  return parseInt(digits, 16);
}

/**
 * One node as restic's Go code marshals it: same fields, same order, same omissions. Written as a
 * string, not an object given to JSON.stringify: a backup of many small files encodes every node.
 */
export function encodeNode(node: Node): string {
  let json = `{"name":${JSON.stringify(goQuote(node.name))},"type":${JSON.stringify(node.type)}`;
  if (node.mode) json += `,"mode":${node.mode}`;
  const mtime = formatTime(node.mtime);
  // A backup records atime as mtime (incremental.ts): one formatting for both.
  const atime = node.atime === node.mtime ? mtime : formatTime(node.atime);
  json += `,"mtime":"${mtime}","atime":"${atime}","ctime":"${formatTime(node.ctime)}","uid":${node.uid},"gid":${node.gid}`;
  if (node.user) json += `,"user":${JSON.stringify(node.user)}`;
  if (node.group) json += `,"group":${JSON.stringify(node.group)}`;
  if (node.inode) json += `,"inode":${node.inode}`;
  if (node.deviceId) json += `,"device_id":${node.deviceId}`;
  if (node.size) json += `,"size":${node.size}`;
  if (node.links) json += `,"links":${node.links}`;
  if (node.linkTarget && node.linkTarget.length > 0) {
    json += `,"linktarget":${JSON.stringify(node.linkTarget.toString('utf8'))}`;
    if (!isValidUtf8(node.linkTarget)) json += `,"linktarget_raw":"${node.linkTarget.toString('base64')}"`;
  }
  const extra = node.extra ?? {};
  if (extra.extended_attributes !== undefined) json += `,"extended_attributes":${JSON.stringify(extra.extended_attributes)}`;
  if (extra.generic_attributes !== undefined) json += `,"generic_attributes":${JSON.stringify(extra.generic_attributes)}`;
  if (node.device) json += `,"device":${node.device}`;
  json += `,"content":${JSON.stringify(node.type === 'file' ? (node.content ?? []) : (node.content ?? null))}`;
  if (node.subtree !== undefined) json += `,"subtree":${JSON.stringify(node.subtree)}`;
  if (extra.error !== undefined) json += `,"error":${JSON.stringify(extra.error)}`;
  return `${json}}`;
}

const KNOWN_NODE_FIELDS = new Set([
  'name', 'type', 'mode', 'mtime', 'atime', 'ctime', 'uid', 'gid', 'user', 'group', 'inode', 'device_id', 'size', 'links',
  'linktarget', 'linktarget_raw', 'device', 'content', 'subtree',
]);

function optionalTime(value: unknown): bigint {
  return typeof value === 'string' ? parseTime(value) : 0n;
}

/** Parses what any restic version wrote, leniently (missing fields, nulls); only the name and type must make sense. */
export function decodeNode(json: Record<string, unknown>): Node {
  if (typeof json.name !== 'string') throw new Error('tree node without a name');
  const node: Node = {
    name: goUnquote(json.name),
    type: String(json.type) as NodeType,
    mode: typeof json.mode === 'number' ? json.mode : 0,
    mtime: optionalTime(json.mtime),
    atime: optionalTime(json.atime),
    ctime: optionalTime(json.ctime),
    uid: typeof json.uid === 'number' ? json.uid : 0,
    gid: typeof json.gid === 'number' ? json.gid : 0,
  };
  if (typeof json.user === 'string') node.user = json.user;
  if (typeof json.group === 'string') node.group = json.group;
  if (typeof json.inode === 'number') node.inode = json.inode;
  if (typeof json.device_id === 'number') node.deviceId = json.device_id;
  if (typeof json.size === 'number') node.size = json.size;
  if (typeof json.links === 'number') node.links = json.links;
  if (typeof json.linktarget_raw === 'string') node.linkTarget = Buffer.from(json.linktarget_raw, 'base64');
  else if (typeof json.linktarget === 'string') node.linkTarget = Buffer.from(json.linktarget, 'utf8');
  if (typeof json.device === 'number') node.device = json.device;
  if (Array.isArray(json.content)) node.content = json.content.map(String);
  if (typeof json.subtree === 'string') node.subtree = json.subtree;
  const extra: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) if (!KNOWN_NODE_FIELDS.has(key) && value !== null) extra[key] = value;
  if (Object.keys(extra).length > 0) node.extra = extra;
  return node;
}

export function decodeTree(blob: Buffer): Node[] {
  const json = JSON.parse(blob.toString('utf8')) as { nodes?: Record<string, unknown>[] | null };
  return (json.nodes ?? []).map(decodeNode);
}
