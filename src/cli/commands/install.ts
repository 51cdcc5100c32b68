/** `kubectl nkvm install`: scheduled backups inside the cluster (src/install/manifests.ts says what). */
import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../../errors.ts';
import { imageReference } from '../../install/image.ts';
import { DEFAULT_INSTALL_NAMESPACE, installManifests, STORE_MOUNT, type InstallOptions } from '../../install/manifests.ts';
import { DEFAULT_HELPER_RESOURCES } from '../../backup/helper-pod.ts';
import { pluginVersion } from '../../version.ts';
import { connectFromFlags } from '../context.ts';
import { parseKeyValues, parsePositiveInteger } from '../flags.ts';
import { parseAge, type GlobalOptions } from '../global-options.ts';
import { toJson, toYaml, writeInfo, writeResult } from '../output.ts';
import { listing } from './index.ts';

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
  repo: string | undefined;
  repoSecret: string | undefined;
  keepHourly: number | undefined;
  keepDaily: number | undefined;
  keepWeekly: number | undefined;
  keepMonthly: number | undefined;
  keepYearly: number | undefined;
  keepWithin: string | undefined;
  prune: boolean;
  image: string;
  requests: string[] | undefined;
  limits: string[] | undefined;
  dryRun: 'none' | 'client' | 'server';
  output: 'yaml' | 'json' | undefined;
  _: (string | number)[];
}

/** restic's forget policies a scheduled backup into a repository can apply (besides --keep-last). */
const REPOSITORY_POLICIES = [
  ['keep-hourly', 'keepHourly'],
  ['keep-daily', 'keepDaily'],
  ['keep-weekly', 'keepWeekly'],
  ['keep-monthly', 'keepMonthly'],
  ['keep-yearly', 'keepYearly'],
  ['keep-within', 'keepWithin'],
] as const;

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
  const repository = args.repo !== undefined || args.repoSecret !== undefined;
  const policy = REPOSITORY_POLICIES.flatMap(([flag, key]) => {
    const value = args[key];
    if (value === undefined) return [];
    if (!repository) throw new UsageError(`--${flag} is a policy for snapshots in a repository`, 'with --repo and --repo-secret; tar artifacts keep --keep-last and --older-than');
    return [`--${flag}`, key === 'keepWithin' ? String(value) : String(parsePositiveInteger(Number(value), `--${flag}`))];
  });
  if (repository && !args.repoSecret) {
    throw new UsageError('--repo needs --repo-secret: the Secret (in the install namespace) that holds the password', 'e.g. kubectl create secret generic backup-repo --from-literal=RESTIC_PASSWORD=... (and AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY for S3), then --repo-secret backup-repo');
  }
  // The job's root file system is read-only: a repository on disk lives on the store claim.
  if (args.repo !== undefined && !/^s3:/.test(args.repo) && !args.repo.startsWith(`${STORE_MOUNT}/`)) {
    throw new UsageError(`--repo ${args.repo}: the job can write only on its store claim, mounted at ${STORE_MOUNT}`, `e.g. --repo ${STORE_MOUNT}/repository, or an S3 repository (s3:https://HOST/BUCKET/PREFIX)`);
  }
  if (repository && args.olderThan !== undefined) throw new UsageError('--older-than is for tar artifacts; snapshots in a repository are kept by restic\'s policies', 'e.g. --keep-within 30d, or --keep-daily 7 --keep-weekly 4');
  if (!repository && args.prune) throw new UsageError('--prune is for a repository (with --repo-secret); tar artifacts are deleted by --keep-last and --older-than themselves');
  if (repository && backupArgs.some((arg) => /^--(format|repo|init-repository)(=|$)/.test(arg))) {
    throw new UsageError('name the repository to install (--repo, --repo-secret), not in the backup\'s arguments');
  }
  const keepLast = args.keepLast !== undefined ? ['--keep-last', String(parsePositiveInteger(args.keepLast, '--keep-last'))] : [];
  const retention = repository
    ? keepLast.length + policy.length > 0 ? ['forget', ...keepLast, ...policy, ...(args.prune ? ['--prune'] : [])] : undefined
    : keepLast.length || args.olderThan !== undefined ? ['artifacts', 'prune', ...keepLast, ...(args.olderThan !== undefined ? ['--older-than', args.olderThan] : [])] : undefined;
  if (repository && args.prune && !retention) throw new UsageError('--prune goes with a policy that forgets snapshots', 'e.g. --keep-daily 7 --prune');
  if (args.storeClaim && args.storageClass) throw new UsageError('--storage-class is for the claim install creates; with --store-claim the claim exists already');
  return {
    name: args.name,
    namespace: args.namespace ?? DEFAULT_INSTALL_NAMESPACE,
    schedule: checkSchedule(args.schedule),
    image: args.image,
    backupArgs: backupArgs.length ? backupArgs : DEFAULT_BACKUP_ARGS,
    retention,
    ...(repository ? { repository: { location: args.repo, secret: args.repoSecret! } } : {}),
    store: args.storeClaim ? { existingClaim: args.storeClaim } : { size: args.storeSize, storageClass: args.storageClass },
    remoteKubeconfigSecret: args.remoteKubeconfigSecret,
    resources: {
      requests: { ...DEFAULT_HELPER_RESOURCES.requests, ...parseKeyValues(args.requests, '--requests') },
      limits: { ...DEFAULT_HELPER_RESOURCES.limits, ...parseKeyValues(args.limits, '--limits') },
    },
  };
}

