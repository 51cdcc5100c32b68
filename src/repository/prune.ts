/**
 * `prune` as restic v0.19.1 does it (internal/repository/prune.go, cmd/restic/cmd_prune.go): find
 * every blob the snapshots still reach, then per pack decide: nothing used -> delete; all used ->
 * keep; partly used -> repack its used blobs into new packs, most wasteful packs first, until the
 * unused bytes left are within --max-unused (tree packs, and packs restic would rewrite anyway, are
 * always repacked). A blob stored twice keeps one copy. The decision is pure (planPrune), ported
 * line for line so that the same repository gives restic's figures.
 *
 * Order of writes, restic's, so that an interruption anywhere leaves every snapshot whole: packs no
 * index lists are deleted first (nothing can refer to them); the repacked blobs are written as new
 * packs with their index files; new index files covering every pack kept and written are saved; only
 * then the old index files are deleted; the packs deleted or repacked go last. An interrupted prune
 * leaves extra packs or blobs stored twice, which `restic check` accepts and the next prune removes.
 *
 * Memory: the set of blobs in use is a Map from a 65-character key (type letter and hex ID) to a
 * small count (how often the index lists it): 117 bytes a blob measured on Node 26 (a V8 string of 65
 * one-byte characters, about 88 bytes, plus the map's entry), 117 MB for a million blobs. The index
 * files are held parsed, as the check holds them: one JS object per blob, 187 bytes each measured,
 * on top of the repository's own compact index (48 bytes a blob). A pack to repack is read whole.
 */
import { parseIndexFile } from './check.ts';
import { encodeIndexFiles } from './index.ts';
import type { RepositoryLock } from './lock.ts';
import { MAX_BLOBS_PER_PACK, packSize, type BlobType, type PackedBlob } from './pack.ts';
import { unsealBlob, type Repository } from './repository.ts';
import { decodeTree } from './tree.ts';

/** restic's MinPackSize: below this share of the target size a fully used pack still counts as small. */
const MIN_PACK_SIZE = 4 * 1024 * 1024;
/** restic repacks small packs only when there are at least this many of them. */
const SMALL_PACKS_WORTH_REPACKING = 10;

/** A prune refused or failed in a way restic also refuses (data missing, index and packs disagreeing). */
export class PruneError extends Error {
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = 'PruneError';
    this.hint = hint;
  }
}

/** --max-unused: how many unused bytes may stay, given the used bytes. */
export type MaxUnused = { kind: 'unlimited' } | { kind: 'percent'; percent: number } | { kind: 'bytes'; bytes: number };

/** restic's ui.ParseBytes: an integer with an optional b/k/m/g/t suffix (powers of 1024). */
export function parseBytes(text: string): number {
  if (text === '') throw new Error('expected size, got empty string');
  const units: Record<string, number> = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
  const unit = units[text.slice(-1).toLowerCase()];
  const number = unit === undefined ? text : text.slice(0, -1);
  if (!/^[+-]?[0-9]+$/.test(number)) throw new Error(`strconv.ParseInt: parsing ${JSON.stringify(number)}: invalid syntax`);
  const value = BigInt(number) * BigInt(unit ?? 1);
  if (BigInt(number) > 2n ** 63n - 1n || BigInt(number) < -(2n ** 63n)) throw new Error(`strconv.ParseInt: parsing ${JSON.stringify(number)}: value out of range`);
  if (value < 0n || value > 2n ** 63n - 1n) throw new Error(`ParseSize: ${JSON.stringify(number)}: value out of range`);
  return Number(value);
}

/** restic's --max-unused: "unlimited", a percentage below 100 ("5%", "2.5%"), or a size ("0", "200M"). */
export function parseMaxUnused(text: string): MaxUnused {
  const trimmed = text.trim();
  if (trimmed === '') throw new Error(`invalid value for --max-unused: ${JSON.stringify(text)}`);
  if (trimmed === 'unlimited') return { kind: 'unlimited' };
  if (trimmed.endsWith('%')) {
    const number = trimmed.slice(0, -1);
    const percent = Number(number);
    if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(number) || Number.isNaN(percent)) {
      throw new Error(`invalid percentage ${JSON.stringify(text)} passed for --max-unused: strconv.ParseFloat: parsing ${JSON.stringify(number)}: invalid syntax`);
    }
    if (percent < 0) throw new Error('percentage for --max-unused must be positive');
    if (percent >= 100) throw new Error('percentage for --max-unused must be below 100%');
    return { kind: 'percent', percent };
  }
  try {
    return { kind: 'bytes', bytes: parseBytes(trimmed) };
  } catch (error) {
    throw new Error(`invalid number of bytes ${JSON.stringify(text)} for --max-unused: ${(error as Error).message}`);
  }
}

