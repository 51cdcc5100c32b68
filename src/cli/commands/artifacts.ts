import type { BackupSource } from '../../backup/snapshot-choice.ts';
import type { Argv, CommandModule } from 'yargs';
import { applyPrune, planPrune, selectForPruning, type PruneStep } from '../../backup/prune.ts';
import { UsageError } from '../../errors.ts';
import type { BackupRecord, BackupStatus } from '../../store/catalog.ts';
import { parsePositiveInteger } from '../flags.ts';
import { formatBytes, formatDuration } from '../format.ts';
import { parseAge, type GlobalOptions } from '../global-options.ts';
import { asList, OUTPUT_FORMATS, renderTable, toJson, toYaml, writeInfo, writeResult, type OutputFormat } from '../output.ts';
import { openCatalog, outputDir, withStoreOptions, writableOutputDir, type StoreOptions } from '../store-options.ts';
import type { Catalog } from '../../store/catalog.ts';
import type { ClusterStore } from '../../install/cluster-store.ts';
import { DEFAULT_INSTALL_NAMESPACE } from '../../install/manifests.ts';
import { connectFromFlags } from '../context.ts';
import { listing } from './index.ts';

/** --from-cluster: read the catalog an install keeps on its store claim, instead of the local one. */
interface SourceArgs extends GlobalOptions, StoreOptions {
  fromCluster: boolean;
  installName: string;
}

function withSourceOptions<T>(argv: Argv<T>): Argv<T & SourceArgs> {
  return withStoreOptions(argv)
    .option('from-cluster', { type: 'boolean', default: false, description: 'Read the catalog of the in-cluster install (kubectl nkvm install) in the namespace of -n (default nkvm-system)' })
    .option('install-name', { type: 'string', default: 'nkvm', description: 'With --from-cluster: the name given to install' }) as unknown as Argv<T & SourceArgs>;
}

/** Runs `use` with the local catalog, or with the install's (through a helper pod that mounts its store). */
async function withCatalog<R>(args: SourceArgs, use: (catalog: Catalog, store?: ClusterStore) => Promise<R>): Promise<R> {
  if (!args.fromCluster) return use(await openCatalog(args));
  const client = await connectFromFlags(args);
  const { ClusterStore } = await import('../../install/cluster-store.ts');
  const install = { namespace: args.namespace ?? DEFAULT_INSTALL_NAMESPACE, name: args.installName };
  return ClusterStore.with(client, install, { podReadyTimeoutMs: 120_000 }, async (store) => use(await store.catalog(), store));
}

interface ListArgs extends SourceArgs {
  pvc: string | undefined;
  status: BackupStatus | undefined;
  limit: number | undefined;
  output: OutputFormat;
}

interface ShowArgs extends SourceArgs {
  id: string;
  output: 'text' | 'json' | 'yaml';
}

interface PruneArgs extends GlobalOptions, StoreOptions {
  keepLast: number | undefined;
  olderThan: string | undefined;
  pvc: string | undefined;
  dryRun: boolean;
  forget: boolean;
  output: OutputFormat;
}

function durationOf(record: BackupRecord): number | null {
  return record.finishedAt ? Date.parse(record.finishedAt) - Date.parse(record.startedAt) : null;
}

export function renderRecords(records: BackupRecord[], format: OutputFormat): string {
  switch (format) {
    case 'json':
      return toJson(asList(records));
    case 'yaml':
      return toYaml(asList(records));
    case 'name':
      return records.map((record) => `${record.id}\n`).join('');
    case 'table':
    case 'wide': {
      const wide = format === 'wide';
      const headers = ['id', 'namespace', 'pvc', 'status', 'started', 'duration', 'size', 'entries', ...(wide ? ['context', 'node', 'sha256'] : []), 'artifact / message'];
      const rows = records.map((record) => [
        record.id,
        record.namespace,
        record.pvc,
        record.status,
        record.startedAt.replace(/\.\d{3}Z$/, 'Z'),
        formatDuration(durationOf(record)),
        formatBytes(record.bytes),
        record.fileCount === null ? '-' : String(record.fileCount),
        ...(wide ? [record.context ?? '-', record.node ?? '-', record.sha256 ?? '-'] : []),
        record.artifactPath ?? record.message ?? '',
      ]);
      return renderTable(headers, rows);
    }
  }
}

