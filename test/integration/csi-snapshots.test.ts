/**
 * The test clusters' VolumeSnapshots (test/cluster/csi-snapshots.ts) on a real cluster: a claim of
 * the nkvm-csi class is snapshotted and restored into a new claim with the same files (content,
 * owner, mode, mtime, symlink target), unchanged by writes to the first claim after the snapshot;
 * deleting the snapshot and the claims removes their copies from the driver's state directory.
 */
import { CSI_SNAPSHOT_CLASS, CSI_STORAGE_CLASS, csiStateDir, kubeletRootDirOf } from '../cluster/csi-snapshots.ts';
import type { TestCluster } from '../cluster/index.ts';
import { waitFor } from '../cluster/run.ts';
import { clusterSuite, createNamespace } from './support.ts';

const test = clusterSuite();

function claim(namespace: string, name: string, dataSource = ''): string {
  return `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: ${name}, namespace: ${namespace}}
spec:
  storageClassName: ${CSI_STORAGE_CLASS}
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 64Mi}}
${dataSource}`;
}

function pod(cluster: TestCluster, namespace: string, name: string, volumes: Record<string, { claim?: string; hostPath?: string }>): string {
  const entries = Object.entries(volumes);
  return `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${namespace}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: ${cluster.images.helper}
    command: [sleep, "3600"]
    volumeMounts: [${entries.map(([mount]) => `{name: ${mount}, mountPath: /${mount}}`).join(', ')}]
  volumes: [${entries.map(([mount, source]) => (source.claim ? `{name: ${mount}, persistentVolumeClaim: {claimName: ${source.claim}}}` : `{name: ${mount}, hostPath: {path: ${source.hostPath}}}`)).join(', ')}]
`;
}

async function runPod(cluster: TestCluster, manifest: string, namespace: string, name: string): Promise<void> {
  await cluster.kubectl(['apply', '-f', '-'], { input: manifest });
  await cluster.kubectl(['wait', '--for=condition=Ready', `pod/${name}`, '-n', namespace, '--timeout=120s'], { timeoutMs: 130_000 });
}

const sh = (cluster: TestCluster, namespace: string, podName: string, script: string) =>
  cluster.kubectl(['exec', podName, '-n', namespace, '--', 'sh', '-c', script]);

/** Every entry under /data: path, type, owner, mode, size, mtime, symlink target, and each regular file's content. */
const LISTING = `cd /data && find . | sort | while read -r f; do
  stat -c '%n|%F|%u:%g|%a|%s|%Y' "$f"
  if [ -L "$f" ]; then echo "-> $(readlink "$f")"; elif [ -f "$f" ]; then echo "= $(cat "$f")"; fi
done`;