export const installCommand: CommandModule<GlobalOptions, InstallArgs> = {
  ...listing('install'),
  builder: (argv) =>
    argv
      .option('name', { type: 'string', default: 'nkvm', description: 'Name of every object of this install' })
      .option('schedule', { type: 'string', default: '0 2 * * *', description: 'When the backup runs (cron, in the cluster\'s time zone)' })
      .option('keep-last', { type: 'number', description: 'After each backup, prune all but the N newest of each claim' })
      .option('older-than', { type: 'string', description: 'After each backup, prune backups older than this (e.g. 30d)' })
      .option('store-size', { type: 'string', default: '50Gi', description: 'Size of the claim that holds the catalog and the artifacts' })
      .option('storage-class', { type: 'string', description: 'Its StorageClass (default: the cluster\'s default)' })
      .option('store-claim', { type: 'string', description: 'Use this existing claim in the install namespace instead' })
      .option('repo', { type: 'string', description: 'Back up into this repository (a path on the store claim, e.g. /store/repository, or s3:https://HOST/BUCKET/PREFIX); created on the first run' })
      .option('repo-secret', { type: 'string', description: 'The Secret whose keys are the job\'s environment: RESTIC_PASSWORD, and AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (AWS_DEFAULT_REGION) for S3, RESTIC_REPOSITORY instead of --repo' })
      .option('keep-hourly', { type: 'number', description: 'With a repository: keep the last N hourly snapshots of each claim (restic forget)' })
      .option('keep-daily', { type: 'number', description: 'With a repository: keep the last N daily snapshots' })
      .option('keep-weekly', { type: 'number', description: 'With a repository: keep the last N weekly snapshots' })
      .option('keep-monthly', { type: 'number', description: 'With a repository: keep the last N monthly snapshots' })
      .option('keep-yearly', { type: 'number', description: 'With a repository: keep the last N yearly snapshots' })
      .option('keep-within', { type: 'string', description: 'With a repository: keep snapshots newer than this (e.g. 30d, 1y2m)' })
      .option('prune', { type: 'boolean', default: false, description: 'With a repository: after forget, remove the data no snapshot uses (restic prune)' })
      .option('remote-kubeconfig-secret', { type: 'string', description: 'Back up the cluster of the kubeconfig in this Secret (key "config"), mounted at /etc/nkvm/remote/config' })
      .option('image', { type: 'string', default: imageReference(pluginVersion), description: 'The plugin image the CronJob runs' })
      .option('requests', { type: 'string', array: true, description: 'Resource requests of the job, e.g. cpu=100m,memory=64Mi' })
      .option('limits', { type: 'string', array: true, description: 'Resource limits of the job, e.g. memory=1Gi' })
      .option('dry-run', { choices: ['none', 'client', 'server'] as const, default: 'none' as const, description: 'client: print the objects, change nothing; server: send them for validation only' })
      .option('output', { alias: 'o', choices: ['yaml', 'json'] as const, description: 'Print the objects (with --dry-run=client: for GitOps)' })
      .example('kubectl nkvm install --keep-last 7', 'Every claim of the cluster at 02:00, keeping 7 backups of each, in namespace nkvm-system')
      .example('kubectl nkvm install -n backups --schedule "30 1 * * *" -- -n shop -l tier=db --compression zstd', 'Only claims labelled tier=db in namespace shop')
      .example('kubectl nkvm install --dry-run=client -o yaml > nkvm.yaml', 'The manifests, to commit and apply with kubectl apply -f')
      .example('kubectl nkvm install --remote-kubeconfig-secret prod-kubeconfig', 'Back up another cluster from this one')
      .example('kubectl nkvm install --repo s3:https://s3.example/backups --repo-secret backup-repo --keep-daily 7 --keep-weekly 4 --prune', 'Into an S3 repository, restic\'s retention after each run') as unknown as Argv<InstallArgs>,
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
