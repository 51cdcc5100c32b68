import test from 'ava';
import { loadAll } from 'js-yaml';
import { CSI_DRIVER_NAME, csiSnapshotsManifest, csiStateDir, snapshotCrdFiles } from '../cluster/csi-snapshots.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// The deepest kubelet root the local provider makes: /tmp/nkvm-it-<uuid>-XXXXXX/kubelet.
const kubeletRootDir = '/tmp/nkvm-it-00000000-0000-0000-0000-000000000000-abcdef/kubelet';
type Doc = { kind: string; metadata: { name: string; annotations?: Record<string, string> }; [key: string]: any };
const docs = loadAll(csiSnapshotsManifest({ kubeletRootDir, stateDir: '/state', image: 'nkvm.local/nkvm-csi:k' })) as Doc[];
const find = (kind: string, name: string) => docs.find((doc) => doc.kind === kind && doc.metadata.name === name)!;

test('the CSI driver needs no attacher and is not the default class; snapshots delete with their VolumeSnapshot', (t) => {
  t.like(find('CSIDriver', CSI_DRIVER_NAME).spec, { attachRequired: false, podInfoOnMount: false, fsGroupPolicy: 'File', volumeLifecycleModes: ['Persistent'] });
  const storageClass = find('StorageClass', 'nkvm-csi');
  t.like(storageClass, { provisioner: CSI_DRIVER_NAME, volumeBindingMode: 'WaitForFirstConsumer', allowVolumeExpansion: false });
  t.is(storageClass.metadata.annotations?.['storageclass.kubernetes.io/is-default-class'], undefined);
  t.like(find('VolumeSnapshotClass', 'nkvm-csi-snapclass'), { driver: CSI_DRIVER_NAME, deletionPolicy: 'Delete' });
});

test('the node plugin mounts the kubelet root at its own path with Bidirectional propagation, and its sockets fit a unix address', (t) => {
  const pod = find('DaemonSet', 'nkvm-csi-node').spec.template.spec;
  const [driver] = pod.containers;
  t.true(driver.securityContext.privileged);
  t.deepEqual(driver.volumeMounts.find((m: { name: string }) => m.name === 'kubelet-root'), { name: 'kubelet-root', mountPath: kubeletRootDir, mountPropagation: 'Bidirectional' });
  t.is(pod.volumes.find((v: { name: string }) => v.name === 'registration').hostPath.path, `${kubeletRootDir}/plugins_registry`);
  // The kubelet dials both by their host paths; sun_path holds 107 bytes and a NUL.
  const endpoint = driver.command.find((arg: string) => arg.startsWith('--kubelet-registration-path=')).split('=')[1];
  t.is(endpoint, `${kubeletRootDir}/plugins/${CSI_DRIVER_NAME}/csi.sock`);
  t.true(endpoint.length <= 107, endpoint);
  t.true(`${kubeletRootDir}/plugins_registry/nkvm-csi-reg.sock`.length <= 107);
  t.true(pod.tolerations.some((toleration: { operator: string }) => toleration.operator === 'Exists'), 'runs on a tainted single node');
});

test('the controller pod runs the driver beside the provisioner and the snapshotter over one socket', (t) => {
  const pod = find('Deployment', 'nkvm-csi-controller').spec.template.spec;
  t.deepEqual(pod.containers.map((c: { command: string[] }) => c.command[0]), ['nkvm-csi-driver', 'csi-provisioner', 'csi-snapshotter']);
  for (const container of pod.containers) t.true(container.volumeMounts.some((m: { name: string; mountPath: string }) => m.name === 'socket-dir' && m.mountPath === '/csi'));
  t.is(find('Deployment', 'snapshot-controller').spec.replicas, 1);
});

test('only the three VolumeSnapshot CRDs are applied, not the group-snapshot ones', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-crds-'));
  try {
    for (const name of ['volumesnapshots', 'volumesnapshotcontents', 'volumesnapshotclasses']) {
      fs.writeFileSync(path.join(dir, `snapshot.storage.k8s.io_${name}.yaml`), `kind: CustomResourceDefinition\nmetadata:\n  name: ${name}.snapshot.storage.k8s.io\n`);
      fs.writeFileSync(path.join(dir, `groupsnapshot.storage.k8s.io_volumegroup${name.slice(6)}.yaml`), `kind: CustomResourceDefinition\nmetadata:\n  name: volumegroup${name.slice(6)}.groupsnapshot.storage.k8s.io\n`);
    }
    t.deepEqual(snapshotCrdFiles(dir).map((file) => path.basename(file)).sort(), [
      'snapshot.storage.k8s.io_volumesnapshotclasses.yaml', 'snapshot.storage.k8s.io_volumesnapshotcontents.yaml', 'snapshot.storage.k8s.io_volumesnapshots.yaml',
    ]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the state directory: in the local cluster\'s own directory, a fixed path on a KinD node', (t) => {
  t.is(csiStateDir({ provider: 'local', dir: '/tmp/c' }), '/tmp/c/nkvm-csi');
  t.is(csiStateDir({ provider: 'kind', dir: '/tmp/c' }), '/var/lib/nkvm-csi');
});