test('csi snapshots: a claim of nkvm-csi restores from its VolumeSnapshot with the same files, owners and modes, apart from later writes; deletes remove the copies', async (t) => {
  t.timeout(12 * 60_000);
  const { cluster } = t.context;
  const started = Date.now();
  await cluster.enableSnapshots();
  t.log(`enableSnapshots took ${((Date.now() - started) / 1000).toFixed(1)}s on the ${cluster.provider} provider`);
  const again = Date.now();
  await cluster.enableSnapshots();
  t.log(`a second enableSnapshots took ${((Date.now() - again) / 1000).toFixed(1)}s`);

  const namespace = await createNamespace(cluster, 'csi-snap');
  t.context.diagnose = { namespace, sourcePod: 'writer' };
  const k = (args: string[]) => cluster.kubectl([...args, '-n', namespace]);

  await cluster.kubectl(['apply', '-f', '-'], { input: claim(namespace, 'source') });
  await runPod(cluster, pod(cluster, namespace, 'writer', { data: { claim: 'source' } }), namespace, 'writer');
  await sh(cluster, namespace, 'writer', [
    'echo hello > /data/hello.txt',
    'mkdir -m 0750 /data/dir',
    'echo owned > /data/dir/owned.txt && chown 1000:1000 /data/dir/owned.txt && chmod 0640 /data/dir/owned.txt',
    'ln -s dir/owned.txt /data/link && chown -h 1000:1000 /data/link',
    'touch -d "2001-02-03 04:05:06" /data/hello.txt',
    'sync',
  ].join(' && '));
  const before = await sh(cluster, namespace, 'writer', LISTING);
  t.regex(before, /^\.\/dir\/owned\.txt\|regular file\|1000:1000\|640\|6\|\d+\n= owned$/m);
  t.regex(before, /^\.\/link\|symbolic link\|1000:1000\|777\|13\|\d+\n-> dir\/owned\.txt$/m);

  await cluster.kubectl(['apply', '-f', '-'], {
    input: `apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata: {name: snap, namespace: ${namespace}}
spec:
  volumeSnapshotClassName: ${CSI_SNAPSHOT_CLASS}
  source: {persistentVolumeClaimName: source}
`,
  });
  await cluster.kubectl(['wait', '--for=jsonpath={.status.readyToUse}=true', 'volumesnapshot/snap', '-n', namespace, '--timeout=120s'], { timeoutMs: 130_000 });
  const contentName = (await k(['get', 'volumesnapshot', 'snap', '-o', 'jsonpath={.status.boundVolumeSnapshotContentName}'])).trim();
  const snapshotHandle = (await cluster.kubectl(['get', 'volumesnapshotcontent', contentName, '-o', 'jsonpath={.status.snapshotHandle}'])).trim();
  t.regex(snapshotHandle, /^snap-[0-9a-f]+$/);
  t.is((await k(['get', 'volumesnapshot', 'snap', '-o', 'jsonpath={.status.restoreSize}'])).trim(), '64Mi');

  // After the snapshot: changes the restored claim must not see.
  await sh(cluster, namespace, 'writer', 'echo changed > /data/hello.txt && echo later > /data/after.txt && rm /data/link');

  await cluster.kubectl(['apply', '-f', '-'], {
    input: claim(namespace, 'restored', '  dataSource: {apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: snap}\n'),
  });
  await runPod(cluster, pod(cluster, namespace, 'reader', { data: { claim: 'restored' } }), namespace, 'reader');
  t.is(await sh(cluster, namespace, 'reader', LISTING), before, 'the restored claim holds the files as they were at the snapshot');
  t.is((await sh(cluster, namespace, 'writer', 'cat /data/hello.txt')).trim(), 'changed', 'the first claim kept its later writes');

  // The driver's copies on the node, seen through a pod with its state directory.
  const stateDir = csiStateDir(cluster);
  await runPod(cluster, pod(cluster, namespace, 'inspector', { state: { hostPath: stateDir } }), namespace, 'inspector');
  const stateEntries = async () => (await sh(cluster, namespace, 'inspector', 'ls /state/volumes /state/snapshots')).split(/\s+/);
  const volumeHandle = async (claimName: string) => {
    const volume = (await k(['get', 'pvc', claimName, '-o', 'jsonpath={.spec.volumeName}'])).trim();
    return { volume, handle: (await cluster.kubectl(['get', 'pv', volume, '-o', 'jsonpath={.spec.csi.volumeHandle}'])).trim() };
  };
  const source = await volumeHandle('source');
  const restored = await volumeHandle('restored');
  t.true((await stateEntries()).includes(snapshotHandle), `snapshots/${snapshotHandle} exists`);

  await k(['delete', 'volumesnapshot', 'snap', '--wait=true', '--timeout=60s']);
  await cluster.kubectl(['wait', '--for=delete', `volumesnapshotcontent/${contentName}`, '--timeout=60s'], { timeoutMs: 70_000 }).catch(() => '');
  t.is((await cluster.kubectl(['get', 'volumesnapshotcontent', contentName, '--ignore-not-found'])).trim(), '', 'the VolumeSnapshotContent went with the snapshot');
  const afterSnapshotDelete = await stateEntries();
  t.false(afterSnapshotDelete.includes(snapshotHandle), 'the snapshot directory is gone');
  t.false(afterSnapshotDelete.includes(`${snapshotHandle}.json`));
  t.true(afterSnapshotDelete.includes(source.handle) && afterSnapshotDelete.includes(restored.handle), 'both volumes still exist');

  await k(['delete', 'pod', 'writer', 'reader', '--wait=true', '--timeout=60s']);
  await k(['delete', 'pvc', 'source', 'restored', '--wait=true', '--timeout=60s']);
  await cluster.kubectl(['wait', '--for=delete', `pv/${source.volume}`, `pv/${restored.volume}`, '--timeout=90s'], { timeoutMs: 100_000 }).catch(() => '');
  t.is((await cluster.kubectl(['get', 'pv', source.volume, restored.volume, '--ignore-not-found'])).trim(), '', 'the PersistentVolumes are gone');
  const afterClaimsDelete = await stateEntries();
  for (const { handle } of [source, restored]) {
    t.false(afterClaimsDelete.some((entry) => entry.startsWith(handle)), `volumes/${handle} and its record are gone`);
  }
  await cluster.kubectl(['delete', 'namespace', namespace, '--wait=false']);
});

function blockPod(cluster: TestCluster, namespace: string, name: string, claimName: string): string {
  return `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${namespace}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: ${cluster.images.helper}
    command: [sleep, "3600"]
    volumeDevices: [{name: disk, devicePath: /dev/xvda}]
  volumes: [{name: disk, persistentVolumeClaim: {claimName: ${claimName}}}]
`;
}

