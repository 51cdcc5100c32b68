/**
 * VolumeSnapshots for the test clusters, on demand (TestCluster.enableSnapshots): our own small CSI
 * driver (test/cluster/csi-driver) behind the upstream snapshot machinery built from source
 * (external-provisioner, external-snapshotter's csi-snapshotter and snapshot-controller, and the
 * VolumeSnapshot CRDs). A StorageClass and a VolumeSnapshotClass of their own, beside the default
 * local-path class, which cannot take snapshots.
 *
 * The driver runs twice, as a CSI driver does: a Deployment beside the sidecars (volumes and
 * snapshots) and a DaemonSet on the node (mounting volumes into pods), sharing a state directory
 * on the node. The RBAC rules are external-provisioner v6.4.0's deploy/kubernetes/rbac.yaml and
 * external-snapshotter v8.7.0's deploy/kubernetes/{csi-snapshotter,snapshot-controller}/rbac-*.yaml,
 * without the leader-election ones (one replica each, no election).
 */
import fs from 'node:fs';
import path from 'node:path';
import { buildCsiImage } from './images/build.ts';
import { snapshotCrdDir } from './paths.ts';
import { waitFor } from './run.ts';
import type { TestCluster } from './types.ts';

export const CSI_DRIVER_NAME = 'hostpath.csi.nkvm.local';
export const CSI_STORAGE_CLASS = 'nkvm-csi';
export const CSI_SNAPSHOT_CLASS = 'nkvm-csi-snapclass';
export const CSI_NAMESPACE = 'nkvm-csi';
/** The driver's state directory on a KinD node (the local provider keeps it in the cluster's directory). */
export const KIND_CSI_STATE_DIR = '/var/lib/nkvm-csi';

/** The kubelet's --root-dir on a cluster's node. */
export function kubeletRootDirOf(cluster: Pick<TestCluster, 'provider' | 'dir'>): string {
  return cluster.provider === 'local' ? path.join(cluster.dir, 'kubelet') : '/var/lib/kubelet';
}

/** Where a cluster's driver keeps volumes and snapshots on its node: for tests that look there. */
export function csiStateDir(cluster: Pick<TestCluster, 'provider' | 'dir'>): string {
  // The local provider's is in the cluster's directory, so dispose() removes it with the rest.
  return cluster.provider === 'local' ? path.join(cluster.dir, 'nkvm-csi') : KIND_CSI_STATE_DIR;
}

/** The CRDs snapshot-controller needs; it runs without the group-snapshot ones. */
const SNAPSHOT_CRDS = ['volumesnapshotclasses', 'volumesnapshotcontents', 'volumesnapshots'].map((plural) => `${plural}.snapshot.storage.k8s.io`);

export interface CsiSnapshotsOptions {
  /** The kubelet's --root-dir on the node: where pods' volumes are mounted, and its plugin directories. */
  kubeletRootDir: string;
  /** Directory on the node holding every volume and snapshot (volumes/<id>, snapshots/<id>). */
  stateDir: string;
  /** The image holding the driver and the three sidecars. */
  image: string;
}

/** Runs on the one node whatever it is tainted with, and before the tests' pods. */
/** Without the group-snapshot CRDs, which we do not install, each would wait 30 seconds for them before starting. */
const NO_GROUP_SNAPSHOTS = '--feature-gates=CSIVolumeGroupSnapshot=false';
/**
 * A snapshot deleted while it was being cut (a backup's Ctrl-C): csi-snapshotter made it, and then
 * left its VolumeSnapshotContent, already marked for deletion, unprocessed until its next resync,
 * 15 minutes by default (seen twice in CI: the content ready, deletion requested, no further log).
 * A resync every 30 seconds removes such objects within a minute, as the suites expect.
 */
const RESYNC = '--resync-period=30s';

const SCHEDULING = `      tolerations:
      - operator: Exists
      terminationGracePeriodSeconds: 0`;

/** Grants a ClusterRole to a ServiceAccount of the driver's namespace, under the role's name. */
function clusterRoleBinding(role: string, serviceAccount: string): string {
  return `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: ${role}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: ${role}
subjects:
- kind: ServiceAccount
  name: ${serviceAccount}
  namespace: ${CSI_NAMESPACE}`;
}

