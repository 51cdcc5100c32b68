/**
 * `kubectl nkvm forget --keep-daily 7 ...`: removes the repository's snapshots a retention policy does
 * not keep, with restic's exact policy (src/repository/forget.ts: the same snapshots kept, for the same
 * reasons), grouped by host and paths (a claim) by default, under an exclusive lock. The data those
 * snapshots alone referred to stays in the packs until a prune (`--prune` runs one under the same
 * lock when snapshots were removed, as restic's); catalog rows of removed snapshots are marked pruned.
 */
import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../../errors.ts';
import type { ForgetGroup, ForgetPolicy, SnapshotSummary } from '../../repository/forget.ts';
import type { GlobalOptions } from '../global-options.ts';
import { renderTable, toJson, writeInfo, writeResult } from '../output.ts';
import { openRepository, toRepositoryError, withRepositoryOptions, type RepositoryFlags } from '../repository-options.ts';
import { openCatalog, withStoreOptions, type StoreOptions } from '../store-options.ts';
import { pruneJson, pruneOptionsFromFlags, runPrune, withPruneOptions, type PruneFlags } from './prune.ts';
import { claimOfSnapshot } from './snapshots.ts';
import { listing } from './index.ts';

const COUNTS = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
const WITHIN = ['within', 'within-hourly', 'within-daily', 'within-weekly', 'within-monthly', 'within-yearly'] as const;

type ForgetArgs = GlobalOptions &
  StoreOptions &
  RepositoryFlags &
  PruneFlags & {
    prune: boolean;
    keepTag: string[] | undefined;
    groupBy: string;
    pvc: string | undefined;
    dryRun: boolean;
    output: 'table' | 'json';
  } & Record<string, unknown>;

const camel = (flag: string) => flag.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());

type PlannedSnapshot = SnapshotSummary & { shortId: string; timeText: string };

function renderGroups(groups: ForgetGroup<PlannedSnapshot>[], dryRun: boolean): string {
  return groups
    .map((group) => {
      const key = [`host ${group.key.hostname || '-'}`, `paths ${(group.key.paths ?? []).join(',') || '-'}`, ...(group.key.tags ? [`tags ${group.key.tags.join(',')}`] : [])].join(', ');
      const kept = renderTable(['id', 'time', 'reasons'], group.reasons.map((reason) => [reason.snapshot.shortId, reason.snapshot.timeText.replace(/\.\d+/, ''), reason.matches.join(', ')]));
      const removed = group.remove.length ? renderTable(['id', 'time'], group.remove.map((snapshot) => [snapshot.shortId, snapshot.timeText.replace(/\.\d+/, '')])) : '';
      return `snapshots of ${key}\nkeep ${group.keep.length}:\n${kept}${group.remove.length ? `${dryRun ? 'would remove' : 'remove'} ${group.remove.length}:\n${removed}` : ''}`;
    })
    .join('\n');
}

