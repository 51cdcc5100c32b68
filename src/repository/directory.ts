/**
 * A directory of this machine into the repository, read as restic reads one: walked depth-first
 * with lstat (times to the nanosecond, inode, links), each file and symlink compared with the parent
 * snapshot's node at the same path (incremental.ts: restic's rule), and only the new and changed ones
 * read. What a data mover runs where the claim is mounted; its snapshot records the same metadata as
 * a backup through the helper's listing and tar, so either may be the other's parent.
 *
 * Memory: the names of the directories on the current path (readdir reads a directory whole, as
 * restic does), the nodes of those directories and the parent's, as JSON (tree-nodes.ts), one
 * chunk, one pack per blob type.
 */
import fs from 'node:fs';
import { ArchiveError, FileChunks, savedSince, settledOnFailure, type ArchiveOptions, type ArchivedTree } from './archiver.ts';
import { nodeFromListing, TreeBuilder, type ListedEntry, type ParentTrees } from './incremental.ts';
import type { Repository } from './repository.ts';
import { nowNs } from './time.ts';
import { fromGoFileMode, nodeTypeOfMode, type Node } from './tree.ts';

/** What lstat says, as the helper's `stat` listing says it (claim-listing.ts): the two must agree. */
export function listedFromStats(path: Buffer, stats: fs.BigIntStats): ListedEntry {
  const mode = Number(stats.mode);
  const rdev = stats.rdev;
  return {
    path,
    type: nodeTypeOfMode(mode),
    mode: mode & 0o7777,
    uid: Number(stats.uid),
    gid: Number(stats.gid),
    size: Number(stats.size),
    inode: Number(stats.ino),
    links: Number(stats.nlink),
    deviceId: Number(stats.dev),
    // glibc's gnu_dev_major and gnu_dev_minor.
    rdevMajor: Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn)),
    rdevMinor: Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn)),
    mtime: stats.mtimeNs,
    ctime: stats.ctimeNs,
  };
}

/** restic's average chunk. */
const READ_SIZE = 1024 * 1024;
const SLASH = Buffer.from('/');
const join = (a: Buffer, b: Buffer) => Buffer.concat([a, SLASH, b]);
const gone = (error: unknown) => ['ENOENT', 'ENOTDIR'].includes((error as NodeJS.ErrnoException).code ?? '');
const denied = (error: unknown) => ['EACCES', 'EPERM'].includes((error as NodeJS.ErrnoException).code ?? '');

/** The next READ_SIZE bytes of `fd` into `buffer`, read by the thread pool: how many came (0 at the end). */
function readBlock(fd: number, buffer: Buffer): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buffer, 0, READ_SIZE, null, (error, bytes) => (error ? reject(error) : resolve(bytes))));
}

/**
 * Paths below the root in pre-order (a directory before what it holds), `.` first, each with its
 * lstat. The calls are synchronous: a claim's metadata is in the page cache or one disk read away,
 * and an asynchronous call's trip through libuv's thread pool cost more than the call itself (a
 * million files spent minutes waiting on it).
 */
function* walk(root: Buffer, problems: DirectoryProblems): Generator<{ entry: ListedEntry; absolute: Buffer }> {
  const top = fs.lstatSync(root, { bigint: true });
  if (!top.isDirectory()) throw new ArchiveError(`${root.toString()} is not a directory`);
  yield { entry: listedFromStats(Buffer.from('.'), top), absolute: root };
  function* below(relative: Buffer, absolute: Buffer): Generator<{ entry: ListedEntry; absolute: Buffer }> {
    let names: string[];
    try {
      // One char a byte (latin1): any name, UTF-8 or not, as a small string. As Buffers, 100,000 names
      // were 100,000 backing stores, 50 MB. Sorted, as restic reads a directory: its tree needs no sort.
      names = fs.readdirSync(absolute, { encoding: 'latin1' }).sort();
    } catch (error) {
      if (gone(error)) return problems.vanished.push(relative.toString());
      if (denied(error)) return problems.unreadable.push(relative.toString());
      throw error;
    }
    for (const text of names) {
      const name = Buffer.from(text, 'latin1');
      const child = join(absolute, name);
      let stats: fs.BigIntStats;
      try {
        stats = fs.lstatSync(child, { bigint: true });
      } catch (error) {
        if (gone(error)) {
          problems.vanished.push(join(relative, name).toString());
          continue;
        }
        throw error;
      }
      const path = join(relative, name);
      yield { entry: listedFromStats(path, stats), absolute: child };
      if (stats.isDirectory()) yield* below(path, child);
    }
  }
  yield* below(Buffer.from('.'), root);
}

