import chalk from 'chalk';
import type { Argv, CommandModule } from 'yargs';
import { COMPRESSIONS, defaultCompression, zstdSupported, type Compression } from '../../backup/artifacts.ts';
import { discoverClaims } from '../../backup/discovery.ts';
import { STORE_LABEL } from '../../install/manifests.ts';
import type { BackupResult, BackupSnapshot, BackupTarget } from '../../backup/manager.ts';
import { UsageError } from '../../errors.ts';
import { connectFromFlags } from '../context.ts';
import { parseNonNegativeInteger, parsePositiveInteger, positiveIntegerFromEnv } from '../flags.ts';
import { DEFAULT_COPY_RETRIES } from '../../backup/defaults.ts';
import { parseCopyFault } from '../../backup/faults.ts';
import { outcomeExitCode } from '../outcome.ts';
import { helperOptionsFromFlags, withHelperOptions, type HelperFlags } from '../helper-options.ts';
import { formatBytes, formatDuration } from '../format.ts';
import type { GlobalOptions } from '../global-options.ts';
import { interruptSignal } from '../interrupt.ts';
import { doneText, PROGRESS_MODES, progressEnabled, ProgressBars, type ProgressMode } from '../progress.ts';
import { asList, OUTPUT_FORMATS, renderTable, toJson, toYaml, writeError, writeInfo, writeResult, writeWarning, type OutputFormat } from '../output.ts';
import { openCatalog, withStoreOptions, writableOutputDir, type StoreOptions } from '../store-options.ts';
import { chooseRepository, moverOptions, openRepository, withRepositoryOptions, type OpenedRepository, type RepositoryFlags } from '../repository-options.ts';
import { imageReference } from '../../install/image.ts';
import { pluginVersion } from '../../version.ts';
import { parseGoDuration } from '../../backup/hook-spec.ts';
import { SNAPSHOT_MODES, type SnapshotMode } from '../../backup/snapshot-choice.ts';
import { chooseTransfer, MOVER_MODES, type MoverMode } from '../../backup/transfer.ts';
import { listing } from './index.ts';

const FORMATS = ['auto', 'repo', 'tar'] as const;
type BackupFormat = (typeof FORMATS)[number];

interface BackupArgs extends GlobalOptions, StoreOptions, HelperFlags, RepositoryFlags {
  format: BackupFormat;
  initRepository: boolean;
  mover: MoverMode;
  preHook: string | undefined;
  postHook: string | undefined;
  hookContainer: string | undefined;
  hookTimeout: string | undefined;
  hookOnError: 'fail' | 'continue' | undefined;
  snapshot: SnapshotMode;
  snapshotClass: string | undefined;
  keepSnapshot: boolean;
  snapshotTimeout: string;
  moverImage: string;
  pvc: string[];
  all: boolean;
  allNamespaces: boolean;
  selector: string | undefined;
  output: OutputFormat;
  parallel: number;
  maxPerNode: number | undefined;
  compression: Compression;
  retries: number;
  progress: ProgressMode;
  allowPartial: boolean;
}

export function renderResults(results: BackupResult[], format: OutputFormat): string {
  switch (format) {
    case 'json':
      return toJson(asList(results));
    case 'yaml':
      return toYaml(asList(results));
    case 'name':
      return results.filter((r) => r.status === 'succeeded').map((r) => `${r.snapshot?.id ?? r.artifact!.path}\n`).join('');
    case 'table':
    case 'wide': {
      const wide = format === 'wide';
      const headers = ['namespace', 'pvc', 'status', 'size', 'entries', 'duration', 'id', ...(wide ? ['node', 'run as', 'sha256'] : []), 'artifact / message'];
      const rows = results.map((r) => [
        r.namespace,
        r.pvc,
        r.status === 'succeeded' ? chalk.green(r.status) : chalk.red(r.status),
        formatBytes(r.artifact?.bytes ?? r.snapshot?.bytesAdded),
        r.artifact ? (r.volumeMode === 'Block' ? 'image' : String(r.artifact.entries)) : r.snapshot ? String(r.snapshot.files) : '-',
        formatDuration(r.durationMs),
        r.id,
        ...(wide ? [r.node ?? '-', r.runAs ?? '-', r.artifact?.sha256 ?? '-'] : []),
        r.snapshot ? `snapshot ${r.snapshot.id.slice(0, 8)} in ${r.snapshot.repository}${r.snapshot.mover ? ` by data mover ${r.snapshot.mover}` : ''}${unchangedNote(r.snapshot)}${copyWarnings(r)}` : r.artifact ? `${r.artifact.path}${copyWarnings(r)}` : r.message,
      ]);
      return renderTable(headers, rows);
    }
  }
}

