/**
 * Tar stream in, restic snapshot out. The helper pods speak tar; this turns one archive into a
 * snapshot whose tree mirrors it: files (chunked like restic, so the same file gives the same blobs),
 * directories (empty ones too), symlinks, hard links, fifos and devices, with modes, owners and
 * mtimes. The archive's root becomes the last component of the snapshot's path (`/data/<pvc>`), under
 * directories made up for the rest of the path, as `restic backup /data/<pvc>` records it.
 *
 * Memory: tar walks depth-first, and so does this. Only the directories on the path to the current
 * entry are open, each holding its nodes; a directory's tree blob is saved when tar leaves it. What
 * is held is (depth x entries of one directory) nodes, one chunk (at most 8 MiB) and one pack per
 * blob type, whatever the archive's size.
 *
 * Hard links: a tar stream names the earlier path a link points to, but says nothing when it writes
 * that first name, and no inode numbers. The first name is written as a plain file; when a link to it
 * comes, its node is looked up through the trees (bounded memory), marked `links: 2` with an inode
 * number made up for the archive, and the trees above it that are already saved are saved again
 * (the old tree blobs stay unreferenced until a prune). Every name of the file then records links 2
 * and that inode: restic's restorer links names with the same inode when links > 1. The true link
 * count is not known without a second pass, so it is recorded as 2.
 */
import { TarStreamCheck, type TarEntry } from '../backup/tar-stream.ts';
import { Chunker, MAX_SIZE } from './chunker.ts';
import type { Repository, SaveStats } from './repository.ts';
import type { ChangeCounts } from './incremental.ts';
import { newSnapshot, type Snapshot } from './snapshot.ts';
import { formatTime, nowNs } from './time.ts';
import { goQuote, toGoFileMode, type Node } from './tree.ts';
import { TreeNodes, treeNodesOf } from './tree-nodes.ts';

export interface ArchiveOptions {
  /** The snapshot's path, e.g. `/data/<pvc>` (k8up's convention). */
  path: string;
  /** The snapshot's hostname: the namespace, as k8up records it. */
  hostname: string;
  tags?: string[];
  parent?: string;
  /** The snapshot's time (ns), also the mtime of directories made up for the path above the archive's root. */
  time?: bigint;
  programVersion?: string;
}

export interface ArchiveResult {
  snapshotId: string;
  snapshot: Snapshot;
  files: number;
  dirs: number;
  bytes: number;
}

export class ArchiveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArchiveError';
  }
}

interface Frame {
  name: Buffer;
  /** The directory's own node, without subtree, once its tar entry is seen (else made up). */
  self: Node | undefined;
  nodes: TreeNodes;
}

/**
 * Chunk buffers of MAX_SIZE kept between files. A chunk that spans the pushed pieces is gathered in
 * one of these instead of a new buffer per chunk; pages never written cost no memory.
 */
const spareChunkBuffers: Buffer[] = [];
const SPARE_CHUNK_BUFFERS = 2;

/** Chunks a file has on the sealing worker at once: each is a copy (1 MiB on average, at most 8). */
const CHUNKS_ON_WORKER = 2;

/**
 * One file's content as it streams, cut like restic cuts it and saved blob by blob. Holds at most one
 * chunk (8 MiB) in progress, in a buffer reused from file to file, and copies of the large chunks
 * being sealed on the worker (CHUNKS_ON_WORKER).
 */
export class FileChunks {
  readonly content: string[] = [];
  /** Chunks being saved on the sealing worker, oldest first. */
  private readonly saving: Promise<void>[] = [];
  private readonly repo: Repository;
  private readonly chunker: Chunker;
  private buffer: Buffer | undefined;
  private used = 0;

  constructor(repo: Repository) {
    this.repo = repo;
    this.chunker = new Chunker(repo.config.chunkerPolynomial);
  }