export interface DirectoryProblems {
  /** Paths (`./a/b`) gone between the directory's listing and their read. */
  vanished: string[];
  /** Paths this process may not read: left out. */
  unreadable: string[];
}

class DirectoryArchiver extends TreeBuilder {
  /** Content of files with several links already read, by device and inode. */
  private readonly linked = new Map<string, { content: string[]; size: number }>();
  readonly problems: DirectoryProblems = { vanished: [], unreadable: [] };
  /**
   * Every file is read through this one buffer (FileChunks copies what it keeps), a small one
   * synchronously, as the walk is: a read stream allocated 1 MiB for each file, 4 KiB ones too, and
   * a million files kept the collector busier than the backup.
   */
  private readonly readBuffer = Buffer.allocUnsafeSlow(READ_SIZE);
  /** A large file's next block, read while the current one is saved. */
  private nextBuffer: Buffer | undefined;

  async add(entry: ListedEntry, absolute: Buffer): Promise<void> {
    const decision = await this.decide(entry);
    this.placeDecision(entry, decision);
    if (decision.kind !== 'request') return;
    const node = nodeFromListing(decision.name, entry);
    try {
      if (entry.type === 'symlink') {
        node.linkTarget = await fs.promises.readlink(absolute, { encoding: 'buffer' });
      } else {
        Object.assign(node, await this.content(entry, absolute));
        this.count('file', decision.previous, false);
      }
    } catch (error) {
      if (gone(error)) return void this.problems.vanished.push(entry.path.toString());
      if (denied(error)) return void this.problems.unreadable.push(entry.path.toString());
      throw error;
    }
    this.place(node);
  }

  private async content(entry: ListedEntry, absolute: Buffer): Promise<Pick<Node, 'size' | 'content'>> {
    const key = `${entry.deviceId}:${entry.inode}`;
    const known = entry.links > 1 ? this.linked.get(key) : undefined;
    if (known) return known;
    const chunks = new FileChunks(this.repo);
    let size = 0;
    const fd = fs.openSync(absolute, 'r');
    let reading: Promise<number> | undefined;
    try {
      if (entry.size < READ_SIZE) {
        for (let length; (length = fs.readSync(fd, this.readBuffer, 0, READ_SIZE, null)) > 0; size += length) {
          await chunks.push(this.readBuffer.subarray(0, length));
        }
      } else {
        // A large file: the thread pool reads the next block while this one is hashed, compressed and encrypted.
        this.nextBuffer ??= Buffer.allocUnsafeSlow(READ_SIZE);
        let current: Buffer = this.readBuffer;
        let next: Buffer = this.nextBuffer;
        reading = readBlock(fd, current);
        for (let length; (length = await reading) > 0; size += length) {
          reading = readBlock(fd, next);
          await chunks.push(current.subarray(0, length));
          [current, next] = [next, current];
        }
      }
    } finally {
      // No read may be left writing into a buffer, or reading a closed descriptor.
      await reading?.catch(() => 0);
      fs.closeSync(fd);
    }
    const read = { size, content: await chunks.end() };
    this.read += size;
    if (entry.links > 1) this.linked.set(key, read);
    return read;
  }

  finish(snapshotPath: string): Promise<string> {
    return this.saveRoot(snapshotPath);
  }
}

/** How far a directory's archive has come: files and their bytes, read or found unchanged. */
export interface DirectoryProgress {
  files: number;
  bytes: number;
}

export interface DirectoryArchiveOptions extends Pick<ArchiveOptions, 'path' | 'time'> {
  /** Told how far the archive has come, at most every `progressEveryMs` (1000). */
  onProgress?: ((done: DirectoryProgress) => void) | undefined;
  progressEveryMs?: number;
}

