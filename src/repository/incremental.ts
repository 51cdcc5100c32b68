/**
 * A backup that reads only what changed since its parent snapshot, as restic's archiver does: a
 * listing of every path with its metadata comes first, each regular file and symlink in it is
 * compared with the parent's node at the same path (same type, size, mtime, ctime and inode, and its
 * blobs still in the repository: unchanged), and only the others are read. Two passes over the same
 * listing, which arrives in pre-order (a directory before what it holds):
 *
 *   planRequests()    which paths to read (what a tar of only those must hold); with none, also the
 *                     snapshot's trees, and there is no second pass;
 *   ListingArchiver   the snapshot's trees: directories and unchanged files from the listing and the
 *                     parent, the rest from the tar of the requested paths, which comes in the order
 *                     they were requested. A requested path the tar lacks vanished in between and is
 *                     left out.
 *
 * Metadata is recorded as the listing saw it, before the read, so a file that changes while it is
 * read has a newer ctime by the next backup, which then reads it again. Only the parent's children
 * on the path being walked are held: (depth x entries of one directory) nodes, and the trees read
 * ahead (ParentTrees) until the walk takes them.
 */
import { archiveWith, components, FileChunks, linuxDevice, madeUpDir, saveSnapshotRoot, ArchiveError, type ArchiveOptions, type ArchivedTree, type TarConsumer } from './archiver.ts';
import type { Repository, SaveStats } from './repository.ts';
import type { SnapshotWithId } from './snapshot.ts';
import type { TarEntry } from '../backup/tar-stream.ts';
import { encodeNode, goQuote, toGoFileMode, type Node, type NodeType } from './tree.ts';
import { decodeNodeJson, NodesByName, trailingContent, TreeNodes } from './tree-nodes.ts';
import { nowNs } from './time.ts';

/** A path as the listing saw it, before anything was read. */
export interface ListedEntry {
  /** Raw bytes, relative to the archive's root (`.`, `./a/b`). */
  path: Buffer;
  type: NodeType;
  /** Permission bits with setuid, setgid and sticky (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  inode: number;
  links: number;
  /** st_dev of the file system holding it. */
  deviceId: number;
  rdevMajor: number;
  rdevMinor: number;
  /** Nanoseconds since the epoch. */
  mtime: bigint;
  ctime: bigint;
}

export interface ChangeCounts {
  filesNew: number;
  filesChanged: number;
  filesUnmodified: number;
  dirsNew: number;
  dirsChanged: number;
  dirsUnmodified: number;
}

/** restic's rule (archiver.go, fileChanged): the same path holds the same file if type, size, mtime, ctime and inode are the same. */
export function unchangedSince(entry: ListedEntry, previous: Node | undefined): boolean {
  if (!previous || previous.type !== entry.type) return false;
  // A size of 0 is left out of the JSON, as restic's omitempty does.
  if (entry.type === 'file' && (previous.size ?? 0) !== entry.size) return false;
  if (entry.type === 'symlink' && !previous.linkTarget) return false;
  return previous.mtime === entry.mtime && previous.ctime === entry.ctime && previous.inode === entry.inode;
}

/** The node a listed path gets, its content (or link target, or subtree) aside. */
export function nodeFromListing(name: Buffer, entry: ListedEntry): Node {
  const node: Node = {
    name,
    type: entry.type,
    mode: toGoFileMode(entry.type, entry.type === 'symlink' ? 0o777 : entry.mode),
    mtime: entry.mtime,
    // atime as mtime: reading for a backup moves atime, which would make every tree new each time.
    atime: entry.mtime,
    ctime: entry.ctime,
    uid: entry.uid,
    gid: entry.gid,
    inode: entry.inode,
    links: entry.links,
  };
  // As restic: the device only where hard links need it to tell inodes apart.
  if (entry.links > 1 && entry.type !== 'dir') node.deviceId = entry.deviceId;
  if (entry.type === 'dev' || entry.type === 'chardev') node.device = linuxDevice(entry.rdevMajor, entry.rdevMinor);
  return node;
}

