/**
 * A restic snapshot out as a tar stream, for the helper pods' `tar x`. Streaming: the tree is walked
 * depth-first in the snapshot's order, one blob at a time, and the stream waits for its reader.
 * Memory holds the node lists of the directories on the current path and one blob (at most 8 MiB
 * plaintext); hard links remember the first path of each hard-linked file (inode, device), which
 * grows with the number of hard-linked files, not with the tree.
 *
 * The archive's root "./" is one directory of the snapshot: by default its single path (`/data/<pvc>`
 * as k8up and this plugin record it, or `/tmp/src` for `restic backup /tmp/src`), else the root.
 */
import { Readable } from 'node:stream';
import { dataPadding, endOfArchive, entryHeader, type TarWriteType } from '../backup/tar-writer.ts';
import type { Repository } from './repository.ts';
import type { Snapshot } from './snapshot.ts';
import { fromGoFileMode, goQuote, type Node } from './tree.ts';

export class RestoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RestoreError';
  }
}

export interface RestoreOptions {
  /** The directory of the snapshot to restore as the archive's root; default: the snapshot's only path, else "/". */
  subpath?: string;
}

const TAR_TYPES: Partial<Record<Node['type'], TarWriteType>> = {
  file: 'file',
  dir: 'directory',
  symlink: 'symlink',
  fifo: 'fifo',
  chardev: 'char-device',
  dev: 'block-device',
};

/**
 * Blobs of a file loaded ahead of the one being written: the next one's read from the backend waits
 * on the disk or the network while this thread unseals and writes, instead of after.
 */
const READ_AHEAD = 2;

/** Linux's major and minor of an st_rdev. */
function splitDevice(device: number): { devMajor: number; devMinor: number } {
  const high = Math.floor(device / 2 ** 32);
  const low = device % 2 ** 32;
  return { devMajor: ((low >>> 8) & 0xfff) | ((high & 0xfffff000) >>> 0), devMinor: (low & 0xff) | ((low >>> 12) & 0xfff00) };
}

export class Restorer {
  private readonly repo: Repository;
  private readonly hardLinks = new Map<string, Buffer>();

  constructor(repo: Repository) {
    this.repo = repo;
  }

  /** The node (or made-up root) and tree ID of `subpath` inside the snapshot. */
  private async start(snapshot: Snapshot, subpath: string): Promise<{ root: Node | undefined; tree: string }> {
    let tree = snapshot.tree;
    let root: Node | undefined;
    for (const part of subpath.split('/').filter((p) => p !== '' && p !== '.')) {
      const nodes = await this.repo.loadTree(tree);
      const node = nodes.find((n) => n.name.equals(Buffer.from(part)));
      if (!node || node.type !== 'dir' || !node.subtree) throw new RestoreError(`snapshot has no directory ${JSON.stringify(subpath)}`);
      root = node;
      tree = node.subtree;
    }
    return { root, tree };
  }

  async *tar(snapshot: Snapshot, options: RestoreOptions = {}): AsyncGenerator<Buffer> {
    const subpath = options.subpath ?? (snapshot.paths.length === 1 ? snapshot.paths[0]! : '/');
    const { root, tree } = await this.start(snapshot, subpath);
    const time = root?.mtime ?? 0n;
    yield entryHeader({
      name: Buffer.from('./'),
      type: 'directory',
      mode: root ? fromGoFileMode(root.mode) : 0o755,
      uid: root?.uid ?? 0,
      gid: root?.gid ?? 0,
      size: 0,
      mtimeNs: time,
    });
    yield* this.walk(tree, Buffer.from('./'));
    yield endOfArchive();
  }

