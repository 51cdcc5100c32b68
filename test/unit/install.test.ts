import test from 'ava';
import { backupRules, backupScope, installManifests, type InstallOptions, type KubeObject } from '../../src/install/manifests.ts';
import { ACCESS_REQUIREMENTS } from '../../src/kube/access.ts';
import { nkvm } from './fixtures/nkvm-cli.ts';

const base: InstallOptions = {
  name: 'nkvm',
  namespace: 'nkvm-system',
  schedule: '0 2 * * *',
  image: 'ghcr.io/kubectl-nkvm/kubectl-nkvm:0.1.0',
  backupArgs: ['--all', '-A'],
  retention: ['artifacts', 'prune', '--keep-last', '7'],
  store: { size: '50Gi', storageClass: undefined },
  remoteKubeconfigSecret: undefined,
  resources: { requests: { cpu: '100m' }, limits: { memory: '512Mi' } },
};

const kinds = (objects: KubeObject[]) => objects.map((object) => `${object.kind}/${object.metadata.namespace ?? ''}/${object.metadata.name}`);
type PodSpec = { serviceAccountName: string; securityContext: Record<string, unknown>; initContainers?: { args: string[]; env: unknown[] }[]; containers: { args: string[]; volumeMounts: { mountPath: string }[] }[]; volumes: Record<string, unknown>[] };
const podSpec = (objects: KubeObject[]) => (objects.find((object) => object.kind === 'CronJob') as unknown as { spec: { concurrencyPolicy: string; jobTemplate: { spec: { template: { spec: PodSpec } } } } }).spec;