interface Frame {
  name: Buffer;
  self: Node | undefined;
  nodes: TreeNodes;
  /** The parent snapshot's nodes in this directory, by name. */
  previous: NodesByName | undefined;
  /** The parent snapshot's node of this directory. */
  previousSelf: Node | undefined;
  /** Nodes placed that are the parent's node of their name, byte for byte. */
  unchangedNodes: number;
}

export type Decision =
  | { kind: 'dir' }
  | { kind: 'node'; node: Node; previous: Node | undefined }
  /** An unchanged file whose node is the parent's, byte for byte. */
  | { kind: 'reused'; name: Buffer; json: Buffer; size: number }
  | { kind: 'request'; name: Buffer; previous: Node | undefined };

/**
 * An unchanged file's node as the parent's tree holds it, when those are exactly the bytes this
 * listing makes of it: the same JSON up to its content, then only content IDs, all in the
 * repository. Copying them skips decoding the parent's node and encoding a new one, which was most
 * of an unchanged backup's time for many small files. Undefined sends the file down the general
 * path, which may still find it unchanged (a node restic wrote, with an atime of its own).
 */
function reusableFileNode(repo: Repository, name: Buffer, entry: ListedEntry, previousJson: Buffer): Buffer | undefined {
  const node = nodeFromListing(name, entry);
  node.size = entry.size;
  node.content = [];
  // It ends `"content":[]}`: what comes before the content is all the listing's.
  const encoded = encodeNode(node);
  const prefixBytes = startsWithEncoded(previousJson, encoded, encoded.length - 3);
  if (prefixBytes === undefined) return undefined;
  const content = trailingContent(previousJson, prefixBytes);
  return content?.every((id) => repo.hasBlob('data', id)) ? previousJson : undefined;
}

/**
 * Whether `bytes` begins with the UTF-8 of `text`'s first `length` characters; the prefix's length
 * in bytes if so. ASCII (nearly every node) is compared in place, without encoding the text.
 */
function startsWithEncoded(bytes: Buffer, text: string, length: number): number | undefined {
  if (bytes.length < length) return undefined;
  for (let i = 0; i < length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x7f) {
      const prefix = Buffer.from(text.slice(0, length));
      return bytes.length >= prefix.length && bytes.compare(prefix, 0, prefix.length, 0, prefix.length) === 0 ? prefix.length : undefined;
    }
    if (bytes[i] !== code) return undefined;
  }
  return length;
}

/** The pre-order walk both passes share: directories opened and closed, each path decided. */
class ListingWalk {
  protected readonly repo: Repository;
  protected readonly stack: Frame[];
  readonly changes: ChangeCounts = { filesNew: 0, filesChanged: 0, filesUnmodified: 0, dirsNew: 0, dirsChanged: 0, dirsUnmodified: 0 };

  /** The parent snapshot's trees at the snapshot's path; undefined for a first backup. */
  private readonly parent: ParentTrees | undefined;

  constructor(repo: Repository, parent: ParentTrees | undefined) {
    this.repo = repo;
    this.parent = parent;
    this.stack = [{ name: Buffer.alloc(0), self: undefined, nodes: new TreeNodes(), previous: parent?.root, previousSelf: undefined, unchangedNodes: 0 }];
  }