export function csiSnapshotsManifest({ kubeletRootDir, stateDir, image }: CsiSnapshotsOptions): string {
  const socketDir = path.posix.join(kubeletRootDir, 'plugins', CSI_DRIVER_NAME);
  const driver = (mode: string, args: string[]) => `      - name: driver
        image: ${image}
        imagePullPolicy: IfNotPresent
        command: [nkvm-csi-driver, --mode=${mode}, --state-dir=${stateDir}, ${args.join(', ')}]
        securityContext:
          privileged: true`;
  const stateVolume = `      - name: state
        hostPath:
          path: ${stateDir}
          type: DirectoryOrCreate`;
  return `apiVersion: v1
kind: Namespace
metadata:
  name: ${CSI_NAMESPACE}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: nkvm-csi-controller
  namespace: ${CSI_NAMESPACE}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: snapshot-controller
  namespace: ${CSI_NAMESPACE}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: nkvm-csi-external-provisioner
rules:
- apiGroups: [""]
  resources: ["persistentvolumes"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "update"]
- apiGroups: ["storage.k8s.io"]
  resources: ["storageclasses"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["list", "watch", "create", "update", "patch"]
- apiGroups: ["snapshot.storage.k8s.io"]
  resources: ["volumesnapshots"]
  verbs: ["get", "list", "watch", "update"]
- apiGroups: ["snapshot.storage.k8s.io"]
  resources: ["volumesnapshotcontents"]
  verbs: ["get", "list"]
- apiGroups: ["storage.k8s.io"]
  resources: ["csinodes"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["storage.k8s.io"]
  resources: ["volumeattachments"]
  verbs: ["get", "list", "watch"]
# Not in upstream's file: the provisioner watches VolumeAttributesClasses where the API serves them (v1.34 does).
- apiGroups: ["storage.k8s.io"]
  resources: ["volumeattributesclasses"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: nkvm-csi-external-snapshotter
rules:
- apiGroups: [""]
  resources: ["events"]
  verbs: ["list", "watch", "create", "update", "patch"]
- apiGroups: ["snapshot.storage.k8s.io"]
  resources: ["volumesnapshotclasses"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["snapshot.storage.k8s.io"]
  resources: ["volumesnapshotcontents"]
  verbs: ["get", "list", "watch", "update", "patch"]
- apiGroups: ["snapshot.storage.k8s.io"]
  resources: ["volumesnapshotcontents/status"]
  verbs: ["update", "patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: nkvm-csi-snapshot-controller
rules:
- apiGroups: [""]
  resources: ["persistentvolumes"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "update"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["list", "watch", "create", "update", "patch"]
- apiGroups: ["snapshot.storage.k8s.io"]
  resources: ["volumesnapshotclasses"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["snapshot.storage.k8s.io"]
  resources: ["volumesnapshotcontents"]
  verbs: ["create", "get", "list", "watch", "update", "delete", "patch"]
- apiGroups: ["snapshot.storage.k8s.io"]
  resources: ["volumesnapshotcontents/status"]
  verbs: ["patch"]
- apiGroups: ["snapshot.storage.k8s.io"]
  resources: ["volumesnapshots"]
  verbs: ["create", "get", "list", "watch", "update", "patch", "delete"]
- apiGroups: ["snapshot.storage.k8s.io"]
  resources: ["volumesnapshots/status"]
  verbs: ["update", "patch"]
---
${clusterRoleBinding('nkvm-csi-external-provisioner', 'nkvm-csi-controller')}
---
${clusterRoleBinding('nkvm-csi-external-snapshotter', 'nkvm-csi-controller')}
---
${clusterRoleBinding('nkvm-csi-snapshot-controller', 'snapshot-controller')}
---
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata:
  name: ${CSI_DRIVER_NAME}
spec:
  # No external-attacher: the node plugin publishes volumes without a ControllerPublish step.
  attachRequired: false
  podInfoOnMount: false
  fsGroupPolicy: File
  volumeLifecycleModes: [Persistent]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nkvm-csi-controller
  namespace: ${CSI_NAMESPACE}
spec:
  replicas: 1
  selector:
    matchLabels: {app: nkvm-csi-controller}
  template:
    metadata:
      labels: {app: nkvm-csi-controller}
    spec:
      serviceAccountName: nkvm-csi-controller
      priorityClassName: system-cluster-critical
${SCHEDULING}
      containers:
${driver('controller', ['--endpoint=unix:///csi/csi.sock'])}
        volumeMounts:
        - {name: socket-dir, mountPath: /csi}
        - {name: state, mountPath: ${stateDir}}
      - name: csi-provisioner
        image: ${image}
        imagePullPolicy: IfNotPresent
        command: [csi-provisioner, --csi-address=/csi/csi.sock, --v=2]
        volumeMounts:
        - {name: socket-dir, mountPath: /csi}
      - name: csi-snapshotter
        image: ${image}
        imagePullPolicy: IfNotPresent
        command: [csi-snapshotter, --csi-address=/csi/csi.sock, ${NO_GROUP_SNAPSHOTS}, ${RESYNC}, --v=2]
        volumeMounts:
        - {name: socket-dir, mountPath: /csi}
      volumes:
      - name: socket-dir
        emptyDir: {}
${stateVolume}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: nkvm-csi-node
  namespace: ${CSI_NAMESPACE}
spec:
  selector:
    matchLabels: {app: nkvm-csi-node}
  template:
    metadata:
      labels: {app: nkvm-csi-node}
    spec:
      automountServiceAccountToken: false
      priorityClassName: system-node-critical
${SCHEDULING}
      containers:
${driver('node', [
  `--endpoint=unix://${socketDir}/csi.sock`,
  '--node-id=$(NODE_NAME)',
  '--registration-dir=/registration',
  `--kubelet-registration-path=${socketDir}/csi.sock`,
])}
        env:
        - name: NODE_NAME
          valueFrom:
            fieldRef: {fieldPath: spec.nodeName}
        volumeMounts:
        # At the kubelet's own path, so the target paths the kubelet sends mean the same here; the
        # bind mounts made here must reach the kubelet and the pods: Bidirectional.
        - {name: kubelet-root, mountPath: ${kubeletRootDir}, mountPropagation: Bidirectional}
        - {name: registration, mountPath: /registration}
        # Loop devices for block volumes appear in the host's /dev after the container starts.
        - {name: dev, mountPath: /dev}
        - {name: state, mountPath: ${stateDir}}
      volumes:
      - name: kubelet-root
        hostPath: {path: ${kubeletRootDir}, type: Directory}
      - name: registration
        hostPath: {path: ${path.posix.join(kubeletRootDir, 'plugins_registry')}, type: DirectoryOrCreate}
      - name: dev
        hostPath: {path: /dev, type: Directory}
