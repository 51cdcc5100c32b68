/**
 * What the copy command says on stderr, read line by line as it arrives, in busybox's and GNU tar's
 * wording. Three kinds of complaint about one path leave an otherwise whole archive, so a tar that
 * exits 1 with only these may still pass:
 *   unreadable  refused with "Permission denied" (a helper that runs as the workload's user);
 *   vanished    listed by tar, gone before tar read it (an application renamed or deleted it): a
 *               path that no longer exists cannot be backed up, as restic and GNU tar hold too;
 *   changed     GNU tar saw it change as it read it.
 * Any other line keeps tar's failure fatal, and so does busybox's "short read": a file shrank while
 * busybox tar copied it, and busybox stops there, the archive cut mid-file.
 * Between two marker lines comes the helper's own listing of regular files modified since tar began
 * (copy.ts), which the copy compares with what tar archived.
 */
const SAMPLE_SIZE = 5;

/** The listing of recently modified files, between these lines (copy.ts writes them). */
export const RECENT_FILES_BEGIN = 'nkvm-recent-files-begin';
export const RECENT_FILES_END = 'nkvm-recent-files-end';

const GONE = '(?:No such file or directory|Not a directory)';
/**
 * A path inside the claim as tar names it (`tar -C /data .` gives `.` and `./...`): a line about any
 * other path, such as tar's own directory, is never a path complaint.
 */
const PATH = String.raw`(\.(?:/.*)?)`;
const pattern = (text: string, tool = 'tar') => new RegExp(`^${tool}: ${text.replaceAll('PATH', PATH)}$`);
/** Most specific first: the generic busybox form would swallow the others' wording into the path. */
const PATTERNS: [RegExp, 'unreadable' | 'vanished' | 'changed'][] = [
  // busybox: `can't open 'x'` (files), `x: Permission denied` (directories); GNU: `x: Cannot open: ...`.
  [pattern("can't open 'PATH': Permission denied"), 'unreadable'],
  [pattern('PATH: Cannot (?:open|opendir|read|stat|savedir|readlink): Permission denied'), 'unreadable'],
  [pattern(`can't open 'PATH': ${GONE}`), 'vanished'],
  [pattern(`PATH: cannot read link: ${GONE}`), 'vanished'],
  [pattern(`PATH: Cannot (?:open|opendir|stat|savedir|readlink): ${GONE}`), 'vanished'],
  [pattern('PATH: File removed before we read it'), 'vanished'],
  [pattern('PATH: file changed as we read it'), 'changed'],
  [pattern('PATH: File shrank by \\d+ bytes?; padding with zeros'), 'changed'],
  [pattern('PATH: Permission denied'), 'unreadable'],
  // busybox's lstat of a listed entry, or opendir of a listed directory, that is no longer there.
  [pattern(`PATH: ${GONE}`), 'vanished'],
  // The listing of an incremental copy (incremental-copy.ts): busybox and GNU find and stat.
  [pattern('PATH: Permission denied', 'find'), 'unreadable'],
  [pattern("['‘]PATH['’]: Permission denied", 'find'), 'unreadable'],
  [pattern(`PATH: ${GONE}`, 'find'), 'vanished'],
  [pattern(`['‘]PATH['’]: ${GONE}`, 'find'), 'vanished'],
  [pattern(`can(?:no|')t stat(?:x)? ['‘]PATH['’]: ${GONE}`, 'stat'), 'vanished'],
  [pattern("can(?:no|')t stat(?:x)? ['‘]PATH['’]: Permission denied", 'stat'), 'unreadable'],
];
/** Lines that are no complaint of their own: both tars' closing summaries, and skipped sockets (exit 0). */
const NOISE = /^tar: (?:error exit delayed from previous errors|Exiting with failure status due to previous errors|.*: socket ignored)$/;
const SHORT_READ = /^tar: short read$/;
const RECENT_LINE = /^(\d+) (\d+) (.*)$/s;

export interface PathSummary {
  count: number;
  /** The first few, as paths inside the claim. */
  sample: string[];
}

export class PathTally {
  count = 0;
  readonly sample: string[] = [];