  /** Places one listed path: its directory made current, then what it is. */
  protected async decide(entry: ListedEntry): Promise<Decision> {
    const path = components(entry.path);
    if (path.length === 0) {
      if (entry.type !== 'dir') throw new ArchiveError('the listing\'s root is not a directory');
      await this.closeTo(0);
      this.stack[0]!.self = nodeFromListing(Buffer.alloc(0), entry);
      return { kind: 'dir' };
    }
    const name = path.at(-1)!;
    await this.openParents(path.slice(0, -1));
    const top = this.stack.at(-1)!;
    const previousJson = top.previous?.json(name);
    if (entry.type === 'file' && previousJson) {
      const json = reusableFileNode(this.repo, name, entry, previousJson);
      if (json) {
        this.changes.filesUnmodified += 1;
        return { kind: 'reused', name, json, size: entry.size };
      }
    }
    const previous = previousJson && decodeNodeJson(previousJson);
    if (entry.type === 'dir') {
      await this.open(name, nodeFromListing(name, entry));
      return { kind: 'dir' };
    }
    if (entry.type !== 'file' && entry.type !== 'symlink') return { kind: 'node', node: nodeFromListing(name, entry), previous };
    if (unchangedSince(entry, previous) && (previous!.content ?? []).every((id) => this.repo.hasBlob('data', id))) {
      this.count(entry.type, previous);
      const node = nodeFromListing(name, entry);
      if (entry.type === 'file') Object.assign(node, { size: previous!.size ?? 0, content: previous!.content ?? [] });
      else node.linkTarget = previous!.linkTarget!;
      return { kind: 'node', node, previous };
    }
    return { kind: 'request', name, previous };
  }

  /** Counts a file as restic's summary does: new, changed or unmodified since the parent. */
  protected count(type: NodeType, previous: Node | undefined, unmodified = true): void {
    if (type !== 'file') return;
    if (!previous) this.changes.filesNew += 1;
    else if (unmodified) this.changes.filesUnmodified += 1;
    else this.changes.filesChanged += 1;
  }

  private async open(name: Buffer, self: Node | undefined): Promise<void> {
    const top = this.stack.at(-1)!;
    const previousSelf = top.previous?.get(name);
    const previous = previousSelf?.type === 'dir' && previousSelf.subtree ? await this.parent!.load(previousSelf.subtree) : undefined;
    this.stack.push({ name, self, nodes: new TreeNodes(), previous, previousSelf: previousSelf?.type === 'dir' ? previousSelf : undefined, unchangedNodes: 0 });
  }

  /** Makes the open directories exactly the root and `path`, opening made-up ones the listing skipped (a directory that vanished as it was listed). */
  private async openParents(path: Buffer[]): Promise<void> {
    let common = 0;
    while (common < path.length && common + 1 < this.stack.length && this.stack[common + 1]!.name.equals(path[common]!)) common += 1;
    await this.closeTo(common);
    for (let i = common; i < path.length; i++) await this.open(path[i]!, undefined);
  }

  protected async closeTo(depth: number): Promise<void> {
    while (this.stack.length > depth + 1) await this.close(this.stack.pop()!);
  }

  /** A directory is done: the planning pass forgets it. */
  protected async close(_frame: Frame): Promise<void> {}
}

interface Awaited {
  entry: ListedEntry;
  name: Buffer;
  previous: Node | undefined;
}

/**
 * A walk that builds the snapshot's trees: placed nodes go into their directory, a directory's tree
 * is saved when the walk leaves it, and the counts restic's summary gives are kept.
 */
export abstract class TreeBuilder extends ListingWalk {
  protected readonly time: bigint;
  /** Content bytes read (files new or changed). */
  protected read = 0;
  private files = 0;
  private dirs = 0;
  private placed = 0;
  /** Every file's size in the snapshot, read or not. */
  private bytes = 0;

  constructor(repo: Repository, parent: ParentTrees | undefined, time: bigint) {
    super(repo, parent);
    this.time = time;
  }

  /** Places a decided path: a directory counted, a node put into its directory. */
  protected placeDecision(entry: ListedEntry, decision: Decision): void {
    if (decision.kind === 'dir' && entry.path.length > 1) this.dirs += 1;
    if (decision.kind === 'node') this.place(decision.node);
    if (decision.kind === 'reused') {
      const frame = this.stack.at(-1)!;
      frame.nodes.addBorrowed(decision.name, decision.json);
      frame.unchangedNodes += 1;
      this.countPlaced('file', decision.size);
    }
  }

  /** Puts a node into the open directory, encoded at once: its content must be known. */
  protected place(node: Node): void {
    placeNode(this.stack.at(-1)!, node);
    this.countPlaced(node.type, node.size ?? 0);
  }

  private countPlaced(type: NodeType, size: number): void {
    this.placed += 1;
    if (type !== 'file') return;
    this.files += 1;
    this.bytes += size;
  }

