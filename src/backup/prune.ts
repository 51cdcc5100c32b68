/**
 * Pruning: deleting the artifacts of old backups and marking their rows 'pruned' (the rows stay, for
 * the record). Three steps: which rows a policy selects (pure), which of those are safe to touch (the
 * file must be inside the output directory), and applying that so the disk and the catalog agree even
 * if it fails halfway.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CatalogError } from '../errors.ts';
import type { BackupRecord, Catalog } from '../store/catalog.ts';

export interface PrunePolicy {
  /** The newest N succeeded backups of each claim are never pruned. */
  keepLast?: number | undefined;
  /** Only backups started before this instant are pruned. */
  startedBefore?: Date | undefined;
  namespace?: string | undefined;
  pvc?: string | undefined;
}

/** Newest first, as the catalog lists them. */
function newestFirst(a: BackupRecord, b: BackupRecord): number {
  if (a.startedAt !== b.startedAt) return a.startedAt < b.startedAt ? 1 : -1;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/**
 * The succeeded backups the policy prunes, newest first. Backups are grouped by claim (cluster,
 * namespace, pvc); with both keepLast and startedBefore, a backup is pruned only if it is outside the
 * kept ones and old enough. Failed or running rows have no artifact to prune and never count as kept.
 */
export function selectForPruning(records: readonly BackupRecord[], policy: PrunePolicy): BackupRecord[] {
  const candidates = records
    .filter((record) => record.status === 'succeeded')
    .filter((record) => policy.namespace === undefined || record.namespace === policy.namespace)
    .filter((record) => policy.pvc === undefined || record.pvc === policy.pvc)
    .sort(newestFirst);
  const seenPerClaim = new Map<string, number>();
  return candidates.filter((record) => {
    const claim = JSON.stringify([record.cluster, record.namespace, record.pvc]);
    const newer = seenPerClaim.get(claim) ?? 0;
    seenPerClaim.set(claim, newer + 1);
    const kept = policy.keepLast !== undefined && newer < policy.keepLast;
    const oldEnough = policy.startedBefore === undefined || Date.parse(record.startedAt) < policy.startedBefore.getTime();
    return !kept && oldEnough;
  });
}

export interface PruneStep {
  record: BackupRecord;
  /** Why the row is left alone, or null when it is pruned. */
  skipReason: string | null;
  /** The artifact's real path; null when it is already gone (the row is still marked pruned). */
  file: string | null;
}

/** The path with symlinks resolved as far as it exists; a missing tail is kept as written. */
function resolveExisting(file: string): string {
  try {
    return fs.realpathSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    const parent = path.dirname(file);
    return parent === file ? file : path.join(resolveExisting(parent), path.basename(file));
  }
}

function isInside(directory: string, file: string): boolean {
  const relative = path.relative(directory, file);
  return relative !== '' && !path.isAbsolute(relative) && relative.split(path.sep)[0] !== '..';
}

/**
 * Decides, for each selected backup, whether its file may be deleted: only a regular file inside the
 * output directory (both with symlinks resolved), so a catalog row can never make prune delete
 * anything else.
 */
export function planPrune(records: readonly BackupRecord[], outputDir: string): PruneStep[] {
  const root = resolveExisting(path.resolve(outputDir));
  return records.map((record): PruneStep => {
    if (!record.artifactPath) return { record, skipReason: 'the catalog records no artifact path', file: null };
    const file = resolveExisting(path.resolve(record.artifactPath));
    if (!isInside(root, file)) return { record, skipReason: `not inside the output directory ${root}`, file: null };
    const stats = fs.lstatSync(file, { throwIfNoEntry: false });
    if (stats && !stats.isFile()) return { record, skipReason: 'not a regular file', file: null };
    return { record, skipReason: null, file: stats ? file : null };
  });
}

/**
 * Deletes the files and marks the rows pruned, so that the catalog never claims a file that is gone
 * nor keeps a file it calls pruned: (1) every file is renamed aside, (2) all rows are marked in one
 * catalog save, (3) the renamed files are deleted. If (1) or (2) fails, the files are renamed back.
 */
export async function applyPrune(catalog: Catalog, steps: readonly PruneStep[], prunedAt: string): Promise<void> {
  const pruned = steps.filter((step) => step.skipReason === null);
  const movedAside: { file: string; aside: string }[] = [];
  try {
    for (const { file } of pruned) {
      if (file === null) continue;
      const aside = `${file}.pruning-${process.pid}`;
      try {
        fs.renameSync(file, aside);
      } catch (error) {
        throw new CatalogError(`cannot move the artifact ${file} aside to delete it: ${(error as Error).message}`, { cause: error });
      }
      movedAside.push({ file, aside });
    }
    await catalog.markPruned(pruned.map((step) => step.record.id), prunedAt);
  } catch (error) {
    const stuck = movedAside.filter(({ file, aside }) => !renamedBack(aside, file));
    if (stuck.length === 0) throw error;
    throw new CatalogError(`${(error as Error).message}; and these artifacts could not be moved back: ${stuck.map(({ aside, file }) => `${aside} -> ${file}`).join(', ')}`, {
      hint: 'nothing was marked pruned: rename them back by hand',
      cause: error,
    });
  }
  for (const { aside } of movedAside) fs.rmSync(aside, { force: true });
}

function renamedBack(aside: string, file: string): boolean {
  try {
    fs.renameSync(aside, file);
    return true;
  } catch {
    return false;
  }
}
