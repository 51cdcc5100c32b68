import chalk from 'chalk';
import type { Argv, CommandModule } from 'yargs';
import type { RestoreResult, SnapshotSource } from '../../backup/restore.ts';
import type { RestoreMode } from '../../store/catalog.ts';
import { NotFoundError, UsageError } from '../../errors.ts';
import { connectFromFlags } from '../context.ts';
import { formatDuration } from '../format.ts';
import type { GlobalOptions } from '../global-options.ts';
import { helperOptionsFromFlags, withHelperOptions, type HelperFlags } from '../helper-options.ts';
import { interruptSignal } from '../interrupt.ts';
import { outcomeExitCode } from '../outcome.ts';
import { renderTable, toJson, toYaml, writeError, writeResult } from '../output.ts';
import { openCatalog, withStoreOptions, type StoreOptions } from '../store-options.ts';
import { chooseRepository, moverOptions, openRepository, withRepositoryOptions, type RepositoryFlags } from '../repository-options.ts';
import { imageReference } from '../../install/image.ts';
import { pluginVersion } from '../../version.ts';
import { chooseTransfer, MOVER_MODES, type MoverMode } from '../../backup/transfer.ts';
import { listing } from './index.ts';

interface RestoreArgs extends GlobalOptions, StoreOptions, HelperFlags, RepositoryFlags {
  id: string;
  to: string;
  create: boolean;
  storageClass: string | undefined;
  size: string | undefined;
  mode: RestoreMode;
  dryRun: boolean;
  pinToNode: boolean;
  mover: MoverMode;
  moverImage: string;
  output: 'table' | 'json' | 'yaml';
}

export function renderRestore(result: RestoreResult, format: RestoreArgs['output']): string {
  if (format === 'json') return toJson(result);
  if (format === 'yaml') return toYaml(result);
  return renderTable(
    ['id', 'backup', 'namespace', 'pvc', 'status', 'entries', 'duration', 'message'],
    [[
      result.id,
      result.backupId,
      result.namespace,
      result.pvc,
      result.status === 'succeeded' ? chalk.green(result.dryRun ? 'dry run' : result.status) : chalk.red(result.status),
      result.entries === null ? '-' : String(result.entries),
      formatDuration(result.durationMs),
      result.message,
    ]],
  );
}