/** ", 1191 of 1202 files unchanged since 3f2a9c1d (not read)": what an incremental backup did not move. */
function unchangedNote(snapshot: BackupSnapshot): string {
  if (!snapshot.parent) return '';
  return `, ${snapshot.filesUnmodified} of ${snapshot.files} files unchanged since ${snapshot.parent.slice(0, 8)} (not read)`;
}

/** " (partial: 2 unreadable; 3 vanished)" after an artifact's path, in yellow; empty when the copy was clean. */
function copyWarnings(result: BackupResult): string {
  const parts = [
    ...(result.unreadable ? [`partial: ${result.unreadable.count} unreadable`] : []),
    ...(result.vanished ? [`${result.vanished.count} vanished`] : []),
    ...(result.changed ? [`${result.changed.count} changed`] : []),
  ];
  return parts.length ? chalk.yellow(` (${parts.join('; ')})`) : '';
}

function validate(args: BackupArgs): void {
  if (args.all && args.pvc.length > 0) throw new UsageError('name claims or use --all, not both');
  if (!args.all && args.pvc.length === 0) throw new UsageError('name at least one claim, or use --all', 'e.g. `kubectl nkvm backup data -n shop` or `kubectl nkvm backup --all -A`');
  if (!args.all && args.allNamespaces) throw new UsageError('-A/--all-namespaces needs --all', 'named claims live in one namespace: use -n NAMESPACE');
  if (!args.all && args.selector) throw new UsageError('-l/--selector needs --all');
  if (args.compression === 'zstd' && !zstdSupported()) throw new UsageError(`zstd needs Node 22.15 or newer (this is ${process.version})`, 'use --compression gzip');
  for (const name of args.pvc) {
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || name.length > 253) throw new UsageError(`"${name}" is not a valid claim name`);
  }
}