/** A directory into the repository against its parent's nodes: trees, packs and index; its snapshot not yet. */
export async function archiveDirectory(
  repo: Repository,
  root: string,
  parent: ParentTrees | undefined,
  options: DirectoryArchiveOptions,
): Promise<ArchivedTree & { problems: DirectoryProblems }> {
  return settledOnFailure(repo, async () => {
    const start = nowNs();
    const time = options.time ?? start;
    const before = { ...repo.stats };
    const archiver = new DirectoryArchiver(repo, parent, time);
    const every = options.progressEveryMs ?? 1000;
    let reported = Date.now();
    for (const { entry, absolute } of walk(Buffer.from(root), archiver.problems)) {
      await archiver.add(entry, absolute);
      // The walk is synchronous, so no timer would fire in it: the clock is read as it goes.
      if (options.onProgress && Date.now() - reported >= every) {
        reported = Date.now();
        const { files, bytes } = archiver.counts;
        options.onProgress({ files, bytes });
      }
    }
    const tree = await archiver.finish(options.path);
    await repo.flush();
    const added = savedSince(repo, before);
    return { tree, ...archiver.counts, start, time, added, problems: archiver.problems };
  });
}

export interface RestoredDirectory {
  /** Entries written below the target (the target itself not counted). */
  entries: number;
  files: number;
  bytes: number;
  /** Paths of kinds a process cannot make without mknod (fifos, devices, sockets): left out, named. */
  skipped: string[];
}

const seconds = (ns: bigint) => Number(ns) / 1e9;

/**
 * A snapshot's directory written into `target` (which exists): files (their blobs authenticated and
 * hashed as they are read), directories, symlinks and hard links (names of one inode linked again),
 * then owners (when `owners`, as root), modes and times, each directory's after what it holds, as
 * restic's restorer does.
 */
export async function restoreDirectory(repo: Repository, nodes: Node[], rootSelf: Node | undefined, target: string, options: { owners: boolean }): Promise<RestoredDirectory> {
  const result: RestoredDirectory = { entries: 0, files: 0, bytes: 0, skipped: [] };
  /** The first path of each hard-linked file, by device and inode. */
  const linked = new Map<string, Buffer>();
  const finish = async (path: Buffer, node: Node) => {
    if (options.owners) await fs.promises.lchown(path, node.uid, node.gid);
    if (node.type !== 'symlink') await fs.promises.chmod(path, fromGoFileMode(node.mode));
    await fs.promises.lutimes(path, seconds(node.atime), seconds(node.mtime));
  };
  const write = async (dir: Buffer, relative: string, children: Node[]): Promise<void> => {
    for (const node of children) {
      const path = join(dir, node.name);
      const shown = `${relative}${node.name.toString()}`;
      result.entries += 1;
      switch (node.type) {
        case 'dir':
          await fs.promises.mkdir(path, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
            if (error.code !== 'EEXIST') throw error;
          });
          await write(path, `${shown}/`, node.subtree ? await repo.loadTree(node.subtree) : []);
          await finish(path, node);
          break;
        case 'file': {
          const key = `${node.deviceId ?? 0}:${node.inode ?? 0}`;
          const first = (node.links ?? 1) > 1 && node.inode ? linked.get(key) : undefined;
          if (first) {
            await fs.promises.link(first, path);
            result.files += 1;
            break;
          }
          const handle = await fs.promises.open(path, 'w', 0o600);
          try {
            for (const id of node.content ?? []) {
              const blob = await repo.loadBlob('data', id);
              await handle.write(blob);
              result.bytes += blob.length;
            }
          } finally {
            await handle.close();
          }
          result.files += 1;
          await finish(path, node);
          if ((node.links ?? 1) > 1 && node.inode) linked.set(key, path);
          break;
        }
        case 'symlink':
          await fs.promises.symlink(node.linkTarget ?? Buffer.alloc(0), path);
          await finish(path, node);
          break;
        default:
          result.entries -= 1;
          result.skipped.push(shown);
      }
    }
  };
  const root = Buffer.from(target);
  await write(root, '', nodes);
  if (rootSelf) await finish(root, rootSelf);
  return result;
}