export function renderRecordText(record: BackupRecord): string {
  const fields: [string, string][] = [
    ['ID', record.id],
    ['Status', record.status],
    ['Namespace', record.namespace],
    ['PVC', record.pvc],
    ['Volume', record.pv ?? '-'],
    ['Storage class', record.storageClass ?? '-'],
    ['Capacity', record.capacity ?? '-'],
    ['Node', record.node ?? '-'],
    ['Helper pod', record.helperPod ?? '-'],
    ['Context', record.context ?? '-'],
    ['Cluster', record.cluster ?? '-'],
    ['Credentials', record.credentialSource ?? '-'],
    ['Started', record.startedAt],
    ['Finished', record.finishedAt ?? '-'],
    ['Duration', formatDuration(durationOf(record))],
    ['Copy attempts', record.attempts ? String(record.attempts) : '-'],
    ...(record.prunedAt ? ([['Pruned', record.prunedAt]] as [string, string][]) : []),
    ...(record.snapshotId
      ? ([
          ['Repository', record.repository ?? '-'],
          ['Snapshot', record.snapshotId],
          ['Added', record.bytesAdded === null ? '-' : `${formatBytes(record.bytesAdded)} (${record.bytesAdded} bytes) to the repository`],
          ...(record.filesUnmodified !== null
            ? ([
                ['Files', `${record.filesNew ?? 0} new, ${record.filesChanged ?? 0} changed (read), ${record.filesUnmodified} unmodified (not read)`],
                ['Moved', `${formatBytes(record.bytesRead)} read from the claim, ${formatBytes(record.bytesSent)} through the API server`],
              ] as [string, string][])
            : []),
        ] as [string, string][])
      : []),
    ['Artifact', record.artifactPath ?? '-'],
    ['Compression', record.compression ?? '-'],
    ['Size', record.bytes === null ? '-' : `${formatBytes(record.bytes)} (${record.bytes} bytes; ${formatBytes(record.tarBytes)} uncompressed)`],
    ['Entries', record.fileCount === null ? '-' : String(record.fileCount)],
    ...(record.unreadable ? ([['Unreadable', `${record.unreadable} (left out; see the message)`]] as [string, string][]) : []),
    ...(record.vanished ? ([['Vanished', `${record.vanished} (gone before tar read them; see the message)`]] as [string, string][]) : []),
    ...(record.changed ? ([['Changed', `${record.changed} (changed while the backup ran, kept as read; see the message)`]] as [string, string][]) : []),
    ['SHA-256', record.sha256 ?? '-'],
    ...sourceLines(record),
    ...hookLines(record),
    ...(record.failedStage ? ([['Failed stage', record.failedStage]] as [string, string][]) : []),
    ['Message', record.message ?? '-'],
    ['Plugin version', record.pluginVersion],
  ];
  const width = Math.max(...fields.map(([label]) => label.length)) + 1;
  return fields.map(([label, value]) => `${`${label}:`.padEnd(width)} ${value}\n`).join('');
}