  /** Takes the next bytes; the caller may reuse `data` once this returns. */
  async push(data: Buffer): Promise<void> {
    const cuts = this.chunker.push(data);
    let start = 0;
    for (const cut of cuts) {
      if (this.used === 0) {
        // The whole chunk is in `data`: saved from there, without a copy.
        await this.save(data.subarray(start, cut));
      } else {
        this.append(data.subarray(start, cut));
        await this.save(this.buffer!.subarray(0, this.used));
        this.used = 0;
      }
      start = cut;
    }
    if (start < data.length) this.append(data.subarray(start));
  }

  /** The file ended: its last chunk saved, its blob IDs in order. */
  async end(): Promise<string[]> {
    if (this.used > 0) await this.save(this.buffer!.subarray(0, this.used));
    this.used = 0;
    for (const saved of this.saving.splice(0)) await saved;
    if (this.buffer && spareChunkBuffers.length < SPARE_CHUNK_BUFFERS) spareChunkBuffers.push(this.buffer);
    this.buffer = undefined;
    return this.content;
  }

  private append(piece: Buffer): void {
    this.buffer ??= spareChunkBuffers.pop() ?? Buffer.allocUnsafeSlow(MAX_SIZE);
    // The chunker cuts at MAX_SIZE, so a chunk in progress always fits.
    piece.copy(this.buffer, this.used);
    this.used += piece.length;
  }

  /**
   * Saves a chunk: a large one on the sealing worker while the next is cut (at most
   * CHUNKS_ON_WORKER under way), a small one here. Its ID takes its place in `content` either way.
   */
  private async save(chunk: Buffer): Promise<void> {
    const onWorker = this.repo.saveChunkOnWorker(chunk);
    if (!onWorker) {
      this.content.push((await this.repo.saveBlob('data', chunk)).id);
      return;
    }
    const at = this.content.push('') - 1;
    const saved = onWorker.then(({ id }) => {
      this.content[at] = id;
    });
    saved.catch(() => undefined); // awaited below or in end()
    this.saving.push(saved);
    if (this.saving.length > CHUNKS_ON_WORKER) await this.saving.shift();
  }
}

interface OpenFile {
  node: Node;
  chunks: FileChunks;
  /** Bytes still to come. */
  left: number;
}

type Event = { kind: 'entry'; entry: TarEntry } | { kind: 'data'; data: Buffer };

const SLASH = 0x2f;

/** The entry's path as components, `.` and empty ones dropped; `..` refused. */
export function components(name: Buffer): Buffer[] {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= name.length; i++) {
    if (i === name.length || name[i] === SLASH) {
      const part = name.subarray(start, i);
      start = i + 1;
      if (part.length === 0 || (part.length === 1 && part[0] === 0x2e)) continue;
      if (part.length === 2 && part[0] === 0x2e && part[1] === 0x2e) throw new ArchiveError(`tar entry ${JSON.stringify(goQuote(name))} has a ".." component`);
      parts.push(Buffer.from(part));
    }
  }
  return parts;
}

export function madeUpDir(name: Buffer, time: bigint): Node {
  return { name, type: 'dir', mode: toGoFileMode('dir', 0o755), mtime: time, atime: time, ctime: time, uid: 0, gid: 0 };
}

export class TarArchiver {
  private readonly repo: Repository;
  private readonly stack: Frame[] = [];
  private file: OpenFile | undefined;
  private readonly time: bigint;
  private nextInode = 1;
  private files = 0;
  private dirs = 0;
  private bytes = 0;

  constructor(repo: Repository, time: bigint) {
    this.repo = repo;
    this.time = time;
    this.stack.push({ name: Buffer.alloc(0), self: undefined, nodes: new TreeNodes() });
  }

