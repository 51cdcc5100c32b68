import test from 'ava';
import type { V1PersistentVolumeClaim, V1Pod } from '@kubernetes/client-node';
import { claimsWithPods } from '../../src/backup/discovery.ts';
import { helperPodFailure, helperPodManifest, labelValue, pinnedNodeFor } from '../../src/backup/helper-pod.ts';

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
    { name: 'web-1', node: 'node-1', phase: 'Running' },
    { name: 'web-2', node: 'node-2', phase: 'Running' },
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
  t.is(pinnedNodeFor(rwo!), 'node-7');
  const [rwx] = claimsWithPods([claim('a', 'shared', { accessModes: ['ReadWriteMany'] })], [pod('a', 'web', ['shared'], 'node-7')]);
  t.is(pinnedNodeFor(rwx!), undefined);
  const [idle] = claimsWithPods([claim('a', 'idle')], []);
  t.is(pinnedNodeFor(idle!), undefined);
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
