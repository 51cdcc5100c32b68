import test from 'ava';
import type { V1PersistentVolumeClaim, V1Pod } from '@kubernetes/client-node';
import { claimsWithPods } from '../../src/backup/discovery.ts';
import { DEFAULT_HELPER_RESOURCES, helperPodFailure, helperPodManifest, labelValue, placementFor, PlacementError } from '../../src/backup/helper-pod.ts';
import { describeIdentity, initialIdentity, isRoot, workloadIdentity } from '../../src/backup/helper-identity.ts';

function claim(namespace: string, name: string, extra: Partial<V1PersistentVolumeClaim['spec']> = {}, phase = 'Bound'): V1PersistentVolumeClaim {
  return {
    metadata: { namespace, name },
    spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'fast', volumeName: `pv-${name}`, resources: { requests: { storage: '1Gi' } }, ...extra },
    status: { phase, capacity: { storage: '2Gi' } },
  };
}

function pod(namespace: string, name: string, claims: string[], node: string | undefined, phase = 'Running'): V1Pod {
  return {
    metadata: { namespace, name },
    spec: { ...(node ? { nodeName: node } : {}), containers: [], volumes: claims.map((claimName) => ({ name: claimName, persistentVolumeClaim: { claimName } })) },
    status: { phase },
  };
}

test('claims are joined with the live pods of their own namespace, sorted', (t) => {
  const claims = claimsWithPods(
    [claim('b', 'data'), claim('a', 'logs'), claim('a', 'data')],
    [
      pod('a', 'web-2', ['data'], 'node-2'),
      pod('a', 'web-1', ['data', 'logs'], 'node-1'),
      pod('b', 'other', ['logs'], 'node-1'),
      pod('a', 'job', ['data'], 'node-3', 'Succeeded'),
    ],
  );
  t.deepEqual(claims.map((c) => `${c.namespace}/${c.name}`), ['a/data', 'a/logs', 'b/data']);
  t.deepEqual(claims[0]!.pods, [
    { name: 'web-1', node: 'node-1', phase: 'Running', identity: {} },
    { name: 'web-2', node: 'node-2', phase: 'Running', identity: {} },
  ]);
  t.deepEqual(claims[2]!.pods, []);
  t.like(claims[0], { phase: 'Bound', capacity: '2Gi', storageClass: 'fast', accessModes: ['ReadWriteOnce'], volume: 'pv-data', volumeMode: 'Filesystem' });
});

test('an unbound claim shows its requested size and no volume', (t) => {
  const [pending] = claimsWithPods([{ metadata: { namespace: 'a', name: 'p' }, spec: { resources: { requests: { storage: '5Gi' } } }, status: { phase: 'Pending' } }], []);
  t.like(pending, { phase: 'Pending', capacity: '5Gi', volume: null, storageClass: null });
});

test('a ReadWriteOnce claim in use pins the helper to that node; others do not', (t) => {
  const [rwo] = claimsWithPods([claim('a', 'data')], [pod('a', 'pending', ['data'], undefined, 'Pending'), pod('a', 'web', ['data'], 'node-7')]);
  t.like(placementFor(rwo!), { node: 'node-7', reason: 'on node node-7, where pod web (Running) holds the ReadWriteOnce claim' });
  const [rwx] = claimsWithPods([claim('a', 'shared', { accessModes: ['ReadWriteMany'] })], [pod('a', 'web', ['shared'], 'node-7'), pod('a', 'api', ['shared'], 'node-8')]);
  t.like(placementFor(rwx!), { node: undefined, reason: 'anywhere the scheduler chooses: the ReadWriteMany claim is mounted by 2 pod(s) on node-8, node-7' });
  const [idle] = claimsWithPods([claim('a', 'idle')], []);
  t.like(placementFor(idle!), { node: undefined, reason: 'anywhere the scheduler chooses: no pod holds the claim' });
});