/** The unused bytes tolerated after the prune: a percentage is of the repository's size after it (p/(100-p) of the used bytes). */
export function maxUnusedBytes(limit: MaxUnused, used: number): number {
  if (limit.kind === 'unlimited') return Infinity;
  if (limit.kind === 'bytes') return limit.bytes;
  return Math.floor((limit.percent / (100 - limit.percent)) * used);
}

export interface PruneOptions {
  maxUnused: MaxUnused;
  /** --max-repack-size: stop repacking once this much would be repacked. Infinity by default. */
  maxRepackBytes?: number;
  /** The repository's format version: version 2 repacks tree packs holding uncompressed blobs. */
  repositoryVersion: number;
}

/** restic's PruneStats, with the names its `prune --json` summary uses (after v0.19.1). */
export interface PruneStats {
  blobs: { used: number; duplicate: number; unused: number; total: number; repack: number; repack_remove: number; remove: number; remove_total: number; remaining: number };
  bytes: {
    used: number;
    duplicate: number;
    unused: number;
    unreferenced: number;
    uncompressed: number;
    total: number;
    repack: number;
    repack_remove: number;
    remove: number;
    remove_total: number;
    remaining: number;
    remaining_unused: number;
  };
  packfiles: { used: number; unused: number; partly_used: number; unreferenced: number; total: number; keep: number; repack: number; remove: number; remove_total: number };
}

export interface PrunePlan {
  stats: PruneStats;
  /** Packs no index lists: deleted first. */
  removePacksFirst: string[];
  /** Packs with no blob in use. */
  removePacks: string[];
  /** Partly used packs whose used blobs move to new packs. */
  repackPacks: string[];
  /** Packs the index lists that are gone, and were not needed: dropped from the index. */
  ignorePacks: string[];
  /** Keys (see blobKey) of the blobs to copy out of the repacked packs: used, and in no pack that stays. */
  keepBlobs: Map<string, number>;
}

/** A blob's key in the used set: "d" or "t" and its hex ID (65 one-byte characters). */
export const blobKey = (type: BlobType, id: string): string => `${type === 'data' ? 'd' : 't'}${id}`;

type PackType = BlobType | 'mixed';

interface PackInfo {
  usedBlobs: number;
  unusedBlobs: number;
  duplicateBlobs: number;
  usedSize: number;
  unusedSize: number;
  type: PackType | undefined;
  uncompressed: boolean;
}

/** A pack file's bytes outside its blobs: header entries, the header's encryption, its length. */
function headerSize(blobs: readonly PackedBlob[]): number {
  let size = packSize(blobs);
  for (const blob of blobs) size -= blob.length;
  return size;
}

function emptyStats(): PruneStats {
  return {
    blobs: { used: 0, duplicate: 0, unused: 0, total: 0, repack: 0, repack_remove: 0, remove: 0, remove_total: 0, remaining: 0 },
    bytes: { used: 0, duplicate: 0, unused: 0, unreferenced: 0, uncompressed: 0, total: 0, repack: 0, repack_remove: 0, remove: 0, remove_total: 0, remaining: 0, remaining_unused: 0 },
    packfiles: { used: 0, unused: 0, partly_used: 0, unreferenced: 0, total: 0, keep: 0, repack: 0, remove: 0, remove_total: 0 },
  };
}

/**
 * restic's PlanPrune, pure. `packs`: every pack the index files list, with its blobs (a pack listed
 * twice counts once); `onDisk`: every pack file and its size; `used`: every blob the snapshots reach,
 * keyed by blobKey, each mapped to 0. `used` is consumed: it becomes the plan's keepBlobs.
 */