  async entry(entry: TarEntry): Promise<void> {
    if (this.file) throw new ArchiveError('tar entry started before the previous file ended');
    const path = components(entry.name);
    const mtime = entry.mtimeNs ?? BigInt(entry.mtime) * 1_000_000_000n;
    const base = { mtime, atime: mtime, ctime: mtime, uid: entry.uid, gid: entry.gid };
    if (path.length === 0) {
      if (entry.type !== 'directory') throw new ArchiveError(`tar entry ${JSON.stringify(goQuote(entry.name))} is the archive's root but not a directory`);
      await this.closeTo(0);
      this.stack[0]!.self = { name: Buffer.alloc(0), type: 'dir', mode: toGoFileMode('dir', entry.mode), ...base };
      return;
    }
    const name = path.at(-1)!;
    if (entry.type === 'directory') {
      // Opened, or reopened when tar already went through it without announcing it.
      this.dirs += 1;
      await this.openParents(path);
      this.stack.at(-1)!.self = { name, type: 'dir', mode: toGoFileMode('dir', entry.mode), ...base };
      return;
    }
    await this.openParents(path.slice(0, -1));
    const parent = this.stack.at(-1)!;
    switch (entry.type) {
      case 'file': {
        this.files += 1;
        const node: Node = { name, type: 'file', mode: toGoFileMode('file', entry.mode), ...base, size: entry.size, links: 1, content: [] };
        // Placed once its content is known: a placed node is already encoded.
        if (entry.size > 0) this.file = { node, chunks: new FileChunks(this.repo), left: entry.size };
        else parent.nodes.add(node);
        return;
      }
      case 'symlink':
        parent.nodes.add({ name, type: 'symlink', mode: toGoFileMode('symlink', 0o777), ...base, linkTarget: Buffer.from(entry.linkName) });
        return;
      case 'hardlink': {
        this.files += 1;
        const target = await this.linkTarget(components(entry.linkName), entry.linkName);
        parent.nodes.add({ ...target, name, mode: toGoFileMode('file', entry.mode), ...base });
        return;
      }
      case 'fifo':
        parent.nodes.add({ name, type: 'fifo', mode: toGoFileMode('fifo', entry.mode), ...base });
        return;
      case 'char-device':
      case 'block-device': {
        const type = entry.type === 'char-device' ? 'chardev' : 'dev';
        const major = entry.devMajor ?? 0;
        const minor = entry.devMinor ?? 0;
        parent.nodes.add({ name, type, mode: toGoFileMode(type, entry.mode), ...base, device: linuxDevice(major, minor) });
        return;
      }
      default:
        throw new ArchiveError(`tar entry ${JSON.stringify(goQuote(entry.name))} has a type this archiver does not know`);
    }
  }

  async data(data: Buffer): Promise<void> {
    const file = this.file;
    if (!file) throw new ArchiveError('file data outside a file entry');
    this.bytes += data.length;
    await file.chunks.push(data);
    file.left -= data.length;
    if (file.left === 0) {
      file.node.content = await file.chunks.end();
      this.file = undefined;
      this.stack.at(-1)!.nodes.add(file.node);
    }
  }

  /** Makes the open directories exactly the root and `path`: closes what tar has left, opens (made-up) parents it skipped. */
  private async openParents(path: Buffer[]): Promise<void> {
    let common = 0;
    while (common < path.length && common + 1 < this.stack.length && this.stack[common + 1]!.name.equals(path[common]!)) common += 1;
    await this.closeTo(common);
    for (let i = common; i < path.length; i++) {
      const name = path[i]!;
      const parent = this.stack.at(-1)!;
      // A directory tar already left, or one it has not announced: reopen it by its saved tree.
      const existing = parent.nodes.take(name);
      if (existing) {
        if (existing.type !== 'dir') throw new ArchiveError(`tar entry below ${JSON.stringify(goQuote(name))}, which is not a directory`);
        const nodes = treeNodesOf(existing.subtree ? await this.repo.loadTree(existing.subtree) : []);
        const { subtree: _subtree, ...self } = existing;
        this.stack.push({ name, self, nodes });
      } else {
        this.stack.push({ name, self: undefined, nodes: new TreeNodes() });
      }
    }
  }

