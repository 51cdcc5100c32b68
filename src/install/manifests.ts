/**
 * What `kubectl nkvm install` puts in a cluster, as plain objects (pure, so it is tested without a
 * cluster and printed as-is by --dry-run=client -o yaml): a ServiceAccount with exactly the
 * permissions a backup uses (the list `diagnose` checks), a claim that holds the catalog and the
 * artifacts, and a CronJob whose pod runs `backup BACKUP-ARGS` and then the retention (`artifacts
 * prune`, or `forget` for backups into a repository, its credentials from a Secret). The
 * pod passes Pod Security "restricted". Everything carries the install's label, which is how
 * uninstall finds it and never touches anything else.
 */
import { ACCESS_REQUIREMENTS } from '../kube/access.ts';

/** Where `install` puts its objects unless -n says otherwise. */
export const DEFAULT_INSTALL_NAMESPACE = 'nkvm-system';
export const INSTALL_LABEL = 'nkvm.dev/install';
/** With the name, what tells two installs apart: cluster-scoped objects too carry it. */
export const INSTALL_NAMESPACE_LABEL = 'nkvm.dev/install-namespace';
/** On the store claim install creates: `backup --all` leaves such claims out. */
export const STORE_LABEL = 'nkvm.dev/store';
export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'kubectl-nkvm', 'app.kubernetes.io/name': 'kubectl-nkvm' } as const;
export const STORE_MOUNT = '/store';
export const REMOTE_KUBECONFIG_DIR = '/etc/nkvm/remote';
/** The image's non-root user; the store is made writable to it with fsGroup. */
const IMAGE_USER = 65532;

