/**
 * Snapshot files (doc/design.rst, "Snapshots"): the root tree, the backed-up paths, host, user,
 * tags and a summary, as restic's data.Snapshot marshals them. Unknown fields are kept when read.
 */
import os from 'node:os';
import { formatTime, nowNs, parseTime } from './time.ts';

export interface SnapshotSummary {
  backup_start: string;
  backup_end: string;
  files_new: number;
  files_changed: number;
  files_unmodified: number;
  dirs_new: number;
  dirs_changed: number;
  dirs_unmodified: number;
  data_blobs: number;
  tree_blobs: number;
  data_added: number;
  data_added_packed: number;
  total_files_processed: number;
  total_bytes_processed: number;
}

export interface Snapshot {
  /** RFC3339Nano, as written. */
  time: string;
  parent?: string;
  tree: string;
  paths: string[];
  hostname?: string;
  username?: string;
  uid?: number;
  gid?: number;
  excludes?: string[];
  tags?: string[];
  original?: string;
  program_version?: string;
  summary?: SnapshotSummary;
  [other: string]: unknown;
}

export interface SnapshotWithId extends Snapshot {
  id: string;
}

export function newSnapshot(options: { tree: string; paths: string[]; hostname: string; tags?: string[]; parent?: string; time?: bigint; programVersion?: string }): Snapshot {
  const snapshot: Snapshot = { time: formatTime(options.time ?? nowNs()), tree: options.tree, paths: options.paths, hostname: options.hostname };
  if (options.parent) snapshot.parent = options.parent;
  const user = (() => {
    try {
      return os.userInfo();
    } catch {
      return undefined;
    }
  })();
  if (user?.username) snapshot.username = user.username;
  if (user && user.uid > 0) snapshot.uid = user.uid;
  if (user && user.gid > 0) snapshot.gid = user.gid;
  if (options.tags && options.tags.length > 0) snapshot.tags = options.tags;
  if (options.programVersion) snapshot.program_version = options.programVersion;
  return snapshot;
}

const ORDER = ['time', 'parent', 'tree', 'paths', 'hostname', 'username', 'uid', 'gid', 'excludes', 'tags', 'original', 'program_version', 'summary'];

/** restic's field order; fields restic omits when empty are omitted. */
export function encodeSnapshot(snapshot: Snapshot): Buffer {
  const json: Record<string, unknown> = {};
  for (const key of ORDER) if (snapshot[key] !== undefined) json[key] = snapshot[key];
  for (const [key, value] of Object.entries(snapshot)) if (!ORDER.includes(key) && key !== 'id' && value !== undefined) json[key] = value;
  return Buffer.from(JSON.stringify(json));
}

export function decodeSnapshot(id: string, plaintext: Buffer): SnapshotWithId {
  const json = JSON.parse(plaintext.toString('utf8')) as Snapshot;
  if (typeof json.tree !== 'string') throw new Error(`snapshot ${id} has no tree`);
  return { ...json, paths: json.paths ?? [], id };
}

export function snapshotTimeNs(snapshot: Snapshot): bigint {
  return parseTime(snapshot.time);
}