  /** Saves and closes open directories until `depth` + 1 remain open (the root is depth 0). */
  private async closeTo(depth: number): Promise<void> {
    while (this.stack.length > depth + 1) {
      const frame = this.stack.pop()!;
      const subtree = await this.repo.saveTree(frame.nodes);
      const self = frame.self ?? madeUpDir(frame.name, this.time);
      this.stack.at(-1)!.nodes.add({ ...self, name: frame.name, subtree });
    }
  }

  /** The node of the file a hard link names, marked as hard-linked (saved trees above it rewritten). */
  private async linkTarget(path: Buffer[], raw: Buffer): Promise<Node> {
    const fail = (why: string) => new ArchiveError(`hard link to ${JSON.stringify(goQuote(raw))}: ${why}`);
    if (path.length === 0) throw fail('no such file earlier in the archive');
    // The deepest open directory on the target's path.
    let depth = 0;
    while (depth + 1 < this.stack.length && depth < path.length - 1 && this.stack[depth + 1]!.name.equals(path[depth]!)) depth += 1;
    const mark = (node: Node): Node => {
      if (node.type !== 'file') throw fail('not a regular file');
      if (!node.links || node.links < 2 || node.inode === undefined) {
        node.links = 2;
        node.inode = this.nextInode++;
      }
      return node;
    };
    let found: Node | undefined;
    /** Marks the target in `node` (the first name of `rest`) and returns it, rewritten. */
    const rewrite = async (node: Node | undefined, rest: Buffer[]): Promise<Node> => {
      if (!node) throw fail('no such file earlier in the archive');
      if (rest.length === 1) return (found = mark(node));
      if (node.type !== 'dir' || !node.subtree) throw fail(`${JSON.stringify(goQuote(rest[0]!))} is not a directory`);
      const children = await this.repo.loadTree(node.subtree);
      const at = children.findIndex((n) => n.name.equals(rest[1]!));
      children[at] = await rewrite(children[at], rest.slice(1));
      // Unchanged, the tree has the same ID and is not stored again.
      node.subtree = await this.repo.saveTree(children);
      return node;
    };
    // In the open directory the node was placed (encoded): it is taken out, rewritten and placed again.
    const open = this.stack[depth]!.nodes;
    const first = open.take(path[depth]!);
    try {
      await rewrite(first, path.slice(depth));
    } finally {
      if (first) open.add(first);
    }
    const { name: _name, ...target } = found!;
    return { ...target, name: Buffer.alloc(0), content: [...(target.content ?? [])] };
  }

  /** Closes every directory and returns the root tree of the snapshot, `path`'s directories above the archive's root. */
  async finish(snapshotPath: string): Promise<string> {
    if (this.file) throw new ArchiveError('the archive ended inside a file');
    await this.closeTo(0);
    const root = this.stack[0]!;
    return saveSnapshotRoot(this.repo, root.nodes, root.self, snapshotPath, this.time);
  }

  get counts(): { files: number; dirs: number; bytes: number } {
    return { files: this.files, dirs: this.dirs, bytes: this.bytes };
  }
}

/** What the repository stored since `before` (a copy of its stats then): what one archive added. */
export function savedSince(repo: Repository, before: SaveStats): SaveStats {
  return Object.fromEntries(Object.entries(repo.stats).map(([key, value]) => [key, value - before[key as keyof SaveStats]])) as unknown as SaveStats;
}

/** Linux's makedev, as st_rdev holds it. */
export function linuxDevice(major: number, minor: number): number {
  return (minor & 0xff) + (major & 0xfff) * 2 ** 8 + Math.floor(minor / 256) * 2 ** 20 + Math.floor(major / 4096) * 2 ** 32;
}

/**
 * Saves the tree of the archive's root (`nodes`) and the directories made up above it for the
 * snapshot's path, as `restic backup /data/<pvc>` records them; returns the snapshot's root tree.
 */
