/**
 * Whether an archive is safe to extract into a claim's root with busybox tar, as root: every entry
 * must land inside the tree, never through a symlink the archive made, and be something the helper
 * can create. Checked on the plugin's side, entry by entry, before anything is written.
 */
import type { TarEntry } from './tar-stream.ts';

const SLASH = 0x2f;

export class UnsafeArchiveError extends Error {
  /** The offending entry's name as displayName() shows it. */
  readonly entryName: string;

  constructor(name: Buffer, message: string) {
    super(message);
    this.name = 'UnsafeArchiveError';
    this.entryName = displayName(name);
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
/** Characters that would break a message's line or disguise it: controls, formatting (bidi), separators. */
const NOT_SHOWN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
const SHORT_ESCAPES: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** Bytes in a UTF-8 sequence that starts with `lead`; 0 if no sequence starts with it. */
function utf8Length(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

/**
 * A name for messages, on one line: UTF-8 text as it is, with quotes, backslashes and characters that
 * are not printable escaped JSON-style ("\n", "\u202e") and bytes that are not UTF-8 as "\xff".
 */
export function displayName(name: Buffer): string {
  let shown = '';
  for (let i = 0; i < name.length; ) {
    const length = utf8Length(name[i]!);
    let char: string | undefined;
    try {
      char = length === 0 ? undefined : strictUtf8.decode(name.subarray(i, i + length));
    } catch {
      char = undefined;
    }
    if (char === undefined) {
      shown += `\\x${name[i]!.toString(16).padStart(2, '0')}`;
      i += 1;
      continue;
    }
    const code = char.codePointAt(0)!;
    if (SHORT_ESCAPES[char]) shown += SHORT_ESCAPES[char];
    else if (NOT_SHOWN.test(char)) shown += code > 0xffff ? `\\u{${code.toString(16)}}` : `\\u${code.toString(16).padStart(4, '0')}`;
    else shown += char;
    i += length;
  }
  return shown;
}

/** The path's segments, without the empty and "." ones that go nowhere. Bytes map 1:1 to latin1. */
function segments(path: Buffer): string[] {
  return path.toString('latin1').split('/').filter((segment) => segment !== '' && segment !== '.');
}

function quoted(path: Buffer | string): string {
  return `"${displayName(Buffer.isBuffer(path) ? path : Buffer.from(path, 'latin1'))}"`;
}

/** Stateful: feed it every entry in archive order (as TarStreamCheck's onEntry). Throws UnsafeArchiveError. */
export class ArchiveSafety {
  /** Symlinks made so far (segments joined by "/"). Never removed: busybox tar keeps a symlink that a later directory entry names. */
  private readonly symlinks = new Set<string>();

  check(entry: TarEntry): void {
    const { name, linkName } = entry;
    const unsafe = (message: string) => new UnsafeArchiveError(name, message);
    if (name[0] === SLASH) throw unsafe(`entry ${quoted(name)} has an absolute path`);
    const path = segments(name);
    if (path.includes('..')) throw unsafe(`entry ${quoted(name)} has a ".." path segment`);
    const through = this.symlinkOnTheWay(path);
    if (through !== undefined) throw unsafe(`entry ${quoted(name)} would be written through the symlink ${quoted(through)}`);

    switch (entry.type) {
      case 'char-device':
      case 'block-device':
        throw unsafe(`entry ${quoted(name)} is a ${entry.type === 'char-device' ? 'character' : 'block'} device: restoring device nodes needs privileges the restore helper does not have`);
      case 'other':
        // GNU sparse files, dump directories, volume labels...: busybox tar skips or misreads them.
        throw unsafe(`entry ${quoted(name)} is of a tar entry type busybox tar cannot restore`);
      case 'symlink':
        // An absolute target is kept verbatim for the workload to resolve in its own container;
        // nothing is written through any symlink (see symlinkOnTheWay).
        if (linkName[0] !== SLASH && climbsAboveRoot(path.length - 1, segments(linkName))) {
          throw unsafe(`symlink ${quoted(name)} points outside the archive root (${quoted(linkName)})`);
        }
        this.symlinks.add(path.join('/'));
        return;
      case 'hardlink': {
        if (linkName[0] === SLASH) throw unsafe(`hard link ${quoted(name)} points to an absolute path (${quoted(linkName)})`);
        const target = segments(linkName);
        if (target.includes('..')) throw unsafe(`hard link ${quoted(name)} points to ${quoted(linkName)}, which has a ".." path segment`);
        const targetThrough = this.symlinkOnTheWay(target);
        if (targetThrough !== undefined) throw unsafe(`hard link ${quoted(name)} points to ${quoted(linkName)} through the symlink ${quoted(targetThrough)}`);
        // A hard link to a symlink is that symlink under another name.
        if (this.symlinks.has(target.join('/'))) this.symlinks.add(path.join('/'));
        return;
      }
      default:
        return;
    }
  }

  /** The first of the path's parent directories that is a symlink made earlier, if any. */
  private symlinkOnTheWay(path: string[]): string | undefined {
    for (let depth = 1; depth < path.length; depth++) {
      const parent = path.slice(0, depth).join('/');
      if (this.symlinks.has(parent)) return parent;
    }
    return undefined;
  }
}

/** Whether a relative target, followed from a directory `depth` levels below the root, ever goes above it. */
function climbsAboveRoot(depth: number, target: string[]): boolean {
  for (const segment of target) {
    depth += segment === '..' ? -1 : 1;
    if (depth < 0) return true;
  }
  return false;
}
