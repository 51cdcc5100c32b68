/**
 * Which claims of a run share a helper pod, and the shared pod's manifest. The pod's life (created
 * once, removed with its last claim, on failure and Ctrl-C too) is proven on a real cluster in
 * test/integration/shared-helpers.test.ts.
 */
import test from 'ava';
import type { V1PersistentVolumeClaim, V1Pod } from '@kubernetes/client-node';
import { claimsWithPods, type DiscoveredClaim } from '../../src/backup/discovery.ts';
import { sharedHelperPodManifest } from '../../src/backup/helper-pod.ts';
import { ROOT_IDENTITY } from '../../src/backup/helper-identity.ts';
import { SharedHelpers, sharedHelperDeadline } from '../../src/backup/shared-helpers.ts';
import type { KubeClient } from '../../src/kube/client.ts';

function claims(namespace: string, names: string[], node: string): DiscoveredClaim[] {
  const pvcs: V1PersistentVolumeClaim[] = names.map((name) => ({
    metadata: { namespace, name },
    spec: { accessModes: ['ReadWriteOnce'], volumeName: `pv-${name}` },
    status: { phase: 'Bound', capacity: { storage: '1Gi' } },
  }));
  const pods: V1Pod[] = names.map((name) => ({
    metadata: { namespace, name: `app-${name}` },
    spec: { nodeName: node, containers: [], volumes: [{ name: 'data', persistentVolumeClaim: { claimName: name } }] },
    status: { phase: 'Running' },
  }));
  return claimsWithPods(pvcs, pods);
}

test('a shared helper mounts each claim read-only at /data/<pvc>, on their node, as one backup helper', (t) => {
  const members = claims('shop', ['db', 'media.v2'], 'node-1');
  const pod = sharedHelperPodManifest(members, 'node-1', { image: 'busybox:x', runId: 'run1', deadlineSeconds: 600 });
  t.is(pod.metadata!.generateName, 'nkvm-backup-shared-');
  t.like(pod.metadata!.labels, { 'app.kubernetes.io/component': 'backup-helper', 'nkvm.dev/run': 'run1', 'nkvm.dev/purpose': 'backup' });
  t.is(pod.metadata!.annotations!['nkvm.dev/pvc'], 'db,media.v2');
  const spec = pod.spec!;
  t.deepEqual(spec.volumes, [
    { name: 'data-0', persistentVolumeClaim: { claimName: 'db', readOnly: true } },
    { name: 'data-1', persistentVolumeClaim: { claimName: 'media.v2', readOnly: true } },
  ]);
  t.deepEqual(spec.containers[0]!.volumeMounts, [
    { name: 'data-0', mountPath: '/data/db', readOnly: true },
    { name: 'data-1', mountPath: '/data/media.v2', readOnly: true },
  ]);
  t.deepEqual(spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms, [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-1'] }] }]);
  t.deepEqual(spec.containers[0]!.command, ['sleep', '600']);
  t.deepEqual(spec.containers[0]!.securityContext?.capabilities, { drop: ['ALL'], add: ['DAC_OVERRIDE'] });
});

test('claims share a helper only with claims of the same namespace, node and identity; a group of one keeps its own', (t) => {
  const shared = new SharedHelpers({} as KubeClient, { helper: { image: 'busybox:x', runId: 'r', deadlineSeconds: 600 }, podReadyTimeoutMs: 1000, restricted: new Set() });
  const one = claims('shop', ['a', 'b', 'c'], 'node-1');
  const [other] = claims('shop', ['d'], 'node-2');
  const [elsewhere] = claims('blog', ['e'], 'node-1');
  const asUser = claims('shop', ['f', 'g'], 'node-1');
  const user = { uid: 1000, source: '--run-as-user' };
  shared.plan([
    ...one.map((claim) => ({ claim, node: 'node-1', identity: ROOT_IDENTITY })),
    { claim: other!, node: 'node-2', identity: ROOT_IDENTITY },
    { claim: elsewhere!, node: 'node-1', identity: ROOT_IDENTITY },
    ...asUser.map((claim) => ({ claim, node: 'node-1', identity: user })),
  ], 2);
  t.deepEqual(
    [...one, other!, elsewhere!, ...asUser].filter((claim) => shared.shares(claim)).map((claim) => claim.name),
    ['a', 'b', 'c', 'f', 'g'],
  );
});

test('claims no pod holds share where their volumes have the same node affinity, never with claims held on a node', (t) => {
  const shared = new SharedHelpers({} as KubeClient, { helper: { image: 'busybox:x', runId: 'r', deadlineSeconds: 600 }, podReadyTimeoutMs: 1000, restricted: new Set() });
  const onNode = (node: string) => ({ required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [node] }] }] } });
  const [a, b, c, d, e, f] = claims('shop', ['a', 'b', 'c', 'd', 'e', 'f'], 'node-1');
  shared.plan([
    { claim: a!, volumeAffinity: onNode('node-1'), identity: ROOT_IDENTITY },
    { claim: b!, volumeAffinity: onNode('node-1'), identity: ROOT_IDENTITY },
    { claim: c!, volumeAffinity: onNode('node-2'), identity: ROOT_IDENTITY },
    { claim: d!, volumeAffinity: null, identity: ROOT_IDENTITY },
    { claim: e!, volumeAffinity: null, identity: ROOT_IDENTITY },
    { claim: f!, node: 'node-1', identity: ROOT_IDENTITY },
  ], 2);
  t.deepEqual([a, b, c, d, e, f].filter((claim) => shared.shares(claim!)).map((claim) => claim!.name), ['a', 'b', 'd', 'e']);
});

test("a shared helper's deadline gives each claim the whole --helper-deadline, as many rounds as the claims take", (t) => {
  t.is(sharedHelperDeadline(21600, 8, 4), 2 * 21600);
  t.is(sharedHelperDeadline(21600, 8, 1), 8 * 21600);
  t.is(sharedHelperDeadline(600, 3, 4), 600);
  t.is(sharedHelperDeadline(600, 5, 4), 1200);
});

test('a member that is done leaves the group: the pod of a group nobody started is never made', async (t) => {
  const shared = new SharedHelpers({} as KubeClient, { helper: { image: 'busybox:x', runId: 'r', deadlineSeconds: 600 }, podReadyTimeoutMs: 1000, restricted: new Set() });
  const members = claims('shop', ['a', 'b'], 'node-1');
  shared.plan(members.map((claim) => ({ claim, node: 'node-1', identity: ROOT_IDENTITY })), 1);
  // Neither acquired: releasing both, and closing, call the API for nothing (the client here has none).
  await shared.release(members[0]!);
  t.false(shared.shares(members[0]!));
  t.true(shared.shares(members[1]!));
  await shared.release(members[1]!);
  await shared.close();
  t.false(shared.shares(members[1]!));
});