  protected override async close(frame: Frame): Promise<void> {
    // Every node the parent's, byte for byte, and as many as it had: the tree is the parent's, and
    // need not be sorted, hashed or looked up again (half a second for 200,000 files).
    const previousSubtree = frame.previousSelf?.subtree;
    const same = previousSubtree !== undefined && frame.unchangedNodes === frame.nodes.count && frame.nodes.count === frame.previous?.count;
    const subtree = same ? previousSubtree : await this.repo.saveTree(frame.nodes);
    const self = frame.self ?? madeUpDir(frame.name, this.time);
    if (!frame.previousSelf) this.changes.dirsNew += 1;
    else if (frame.previousSelf.subtree === subtree) this.changes.dirsUnmodified += 1;
    else this.changes.dirsChanged += 1;
    placeNode(this.stack.at(-1)!, { ...self, name: frame.name, subtree });
  }

  /** Closes every directory and returns the snapshot's root tree. */
  protected async saveRoot(snapshotPath: string): Promise<string> {
    await this.closeTo(0);
    const root = this.stack[0]!;
    return saveSnapshotRoot(this.repo, root.nodes, root.self, snapshotPath, this.time);
  }

  get counts(): { files: number; dirs: number; bytes: number; read: number; entries: number; changes: ChangeCounts } {
    // Every node, and the root, as a tar of the snapshot lists them.
    return { files: this.files, dirs: this.dirs, bytes: this.bytes, read: this.read, entries: 1 + this.dirs + this.placed, changes: { ...this.changes } };
  }
}

export interface RequestPlan extends ChangeCounts {
  /** Paths listed. */
  entries: number;
  /** Paths to read, in the order the tar must bring them. */
  requested: number;
  /** Their size as listed. */
  requestedBytes: number;
  /** Every regular file's size as listed: what a whole copy would read. */
  totalBytes: number;
  /** Nothing to read: the snapshot's trees, made and saved as the listing was planned. */
  unchanged?: PlannedTree | undefined;
}

/** The snapshot's trees as the planning walk made them, and what archiving them would report. */
export interface PlannedTree {
  tree: string;
  counts: TreeBuilder['counts'];
  /** When planning began (ns), and the repository's counts then: what it added is counted from there. */
  start: bigint;
  stats: SaveStats;
}

/** Puts a node into a directory's tree, counting it unchanged if the parent's node of its name has the same bytes. */
function placeNode(frame: Frame, node: Node): void {
  const json = Buffer.from(encodeNode(node));
  frame.nodes.addEncoded(node.name, json);
  if (frame.previous?.json(node.name)?.equals(json)) frame.unchangedNodes += 1;
}

/**
 * The planning walk. It also builds the snapshot's trees, until the first path to read: an unchanged
 * claim (the nightly case) then needs no second walk, which costs as much as this one (some 20 µs a
 * path). Once a path is to be read, the second walk makes the trees, and this one only decides.
 */
class PlanningWalk extends TreeBuilder {
  private reading = false;

  async visit(entry: ListedEntry): Promise<Decision> {
    const decision = await this.decide(entry);
    if (decision.kind === 'request') this.reading = true;
    else if (!this.reading) this.placeDecision(entry, decision);
    return decision;
  }

  protected override async close(frame: Frame): Promise<void> {
    if (!this.reading) await super.close(frame);
  }

  /** The snapshot's root tree, when nothing is to be read. */
  async finishUnchanged(snapshotPath: string): Promise<string | undefined> {
    return this.reading ? undefined : this.saveRoot(snapshotPath);
  }
}

/**
 * The first pass: each path to read, in listing order, goes to `request`. With nothing to read, the
 * plan holds the snapshot's trees for `snapshotPath`.
 */