export async function saveSnapshotRoot(repo: Repository, nodes: Node[] | TreeNodes, rootSelf: Node | undefined, snapshotPath: string, time: bigint): Promise<string> {
  const above = snapshotPath.split('/').filter((p) => p !== '' && p !== '.');
  let tree = await repo.saveTree(nodes);
  if (above.length === 0) return tree;
  const self = rootSelf ?? madeUpDir(Buffer.alloc(0), time);
  let node: Node = { ...self, name: Buffer.from(above.at(-1)!), subtree: tree };
  // The made-up directories take the root's mtime, not the snapshot's: an unchanged claim then has the same root tree.
  for (let i = above.length - 2; i >= 0; i--) {
    tree = await repo.saveTree([node]);
    node = { ...madeUpDir(Buffer.from(above[i]!), self.mtime), subtree: tree };
  }
  return repo.saveTree([node]);
}

/** A tar stream stored as trees and blobs, its packs and index written, its snapshot not yet. */
export interface ArchivedTree {
  tree: string;
  files: number;
  dirs: number;
  bytes: number;
  /** When reading began (ns). */
  start: bigint;
  time: bigint;
  /** What this archive added to the repository (blobs it shared with others are not counted). */
  added: SaveStats;
  /** Content bytes read from the tar: `bytes` unless unchanged files were taken from a parent. */
  read?: number;
  /** Entries in the snapshot below its path, its root included (as a tar of it lists them), where the tar read had fewer. */
  entries?: number;
  /** Against the parent snapshot (an incremental backup): files and directories new, changed and unmodified. */
  changes?: ChangeCounts;
}

/** What turns tar entries into a snapshot's trees: TarArchiver, or incremental.ts's ListingArchiver. */
export interface TarConsumer {
  entry(entry: TarEntry): Promise<void>;
  data(data: Buffer): Promise<void>;
  /** Closes every directory; the snapshot's root tree. */
  finish(snapshotPath: string): Promise<string>;
  readonly counts: { files: number; dirs: number; bytes: number; read?: number; entries?: number; changes?: ChangeCounts };
}

/** Runs an archive's work; when it fails, the repository settles (Repository.settle) before the failure is passed on. */
export async function settledOnFailure<T>(repo: Repository, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    await repo.settle();
    throw error;
  }
}

/**
 * Reads a whole tar stream into the repository through `consumer`: blobs and trees, then its packs
 * and index. A stream without tar's end-of-archive marker is refused: it was cut short. What it
 * stored is referred to by nothing until saveArchiveSnapshot(), so a caller that finds the copy failed
 * after all (tar's exit status comes after its stream) writes no snapshot, and the packs wait for a prune.
 */