const listCommand: CommandModule<GlobalOptions, ListArgs> = {
  command: 'list',
  describe: 'List backups recorded in the catalog, newest first',
  builder: (argv) =>
    withSourceOptions(argv)
      .option('pvc', { type: 'string', description: 'Only backups of this claim' })
      .option('status', { choices: ['running', 'succeeded', 'failed', 'interrupted', 'pruned'] as const, description: 'Only backups with this outcome' })
      .option('limit', { type: 'number', description: 'At most this many rows' })
      .option('output', { alias: 'o', choices: OUTPUT_FORMATS, default: 'table' as OutputFormat, description: 'Output format (name: IDs)' })
      .example('kubectl nkvm artifacts list', 'Every backup in the catalog')
      .example('kubectl nkvm artifacts list -n shop --pvc data --status succeeded -o json', 'Good backups of one claim, for scripts')
      .example('kubectl nkvm artifacts list --from-cluster', 'The backups the in-cluster schedule made (install in nkvm-system)') as unknown as Argv<ListArgs>,
  handler: async (args) =>
    withCatalog(args, async (catalog) => {
    const records = await catalog.listBackups({
      // With --from-cluster, -n names the install's namespace, not the backups'.
      ...(args.namespace && !args.fromCluster ? { namespace: args.namespace } : {}),
      ...(args.pvc ? { pvc: args.pvc } : {}),
      ...(args.status ? { status: args.status } : {}),
      ...(args.limit ? { limit: args.limit } : {}),
    });
    if (records.length === 0 && (args.output === 'table' || args.output === 'wide')) {
      writeInfo(args.fromCluster ? 'No backups recorded in the in-cluster catalog.' : `No backups recorded in ${catalog.file}.`);
      return;
    }
    writeResult(renderRecords(records, args.output));
    }),
};

const showCommand: CommandModule<GlobalOptions, ShowArgs> = {
  command: 'show <id>',
  describe: 'Show one backup: where its artifact is, its checksum, size, timings and outcome',
  builder: (argv) =>
    withSourceOptions(argv)
      .positional('id', { type: 'string', demandOption: true, description: 'Backup ID, or a unique prefix of at least 4 characters' })
      .option('output', { alias: 'o', choices: ['text', 'json', 'yaml'] as const, default: 'text' as const, description: 'Output format' })
      .example('kubectl nkvm artifacts show 3f9c2a', 'Details of one backup')
      .example('kubectl nkvm artifacts show 3f9c2a -o json | jq -r .sha256', 'Its checksum') as unknown as Argv<ShowArgs>,
  handler: async (args) =>
    withCatalog(args, async (catalog) => {
      const record = await catalog.findBackup(String(args.id));
      if (args.output === 'json') writeResult(toJson(record));
      else if (args.output === 'yaml') writeResult(toYaml(record));
      else writeResult(renderRecordText(record));
    }),
};

interface FetchArgs extends SourceArgs {
  id: string;
}

const fetchCommand: CommandModule<GlobalOptions, FetchArgs> = {
  command: 'fetch <id>',
  describe: 'Copy an artifact of the in-cluster schedule to the local output directory, checking its sha256, and record it in the local catalog',
  builder: (argv) =>
    withSourceOptions(argv)
      .positional('id', { type: 'string', demandOption: true, description: 'Backup ID in the in-cluster catalog, or a unique prefix' })
      .example('kubectl nkvm artifacts fetch 3f9c2a --from-cluster', 'Bring one backup out; then restore or verify it like a local one') as unknown as Argv<FetchArgs>,
  handler: async (args) => {
    if (!args.fromCluster) throw new UsageError('fetch copies from the in-cluster store: pass --from-cluster', 'local artifacts are already in the output directory');
    const localDir = writableOutputDir(args);
    const local = await openCatalog(args);
    const { fetchArtifact } = await import('../../install/fetch.ts');
    const fetched = await withCatalog(args, (catalog, store) => fetchArtifact(catalog, store!, String(args.id), localDir, local));
    writeResult(`${fetched.artifactPath}\n`);
    writeInfo(`Fetched backup ${fetched.id} of ${fetched.namespace}/${fetched.pvc} (${formatBytes(fetched.bytes)}, sha256 checked) into the local catalog ${local.file}.`);
  },
};

/** A backup the prune selected, and what became of it. */
export interface PruneOutcome {
  id: string;
  namespace: string;
  pvc: string;
  startedAt: string;
  bytes: number | null;
  artifactPath: string | null;
  action: 'pruned' | 'would prune' | 'skipped';
  /** Why it was skipped, or that its file was already gone. */
  reason: string | null;
}