export function planPrune(packs: Iterable<{ id: string; blobs: readonly PackedBlob[] }>, onDisk: ReadonlyMap<string, number>, used: Map<string, number>, options: PruneOptions): PrunePlan {
  const stats = emptyStats();
  const indexed = new Map<string, readonly PackedBlob[]>();
  for (const pack of packs) if (!indexed.has(pack.id)) indexed.set(pack.id, pack.blobs);

  // How often the index lists each used blob: 0 missing, 1 once, 2+ stored more than once.
  for (const blobs of indexed.values()) {
    for (const blob of blobs) {
      const key = blobKey(blob.type, blob.id);
      const count = used.get(key);
      if (count !== undefined) used.set(key, Math.min(count + 1, 255));
    }
  }
  const missing: string[] = [];
  for (const [key, count] of used) if (count === 0) missing.push(`${key[0] === 'd' ? 'data' : 'tree'} blob ${key.slice(1, 9)}`);
  if (missing.length > 0) {
    throw new PruneError(
      `${missing.length} blob${missing.length === 1 ? '' : 's'} in use ${missing.length === 1 ? 'is' : 'are'} in no index (${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}): data seems to be missing; prune will not start, to prevent (additional) data loss`,
      'run `kubectl nkvm verify` (or `restic check`) to see which snapshots are damaged',
    );
  }

  const info = new Map<string, PackInfo>();
  for (const [id, blobs] of indexed) info.set(id, { usedBlobs: 0, unusedBlobs: 0, duplicateBlobs: 0, usedSize: headerSize(blobs), unusedSize: 0, type: undefined, uncompressed: false });
  let hasDuplicates = false;
  for (const [id, blobs] of indexed) {
    const p = info.get(id)!;
    for (const blob of blobs) {
      p.type = p.type === undefined ? blob.type : p.type === blob.type ? p.type : 'mixed';
      const count = used.get(blobKey(blob.type, blob.id)) ?? 0;
      if (count >= 2) {
        // Unused for now; one copy becomes used below.
        hasDuplicates = true;
        p.unusedSize += blob.length;
        p.unusedBlobs += 1;
        p.duplicateBlobs += 1;
        stats.bytes.duplicate += blob.length;
        stats.blobs.duplicate += 1;
      } else if (count === 1) {
        p.usedSize += blob.length;
        p.usedBlobs += 1;
        stats.bytes.used += blob.length;
        stats.blobs.used += 1;
      } else {
        p.unusedSize += blob.length;
        p.unusedBlobs += 1;
        stats.bytes.unused += blob.length;
        stats.blobs.unused += 1;
      }
      if (!blob.uncompressedLength) p.uncompressed = true;
    }
  }

  // Of a blob stored more than once keep the copy in a pack that is used anyway, or in a pack of
  // nothing but such copies (what an interrupted prune left), or else the last copy met.
  if (hasDuplicates) {
    for (const [id, blobs] of indexed) {
      const p = info.get(id)!;
      for (const blob of blobs) {
        const key = blobKey(blob.type, blob.id);
        const count = used.get(key);
        if (count === undefined || count === 1) continue;
        if (p.usedBlobs > 0 || p.duplicateBlobs === p.unusedBlobs || count === 0) {
          p.usedSize += blob.length;
          p.usedBlobs += 1;
          p.unusedSize -= blob.length;
          p.unusedBlobs -= 1;
          stats.bytes.used += blob.length;
          stats.blobs.used += 1;
          stats.bytes.duplicate -= blob.length;
          stats.blobs.duplicate -= 1;
          used.set(key, 1);
        } else {
          // 0 marks "one copy left": that one is kept.
          used.set(key, count - 1 === 1 ? 0 : count - 1);
        }
      }
    }
  }

  // 80% of the larger of 4 MiB and the 3rd percentile of pack sizes: packs below it are small.
  let targetPackSize = 0;
  if (info.size > 0) {
    const sizes = [...info.values()].map((p) => p.usedSize + p.unusedSize).sort((a, b) => a - b);
    targetPackSize = Math.floor((Math.max(MIN_PACK_SIZE, sizes[Math.floor((info.size * 3) / 100)]!) * 4) / 5);
  }

  const removePacksFirst: string[] = [];
  const removePacks: string[] = [];
  const repackPacks: string[] = [];
  type Candidate = PackInfo & { id: string; mustCompress: boolean };
  const candidates: Candidate[] = [];
  const smallCandidates: Candidate[] = [];
  for (const [id, size] of onDisk) {
    const p = info.get(id);
    if (!p) {
      removePacksFirst.push(id);
      stats.bytes.unreferenced += size;
      continue;
    }
    if (p.unusedSize + p.usedSize !== size && p.usedBlobs !== 0) {
      throw new PruneError(`pack ${id.slice(0, 8)}: its size by the index is ${p.unusedSize + p.usedSize} bytes, on disk ${size}`, "the index does not match the packs: run 'restic repair index'");
    }
    if (p.usedBlobs === 0) stats.packfiles.unused += 1;
    else if (p.unusedBlobs === 0) stats.packfiles.used += 1;
    else stats.packfiles.partly_used += 1;
    if (p.uncompressed) stats.bytes.uncompressed += p.unusedSize + p.usedSize;
    // Version 2 always compresses trees: a tree pack with an uncompressed blob is rewritten.
    const mustCompress = options.repositoryVersion >= 2 && p.type === 'tree' && p.uncompressed;
    if (p.usedBlobs === 0) {
      removePacks.push(id);
      stats.blobs.remove += p.unusedBlobs;
      stats.bytes.remove += p.unusedSize;
    } else if (p.unusedBlobs === 0 && p.type !== 'mixed' && !mustCompress) {
      // A pack of as many blobs as ours hold (tiny ones) would come out of a repack no larger: it is
      // not small, or every prune would repack it again. restic, whose packs have no such bound, differs here.
      if (size >= targetPackSize || p.usedBlobs >= MAX_BLOBS_PER_PACK) stats.packfiles.keep += 1;
      else smallCandidates.push({ ...p, id, mustCompress });
    } else {
      candidates.push({ ...p, id, mustCompress });
    }
    info.delete(id);
  }

  // What is left of the index's packs is not on disk.
  const ignorePacks: string[] = [];
  const needed: string[] = [];
  for (const [id, p] of info) {
    if (p.usedBlobs === 0) {
      ignorePacks.push(id);
      stats.blobs.remove += p.unusedBlobs;
      stats.bytes.remove += p.unusedSize;
    } else {
      needed.push(id);
    }
  }
  if (needed.length > 0) {
    throw new PruneError(
      `the index lists ${needed.length} pack${needed.length === 1 ? '' : 's'} in use that ${needed.length === 1 ? 'is' : 'are'} missing from the repository (${needed.slice(0, 5).map((id) => id.slice(0, 8)).join(', ')}${needed.length > 5 ? ', ...' : ''})`,
      'run `kubectl nkvm verify` (or `restic check`) to see which snapshots are damaged',
    );
  }

  // A few small packs are not worth it (and one small pack would be repacked forever).
  if (smallCandidates.length < SMALL_PACKS_WORTH_REPACKING) stats.packfiles.keep += smallCandidates.length;
  else candidates.push(...smallCandidates);

  // Packs of trees and small packs first, then by the share of unused bytes, highest first.
  const isData = (c: Candidate) => c.type === 'data';
  const total = (c: Candidate) => c.unusedSize + c.usedSize;
  candidates.sort((a, b) => {
    if (!isData(a) && isData(b)) return -1;
    if (!isData(b) && isData(a)) return 1;
    if (total(a) < targetPackSize && total(b) >= targetPackSize) return -1;
    if (total(b) < targetPackSize && total(a) >= targetPackSize) return 1;
    const left = a.unusedSize * b.usedSize;
    const right = b.unusedSize * a.usedSize;
    return left > right ? -1 : left < right ? 1 : 0;
  });

  const repack = (c: Candidate) => {
    repackPacks.push(c.id);
    stats.blobs.repack += c.unusedBlobs + c.usedBlobs;
    stats.bytes.repack += c.unusedSize + c.usedSize;
    stats.blobs.repack_remove += c.unusedBlobs;
    stats.bytes.repack_remove += c.unusedSize;
    if (c.uncompressed) stats.bytes.uncompressed -= c.unusedSize + c.usedSize;
  };
  const maxUnusedAfter = maxUnusedBytes(options.maxUnused, stats.bytes.used);
  const maxRepack = options.maxRepackBytes ?? Infinity;
  for (const c of candidates) {
    const remainingUnused = stats.bytes.duplicate + stats.bytes.unused - stats.bytes.remove - stats.bytes.repack_remove;
    const reachedRepackSize = stats.bytes.repack + total(c) >= maxRepack;
    if (reachedRepackSize) stats.packfiles.keep += 1;
    else if (!isData(c) || c.mustCompress) repack(c);
    else if (remainingUnused < maxUnusedAfter && total(c) >= targetPackSize) stats.packfiles.keep += 1;
    else repack(c);
  }
  stats.packfiles.unreferenced = removePacksFirst.length;
  stats.packfiles.repack = repackPacks.length;
  stats.packfiles.remove = removePacks.length;
  if (options.repositoryVersion < 2) stats.bytes.uncompressed = 0;

  // The blobs to copy: used, and in no pack that stays.
  if (repackPacks.length > 0) {
    const going = new Set([...removePacks, ...repackPacks]);
    for (const [id, blobs] of indexed) {
      if (going.has(id)) continue;
      for (const blob of blobs) used.delete(blobKey(blob.type, blob.id));
    }
  } else {
    used.clear();
  }

  const b = stats.blobs;
  const s = stats.bytes;
  const k = stats.packfiles;
  b.total = b.used + b.unused + b.duplicate;
  b.remove_total = b.remove + b.repack_remove;
  b.remaining = b.total - b.remove_total;
  s.total = s.used + s.duplicate + s.unused + s.unreferenced;
  s.remove_total = s.remove + s.repack_remove + s.unreferenced;
  s.remaining = s.total - s.remove_total;
  s.remaining_unused = s.duplicate + s.unused - s.remove - s.repack_remove;
  k.total = k.used + k.partly_used + k.unused + k.unreferenced;
  k.remove_total = k.unreferenced + k.remove;
  return { stats, removePacksFirst, removePacks, repackPacks, ignorePacks, keepBlobs: used };
}