export async function archiveWith(
  repo: Repository,
  input: AsyncIterable<Buffer | Uint8Array>,
  options: Pick<ArchiveOptions, 'path' | 'time'> & {
    concatenated?: boolean;
    /** Archiving began before the tar did (incremental.ts's planning walk): when, and the repository's counts then. */
    since?: { start: bigint; stats: SaveStats };
  },
  makeConsumer: (time: bigint) => TarConsumer,
): Promise<ArchivedTree> {
  return settledOnFailure(repo, async () => {
    const start = options.since?.start ?? nowNs();
    const time = options.time ?? start;
    const before = options.since?.stats ?? { ...repo.stats };
    const consumer = makeConsumer(time);
    const events: Event[] = [];
    const checker = new TarStreamCheck({
      concatenated: options.concatenated ?? false,
      onEntry: (entry) => events.push({ kind: 'entry', entry }),
      onData: (data) => events.push({ kind: 'data', data }),
    });
    for await (const chunk of input) {
      checker.feed(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      for (const event of events.splice(0)) {
        if (event.kind === 'entry') await consumer.entry(event.entry);
        else await consumer.data(event.data);
      }
    }
    if (!checker.summary.complete) throw new ArchiveError('the tar stream ended without its end-of-archive marker: it was cut short');
    const tree = await consumer.finish(options.path);
    await repo.flush();
    const added = savedSince(repo, before);
    return { tree, ...consumer.counts, start, time, added };
  });
}

/** A whole tar stream (the claim's root at its top) into the repository, its snapshot not yet written. */
export async function archiveTree(repo: Repository, input: AsyncIterable<Buffer | Uint8Array>, options: Pick<ArchiveOptions, 'path' | 'time'>): Promise<ArchivedTree> {
  return archiveWith(repo, input, options, (time) => new TarArchiver(repo, time));
}

/**
 * A Block claim's device image, raw bytes in, as one file at the snapshot's path (`/data/<pvc>` is
 * the file), as `restic backup --stdin --stdin-filename /data/<pvc>` stores a stream: chunked like
 * any file, so the regions of a disk that did not change are stored once. Its snapshot not yet written.
 */
export async function archiveImage(repo: Repository, input: AsyncIterable<Buffer | Uint8Array>, options: Pick<ArchiveOptions, 'path' | 'time'>): Promise<ArchivedTree> {
  return settledOnFailure(repo, async () => {
    const start = nowNs();
    const time = options.time ?? start;
    const before = { ...repo.stats };
    const chunks = new FileChunks(repo);
    let size = 0;
    for await (const chunk of input) {
      const data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      await chunks.push(data);
      size += data.length;
    }
    const parts = options.path.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.length === 0) throw new ArchiveError('a device image needs a file name for its path');
    // As restic records a file read from stdin: 0644, the snapshot's time.
    let node: Node = { name: Buffer.from(parts.at(-1)!), type: 'file', mode: toGoFileMode('file', 0o644), mtime: time, atime: time, ctime: time, uid: 0, gid: 0, size, content: await chunks.end() };
    for (let i = parts.length - 2; i >= 0; i--) node = { ...madeUpDir(Buffer.from(parts[i]!), time), subtree: await repo.saveTree([node]) };
    const tree = await repo.saveTree([node]);
    await repo.flush();
    const added = savedSince(repo, before);
    return { tree, files: 1, dirs: 0, bytes: size, entries: 0, start, time, added };
  });
}

/** Writes the snapshot of an archived tree, last, as restic does: after the packs and index it refers to. */
export async function saveArchiveSnapshot(repo: Repository, archived: ArchivedTree, options: ArchiveOptions): Promise<ArchiveResult> {
  const snapshot = newSnapshot({
    tree: archived.tree,
    paths: [options.path],
    hostname: options.hostname,
    time: archived.time,
    ...(options.tags ? { tags: options.tags } : {}),
    ...(options.parent ? { parent: options.parent } : {}),
    ...(options.programVersion ? { programVersion: options.programVersion } : {}),
  });
  snapshot.summary = {
    backup_start: formatTime(archived.start),
    backup_end: formatTime(nowNs()),
    files_new: archived.changes?.filesNew ?? archived.files,
    files_changed: archived.changes?.filesChanged ?? 0,
    files_unmodified: archived.changes?.filesUnmodified ?? 0,
    dirs_new: archived.changes?.dirsNew ?? archived.dirs,
    dirs_changed: archived.changes?.dirsChanged ?? 0,
    dirs_unmodified: archived.changes?.dirsUnmodified ?? 0,
    data_blobs: archived.added.dataBlobs,
    tree_blobs: archived.added.treeBlobs,
    data_added: archived.added.dataAdded,
    data_added_packed: archived.added.dataAddedPacked,
    total_files_processed: archived.files,
    total_bytes_processed: archived.bytes,
  };
  const snapshotId = await repo.saveSnapshot(snapshot);
  return { snapshotId, snapshot, files: archived.files, dirs: archived.dirs, bytes: archived.bytes };
}

/** Reads a whole tar stream into the repository and writes its snapshot (after the packs and the index). */
export async function archiveTar(repo: Repository, input: AsyncIterable<Buffer | Uint8Array>, options: ArchiveOptions): Promise<ArchiveResult> {
  return saveArchiveSnapshot(repo, await archiveTree(repo, input, options), options);
}
