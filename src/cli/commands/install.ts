/** `kubectl nkvm install`: scheduled backups inside the cluster (src/install/manifests.ts says what). */
import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../../errors.ts';
import { imageReference } from '../../install/image.ts';
import { installManifests, type InstallOptions } from '../../install/manifests.ts';
import { DEFAULT_HELPER_RESOURCES } from '../../backup/helper-pod.ts';
import { pluginVersion } from '../../version.ts';
import { connectFromFlags } from '../context.ts';
import { parseKeyValues, parsePositiveInteger } from '../flags.ts';
import { parseAge, type GlobalOptions } from '../global-options.ts';
import { toJson, toYaml, writeInfo, writeResult } from '../output.ts';

export const DEFAULT_INSTALL_NAMESPACE = 'nkvm-system';
const DEFAULT_BACKUP_ARGS = ['--all', '-A'];

interface InstallArgs extends GlobalOptions {
  name: string;
  schedule: string;
  keepLast: number | undefined;
  olderThan: string | undefined;
  storeSize: string;
  storageClass: string | undefined;
  storeClaim: string | undefined;
  remoteKubeconfigSecret: string | undefined;
  image: string;
  requests: string[] | undefined;
  limits: string[] | undefined;
  dryRun: 'none' | 'client' | 'server';
  output: 'yaml' | 'json' | undefined;
  _: (string | number)[];
}

/** A cron schedule: five fields, or one of the @-macros CronJobs accept. */
function checkSchedule(schedule: string): string {
  const trimmed = schedule.trim();
  if (/^@(yearly|annually|monthly|weekly|daily|midnight|hourly)$/.test(trimmed) || trimmed.split(/\s+/).length === 5) return trimmed;
  throw new UsageError(`--schedule "${schedule}" is not a cron schedule`, 'five fields, e.g. --schedule "0 2 * * *" (02:00 every day), or @daily');
}

export function installOptionsFromArgs(args: InstallArgs): InstallOptions {
  const backupArgs = args._.slice(1).map(String);
  if (backupArgs.some((arg) => /^--(catalog|output-dir)(=|$)/.test(arg))) {
    throw new UsageError('the scheduled backup keeps its catalog and artifacts on the store claim: leave out --catalog and --output-dir');
  }
  // Checked as the prune in the job will check it: a schedule must not fail every night.
  if (args.olderThan !== undefined) parseAge(args.olderThan, '--older-than');
  const pruneArgs = [
    ...(args.keepLast !== undefined ? ['--keep-last', String(parsePositiveInteger(args.keepLast, '--keep-last'))] : []),
    ...(args.olderThan !== undefined ? ['--older-than', args.olderThan] : []),
  ];
  if (args.storeClaim && args.storageClass) throw new UsageError('--storage-class is for the claim install creates; with --store-claim the claim exists already');
  return {
    name: args.name,
    namespace: args.namespace ?? DEFAULT_INSTALL_NAMESPACE,
    schedule: checkSchedule(args.schedule),
    image: args.image,
    backupArgs: backupArgs.length ? backupArgs : DEFAULT_BACKUP_ARGS,
    pruneArgs: pruneArgs.length ? pruneArgs : undefined,
    store: args.storeClaim ? { existingClaim: args.storeClaim } : { size: args.storeSize, storageClass: args.storageClass },
    remoteKubeconfigSecret: args.remoteKubeconfigSecret,
    resources: {
      requests: { ...DEFAULT_HELPER_RESOURCES.requests, ...parseKeyValues(args.requests, '--requests') },
      limits: { ...DEFAULT_HELPER_RESOURCES.limits, ...parseKeyValues(args.limits, '--limits') },
    },
  };
}

export const installCommand: CommandModule<GlobalOptions, InstallArgs> = {
  command: 'install [-- BACKUP-ARGS...]',
  describe: 'Schedule backups inside the cluster: a ServiceAccount with just the permissions they need, a claim for the catalog and artifacts, and a CronJob',
  builder: (argv) =>
    argv
      .option('name', { type: 'string', default: 'nkvm', description: 'Name of every object of this install' })
      .option('schedule', { type: 'string', default: '0 2 * * *', description: 'When the backup runs (cron, in the cluster\'s time zone)' })
      .option('keep-last', { type: 'number', description: 'After each backup, prune all but the N newest of each claim' })
      .option('older-than', { type: 'string', description: 'After each backup, prune backups older than this (e.g. 30d)' })
      .option('store-size', { type: 'string', default: '50Gi', description: 'Size of the claim that holds the catalog and the artifacts' })
      .option('storage-class', { type: 'string', description: 'Its StorageClass (default: the cluster\'s default)' })
      .option('store-claim', { type: 'string', description: 'Use this existing claim in the install namespace instead' })
      .option('remote-kubeconfig-secret', { type: 'string', description: 'Back up the cluster of the kubeconfig in this Secret (key "config"), mounted at /etc/nkvm/remote/config' })
      .option('image', { type: 'string', default: imageReference(pluginVersion), description: 'The plugin image the CronJob runs' })
      .option('requests', { type: 'string', array: true, description: 'Resource requests of the job, e.g. cpu=100m,memory=64Mi' })
      .option('limits', { type: 'string', array: true, description: 'Resource limits of the job, e.g. memory=1Gi' })
      .option('dry-run', { choices: ['none', 'client', 'server'] as const, default: 'none' as const, description: 'client: print the objects, change nothing; server: send them for validation only' })
      .option('output', { alias: 'o', choices: ['yaml', 'json'] as const, description: 'Print the objects (with --dry-run=client: for GitOps)' })
      .example('kubectl nkvm install --keep-last 7', 'Every claim of the cluster at 02:00, keeping 7 backups of each, in namespace nkvm-system')
      .example('kubectl nkvm install -n backups --schedule "30 1 * * *" -- -n shop -l tier=db --compression zstd', 'Only claims labelled tier=db in namespace shop')
      .example('kubectl nkvm install --dry-run=client -o yaml > nkvm.yaml', 'The manifests, to commit and apply with kubectl apply -f')
      .example('kubectl nkvm install --remote-kubeconfig-secret prod-kubeconfig', 'Back up another cluster from this one') as unknown as Argv<InstallArgs>,
  handler: async (args) => {
    const options = installOptionsFromArgs(args);
    const objects = installManifests(options);
    if (args.dryRun === 'client') {
      writeResult(args.output === 'json' ? toJson({ apiVersion: 'v1', kind: 'List', items: objects }) : objects.map((object) => `---\n${toYaml(object)}`).join(''));
      return;
    }
    const client = await connectFromFlags(args);
    const applied = [];
    for (const object of objects) applied.push(await client.apply(object, { dryRun: args.dryRun === 'server' }));
    if (args.output) {
      writeResult(args.output === 'json' ? toJson({ apiVersion: 'v1', kind: 'List', items: applied }) : applied.map((object) => `---\n${toYaml(object)}`).join(''));
    } else {
      const suffix = args.dryRun === 'server' ? ' (server dry run)' : '';
      writeResult(objects.map((object) => `${object.kind.toLowerCase()}/${object.metadata.name} applied${suffix}\n`).join(''));
    }
    if (args.dryRun === 'none') writeInfo(`Scheduled: ${options.schedule}. See it with \`kubectl get cronjob ${options.name} -n ${options.namespace}\`; remove it with \`kubectl nkvm uninstall -n ${options.namespace}\`.`);
  },
};