export const forgetCommand: CommandModule<GlobalOptions, ForgetArgs> = {
  ...listing('forget'),
  builder: (argv) => {
    let built = withPruneOptions(withRepositoryOptions(withStoreOptions(argv)));
    for (const name of COUNTS) built = built.option(`keep-${name}`, { type: 'string', description: `Keep the ${name === 'last' ? 'n newest' : `newest of the last n ${name === 'daily' ? 'days' : name.replace(/ly$/, 's')}`} snapshots ("unlimited" for all)` });
    for (const name of WITHIN) built = built.option(`keep-${name}`, { type: 'string', description: `Keep ${name === 'within' ? 'every snapshot' : `the newest ${name.slice('within-'.length).replace(/ly$/, '').replace(/^dai$/, 'day')} snapshot`} within this duration of the newest (e.g. 1y2m3d4h)` });
    return built
      .option('keep-tag', { type: 'string', array: true, description: 'Keep snapshots with all of these tags (a,b); repeatable' })
      .option('group-by', { type: 'string', default: 'host,paths', description: 'Apply the policy per group of these fields: host (the namespace), paths (the claim), tags' })
      .option('pvc', { type: 'string', description: 'Only snapshots of this claim (and -n: of this namespace)' })
      .option('prune', { type: 'boolean', default: false, description: 'Then remove the data no snapshot uses any more (as `prune`), if snapshots were removed' })
      .option('dry-run', { type: 'boolean', default: false, description: 'Say what would be removed, remove nothing' })
      .option('output', { alias: 'o', choices: ['table', 'json'] as const, default: 'table' as const, description: 'Output format' })
      .example('kubectl nkvm forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12', 'A week of dailies, a month of weeklies, a year of monthlies, per claim')
      .example('kubectl nkvm forget -n shop --pvc data --keep-last 3 --dry-run', 'What would go, for one claim')
      .example('kubectl nkvm forget --keep-daily 7 --prune', 'And free the space only the removed snapshots used') as unknown as Argv<ForgetArgs>;
  },
  handler: async (args) => {
    const forget = await import('../../repository/forget.ts');
    const { parseDuration } = await import('../../repository/duration.ts');
    const policy: ForgetPolicy = {};
    const policyFields = policy as Record<string, unknown>;
    try {
      for (const name of COUNTS) {
        const value = args[camel(`keep-${name}`)];
        if (value !== undefined) policyFields[camel(`keep-${name}`)] = forget.parseKeepCount(String(value));
      }
      for (const name of WITHIN) {
        const value = args[camel(`keep-${name}`)];
        if (value !== undefined) policyFields[camel(`keep-${name}`)] = parseDuration(String(value));
      }
      if (args.keepTag?.length) policy.keepTags = args.keepTag.map((list) => forget.parseTagList(list));
    } catch (error) {
      throw new UsageError((error as Error).message, 'e.g. --keep-daily 7, --keep-last unlimited, --keep-within 1y2m');
    }
    const groupBy = forget.parseGroupBy(args.groupBy);
    // Checked even without --prune, as restic checks them.
    await pruneOptionsFromFlags(args);
    // A prune, even a dry one, needs the repository to itself (restic's rule).
    const opened = await openRepository(args, { lock: args.dryRun && !args.prune ? 'shared' : 'exclusive' });
    try {
      const snapshots = (await opened.repository.listSnapshots())
        .filter((snapshot) => (!args.namespace || snapshot.hostname === args.namespace) && (!args.pvc || claimOfSnapshot(snapshot) === args.pvc))
        .map((snapshot) => ({ ...forget.snapshotSummary(snapshot.id, snapshot), shortId: snapshot.id.slice(0, 8), timeText: snapshot.time }));
      const groups = forget.planForget(snapshots, policy, { groupBy });
      const removed = groups.flatMap((group) => group.remove.map((snapshot) => snapshot.id));
      if (!args.dryRun) {
        for (const id of removed) await opened.repository.backend.remove('snapshots', id);
        const catalog = await openCatalog(args);
        const gone = new Set(removed);
        const rows = (await catalog.listBackups({ status: 'succeeded' })).filter((row) => row.snapshotId && gone.has(row.snapshotId));
        if (rows.length) await catalog.markPruned(rows.map((row) => row.id), new Date().toISOString());
      }
      const groupsJson = groups.map((group) => ({
        host: group.key.hostname,
        paths: group.key.paths ?? null,
        tags: group.key.tags ?? null,
        keep: group.keep.map((snapshot) => snapshot.id),
        remove: group.remove.map((snapshot) => snapshot.id),
        reasons: group.reasons.map((reason) => ({ snapshot: reason.snapshot.id, matches: reason.matches })),
      }));
      if (args.output === 'table') writeResult(renderGroups(groups, args.dryRun));
      const counted = `${removed.length} snapshot${removed.length === 1 ? '' : 's'}`;
      if (!args.prune) {
        if (args.output === 'json') writeResult(toJson(groupsJson));
        writeInfo(
          `${args.dryRun ? 'would remove' : 'removed'} ${counted} from ${opened.location} (${forget.describePolicy(policy)}); the data only they used stays in the repository until a prune (\`kubectl nkvm prune\`, or forget --prune)`,
        );
        return;
      }
      writeInfo(`${args.dryRun ? 'would remove' : 'removed'} ${counted} from ${opened.location} (${forget.describePolicy(policy)})${removed.length ? `, ${args.dryRun ? 'running prune dry run' : 'running prune'}` : ''}`);
      // As restic: no snapshot removed, no prune. A dry run counts the removed ones as gone.
      const run = removed.length ? await runPrune(opened, { ...args, output: args.output === 'json' ? 'none' : 'table' }, { ignoreSnapshots: new Set(removed) }) : undefined;
      if (args.output === 'json') writeResult(toJson({ groups: groupsJson, prune: run ? pruneJson(run, opened.location) : null }));
    } catch (error) {
      throw toRepositoryError(error, opened.location);
    } finally {
      await opened.close();
    }
  },
};