export async function planRequests(
  repo: Repository,
  parent: ParentTrees | undefined,
  listing: AsyncIterable<ListedEntry>,
  request: (path: Buffer) => void | Promise<void>,
  snapshotPath: string,
): Promise<RequestPlan> {
  const start = nowNs();
  const stats = { ...repo.stats };
  const walk = new PlanningWalk(repo, parent, start);
  const plan: RequestPlan = { entries: 0, requested: 0, requestedBytes: 0, totalBytes: 0, ...walk.changes };
  for await (const entry of listing) {
    plan.entries += 1;
    if (entry.type === 'file') plan.totalBytes += entry.size;
    const decision = await walk.visit(entry);
    if (decision.kind === 'request') {
      plan.requested += 1;
      if (entry.type === 'file') plan.requestedBytes += entry.size;
      await request(entry.path);
    }
  }
  const tree = await walk.finishUnchanged(snapshotPath);
  return { ...plan, ...walk.changes, unchanged: tree === undefined ? undefined : { tree, counts: walk.counts, start, stats } };
}

/**
 * The second pass: walks the listing again as the tar of the requested paths streams in (entry() and
 * data(), as TarStreamCheck reports them), and saves the snapshot's trees.
 */
export class ListingArchiver extends TreeBuilder {
  private readonly listing: AsyncIterator<ListedEntry>;
  private file: { node: Node; chunks: FileChunks; left: number; linkKey: string | undefined } | undefined;
  /** Content of files with several links read in this tar, by path: tar names the first for the others. */
  private readonly linked = new Map<string, { content: string[]; size: number }>();
  /** Requested paths the tar did not bring. */
  vanished = 0;

  constructor(repo: Repository, parent: ParentTrees | undefined, listing: AsyncIterable<ListedEntry>, time: bigint) {
    super(repo, parent, time);
    this.listing = listing[Symbol.asyncIterator]();
  }

  /** The next requested path from the listing, everything before it placed; undefined at its end. */
  private async nextRequested(): Promise<Awaited | undefined> {
    for (;;) {
      const next = await this.listing.next();
      if (next.done) return undefined;
      const decision = await this.decide(next.value);
      this.placeDecision(next.value, decision);
      if (decision.kind === 'request') {
        return { entry: next.value, name: decision.name, previous: decision.previous };
      }
    }
  }

  async entry(tar: TarEntry): Promise<void> {
    if (this.file) throw new ArchiveError('tar entry started before the previous file ended');
    const wanted = components(tar.name).join('/');
    for (;;) {
      const awaited = await this.nextRequested();
      if (!awaited) throw new ArchiveError(`the tar brought ${JSON.stringify(goQuote(tar.name))}, which was not asked for (or not in this order)`);
      if (components(awaited.entry.path).join('/') !== wanted) {
        this.vanished += 1;
        continue;
      }
      await this.take(awaited, tar);
      return;
    }
  }

  private async take({ entry, name, previous }: Awaited, tar: TarEntry): Promise<void> {
    const node = nodeFromListing(name, entry);
    switch (tar.type) {
      case 'file': {
        this.count('file', previous, false);
        Object.assign(node, { type: 'file', size: tar.size, content: [] });
        node.mode = toGoFileMode('file', entry.type === 'file' ? entry.mode : tar.mode);
        const linkKey = entry.links > 1 ? components(tar.name).join('/') : undefined;
        // Placed once its content is known: a placed node is already encoded.
        if (tar.size > 0) return void (this.file = { node, chunks: new FileChunks(this.repo), left: tar.size, linkKey });
        if (linkKey) this.linked.set(linkKey, { content: [], size: 0 });
        this.place(node);
        return;
      }
      case 'hardlink': {
        const target = this.linked.get(components(tar.linkName).join('/'));
        if (!target) {
          // Its first name was not in this tar: the file is read again next time.
          this.vanished += 1;
          return;
        }
        this.count('file', previous, false);
        this.place(Object.assign(node, { type: 'file', size: target.size, content: target.content }));
        return;
      }
      case 'symlink':
        this.place(Object.assign(node, { type: 'symlink', mode: toGoFileMode('symlink', 0o777), linkTarget: Buffer.from(tar.linkName) }));
        return;
      default:
        // It became something else (a directory) between the listing and the read: the next backup takes it.
        this.vanished += 1;
    }
  }