test('csi snapshots: a raw block claim of nkvm-csi restores from its VolumeSnapshot with the same bytes', async (t) => {
  t.timeout(10 * 60_000);
  const { cluster } = t.context;
  await cluster.enableSnapshots();
  const namespace = await createNamespace(cluster, 'csi-block');
  t.context.diagnose = { namespace, sourcePod: 'writer' };
  const blockClaim = (name: string, dataSource = '') => claim(namespace, name, dataSource).replace('  accessModes:', '  volumeMode: Block\n  accessModes:');

  await cluster.kubectl(['apply', '-f', '-'], { input: blockClaim('disk') });
  await runPod(cluster, blockPod(cluster, namespace, 'writer', 'disk'), namespace, 'writer');
  const digest = (podName: string) => sh(cluster, namespace, podName, 'head -c 2097152 /dev/xvda | sha256sum | cut -d" " -f1; blockdev --getsize64 /dev/xvda');
  await sh(cluster, namespace, 'writer', 'head -c 2097152 /dev/urandom > /tmp/data && dd if=/tmp/data of=/dev/xvda bs=1M conv=fsync 2>/dev/null');
  const before = await digest('writer');
  t.regex(before, /^[0-9a-f]{64}\n67108864\n$/);

  await cluster.kubectl(['apply', '-f', '-'], {
    input: `apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata: {name: disk-snap, namespace: ${namespace}}
spec:
  volumeSnapshotClassName: ${CSI_SNAPSHOT_CLASS}
  source: {persistentVolumeClaimName: disk}
`,
  });
  await cluster.kubectl(['wait', '--for=jsonpath={.status.readyToUse}=true', 'volumesnapshot/disk-snap', '-n', namespace, '--timeout=120s'], { timeoutMs: 130_000 });
  await sh(cluster, namespace, 'writer', 'dd if=/dev/zero of=/dev/xvda bs=1M count=1 conv=fsync 2>/dev/null');
  t.not(await digest('writer'), before, 'the source changed after the snapshot');

  await cluster.kubectl(['apply', '-f', '-'], { input: blockClaim('restored', '  dataSource: {apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: disk-snap}\n') });
  await runPod(cluster, blockPod(cluster, namespace, 'reader', 'restored'), namespace, 'reader');
  t.is(await digest('reader'), before, 'the restored device holds the bytes of the snapshot');

  const k = (args: string[]) => cluster.kubectl([...args, '-n', namespace]);
  const volumes = await Promise.all(['disk', 'restored'].map(async (claimName) => (await k(['get', 'pvc', claimName, '-o', 'jsonpath={.spec.volumeName}'])).trim()));
  const handles = await Promise.all(volumes.map(async (volume) => (await cluster.kubectl(['get', 'pv', volume, '-o', 'jsonpath={.spec.csi.volumeHandle}'])).trim()));
  await k(['delete', 'volumesnapshot', 'disk-snap', '--wait=true', '--timeout=60s']);
  await k(['delete', 'pod', 'writer', 'reader', '--wait=true', '--timeout=60s']);
  // The kubelet unmaps a block volume (the driver's loop device, and its own over it) some seconds
  // after its pod has gone; its map directory goes last. Waited for, so that no loop device outlives
  // the cluster: a KinD node deleted with one still attached leaves it on the host.
  const devicesDir = `${kubeletRootDirOf(cluster)}/plugins/kubernetes.io/csi/volumeDevices`;
  await runPod(cluster, pod(cluster, namespace, 'inspector', { devices: { hostPath: devicesDir }, state: { hostPath: csiStateDir(cluster) } }), namespace, 'inspector');
  const listing = async (dir: string) => (await sh(cluster, namespace, 'inspector', `ls ${dir}`)).split(/\s+/);
  await waitFor('the kubelet to unmap both block volumes', 120_000, async () => !(await listing('/devices')).some((entry) => volumes.includes(entry)));
  await k(['delete', 'pvc', 'disk', 'restored', '--wait=true', '--timeout=60s']);
  await cluster.kubectl(['wait', '--for=delete', ...volumes.map((volume) => `pv/${volume}`), '--timeout=90s'], { timeoutMs: 100_000 }).catch(() => '');
  t.is((await cluster.kubectl(['get', 'pv', ...volumes, '--ignore-not-found'])).trim(), '', 'the PersistentVolumes are gone');
  const state = await listing('/state/volumes');
  t.false(handles.some((handle) => state.some((entry) => entry.startsWith(handle))), 'the volumes\' files are gone');
  await cluster.kubectl(['delete', 'namespace', namespace, '--wait=false']);
});