function pruneOutcomes(steps: readonly PruneStep[], dryRun: boolean): PruneOutcome[] {
  return steps.map(({ record, skipReason, file }) => ({
    id: record.id,
    namespace: record.namespace,
    pvc: record.pvc,
    startedAt: record.startedAt,
    bytes: record.bytes,
    artifactPath: record.artifactPath,
    action: skipReason !== null ? 'skipped' : dryRun ? 'would prune' : 'pruned',
    reason: skipReason ?? (file === null ? 'the artifact file was already missing' : null),
  }));
}

export function renderPruneOutcomes(outcomes: PruneOutcome[], format: OutputFormat): string {
  switch (format) {
    case 'json':
      return toJson(asList(outcomes));
    case 'yaml':
      return toYaml(asList(outcomes));
    case 'name':
      return outcomes.filter((outcome) => outcome.action !== 'skipped').map((outcome) => `${outcome.id}\n`).join('');
    case 'table':
    case 'wide': {
      const headers = ['id', 'namespace', 'pvc', 'started', 'size', 'action', 'artifact'];
      const rows = outcomes.map((outcome) => [
        outcome.id,
        outcome.namespace,
        outcome.pvc,
        outcome.startedAt.replace(/\.\d{3}Z$/, 'Z'),
        formatBytes(outcome.bytes),
        outcome.reason ? `${outcome.action}: ${outcome.reason}` : outcome.action,
        outcome.artifactPath ?? '-',
      ]);
      return renderTable(headers, rows);
    }
  }
}

/** --older-than as an instant. */
function startedBeforeFromFlag(olderThan: string | undefined, now: Date): Date | undefined {
  return olderThan === undefined ? undefined : new Date(now.getTime() - parseAge(olderThan, '--older-than'));
}