/** restic's ui.FormatBytes. */
export function formatBytes(c: number): string {
  if (c >= 2 ** 40) return `${(c / 2 ** 40).toFixed(3)} TiB`;
  if (c >= 2 ** 30) return `${(c / 2 ** 30).toFixed(3)} GiB`;
  if (c >= 2 ** 20) return `${(c / 2 ** 20).toFixed(3)} MiB`;
  if (c >= 2 ** 10) return `${(c / 2 ** 10).toFixed(3)} KiB`;
  return `${c} B`;
}

/** restic's ui.FormatPercent ("" for 0 of 0). */
export function formatPercent(numerator: number, denominator: number): string {
  if (denominator === 0) return '';
  return `${Math.min(100, (100 * numerator) / denominator).toFixed(2)}%`;
}

const count = (n: number) => String(n).padStart(10);

/** restic's printPruneStats at `-v`: the figures, then what happens to the packs. */
export function describePruneStats(stats: PruneStats): string {
  const { blobs: b, bytes: s, packfiles: k } = stats;
  const lines = [`used:         ${count(b.used)} blobs / ${formatBytes(s.used)}`];
  if (b.duplicate > 0) lines.push(`duplicates:   ${count(b.duplicate)} blobs / ${formatBytes(s.duplicate)}`);
  lines.push(`unused:       ${count(b.unused)} blobs / ${formatBytes(s.unused)}`);
  if (s.unreferenced > 0) lines.push(`unreferenced:                    ${formatBytes(s.unreferenced)}`);
  lines.push(`total:        ${count(b.total)} blobs / ${formatBytes(s.total)}`);
  lines.push(`unused size: ${formatPercent(s.duplicate + s.unused, s.total)} of total size`);
  lines.push('');
  lines.push(`to repack:    ${count(b.repack)} blobs / ${formatBytes(s.repack)}`);
  lines.push(`this removes: ${count(b.repack_remove)} blobs / ${formatBytes(s.repack_remove)}`);
  lines.push(`to delete:    ${count(b.remove)} blobs / ${formatBytes(s.remove + s.unreferenced)}`);
  lines.push(`total prune:  ${count(b.remove_total)} blobs / ${formatBytes(s.remove_total)}`);
  if (s.uncompressed > 0) lines.push(`not yet compressed:              ${formatBytes(s.uncompressed)}`);
  lines.push(`remaining:    ${count(b.remaining)} blobs / ${formatBytes(s.remaining)}`);
  lines.push(`unused size after prune: ${formatBytes(s.remaining_unused)} (${formatPercent(s.remaining_unused, s.remaining)} of remaining size)`);
  lines.push('');
  lines.push(`totally used packs: ${count(k.used)}`);
  lines.push(`partly used packs:  ${count(k.partly_used)}`);
  lines.push(`unused packs:       ${count(k.unused)}`);
  lines.push('');
  lines.push(`to keep:      ${count(k.keep)} packs`);
  lines.push(`to repack:    ${count(k.repack)} packs`);
  lines.push(`to delete:    ${count(k.remove)} packs`);
  if (k.unreferenced > 0) lines.push(`to delete:    ${count(k.unreferenced)} unreferenced packs`);
  return `${lines.join('\n')}\n`;
}