test('a cluster-wide backup gets a ClusterRole with exactly the verbs diagnose checks, a store claim and a restricted CronJob', (t) => {
  const objects = installManifests(base);
  t.deepEqual(kinds(objects), [
    'Namespace//nkvm-system',
    'ServiceAccount/nkvm-system/nkvm',
    'ClusterRole//nkvm-nkvm-system',
    'ClusterRoleBinding//nkvm-nkvm-system',
    'PersistentVolumeClaim/nkvm-system/nkvm-store',
    'CronJob/nkvm-system/nkvm',
  ]);
  const granted = backupRules(true).flatMap((rule) => rule.verbs.map((verb) => `${verb} ${rule.resources[0]}.${rule.apiGroups[0]}`)).sort();
  t.deepEqual(granted, ACCESS_REQUIREMENTS.map((r) => `${r.verb} ${r.resource}${r.subresource ? `/${r.subresource}` : ''}.${r.group ?? ''}`).sort());
  t.deepEqual(backupRules(true).find((rule) => rule.resources[0] === 'volumesnapshots'), { apiGroups: ['snapshot.storage.k8s.io'], resources: ['volumesnapshots'], verbs: ['create', 'delete', 'get'] });
  const cron = podSpec(objects);
  t.is(cron.concurrencyPolicy, 'Forbid');
  const pod = cron.jobTemplate.spec.template.spec;
  t.is(pod.serviceAccountName, 'nkvm');
  t.like(pod.securityContext, { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
  t.deepEqual(pod.initContainers![0]!.args, ['backup', '--all', '-A', '--progress', 'never'], 'the backup runs first');
  t.deepEqual(pod.containers[0]!.args, ['artifacts', 'prune', '--keep-last', '7'], 'then the retention prune');
  t.true(objects.filter((object) => object.kind !== 'Namespace').every((object) => object.metadata.labels?.['nkvm.dev/install'] === 'nkvm'));
  t.is(objects.find((object) => object.kind === 'PersistentVolumeClaim')!.metadata.labels?.['nkvm.dev/store'], 'true', 'backup --all leaves the store out');
});

test('a namespaced backup gets a Role in each namespace it reaches; an existing claim and a remote kubeconfig are used as given', (t) => {
  t.deepEqual(backupScope(['-n', 'shop', '--namespace=db', '-l', 'a=b'], 'nkvm-system'), { clusterWide: false, namespaces: ['shop', 'db'] });
  t.deepEqual(backupScope(['data'], 'backups'), { clusterWide: false, namespaces: ['backups'] }, 'with no -n the pod\'s own namespace');
  const objects = installManifests({ ...base, backupArgs: ['-n', 'shop', '--all'], retention: undefined, store: { existingClaim: 'mine' }, remoteKubeconfigSecret: 'prod' });
  t.deepEqual(kinds(objects), ['Namespace//nkvm-system', 'ServiceAccount/nkvm-system/nkvm', 'ClusterRole//nkvm-nkvm-system', 'ClusterRoleBinding//nkvm-nkvm-system', 'Role/shop/nkvm', 'RoleBinding/shop/nkvm', 'CronJob/nkvm-system/nkvm']);
  t.false(JSON.stringify(backupRules(false)).includes('persistentvolumes"'), 'no cluster-scoped resource in a Role');
  // Cluster-wide, a namespaced install may only read what choosing a snapshot class needs.
  const clusterRules = (objects.find((object) => object.kind === 'ClusterRole') as unknown as { rules: { resources: string[]; verbs: string[] }[] }).rules;
  t.deepEqual(clusterRules.map((rule) => `${rule.resources[0]}:${rule.verbs.join(',')}`).sort(), ['persistentvolumes:get,list', 'storageclasses:get', 'volumesnapshotclasses:list']);
  const pod = podSpec(objects).jobTemplate.spec.template.spec;
  t.is(pod.initContainers, undefined, 'no prune: the backup is the only container');
  t.deepEqual(pod.containers[0]!.volumeMounts.map((mount) => mount.mountPath), ['/store', '/tmp', '/etc/nkvm/remote']);
  t.deepEqual(pod.volumes, [
    { name: 'store', persistentVolumeClaim: { claimName: 'mine' } },
    { name: 'tmp', emptyDir: {} },
    { name: 'remote-kubeconfig', secret: { secretName: 'prod', items: [{ key: 'config', path: 'config' }] } },
  ]);
});

test('install --dry-run=client prints the objects without any cluster; bad input is a usage error', async (t) => {
  const printed = await nkvm(['install', '--dry-run=client', '-o', 'json', '--keep-last', '3', '--', '-n', 'shop', '-l', 'tier=db'], '/tmp');
  t.is(printed.exitCode, 0, printed.stderr);
  const list = JSON.parse(printed.stdout) as { items: KubeObject[] };
  t.deepEqual(kinds(list.items).slice(4, 6), ['Role/shop/nkvm', 'RoleBinding/shop/nkvm']);
  const bad = await nkvm(['install', '--dry-run=client', '--schedule', 'daily'], '/tmp');
  t.is(bad.exitCode, 2);
  t.regex(bad.stderr, /not a cron schedule/);
  const catalog = await nkvm(['install', '--dry-run=client', '--', '--all', '--catalog', '/x'], '/tmp');
  t.is(catalog.exitCode, 2);
});

test('install --repo: the backup goes into the repository (created on the first run), forget applies restic\'s policy, and the credentials come from the Secret, never the pod spec', async (t) => {
  const printed = await nkvm(['install', '--dry-run=client', '-o', 'json', '--repo', 's3:https://s3.example/b', '--repo-secret', 'backup-repo', '--keep-daily', '7', '--keep-within', '30d', '--prune'], '/tmp');
  t.is(printed.exitCode, 0, printed.stderr);
  const pod = podSpec((JSON.parse(printed.stdout) as { items: KubeObject[] }).items).jobTemplate.spec.template.spec as PodSpec & { containers: { args: string[]; envFrom: unknown }[]; initContainers: { args: string[]; envFrom: unknown }[] };
  t.deepEqual(pod.initContainers[0]!.args, [
    'backup', '--all', '-A', '--format', 'repo', '--init-repository', '--repo', 's3:https://s3.example/b',
    // Its copies in movers of its own image.
    '--mover', 'pod', '--mover-image', 'ghcr.io/kubectl-nkvm/kubectl-nkvm:0.1.0',
    '--progress', 'never',
  ]);
  t.deepEqual(pod.containers[0]!.args, ['forget', '--keep-daily', '7', '--keep-within', '30d', '--prune', '--repo', 's3:https://s3.example/b']);
  for (const container of [pod.initContainers[0]!, pod.containers[0]!]) t.deepEqual(container.envFrom, [{ secretRef: { name: 'backup-repo' } }]);
  t.false(printed.stdout.includes('RESTIC_PASSWORD'), 'no password in the objects');
  const misuse = [
    [['--repo', '/store/repository'], /--repo needs --repo-secret/],
    [['--repo', '/var/backups', '--repo-secret', 's'], /only on its store claim/],
    [['--keep-daily', '7'], /--keep-daily is a policy for snapshots in a repository/],
    [['--repo-secret', 's', '--older-than', '30d'], /--older-than is for tar artifacts/],
    [['--prune'], /--prune is for a repository/],
    [['--repo-secret', 's', '--', '--all', '--format', 'tar'], /not in the backup's arguments/],
  ] as const;
  for (const [args, message] of misuse) {
    const refused = await nkvm(['install', '--dry-run=client', ...args], '/tmp');
    t.is(refused.exitCode, 2, `${args.join(' ')}: ${refused.stderr}`);
    t.regex(refused.stderr, message);
  }
});