const pruneCommand: CommandModule<GlobalOptions, PruneArgs> = {
  command: 'prune',
  describe: 'Delete the artifacts of old backups; their rows stay in the catalog, marked pruned (--forget deletes old rows too)',
  builder: (argv) =>
    withStoreOptions(argv)
      .option('keep-last', { type: 'number', description: 'Keep the N newest succeeded backups of each claim' })
      .option('older-than', { type: 'string', description: 'Only backups started longer ago than this (e.g. 30d, 12h)' })
      .option('pvc', { type: 'string', description: 'Only backups of this claim' })
      .option('dry-run', { type: 'boolean', default: false, description: 'Show what would be pruned; change nothing' })
      .option('forget', { type: 'boolean', default: false, description: 'Also delete from the catalog the rows of backups older than --older-than that have no artifact (pruned, failed, interrupted)' })
      .option('output', { alias: 'o', choices: OUTPUT_FORMATS, default: 'table' as OutputFormat, description: 'Output format (name: IDs pruned)' })
      .example('kubectl nkvm artifacts prune --keep-last 7 --dry-run', 'What keeping 7 per claim would delete')
      .example('kubectl nkvm artifacts prune --keep-last 3 --older-than 30d -n shop', 'In shop: older than 30 days, keeping 3 per claim')
      .example('kubectl nkvm artifacts prune --older-than 12h --pvc scratch -o name', 'IDs pruned, for scripts')
      .example('kubectl nkvm artifacts prune --older-than 90d --forget', 'Prune, and forget rows older than 90 days: the catalog stays small') as unknown as Argv<PruneArgs>,
  handler: async (args) => {
    // Checked before anything is read: a prune without a limit would delete every artifact.
    if (args.keepLast === undefined && args.olderThan === undefined) {
      throw new UsageError('say what to keep: --keep-last N, --older-than DURATION, or both', 'e.g. `kubectl nkvm artifacts prune --keep-last 7 --dry-run`');
    }
    if (args.forget && args.olderThan === undefined) throw new UsageError('--forget needs --older-than: rows are forgotten by age', 'e.g. `kubectl nkvm artifacts prune --older-than 90d --forget`');
    const now = new Date();
    const policy = {
      keepLast: args.keepLast === undefined ? undefined : parsePositiveInteger(args.keepLast, '--keep-last'),
      startedBefore: startedBeforeFromFlag(args.olderThan, now),
      namespace: args.namespace,
      pvc: args.pvc,
    };
    const catalog = await openCatalog(args);
    const steps = planPrune(selectForPruning(await catalog.listBackups(), policy), outputDir(args));
    if (!args.dryRun) await applyPrune(catalog, steps, now.toISOString());
    const outcomes = pruneOutcomes(steps, args.dryRun);
    if (outcomes.length === 0 && (args.output === 'table' || args.output === 'wide')) {
      writeInfo('Nothing to prune.');
    } else {
      writeResult(renderPruneOutcomes(outcomes, args.output));
      const pruned = steps.filter((step) => step.skipReason === null);
      const freed = formatBytes(pruned.reduce((total, step) => total + (step.file === null ? 0 : (step.record.bytes ?? 0)), 0));
      writeInfo(args.dryRun ? `Dry run: ${pruned.length} backups would be pruned, freeing ${freed}; nothing was changed.` : `Pruned ${pruned.length} backups, freeing ${freed}.`);
    }
    if (args.forget) {
      // Read again: the rows just pruned are now among those without an artifact.
      const forgettable = (await catalog.listBackups())
        .filter((record) => record.status === 'pruned' || record.status === 'failed' || record.status === 'interrupted')
        .filter((record) => (policy.namespace === undefined || record.namespace === policy.namespace) && (policy.pvc === undefined || record.pvc === policy.pvc))
        .filter((record) => Date.parse(record.startedAt) < policy.startedBefore!.getTime());
      if (!args.dryRun) await catalog.forgetBackups(forgettable.map((record) => record.id));
      writeInfo(args.dryRun ? `Dry run: ${forgettable.length} catalog rows would be forgotten.` : `Forgot ${forgettable.length} catalog rows (and their restores).`);
    }
  },
};

export const artifactsCommand: CommandModule<GlobalOptions, GlobalOptions> = {
  ...listing('artifacts'),
  builder: (argv) => argv.command([listCommand, showCommand, fetchCommand, pruneCommand] as never[]).demandCommand(1, 'Name an artifacts command: list, show, fetch or prune.'),
  handler: () => {},
};

/** What the backup read: "snapshot nkvm-snap-data-x (class csi-snapclass, removed): a snapshot of class ..." or "live: ...". */
function sourceLines(record: BackupRecord): [string, string][] {
  if (!record.source) return [];
  const source = JSON.parse(record.source) as BackupSource;
  if (source.kind === 'live') return [['Source', `the live claim (${source.reason})`]];
  const kept = source.kept ? 'kept' : 'removed';
  return [['Source', `VolumeSnapshot ${source.volumeSnapshot ?? '-'} (class ${source.snapshotClass}, ${kept}), read through claim ${source.claim ?? '-'}: ${source.reason}`]];
}

/** A line per hook the backup ran: phase, pod and container, command, outcome and duration. */
function hookLines(record: BackupRecord): [string, string][] {
  if (!record.hooks) return [];
  const hooks = JSON.parse(record.hooks) as { phase: string; pod: string; container: string; command: string[]; ok: boolean; exitCode: number | null; durationMs: number; error?: string }[];
  return hooks.map((hook) => [
    hook.phase === 'pre' ? 'Pre-hook' : 'Post-hook',
    `in ${hook.pod}/${hook.container}: ${JSON.stringify(hook.command)} ${hook.ok ? 'ok' : `FAILED (${hook.error ?? `exit code ${hook.exitCode}`})`} in ${(hook.durationMs / 1000).toFixed(1)}s`,
  ]);
}