export const backupCommand: CommandModule<GlobalOptions, BackupArgs> = {
  ...listing('backup'),
  builder: (argv) =>
    withRepositoryOptions(withHelperOptions(withStoreOptions(argv)))
      .positional('pvc', { type: 'string', array: true, default: [], description: 'Claims to back up, in the namespace of -n' })
      .option('all', { type: 'boolean', default: false, description: 'Back up every claim in the namespace (or with -A, the cluster)' })
      .option('all-namespaces', { alias: 'A', type: 'boolean', default: false, description: 'With --all: every namespace' })
      .option('selector', { alias: 'l', type: 'string', description: 'With --all: only claims with these labels' })
      .option('output', { alias: 'o', choices: OUTPUT_FORMATS, default: 'table' as OutputFormat, description: 'Output format of the results (name: artifact paths)' })
      .option('parallel', { type: 'number', default: 1, description: 'Claims backed up at the same time' })
      .option('max-per-node', { type: 'number', description: 'With --parallel: at most this many copies at once on one node' })
      .option('format', { choices: FORMATS, default: 'auto' as BackupFormat, description: 'repo: snapshots in the repository; tar: compressed tar artifacts; auto: repo when a repository is configured (repo init, --repo, $RESTIC_REPOSITORY), else tar' })
      .option('mover', { choices: MOVER_MODES, default: 'auto' as MoverMode, description: 'Into an S3 repository: pod runs the copy in the cluster (a pod of the plugin\'s image reads the claim on its node and writes straight into the repository; no data crosses the API server); exec streams tar through the API server to this machine; auto: pod for an S3 repository not on this machine\'s loopback, falling back to exec where the image cannot be pulled or the pod cannot reach the repository' })
      .option('mover-image', { type: 'string', default: imageReference(pluginVersion), description: 'The image of the data mover pods (npm run image builds it)' })
      .option('pre-hook', { type: 'string', description: 'Run this (sh -c) in every pod that mounts the claim right before the copy, e.g. to flush and freeze; it fails the backup if it fails (see --hook-on-error). Without it, pods\' pre.hook.backup.velero.io annotations apply' })
      .option('post-hook', { type: 'string', description: 'Run this (sh -c) in those pods after the copy, also when the backup failed or was interrupted. Without it, post.hook.backup.velero.io annotations apply' })
      .option('hook-container', { type: 'string', description: 'The container hooks run in (default: the annotation\'s, else the pod\'s first)' })
      .option('hook-timeout', { type: 'string', description: 'How long a hook may run (a duration: 30s, the default, or 2m; else a Velero annotation\'s)' })
      .option('hook-on-error', { choices: ['fail', 'continue'] as const, description: 'A failing pre-hook fails the backup (fail, the default) or the copy goes on (continue)' })
      .option('snapshot', { choices: SNAPSHOT_MODES, default: 'auto' as SnapshotMode, description: 'Read a CSI VolumeSnapshot of the claim (through a temporary claim made from it) instead of the live claim: auto where the claim\'s CSI driver has a VolumeSnapshotClass, always (fail where none fits), never. Hooks then run right before and after the snapshot is cut' })
      .option('snapshot-class', { type: 'string', description: 'The VolumeSnapshotClass to use (default: the one marked default for the claim\'s driver, or its only one)' })
      .option('keep-snapshot', { type: 'boolean', default: false, description: 'Leave the VolumeSnapshot in place after the backup (its name is in the result); the temporary claim is always removed' })
      .option('snapshot-timeout', { type: 'string', default: '5m', description: 'How long the CSI driver may take to cut a snapshot and make it ready to use' })
      .option('init-repository', { type: 'boolean', default: false, description: 'Create the repository first if there is none, with the password given (a scheduled backup\'s first run, as k8up does)' })
      .option('compression', { choices: COMPRESSIONS, default: defaultCompression(), description: 'Artifact compression: zstd is smaller and faster; gzip is read by every tar (default zstd, or gzip on Node < 22.15)' })
      .option('progress', { choices: PROGRESS_MODES, default: 'auto' as ProgressMode, description: 'Progress bars on stderr: auto (on a terminal, not with -o json|yaml), always, never' })
      .option('retries', { type: 'number', default: DEFAULT_COPY_RETRIES, description: 'How many times a copy cut short is tried again, in the same helper pod' })
      .option('allow-partial', { type: 'boolean', default: false, description: 'Keep a backup that lacks files the helper could not read (it fails otherwise); the result lists them' })
      .example('kubectl nkvm backup data -n shop', 'Back up claim "data" in namespace shop')
      .example('kubectl nkvm backup --all -A --parallel 3', 'Every claim in the cluster, three at a time')
      .example('kubectl nkvm backup db-0 db-1 -o json | jq -r ".items[].artifact.path"', 'Machine-readable results')
      .example('kubectl nkvm backup --all -l tier=db --compression gzip --toleration dedicated=db:NoSchedule', 'Selected claims, gzip, helpers tolerating a taint')
      .example('kubectl nkvm backup db -n shop --snapshot always --pre-hook "fsfreeze -f /data" --post-hook "fsfreeze -u /data"', 'From a CSI snapshot, the database frozen only while it is cut')
      .example('kubectl nkvm backup data -n hardened --run-as-user 1000 --fs-group 2000', 'As a given user (the default in a Pod Security "restricted" namespace is the workload\'s)') as unknown as Argv<BackupArgs>,
  handler: async (args) => {
    validate(args);
    const parallel = parsePositiveInteger(args.parallel, '--parallel');
    const maxPerNode = args.maxPerNode === undefined ? undefined : parsePositiveInteger(args.maxPerNode, '--max-per-node');
    const hookTimeoutMs = args.hookTimeout === undefined ? undefined : parseGoDuration(args.hookTimeout);
    if (args.hookTimeout !== undefined && !hookTimeoutMs) throw new UsageError(`--hook-timeout ${args.hookTimeout} is not a duration`, 'e.g. --hook-timeout 30s or 2m');
    const snapshotTimeoutMs = parseGoDuration(args.snapshotTimeout);
    if (!snapshotTimeoutMs) throw new UsageError(`--snapshot-timeout ${args.snapshotTimeout} is not a duration`, 'e.g. --snapshot-timeout 5m');
    if (args.snapshot === 'never' && (args.snapshotClass || args.keepSnapshot)) {
      throw new UsageError(`${args.snapshotClass ? '--snapshot-class' : '--keep-snapshot'} needs a snapshot: it cannot go with --snapshot never`);
    }
    const retries = parseNonNegativeInteger(args.retries, '--retries');
    const fault = parseCopyFault(process.env.NKVM_TEST_FAULT);
    const ackTimeoutSeconds = positiveIntegerFromEnv('NKVM_ACK_TIMEOUT_SECONDS');
    const { helper, podReadyTimeoutMs } = helperOptionsFromFlags(args);
    // Local paths first: a run that cannot write its artifacts or catalog never starts a helper.
    const artifactDir = writableOutputDir(args);
    const catalog = await openCatalog(args);
    // The repository next: a wrong password or a missing repository stops the run before any helper starts.
    const intoRepository = args.format === 'repo' || (args.format === 'auto' && chooseRepository(args) !== undefined);
    if (args.mover === 'pod' && !intoRepository) throw new UsageError('--mover pod writes into a repository: name one (--repo, RESTIC_REPOSITORY, or repo init)');
    // The lock's 200 ms wait and second look go on while the helpers start; copies wait for them.
    const repository: OpenedRepository | undefined = intoRepository
      ? await openRepository(args, { lock: 'shared', confirmLockLater: true, lockWaitMs: positiveIntegerFromEnv('NKVM_TEST_LOCK_WAIT_MS'), initIfMissing: args.initRepository, loadIndex: 'meanwhile' })
      : undefined;
    if (repository && args.mover === 'pod' && !repository.location.startsWith('s3:')) {
      await repository.close();
      throw new UsageError(`--mover pod writes from the cluster, which cannot reach ${repository.location} on this machine`, 'use an S3 repository, or --mover exec');
    }
    const transfer = repository ? chooseTransfer(args.mover, repository.location, 'backup') : undefined;
    try {
      const client = await connectFromFlags(args);
      let targets: BackupTarget[];
      if (args.all) {
        // An in-cluster install's own store is never among "all": it would be backed up into itself.
        const labelSelector = [args.selector, `!${STORE_LABEL}`].filter(Boolean).join(',');
        const claims = await discoverClaims(client, { namespace: client.namespace, allNamespaces: args.allNamespaces, labelSelector });
        targets = claims.map((claim) => ({ namespace: claim.namespace, pvc: claim.name, claim }));
        if (targets.length === 0) {
          writeInfo(args.allNamespaces ? 'No PersistentVolumeClaims found.' : `No PersistentVolumeClaims found in namespace ${client.namespace}.`);
          return;
        }
      } else {
        targets = args.pvc.map((pvc) => ({ namespace: client.namespace, pvc }));
      }
      const machineOutput = args.output === 'json' || args.output === 'yaml';
      const bars = progressEnabled(args.progress, Boolean(process.stderr.isTTY), machineOutput) ? new ProgressBars(process.stderr) : undefined;
      const key = (claim: { namespace: string; pvc: string }) => `${claim.namespace}/${claim.pvc}`;
      const { BackupManager } = await import('../../backup/manager.ts');
      const manager = new BackupManager(client, catalog, {
        outputDir: artifactDir,
        repository: repository && { repository: repository.repository, location: repository.location, lockConfirmed: repository.lock!.confirmed },
        mover: transfer?.mover ? moverOptions(repository!, args, transfer.reason) : undefined,
        execReason: transfer?.reason,
        maxPerNode,
        snapshot: { mode: args.snapshot, snapshotClass: args.snapshotClass, keep: args.keepSnapshot, timeoutMs: snapshotTimeoutMs },
        hooks: {
          preHook: args.preHook,
          postHook: args.postHook,
          hookContainer: args.hookContainer,
          hookTimeoutMs,
          hookOnError: args.hookOnError,
        },
        compression: args.compression,
        podReadyTimeoutMs,
        retries,
        allowPartial: args.allowPartial,
        ackTimeoutSeconds,
        fault,
        signal: interruptSignal,
        helper,
        onProgress: bars && ((target, event) => bars.update(key(target), { ...event, maxAttempts: retries + 1 })),
        onResult: bars && ((result) => bars.finish(key(result), result.status === 'succeeded' ? { ok: true, text: doneText(result.artifact?.tarBytes ?? result.snapshot!.bytesSent, result.durationMs) } : { ok: false, text: result.message })),
      });
      let results: BackupResult[];
      try {
        results = await manager.backupMany(targets, parallel);
      } finally {
        bars?.close();
      }
      writeResult(renderResults(results, args.output));
      for (const partial of results.filter((result) => result.status === 'succeeded' && result.unreadable)) {
        writeWarning(`${partial.namespace}/${partial.pvc} is a partial backup: ${partial.message}`);
      }
      // The claim was busy: the backup is good, but the user should know what it does not hold as it is now.
      for (const busy of results.filter((result) => result.status === 'succeeded' && !result.unreadable && (result.vanished || result.changed))) {
        writeWarning(`${busy.namespace}/${busy.pvc} changed while it was backed up: ${busy.message}`);
      }
      for (const failed of results.filter((result) => result.status === 'failed')) {
        writeError(`[${failed.errorCode ?? 'BackupFailed'}] ${failed.namespace}/${failed.pvc}: ${failed.message}`);
      }
      process.exitCode = outcomeExitCode(results);
    } finally {
      await repository?.close();
    }
  },
};
