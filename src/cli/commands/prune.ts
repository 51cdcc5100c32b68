/**
 * `kubectl nkvm prune`: removes from the repository the data no snapshot refers to any more (what
 * forgotten snapshots alone used, what interrupted backups left), restic's `prune` exactly
 * (src/repository/prune.ts), under an exclusive lock. `forget --prune` runs the same after forget.
 */
import type { Argv, CommandModule } from 'yargs';
import { RepositoryError, UsageError } from '../../errors.ts';
import type { PruneRun } from '../../repository/prune.ts';
import type { GlobalOptions } from '../global-options.ts';
import { interruptSignal } from '../interrupt.ts';
import { toJson, writeInfo, writeResult, writeWarning } from '../output.ts';
import { openRepository, toRepositoryError, withRepositoryOptions, type OpenedRepository, type RepositoryFlags } from '../repository-options.ts';
import { listing } from './index.ts';

export interface PruneFlags {
  maxUnused: string;
  maxRepackSize: string | undefined;
}

type PruneArgs = GlobalOptions &
  RepositoryFlags &
  PruneFlags & {
    dryRun: boolean;
    output: 'table' | 'json';
  };

/** The flags `prune` and `forget --prune` share (restic's AddLimitedFlags, the ones kept here). */
export function withPruneOptions<T>(argv: Argv<T>): Argv<T & PruneFlags> {
  return argv
    .option('max-unused', {
      type: 'string',
      default: '5%',
      description: "Unused data to tolerate after a prune: a percentage of the repository (below 100%), a size (0, 200M, 1G) or 'unlimited'",
    })
    .option('max-repack-size', { type: 'string', description: 'Repack at most this much data (e.g. 1G; 0 repacks nothing)' }) as unknown as Argv<T & PruneFlags>;
}

/** The prune options the flags ask for; a UsageError in restic's words for values it refuses. */
export async function pruneOptionsFromFlags(flags: PruneFlags): Promise<{ maxUnused: import('../../repository/prune.ts').MaxUnused; maxRepackBytes?: number }> {
  const { parseBytes, parseMaxUnused } = await import('../../repository/prune.ts');
  try {
    const maxUnused = parseMaxUnused(flags.maxUnused);
    if (flags.maxRepackSize === undefined) return { maxUnused };
    return { maxUnused, maxRepackBytes: parseBytes(flags.maxRepackSize) };
  } catch (error) {
    throw new UsageError((error as Error).message, 'e.g. --max-unused 5%, --max-unused 0, --max-unused 200M, --max-unused unlimited, --max-repack-size 1G');
  }
}

/** The figures for `-o json`: restic's summary (its `prune --json` names) and what was done. */
export function pruneJson(run: PruneRun, location: string): Record<string, unknown> {
  return {
    repository: location,
    dryRun: run.dryRun,
    snapshots: run.snapshots,
    stats: run.plan.stats,
    packs: {
      deleted: run.dryRun ? 0 : run.plan.removePacksFirst.length + run.plan.removePacks.length + run.plan.repackPacks.length - run.packsNotRemoved.length,
      repacked: run.plan.repackPacks.length,
      written: run.packsWritten,
      notRemoved: run.packsNotRemoved,
    },
    indexFiles: { written: run.indexFilesWritten, removed: run.indexFilesRemoved },
    packBytesBefore: run.packBytesBefore,
    packBytesAfter: run.packBytesAfter,
  };
}

/**
 * Runs a prune on an opened repository (its exclusive lock held) and reports it: restic's summary
 * (or JSON; nothing with 'none', for a caller that prints the run) on stdout, steps on stderr. `ignoreSnapshots`: snapshots to count as gone (forget
 * --prune --dry-run, whose snapshots are still there).
 */
export async function runPrune(
  opened: OpenedRepository,
  flags: PruneFlags & { dryRun: boolean; output: 'table' | 'json' | 'none' },
  options: { ignoreSnapshots?: ReadonlySet<string> } = {},
): Promise<PruneRun> {
  const { prune, describePruneStats, formatBytes } = await import('../../repository/prune.ts');
  const pruneOptions = await pruneOptionsFromFlags(flags);
  let run: PruneRun;
  try {
    run = await prune(opened.repository, opened.lock, {
      ...pruneOptions,
      repositoryVersion: opened.repository.config.version,
      dryRun: flags.dryRun,
      signal: interruptSignal,
      ...(options.ignoreSnapshots ? { ignoreSnapshots: options.ignoreSnapshots } : {}),
      onPhase: (phase) => writeInfo(`${phase}...`),
      onPlan: (plan) => {
        if (flags.output === 'table') writeResult(`${flags.dryRun ? 'would make these changes:\n' : ''}${describePruneStats(plan.stats)}\n`);
      },
    });
  } catch (error) {
    if ((error as Error)?.name === 'PruneError') throw new RepositoryError(`prune of ${opened.location}: ${(error as Error).message}`, { hint: (error as { hint?: string }).hint, cause: error });
    throw toRepositoryError(error, opened.location);
  }
  for (const left of run.packsNotRemoved) writeWarning(`pack ${left} was not removed (harmless: no index lists it; the next prune removes it)`);
  if (flags.output === 'json') {
    writeResult(toJson(pruneJson(run, opened.location)));
  } else if (flags.output === 'table' && !run.dryRun) {
    const { plan } = run;
    const deleted = plan.removePacksFirst.length + plan.removePacks.length + plan.repackPacks.length - run.packsNotRemoved.length;
    writeResult(
      `pruned ${opened.location}: ${deleted} pack${deleted === 1 ? '' : 's'} deleted (${plan.repackPacks.length} of them repacked into ${run.packsWritten} new), ` +
        `${run.indexFilesRemoved} index file${run.indexFilesRemoved === 1 ? '' : 's'} replaced by ${run.indexFilesWritten}; packs take ${formatBytes(run.packBytesAfter)}, were ${formatBytes(run.packBytesBefore)}\n`,
    );
  }
  return run;
}

export const pruneCommand: CommandModule<GlobalOptions, PruneArgs> = {
  ...listing('prune'),
  builder: (argv) =>
    withPruneOptions(withRepositoryOptions(argv))
      .option('dry-run', { type: 'boolean', default: false, description: 'Say what would be deleted and repacked, change nothing' })
      .option('output', { alias: 'o', choices: ['table', 'json'] as const, default: 'table' as const, description: 'Output format' })
      .example('kubectl nkvm prune', 'Delete unused packs, repack partly used ones until at most 5% is unused')
      .example('kubectl nkvm prune --max-unused 0 --dry-run', 'What it would take to leave no unused data')
      .example('kubectl nkvm forget --keep-daily 7 --prune', 'Forget, then prune in one go') as unknown as Argv<PruneArgs>,
  handler: async (args) => {
    await pruneOptionsFromFlags(args);
    // Exclusive even for a dry run, as restic: a backup writing meanwhile would look like garbage.
    const opened = await openRepository(args, { lock: 'exclusive' });
    try {
      await runPrune(opened, args);
    } finally {
      await opened.close();
    }
  },
};