/** Every blob the snapshots reach (but those in `ignoreSnapshots`), each mapped to 0 (restic's getUsedBlobs). */
export async function findUsedBlobs(repo: Repository, options: { ignoreSnapshots?: ReadonlySet<string>; signal?: AbortSignal } = {}): Promise<{ used: Map<string, number>; snapshots: number }> {
  const used = new Map<string, number>();
  const stack: string[] = [];
  let snapshots = 0;
  for await (const file of repo.backend.list('snapshots')) {
    if (options.ignoreSnapshots?.has(file.name)) continue;
    let tree: string;
    try {
      tree = (await repo.loadSnapshot(file.name)).tree;
    } catch (error) {
      throw new PruneError(`snapshot ${file.name.slice(0, 8)} does not load: ${(error as Error).message}`, 'nothing was removed; run `kubectl nkvm verify` (or `restic check`)');
    }
    snapshots += 1;
    stack.push(tree);
  }
  while (stack.length > 0) {
    options.signal?.throwIfAborted();
    const tree = stack.pop()!;
    const key = blobKey('tree', tree);
    if (used.has(key)) continue;
    used.set(key, 0);
    let nodes;
    try {
      nodes = decodeTree(await repo.loadBlob('tree', tree));
    } catch (error) {
      throw new PruneError(`tree ${tree.slice(0, 8)} does not load: ${(error as Error).message}`, 'nothing was removed; run `kubectl nkvm verify` (or `restic check`) to see which snapshots are damaged');
    }
    for (const node of nodes) {
      if (node.type === 'file') for (const blob of node.content ?? []) used.set(blobKey('data', blob), 0);
      else if (node.type === 'dir' && node.subtree) stack.push(node.subtree);
    }
  }
  return { used, snapshots };
}