  async data(data: Buffer): Promise<void> {
    const file = this.file;
    if (!file) throw new ArchiveError('file data outside a file entry');
    this.read += data.length;
    await file.chunks.push(data);
    file.left -= data.length;
    if (file.left === 0) {
      file.node.content = await file.chunks.end();
      if (file.linkKey) this.linked.set(file.linkKey, { content: file.node.content, size: file.node.size! });
      this.file = undefined;
      this.place(file.node);
    }
  }

  /** Places the rest of the listing, closes every directory and returns the snapshot's root tree. */
  async finish(snapshotPath: string): Promise<string> {
    if (this.file) throw new ArchiveError('the archive ended inside a file');
    while (await this.nextRequested()) this.vanished += 1;
    return this.saveRoot(snapshotPath);
  }
}

/**
 * The tar of the requested paths (concatenated archives, as `xargs tar` writes them) and the listing
 * into the repository: the trees of the whole claim, its packs and index; its snapshot not yet.
 */
export async function archiveChanges(
  repo: Repository,
  tar: AsyncIterable<Buffer | Uint8Array>,
  listing: AsyncIterable<ListedEntry>,
  parent: ParentTrees | undefined,
  options: Pick<ArchiveOptions, 'path' | 'time'>,
): Promise<ArchivedTree> {
  return archiveWith(repo, tar, { ...options, concatenated: true }, (time) => new ListingArchiver(repo, parent, listing, time));
}

/** What archiveChanges gives where the plan had nothing to read: the plan's trees; the tar must be empty. */
export async function archivePlannedTree(repo: Repository, tar: AsyncIterable<Buffer | Uint8Array>, planned: PlannedTree, snapshotPath: string): Promise<ArchivedTree> {
  return archiveWith(repo, tar, { path: snapshotPath, time: planned.start, concatenated: true, since: planned }, () => new PlannedTreeConsumer(planned));
}

/** The trees the planning walk made, for an empty tar. */
class PlannedTreeConsumer implements TarConsumer {
  private readonly planned: PlannedTree;

  constructor(planned: PlannedTree) {
    this.planned = planned;
  }

  async entry(tar: TarEntry): Promise<void> {
    throw new ArchiveError(`the tar brought ${JSON.stringify(goQuote(tar.name))}, though nothing was asked for`);
  }

  async data(): Promise<void> {
    throw new ArchiveError('the tar brought file data, though nothing was asked for');
  }

  async finish(): Promise<string> {
    return this.planned.tree;
  }

  get counts(): TreeBuilder['counts'] {
    return this.planned.counts;
  }
}

/**
 * The parent of a backup of `path` from `hostname`, as restic chooses it: the latest snapshot with
 * the same host and exactly that path. Undefined for a first backup.
 */
export async function findParentSnapshot(repo: Repository, hostname: string, path: string): Promise<SnapshotWithId | undefined> {
  const snapshots = await repo.listSnapshots();
  return snapshots.filter((s) => s.hostname === hostname && s.paths.length === 1 && s.paths[0] === path).at(-1);
}

/** The directory at `path` in a snapshot's tree: its own node (none for the root) and its tree; undefined where there is none. */
async function subtreeAtPath(repo: Repository, tree: string, path: string): Promise<{ self: Node | undefined; tree: string } | undefined> {
  let at: { self: Node | undefined; tree: string } = { self: undefined, tree };
  for (const part of path.split('/').filter((p) => p !== '' && p !== '.')) {
    const dir = (await repo.loadTreeByName(at.tree)).get(Buffer.from(part));
    if (dir?.type !== 'dir' || !dir.subtree) return undefined;
    at = { self: dir, tree: dir.subtree };
  }
  return at;
}

/** The directory at `path` in a snapshot's tree: its own node and its nodes; undefined where there is none. */
export async function directoryAtPath(repo: Repository, tree: string, path: string): Promise<{ self: Node | undefined; nodes: Node[] } | undefined> {
  const at = await subtreeAtPath(repo, tree, path);
  return at && { self: at.self, nodes: await repo.loadTree(at.tree) };
}