test('a pod that is scheduled but still starting holds a ReadWriteOnce claim on its node; an ended pod holds nothing', (t) => {
  const [starting] = claimsWithPods([claim('a', 'data')], [pod('a', 'web', ['data'], 'node-3', 'Pending')]);
  t.is(placementFor(starting!).node, 'node-3');
  const [ended] = claimsWithPods([claim('a', 'data')], [pod('a', 'job', ['data'], 'node-3', 'Succeeded'), pod('a', 'old', ['data'], 'node-4', 'Failed')]);
  t.is(placementFor(ended!).node, undefined);
});

test('a ReadWriteOncePod claim in use cannot get a helper at all, and says so', (t) => {
  const [exclusive] = claimsWithPods([claim('a', 'db', { accessModes: ['ReadWriteOncePod'] })], [pod('a', 'db-0', ['db'], 'node-1')]);
  const error = t.throws(() => placementFor(exclusive!), { instanceOf: PlacementError });
  t.regex(error.message, /ReadWriteOncePod and pod db-0 \(Running\) holds it: no second pod may mount it/);
  const [free] = claimsWithPods([claim('a', 'db', { accessModes: ['ReadWriteOncePod'] })], []);
  t.is(placementFor(free!).node, undefined);
});

test('the helper pod mounts the claim read-only, with no token, minimal capabilities and the labels', (t) => {
  const [data] = claimsWithPods([claim('shop', 'data')], [pod('shop', 'web', ['data'], 'node-1')]);
  const manifest = helperPodManifest(data!, {
    image: 'busybox:x',
    runId: 'run1',
    deadlineSeconds: 600,
    tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'db', effect: 'NoSchedule' }],
    nodeSelector: { disk: 'ssd' },
    imagePullSecrets: ['regcred'],
    resources: { limits: { memory: '128Mi' } },
  });
  t.is(manifest.metadata!.namespace, 'shop');
  t.is(manifest.metadata!.generateName, 'nkvm-backup-data-');
  t.like(manifest.metadata!.labels, { 'app.kubernetes.io/component': 'backup-helper', 'nkvm.dev/pvc': 'data', 'nkvm.dev/run': 'run1' });
  const spec = manifest.spec!;
  t.false(spec.automountServiceAccountToken);
  t.is(spec.activeDeadlineSeconds, 600);
  t.deepEqual(spec.volumes, [{ name: 'data', persistentVolumeClaim: { claimName: 'data', readOnly: true } }]);
  const container = spec.containers[0]!;
  t.deepEqual(container.volumeMounts, [{ name: 'data', mountPath: '/data', readOnly: true }]);
  t.deepEqual(container.securityContext?.capabilities, { drop: ['ALL'], add: ['DAC_OVERRIDE'] });
  t.false(container.securityContext?.allowPrivilegeEscalation);
  t.true(container.securityContext?.readOnlyRootFilesystem);
  t.deepEqual(container.resources, { limits: { memory: '128Mi' } });
  t.deepEqual(spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms, [
    { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-1'] }] },
  ]);
  t.deepEqual(spec.nodeSelector, { 'kubernetes.io/os': 'linux', disk: 'ssd' }, 'never a Windows node');
  t.deepEqual(spec.imagePullSecrets, [{ name: 'regcred' }]);
  t.is(spec.tolerations?.length, 1);
});

test('label values are made valid', (t) => {
  t.is(labelValue('data'), 'data');
  t.is(labelValue(`${'a'.repeat(70)}`).length, 63);
  t.is(labelValue('-x.y-'), 'x.y');
});

test('a helper that cannot start is reported at once, with the reason', (t) => {
  t.is(helperPodFailure({ status: { phase: 'Pending' } }), undefined);
  t.regex(
    helperPodFailure({ status: { phase: 'Pending', containerStatuses: [{ name: 'h', image: 'x', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'ErrImagePull', message: 'not found' } } }] } }) ?? '',
    /cannot start \(ErrImagePull\): not found/,
  );
  t.regex(helperPodFailure({ status: { phase: 'Failed', message: 'deadline' } }) ?? '', /ended \(Failed\): deadline/);
});