/** Every pack the index files list (each pack once, as first listed), and the index files' names. */
export async function readIndexFiles(repo: Repository): Promise<{ files: string[]; packs: Map<string, PackedBlob[]> }> {
  const files: string[] = [];
  for await (const file of repo.backend.list('index')) files.push(file.name);
  const packs = new Map<string, PackedBlob[]>();
  for (const name of files) {
    let listed;
    try {
      listed = parseIndexFile(await repo.loadUnpacked('index', name));
    } catch (error) {
      throw new PruneError(`index file ${name.slice(0, 8)} does not load: ${(error as Error).message}`, 'nothing was removed; `restic repair index` rebuilds the index from the packs');
    }
    for (const pack of listed) if (!packs.has(pack.id)) packs.set(pack.id, pack.blobs);
  }
  return { files, packs };
}

export interface PruneRun {
  plan: PrunePlan;
  /** Snapshots whose trees were walked. */
  snapshots: number;
  dryRun: boolean;
  /** New packs written for the repacked blobs. */
  packsWritten: number;
  /** Bytes of pack files before, and after (for a dry run restic's estimate: the headers of packs to delete are not in it). */
  packBytesBefore: number;
  packBytesAfter: number;
  indexFilesWritten: number;
  indexFilesRemoved: number;
  /** Packs whose deletion failed ("id: reason"): harmless leftovers the next prune removes. */
  packsNotRemoved: string[];
}

/** Where a prune is: for a progress line. */
export type PrunePhase = 'finding used blobs' | 'deleting unreferenced packs' | 'repacking' | 'rebuilding the index' | 'deleting packs';

/**
 * Plans and (without dryRun) carries out a prune. The caller holds the exclusive lock and passes it:
 * each step that removes anything first checks the lock is still ours.
 */