  add(path: string): void {
    this.count += 1;
    if (this.sample.length < SAMPLE_SIZE) this.sample.push(path.replace(/^\.\//, ''));
  }

  /** Adds another tally's paths (another command's complaints about the same claim). */
  absorb(other: PathTally): void {
    this.count += other.count;
    for (const path of other.sample) if (this.sample.length < SAMPLE_SIZE) this.sample.push(path);
  }

  get summary(): PathSummary {
    return { count: this.count, sample: [...this.sample] };
  }
}

/** One line of the helper's listing: a regular file modified since tar began, as `stat` saw it after tar. */
export interface RecentFile {
  /** The path as tar names it (`./a/b`), raw bytes. */
  name: Buffer;
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
}

/** At most this many recent files are kept for the comparison: a bound on memory for a claim that is rewritten as a whole. */
const RECENT_FILES_LIMIT = 100_000;

export class CopyStderr {
  readonly unreadable = new PathTally();
  readonly vanished = new PathTally();
  readonly changed = new PathTally();
  /** busybox tar stopped because a file shrank while it copied it: the archive is cut there. */
  shortRead = false;
  /** Lines that are none of the above: any of them makes a non-zero exit a real failure. */
  readonly otherErrors: string[] = [];
  /** The helper's listing of regular files modified since tar began (at most RECENT_FILES_LIMIT). */
  readonly recentFiles: RecentFile[] = [];
  /** Every path tar itself said changed as it read it (GNU tar), up to RECENT_FILES_LIMIT: changes merge them with the listing's. */
  readonly changedByTar: string[] = [];
  private inListing = false;
  /** Bytes of an unfinished line; latin1 keeps every byte, so names that are not UTF-8 survive. */
  private pending = '';

  /** Feed stderr as it arrives. */
  push(chunk: Buffer | string): void {
    const lines = (this.pending + (typeof chunk === 'string' ? chunk : chunk.toString('latin1'))).split('\n');
    this.pending = lines.pop() ?? '';
    for (const line of lines) this.line(line);
  }

  /** Call once stderr is complete. */
  end(): void {
    if (this.pending) this.line(this.pending);
    this.pending = '';
  }

  /** True when tar's failure is fully explained by paths it could not read, that vanished or that changed. */
  get onlyPathComplaints(): boolean {
    return this.unreadable.count + this.vanished.count + this.changed.count > 0 && this.otherErrors.length === 0 && !this.shortRead;
  }

  /** tar's own stderr, the listing left out: what a failure message quotes. */
  get complaintText(): string {
    return [...this.otherErrors, ...(this.shortRead ? ['tar: short read'] : [])].join('\n');
  }

  private line(rawLatin1: string): void {
    const raw = rawLatin1.replace(/\r$/, '');
    if (this.inListing) return this.listingLine(raw);
    if (raw === RECENT_FILES_BEGIN) {
      this.inListing = true;
      return;
    }
    const line = Buffer.from(raw, 'latin1').toString('utf8');
    if (!line || NOISE.test(line)) return;
    if (SHORT_READ.test(line)) {
      this.shortRead = true;
      return;
    }
    for (const [pattern, kind] of PATTERNS) {
      const match = pattern.exec(line);
      if (!match) continue;
      if (kind === 'changed' && this.changedByTar.length < RECENT_FILES_LIMIT) this.changedByTar.push(match[1]!);
      return this[kind].add(match[1]!);
    }
    if (this.otherErrors.length < SAMPLE_SIZE) this.otherErrors.push(line);
  }

  private listingLine(raw: string): void {
    if (raw === RECENT_FILES_END) {
      this.inListing = false;
      return;
    }
    const match = RECENT_LINE.exec(raw);
    const last = this.recentFiles.at(-1);
    if (!match) {
      // A name with a newline in it goes on over the next line.
      if (last) last.name = Buffer.concat([last.name, Buffer.from(`\n${raw}`, 'latin1')]);
      return;
    }
    if (this.recentFiles.length >= RECENT_FILES_LIMIT) return;
    this.recentFiles.push({ mtime: Number(match[1]), size: Number(match[2]), name: Buffer.from(match[3]!, 'latin1') });
  }
}

function describePaths(summary: PathSummary, what: string): string {
  const more = summary.count > summary.sample.length ? ` (and ${summary.count - summary.sample.length} more)` : '';
  const noun = summary.count === 1 ? 'path' : 'paths';
  return `${summary.count} ${noun} ${what}: ${summary.sample.join(', ')}${more}`;
}

/** "3 paths could not be read as uid 1000 ...: a/b, c (and 1 more)". */
export function describeUnreadable(summary: PathSummary, identity: string): string {
  return describePaths(summary, `could not be read as ${identity}`);
}

/** "2 paths vanished while the backup ran, so are not in it: a, b". */
export function describeVanished(summary: PathSummary): string {
  return describePaths(summary, 'vanished while the backup ran, so are not in it');
}

/** "1 path changed while the backup ran, kept as tar read it: log". */
export function describeChanged(summary: PathSummary): string {
  return describePaths(summary, 'changed while the backup ran, kept as tar read it');
}