test('the identity of the container that mounts the claim: its own settings over the pod\'s', (t) => {
  const workload: V1Pod = {
    metadata: { namespace: 'a', name: 'web-0' },
    spec: {
      nodeName: 'n1',
      securityContext: { runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000, supplementalGroups: [4000] },
      containers: [
        { name: 'sidecar', securityContext: { runAsUser: 7 } },
        { name: 'app', securityContext: { runAsUser: 1001 }, volumeMounts: [{ name: 'vol', mountPath: '/var/lib/app' }] },
      ],
      volumes: [{ name: 'vol', persistentVolumeClaim: { claimName: 'data' } }],
    },
    status: { phase: 'Running' },
  };
  const [data] = claimsWithPods([claim('a', 'data')], [workload]);
  t.deepEqual(data!.pods[0]!.identity, { runAsUser: 1001, runAsGroup: 3000, fsGroup: 2000, supplementalGroups: [4000] });
});

test('a restricted helper runs as the workload user with no capability at all; root keeps its few', (t) => {
  const [data] = claimsWithPods([claim('shop', 'data')], []);
  const identity = { uid: 1000, gid: 3000, fsGroup: 2000, supplementalGroups: [4000], source: 'pod web-0' };
  const spec = helperPodManifest(data!, { image: 'busybox:x', runId: 'r', deadlineSeconds: 600 }, 'restore', identity).spec!;
  t.deepEqual(spec.securityContext, {
    runAsNonRoot: true,
    runAsUser: 1000,
    runAsGroup: 3000,
    fsGroup: 2000,
    fsGroupChangePolicy: 'OnRootMismatch',
    supplementalGroups: [4000],
    seccompProfile: { type: 'RuntimeDefault' },
  });
  t.deepEqual(spec.containers[0]!.securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  const root = helperPodManifest(data!, { image: 'busybox:x', runId: 'r', deadlineSeconds: 600 }, 'restore').spec!;
  t.like(root.securityContext, { runAsUser: 0, runAsGroup: 0 });
  t.deepEqual(root.containers[0]!.securityContext?.capabilities, { drop: ['ALL'], add: ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID'] });
  t.deepEqual(root.containers[0]!.resources, DEFAULT_HELPER_RESOURCES, 'requests and limits a quota can admit');
});

test('a Block claim is attached as a device, not mounted', (t) => {
  const [disk] = claimsWithPods([claim('vm', 'disk', { volumeMode: 'Block' })], []);
  const container = helperPodManifest(disk!, { image: 'busybox:x', runId: 'r', deadlineSeconds: 600 }).spec!.containers[0]!;
  t.deepEqual(container.volumeDevices, [{ name: 'data', devicePath: '/dev/nkvm-data' }]);
  t.is(container.volumeMounts, undefined);
});

test('who the helper runs as: root by default, the workload in a restricted namespace, the flags over both', (t) => {
  const workload: V1Pod = { ...pod('a', 'web-0', ['data'], 'n1'), spec: { ...pod('a', 'web-0', ['data'], 'n1').spec!, securityContext: { runAsUser: 1000, fsGroup: 2000 } } };
  const [data] = claimsWithPods([claim('a', 'data')], [pod('a', 'root-job', ['data'], 'n1'), workload]);
  t.is(describeIdentity(initialIdentity(data!, {}, false)), 'root');
  t.is(describeIdentity(initialIdentity(data!, {}, true)), 'uid 1000, fsGroup 2000 (pod web-0)');
  t.is(describeIdentity(initialIdentity(data!, { runAsUser: 33, runAsGroup: 33 }, false)), 'uid 33, gid 33, fsGroup 2000 (--run-as-user)');
  t.true(isRoot(initialIdentity(data!, { runAsUser: 0 }, true)), 'an explicit root is kept, and left to admission to judge');
  const [orphan] = claimsWithPods([claim('a', 'data')], []);
  t.is(describeIdentity(workloadIdentity(orphan!)), 'uid 65534, gid 65534 (no pod mounting the claim names a non-root user: nobody)');
});