export const restoreCommand: CommandModule<GlobalOptions, RestoreArgs> = {
  ...listing('restore'),
  builder: (argv) =>
    withRepositoryOptions(withHelperOptions(withStoreOptions(argv)))
      .positional('id', { type: 'string', demandOption: true, description: 'Backup ID (or a unique prefix of 4+ characters), or a snapshot ID (or prefix) of the repository' })
      .option('to', { type: 'string', demandOption: true, description: 'The claim to restore into, in the namespace of -n' })
      .option('create', { type: 'boolean', default: false, description: 'Create the claim if it does not exist' })
      .option('storage-class', { type: 'string', description: 'With --create: the new claim\'s storage class (default: the cluster default)' })
      .option('size', { type: 'string', description: 'With --create: the new claim\'s size (default: the backed-up claim\'s capacity)' })
      .option('mode', { choices: ['empty-only', 'overwrite'] as const, default: 'empty-only' as RestoreMode, description: 'empty-only refuses a claim that holds files; overwrite replaces its contents' })
      .option('dry-run', { type: 'boolean', default: false, description: 'Check the artifact and the target, change nothing' })
      .option('mover', { choices: MOVER_MODES, default: 'auto' as MoverMode, description: 'A snapshot in an S3 repository: pod writes it into the claim in the cluster, straight from the repository (no data crosses the API server); exec streams it as tar from this machine; auto: pod for an S3 repository not on this machine\'s loopback, falling back to exec where the image cannot be pulled or the pod cannot reach the repository (tar artifacts and local repositories always go over exec)' })
      .option('mover-image', { type: 'string', default: imageReference(pluginVersion), description: 'The image of the data mover pod (npm run image builds it)' })
      .option('pin-to-node', { type: 'boolean', default: false, description: 'Restore into a ReadWriteOnce claim a running pod holds, on that pod\'s node' })
      .option('output', { alias: 'o', choices: ['table', 'json', 'yaml'] as const, default: 'table' as const, description: 'Output format' })
      .example('kubectl nkvm restore 3f9c2a --to data -n shop', 'Into an existing, empty claim')
      .example('kubectl nkvm restore 3f9c2a --to data-copy --create --size 5Gi', 'Into a new claim')
      .example('kubectl nkvm restore 50464567 --to data -n shop', 'A snapshot of the repository (ours, restic\'s or k8up\'s)')
      .example('kubectl nkvm restore 3f9c2a --to data --mode overwrite', 'Replace what the claim holds')
      .example('kubectl nkvm restore 3f9c2a --to data --dry-run -o json', 'Check everything first') as unknown as Argv<RestoreArgs>,
  handler: async (args) => {
    if (!args.create && (args.storageClass || args.size)) throw new UsageError('--storage-class and --size need --create');
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(args.to)) throw new UsageError(`"${args.to}" is not a valid claim name`);
    const { helper, podReadyTimeoutMs } = helperOptionsFromFlags(args);
    const catalog = await openCatalog(args);
    const { RestoreManager, snapshotBackupRecord } = await import('../../backup/restore.ts');
    const id = String(args.id);
    let backup = await catalog.findBackup(id).catch((error: Error) => {
      if ((error as { code?: string }).code === 'NotFoundError' && chooseRepository(args)) return undefined;
      throw error;
    });
    // A backup into a repository, or a snapshot of the repository that no backup of this catalog wrote.
    const opened = backup?.snapshotId ? await openRepository({ ...args, repo: args.repo ?? backup.repository ?? undefined }, { lock: 'shared' }) : backup ? undefined : await openRepository(args, { lock: 'shared' });
    try {
      let snapshot: SnapshotSource | undefined;
      if (opened) {
        const found = await (backup?.snapshotId ? opened.repository.loadSnapshot(backup.snapshotId) : opened.repository.findSnapshot(id)).catch((error: Error) => {
          if (error.name === 'BackendNotFoundError') throw new NotFoundError(`no backup in the catalog and no snapshot in ${opened.location} matches "${id}"`, 'list them with `kubectl nkvm artifacts list` and `kubectl nkvm snapshots`');
          throw new UsageError(error.message);
        });
        snapshot = { repository: opened.repository, snapshot: found, location: opened.location };
        backup ??= snapshotBackupRecord(found, opened.location);
      }
      // A usage error, said before any connection to the cluster.
      if (args.mover === 'pod' && !opened?.location.startsWith('s3:')) {
        throw new UsageError('--mover pod restores a snapshot of an S3 repository, which the cluster can reach', 'use --mover exec for tar artifacts and local repositories');
      }
      const transfer = opened ? chooseTransfer(args.mover, opened.location, 'restore') : undefined;
      const client = await connectFromFlags(args);
      const mover = transfer?.mover ? moverOptions(opened!, args, transfer.reason) : undefined;
      const manager = new RestoreManager(client, catalog, { helper, podReadyTimeoutMs, signal: interruptSignal, mover, execReason: transfer?.reason });
      const result = await manager.restore({
        backup: backup!,
        snapshot,
        namespace: client.namespace,
        pvc: args.to,
        mode: args.mode,
        dryRun: args.dryRun,
        pinToNode: args.pinToNode,
        create: args.create ? { storageClass: args.storageClass, size: args.size } : undefined,
      });
      writeResult(renderRestore(result, args.output));
      if (result.status === 'failed') writeError(`[${result.errorCode ?? 'RestoreError'}] ${result.namespace}/${result.pvc}: ${result.message}`);
      process.exitCode = outcomeExitCode([result]);
    } finally {
      await opened?.close();
    }
  },
};