export interface InstallOptions {
  /** Names every object of this install (default nkvm). */
  name: string;
  namespace: string;
  schedule: string;
  image: string;
  /** The arguments of the scheduled `backup` (default --all -A). */
  backupArgs: string[];
  /** The command after each backup that applies the retention (`artifacts prune ...`, or `forget ...` for a repository); none: nothing. */
  retention: string[] | undefined;
  /**
   * Backups into a repository: its location (undefined: RESTIC_REPOSITORY in the Secret), and the
   * Secret whose keys are the job's environment, as restic reads it (RESTIC_PASSWORD,
   * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, RESTIC_REPOSITORY).
   */
  repository?: { location: string | undefined; secret: string } | undefined;
  store: { existingClaim: string } | { size: string; storageClass: string | undefined };
  /** A Secret whose key `config` is a kubeconfig of the cluster to back up. */
  remoteKubeconfigSecret: string | undefined;
  resources: { requests: Record<string, string>; limits: Record<string, string> };
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

/** The namespaces the backup reaches: one per -n, or the whole cluster with -A (or with no -n, as in-cluster the default is the pod's namespace). */
export function backupScope(backupArgs: string[], installNamespace: string): { clusterWide: boolean; namespaces: string[] } {
  if (backupArgs.includes('-A') || backupArgs.includes('--all-namespaces')) return { clusterWide: true, namespaces: [] };
  const namespaces: string[] = [];
  backupArgs.forEach((arg, i) => {
    const inline = /^(?:-n|--namespace)=(.+)$/.exec(arg);
    if (inline) namespaces.push(inline[1]!);
    else if ((arg === '-n' || arg === '--namespace') && backupArgs[i + 1]) namespaces.push(backupArgs[i + 1]!);
  });
  return { clusterWide: false, namespaces: namespaces.length ? [...new Set(namespaces)] : [installNamespace] };
}

/** RBAC rules for exactly the verbs the plugin uses, from the list diagnose checks: cluster-scoped ones only when asked. */
export function backupRules(clusterScoped: boolean, only: 'all' | 'cluster-scoped' = 'all'): { apiGroups: string[]; resources: string[]; verbs: string[] }[] {
  const byResource = new Map<string, { group: string; resource: string; verbs: Set<string> }>();
  for (const requirement of ACCESS_REQUIREMENTS) {
    if (requirement.clusterScoped ? !clusterScoped : only === 'cluster-scoped') continue;
    const resource = requirement.subresource ? `${requirement.resource}/${requirement.subresource}` : requirement.resource;
    const group = requirement.group ?? '';
    const key = `${group}/${resource}`;
    const rule = byResource.get(key) ?? { group, resource, verbs: new Set<string>() };
    byResource.set(key, rule.verbs.add(requirement.verb) && rule);
  }
  return [...byResource.values()].map(({ group, resource, verbs }) => ({ apiGroups: [group], resources: [resource], verbs: [...verbs].sort() }));
}

export function installManifests(options: InstallOptions): KubeObject[] {
  const labels = { ...MANAGED_BY, [INSTALL_LABEL]: options.name, [INSTALL_NAMESPACE_LABEL]: options.namespace };
  const meta = (name: string, namespace?: string) => ({ name, ...(namespace ? { namespace } : {}), labels });
  const scope = backupScope(options.backupArgs, options.namespace);
  const account = { kind: 'ServiceAccount', name: options.name, namespace: options.namespace };
  const clusterRole = (rules: ReturnType<typeof backupRules>): KubeObject[] => [
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: meta(`${options.name}-${options.namespace}`), rules },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: meta(`${options.name}-${options.namespace}`),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `${options.name}-${options.namespace}` },
      subjects: [account],
    },
  ];
  const rbac: KubeObject[] = scope.clusterWide
    ? clusterRole(backupRules(true))
    : [
      // Reading cluster-scoped facts only (volumes, storage and snapshot classes): what finding a claim's snapshot class needs.
      ...clusterRole(backupRules(true, 'cluster-scoped')),
      ...scope.namespaces.flatMap((namespace) => [
        { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: meta(options.name, namespace), rules: backupRules(false) },
        {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'RoleBinding',
          metadata: meta(options.name, namespace),
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: options.name },
          subjects: [account],
        },
      ]),
    ];
  const storeClaim = 'existingClaim' in options.store ? options.store.existingClaim : `${options.name}-store`;
  const store: KubeObject[] =
    'existingClaim' in options.store
      ? []
      : [
          {
            apiVersion: 'v1',
            kind: 'PersistentVolumeClaim',
            metadata: { ...meta(storeClaim, options.namespace), labels: { ...labels, [STORE_LABEL]: 'true' } },
            spec: {
              accessModes: ['ReadWriteOnce'],
              resources: { requests: { storage: options.store.size } },
              ...(options.store.storageClass ? { storageClassName: options.store.storageClass } : {}),
            },
          },
        ];
  const container = (name: string, args: string[]) => ({
    name,
    image: options.image,
    imagePullPolicy: 'IfNotPresent',
    args,
    env: [{ name: 'NKVM_HOME', value: STORE_MOUNT }],
    // The password and credentials stay in the Secret: never in the pod spec or the arguments.
    ...(options.repository ? { envFrom: [{ secretRef: { name: options.repository.secret } }] } : {}),
    resources: options.resources,
    securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
    volumeMounts: [
      { name: 'store', mountPath: STORE_MOUNT },
      // The root file system is read-only; an incremental backup's listing waits in /tmp.
      { name: 'tmp', mountPath: '/tmp' },
      ...(options.remoteKubeconfigSecret ? [{ name: 'remote-kubeconfig', mountPath: REMOTE_KUBECONFIG_DIR, readOnly: true }] : []),
    ],
  });
  // Into S3, the copies run in movers of this same image, so a scheduled backup relays no data through the API server.
  const movers = options.repository?.location?.startsWith('s3:') ? ['--mover', 'pod', '--mover-image', options.image] : [];
  const intoRepository = options.repository
    ? ['--format', 'repo', '--init-repository', ...(options.repository.location ? ['--repo', options.repository.location] : []), ...movers]
    : [];
  const repositoryArgs = options.repository?.location ? ['--repo', options.repository.location] : [];
  const backup = container('backup', ['backup', ...options.backupArgs, ...intoRepository, '--progress', 'never']);
  const cronJob: KubeObject = {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: meta(options.name, options.namespace),
    spec: {
      schedule: options.schedule,
      concurrencyPolicy: 'Forbid',
      successfulJobsHistoryLimit: 3,
      failedJobsHistoryLimit: 3,
      jobTemplate: {
        metadata: { labels },
        spec: {
          backoffLimit: 0,
          template: {
            metadata: { labels },
            spec: {
              serviceAccountName: options.name,
              restartPolicy: 'Never',
              securityContext: { runAsNonRoot: true, runAsUser: IMAGE_USER, runAsGroup: IMAGE_USER, fsGroup: IMAGE_USER, seccompProfile: { type: 'RuntimeDefault' } },
              nodeSelector: { 'kubernetes.io/os': 'linux' },
              // The backup first; the retention only after it succeeded (an init container that fails fails the pod).
              ...(options.retention ? { initContainers: [backup], containers: [container('prune', [...options.retention, ...repositoryArgs])] } : { containers: [backup] }),
              volumes: [
                { name: 'store', persistentVolumeClaim: { claimName: storeClaim } },
                { name: 'tmp', emptyDir: {} },
                ...(options.remoteKubeconfigSecret
                  ? [{ name: 'remote-kubeconfig', secret: { secretName: options.remoteKubeconfigSecret, items: [{ key: 'config', path: 'config' }] } }]
                  : []),
              ],
            },
          },
        },
      },
    },
  };
  return [
    // Only its name: applied to a namespace that exists, it changes nothing, and uninstall leaves it.
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: options.namespace } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(options.name, options.namespace) },
    ...rbac,
    ...store,
    cronJob,
  ];
}