${stateVolume}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: snapshot-controller
  namespace: ${CSI_NAMESPACE}
spec:
  replicas: 1
  selector:
    matchLabels: {app: snapshot-controller}
  template:
    metadata:
      labels: {app: snapshot-controller}
    spec:
      serviceAccountName: snapshot-controller
      priorityClassName: system-cluster-critical
${SCHEDULING}
      containers:
      - name: snapshot-controller
        image: ${image}
        imagePullPolicy: IfNotPresent
        command: [snapshot-controller, ${NO_GROUP_SNAPSHOTS}, ${RESYNC}, --v=2]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: ${CSI_STORAGE_CLASS}
provisioner: ${CSI_DRIVER_NAME}
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
allowVolumeExpansion: false
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: ${CSI_SNAPSHOT_CLASS}
driver: ${CSI_DRIVER_NAME}
deletionPolicy: Delete
`;
}

/** The three VolumeSnapshot CRDs, as external-snapshotter's client module ships them. */
export function snapshotCrdFiles(crdDir = snapshotCrdDir): string[] {
  const files = fs.readdirSync(crdDir, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.yaml'))
    .map((file) => path.join(crdDir, file))
    .filter((file) => SNAPSHOT_CRDS.some((crd) => new RegExp(`^  name: ${crd.replace(/\./g, '\\.')}$`, 'm').test(fs.readFileSync(file, 'utf8'))));
  if (files.length !== SNAPSHOT_CRDS.length) {
    throw new Error(`expected the ${SNAPSHOT_CRDS.join(', ')} CRDs in ${crdDir}, found ${files.length} of them; run sh scripts/bootstrap.sh --cluster`);
  }
  return files;
}

async function snapshotsReady(cluster: Pick<TestCluster, 'kubectl'>): Promise<boolean> {
  const drivers = await cluster.kubectl(['get', 'csinode', '-o', 'jsonpath={.items[*].spec.drivers[*].name}']);
  if (!drivers.split(/\s+/).includes(CSI_DRIVER_NAME)) return false;
  const ready = await cluster.kubectl([
    'get', 'deployment', 'nkvm-csi-controller', 'snapshot-controller', '-n', CSI_NAMESPACE, '-o', 'jsonpath={range .items[*]}{.status.readyReplicas}{" "}{end}',
  ]);
  return ready.trim().split(/\s+/).filter((count) => count === '1').length === 2;
}

/**
 * Installs it all on a cluster and waits until it works: the driver registered with the kubelet
 * (CSINode lists it) and both controllers ready. Idempotent: a second call on the same cluster
 * (another suite sharing it) finds it ready and returns.
 */
export async function ensureSnapshotStorage(
  cluster: Pick<TestCluster, 'kubectl' | 'loadImageArchive'>,
  { kubeletRootDir, stateDir }: Omit<CsiSnapshotsOptions, 'image'>,
): Promise<void> {
  if (await snapshotsReady(cluster).catch(() => false)) return;
  const crds = snapshotCrdFiles();
  const image = buildCsiImage();
  await cluster.loadImageArchive(image.archive);
  await cluster.kubectl(['apply', '--server-side', ...crds.flatMap((file) => ['-f', file])]);
  await cluster.kubectl(['wait', '--for=condition=Established', ...SNAPSHOT_CRDS.map((crd) => `crd/${crd}`), '--timeout=60s'], { timeoutMs: 70_000 });
  await cluster.kubectl(['apply', '-f', '-'], { input: csiSnapshotsManifest({ kubeletRootDir, stateDir, image: image.name }) });
  await waitFor(`the ${CSI_DRIVER_NAME} driver to register and its controllers to be ready`, 180_000, () => snapshotsReady(cluster));
}