/** Trees read ahead of the walks of one run: a few tens of megabytes, as much as one large directory's tree. */
export const PARENT_READ_AHEAD_BYTES = 64 * 1024 * 1024;
/** Read ahead below a tree of at most this many nodes: finding a large tree's directories means decoding every node. */
const READ_AHEAD_EXPAND_NODES = 4096;

/**
 * Bytes of trees that may be read ahead and not yet taken, shared by the backups of one run: with
 * --parallel, several helpers start at once, and each claim's read-ahead would otherwise add its own.
 */
export interface ReadAheadBudget {
  left: number;
}

/**
 * The parent snapshot's trees under a backup's path, as the listing's walk asks for them. The first
 * levels can be read ahead (readAhead) while the helper pod starts: a directory of 200,000 files is a
 * 60 MB tree, which otherwise holds up the walk as the listing streams in. Each tree read ahead is
 * handed out once, its bytes then given back to the budget, so what the walk has let go is not kept.
 */
export class ParentTrees {
  readonly root: NodesByName;
  private readonly repo: Repository;
  private readonly ahead = new Map<string, Promise<NodesByName>>();
  /** Bytes each tree read ahead (and not yet taken) holds of the budget. */
  private readonly held = new Map<string, number>();
  private budget: ReadAheadBudget | undefined;
  private dropped = false;

  constructor(repo: Repository, root: NodesByName) {
    this.repo = repo;
    this.root = root;
  }

  load(id: string): Promise<NodesByName> {
    const ahead = this.ahead.get(id);
    if (!ahead) return this.repo.loadTreeByName(id);
    this.ahead.delete(id);
    this.giveBack(id);
    return ahead;
  }

  /** Lets go of the trees read ahead and not taken (the backup is over), their bytes back to the budget. */
  dropReadAhead(): void {
    this.dropped = true;
    for (const id of [...this.held.keys()]) this.giveBack(id);
    this.ahead.clear();
  }

  /**
   * Reads the trees below the root breadth-first while the budget lasts (the tree that uses it up is
   * read whole). Never fails: a tree that cannot be read or decoded stops the reading ahead, and the
   * walk meets the failure itself where it asks for that tree.
   */
  async readAhead(budget: ReadAheadBudget = { left: PARENT_READ_AHEAD_BYTES }): Promise<void> {
    this.budget = budget;
    try {
      await this.readAheadFrom();
    } catch {
      // told by the walk
    }
  }

  private async readAheadFrom(): Promise<void> {
    const budget = this.budget!;
    const expand: NodesByName[] = [this.root];
    for (let tree = expand.shift(); tree && budget.left > 0 && !this.dropped; tree = expand.shift()) {
      if (tree.count > READ_AHEAD_EXPAND_NODES || tree.count < 0) continue;
      for (const node of tree.nodes()) {
        if (node.type !== 'dir' || !node.subtree || this.ahead.has(node.subtree) || budget.left <= 0) continue;
        const reading = this.repo.loadTreeByName(node.subtree);
        reading.catch(() => {});
        this.ahead.set(node.subtree, reading);
        const read = await reading.catch(() => undefined);
        if (!read) return;
        // Held only while no walk has taken it.
        if (this.dropped) return;
        if (this.ahead.get(node.subtree) === reading) {
          budget.left -= read.bytes;
          this.held.set(node.subtree, read.bytes);
        }
        expand.push(read);
      }
    }
  }

  private giveBack(id: string): void {
    const bytes = this.held.get(id);
    if (bytes === undefined) return;
    this.held.delete(id);
    this.budget!.left += bytes;
  }
}

/**
 * The trees at `path` (`/data/<pvc>`) in a parent snapshot: what a backup compares against. Undefined
 * where the snapshot has no such directory.
 */
export async function parentTreesAtPath(repo: Repository, tree: string, path: string): Promise<ParentTrees | undefined> {
  const at = await subtreeAtPath(repo, tree, path);
  return at && new ParentTrees(repo, await repo.loadTreeByName(at.tree));
}