export async function prune(
  repo: Repository,
  lock: RepositoryLock | undefined,
  options: PruneOptions & {
    dryRun?: boolean;
    ignoreSnapshots?: ReadonlySet<string>;
    /** Stops the prune at its next step (Ctrl-C): every step leaves the repository whole. */
    signal?: AbortSignal;
    onPhase?: (phase: PrunePhase) => void;
    onPlan?: (plan: PrunePlan) => void;
  },
): Promise<PruneRun> {
  const phase = options.onPhase ?? (() => {});
  const signals = [lock?.signal, options.signal].filter((s): s is AbortSignal => s !== undefined);
  const signal = signals.length > 0 ? AbortSignal.any(signals) : undefined;
  // Before each step that writes or removes: the lock still ours, no Ctrl-C.
  const checkpoint = () => signal?.throwIfAborted();
  phase('finding used blobs');
  const { used, snapshots } = await findUsedBlobs(repo, { ...(options.ignoreSnapshots ? { ignoreSnapshots: options.ignoreSnapshots } : {}), ...(signal ? { signal } : {}) });
  const index = await readIndexFiles(repo);
  const onDisk = new Map<string, number>();
  for await (const file of repo.backend.list('data')) onDisk.set(file.name, file.size);
  const plan = planPrune([...index.packs].map(([id, blobs]) => ({ id, blobs })), onDisk, used, options);
  let packBytes = 0;
  for (const size of onDisk.values()) packBytes += size;
  const run: PruneRun = {
    plan,
    snapshots,
    dryRun: options.dryRun === true,
    packsWritten: 0,
    packBytesBefore: packBytes,
    packBytesAfter: packBytes - plan.stats.bytes.remove_total,
    indexFilesWritten: 0,
    indexFilesRemoved: 0,
    packsNotRemoved: [],
  };
  options.onPlan?.(plan);
  if (options.dryRun) return run;
  run.packBytesAfter = packBytes;

  // No index refers to these: nothing can be lost by deleting them first.
  if (plan.removePacksFirst.length > 0) {
    phase('deleting unreferenced packs');
    for (const id of plan.removePacksFirst) {
      checkpoint();
      try {
        await repo.backend.remove('data', id);
        run.packBytesAfter -= onDisk.get(id)!;
      } catch (error) {
        run.packsNotRemoved.push(`${id.slice(0, 8)}: ${(error as Error).message}`);
      }
    }
  }

  const removed = new Set([...plan.removePacks, ...plan.repackPacks, ...plan.ignorePacks]);
  if (plan.repackPacks.length > 0) {
    phase('repacking');
    for (const packId of plan.repackPacks) {
      checkpoint();
      const blobs = (index.packs.get(packId) ?? []).filter((blob) => plan.keepBlobs.has(blobKey(blob.type, blob.id)));
      if (blobs.length === 0) continue;
      const bytes = await repo.backend.read('data', packId);
      for (const blob of blobs) {
        const key = blobKey(blob.type, blob.id);
        // Already copied from another pack holding it.
        if (!plan.keepBlobs.has(key)) continue;
        const plaintext = unsealBlob(repo.key, blob.type, blob.id, bytes.subarray(blob.offset, blob.offset + blob.length), blob.uncompressedLength);
        await repo.copyBlob(blob.type, blob.id, plaintext);
        plan.keepBlobs.delete(key);
      }
    }
    await repo.flush();
    if (plan.keepBlobs.size > 0) throw new PruneError(`internal error: ${plan.keepBlobs.size} blobs in use were not repacked; nothing was deleted`);
  }

  if (removed.size > 0) {
    phase('rebuilding the index');
    checkpoint();
    // Every index file now, the ones the repacking just wrote included: all are replaced.
    const current = await readIndexFiles(repo);
    for (const [id, blobs] of current.packs) {
      if (index.packs.has(id)) continue;
      run.packsWritten += 1;
      run.packBytesAfter += packSize(blobs);
    }
    const kept = [...current.packs].filter(([id]) => !removed.has(id)).map(([id, blobs]) => ({ id, blobs }));
    for (const file of encodeIndexFiles(kept)) {
      await repo.saveUnpacked('index', file);
      run.indexFilesWritten += 1;
    }
    for (const name of current.files) {
      checkpoint();
      await repo.backend.remove('index', name);
      run.indexFilesRemoved += 1;
    }
  }

  if (plan.removePacks.length + plan.repackPacks.length > 0) {
    phase('deleting packs');
    for (const id of [...plan.removePacks, ...plan.repackPacks]) {
      checkpoint();
      try {
        await repo.backend.remove('data', id);
        run.packBytesAfter -= onDisk.get(id) ?? 0;
      } catch (error) {
        // As restic: a pack left behind harms nothing (no index lists it; the next prune removes it).
        run.packsNotRemoved.push(`${id.slice(0, 8)}: ${(error as Error).message}`);
      }
    }
  }
  return run;
}