  private async *walk(treeId: string, prefix: Buffer): AsyncGenerator<Buffer> {
    const nodes = await this.repo.loadTree(treeId);
    for (const node of nodes) {
      if (node.name.length === 0 || node.name.includes(0x2f) || node.name.equals(Buffer.from('..')) || node.name.equals(Buffer.from('.'))) {
        throw new RestoreError(`tree ${treeId} has an entry named ${JSON.stringify(goQuote(node.name))}, which is not a file name`);
      }
      const path = Buffer.concat([prefix, node.name]);
      const type = TAR_TYPES[node.type];
      if (!type) continue; // sockets and irregular files: nothing tar can make
      const base = { mode: fromGoFileMode(node.mode), uid: node.uid, gid: node.gid, mtimeNs: node.mtime, size: 0 };
      if (type === 'directory') {
        yield entryHeader({ name: Buffer.concat([path, Buffer.from('/')]), type, ...base });
        if (node.subtree) yield* this.walk(node.subtree, Buffer.concat([path, Buffer.from('/')]));
        continue;
      }
      if (type === 'symlink') {
        yield entryHeader({ name: path, type, ...base, linkName: node.linkTarget ?? Buffer.alloc(0) });
        continue;
      }
      if (type === 'char-device' || type === 'block-device') {
        yield entryHeader({ name: path, type, ...base, ...splitDevice(node.device ?? 0) });
        continue;
      }
      if (type === 'fifo') {
        yield entryHeader({ name: path, type, ...base });
        continue;
      }
      if ((node.links ?? 0) > 1 && node.inode !== undefined) {
        const key = `${node.inode}:${node.deviceId ?? 0}`;
        const first = this.hardLinks.get(key);
        if (first) {
          yield entryHeader({ name: path, type: 'hardlink', ...base, linkName: first });
          continue;
        }
        this.hardLinks.set(key, path);
      }
      const content = node.content ?? [];
      let size = 0;
      for (const id of content) {
        const entry = this.repo.index.get('data', id);
        if (!entry) throw new RestoreError(`file ${JSON.stringify(goQuote(path))}: data blob ${id} is in no index`);
        size += entry.uncompressedLength ?? entry.length - 32;
      }
      if (node.size !== undefined && node.size !== size) {
        throw new RestoreError(`file ${JSON.stringify(goQuote(path))}: its blobs hold ${size} bytes, its metadata says ${node.size}`);
      }
      yield entryHeader({ name: path, type: 'file', ...base, size });
      yield* this.blobsOf(content);
      yield dataPadding(size);
    }
  }

  /** A file's blobs in order, READ_AHEAD of them loading while one is written. */
  private async *blobsOf(ids: string[]): AsyncGenerator<Buffer> {
    const loading: Promise<Buffer>[] = [];
    let next = 0;
    while (next < ids.length || loading.length > 0) {
      while (loading.length <= READ_AHEAD && next < ids.length) {
        const blob = this.repo.loadBlob('data', ids[next++]!);
        blob.catch(() => undefined); // a failure is thrown when its turn comes
        loading.push(blob);
      }
      yield await loading.shift()!;
    }
  }
}

/** The snapshot as a tar stream (ustar with GNU long names, pax mtimes), read as fast as its reader takes it. */
export function restoreTar(repo: Repository, snapshot: Snapshot, options: RestoreOptions = {}): Readable {
  return Readable.from(new Restorer(repo).tar(snapshot, options), { objectMode: false, highWaterMark: 1024 * 1024 });
}

/**
 * The file at a snapshot's only path, when that path is a file: a Block claim's device image (or
 * any `restic backup --stdin` snapshot). Undefined when the path is a directory.
 */
export async function imageNode(repo: Repository, snapshot: Snapshot): Promise<Node | undefined> {
  if (snapshot.paths.length !== 1) return undefined;
  const parts = snapshot.paths[0]!.split('/').filter((p) => p !== '' && p !== '.');
  let nodes = await repo.loadTree(snapshot.tree);
  for (const [i, part] of parts.entries()) {
    const node = nodes.find((n) => n.name.equals(Buffer.from(part)));
    if (!node) return undefined;
    if (i === parts.length - 1) return node.type === 'file' ? node : undefined;
    if (node.type !== 'dir' || !node.subtree) return undefined;
    nodes = await repo.loadTree(node.subtree);
  }
  return undefined;
}

/** A file's bytes, blob by blob (each authenticated and checked against its ID as it is read). */
export function fileContent(repo: Repository, node: Node): Readable {
  return Readable.from(
    (async function* () {
      for (const id of node.content ?? []) yield await repo.loadBlob('data', id);
    })(),
    { objectMode: false },
  );
}
