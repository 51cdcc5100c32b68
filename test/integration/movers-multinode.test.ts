/**
 * Data movers on several nodes: a KinD cluster of one control plane and two workers, four claims of
 * the default class (local-path, bound on first use) each mounted by a pod pinned to a worker, two
 * per worker. `backup --all --parallel 4 --mover pod` runs every mover on its claim's node (the
 * plugin's report and the scheduler's events agree) and writes into an S3 server on the host, which
 * listens only on the host's address on the cluster's Docker network; restic checks every pack.
 * With --max-per-node 1 the copies on one node never overlap, while the two nodes copy at the same
 * time. A mover whose node dies mid-upload (the node's container frozen) fails its backup, and the
 * repository and the next backup are fine once the node is back.
 *
 * Always its own KinD cluster, whatever NKVM_CLUSTER_PROVIDER says: the local provider has one node.
 * ava.integration.config.mjs leaves the file out of the run of every suite, so it runs only when
 * named (scripts/test-integration.sh names it beside the KinD smoke suite).
 */
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type ExecutionContext } from 'ava';
import { buildImage, type BuiltImage } from '../../scripts/image/build.ts';
import { kindNetworkGateway, startKindCluster } from '../cluster/kind.ts';
import { findRestic } from '../cluster/restic.ts';
import { startS3Server, type S3Server } from '../cluster/s3-server.ts';
import type { TestCluster } from '../cluster/types.ts';
import { assertNoHelperPods, clusterSuite, createNamespace, integrationEnabled, kubectlNkvm, type SuiteContext } from './support.ts';

const WORKERS = 2;
const CLAIMS_PER_WORKER = 2;
/** Per claim: files of 1 MiB of random bytes, so that the movers read and upload for a while. */
const MIB_PER_CLAIM = 24;
const PASSWORD = 'multinode-password';

const test = clusterSuite({
  ownCluster: 'a KinD cluster with two workers',
  startCluster: () => startKindCluster({ workers: WORKERS }),
});

interface Workload {
  namespace: string;
  /** Each claim's name, and the node of the pod that mounts it. */
  claimNodes: Map<string, string>;
  workers: string[];
}

interface Result {
  pvc: string;
  status: string;
  message: string;
  node: string;
  helperPod: string;
  copyStartedAt: string;
  copyFinishedAt: string;
  transfer: { mode: string; reason: string };
  snapshot: { id: string; mover: string; path: string };
}

/** A claim of the default class and a pod that mounts it, placed by the scheduler on `node` (it binds the claim there). */
function pinnedClaimAndPod(namespace: string, claim: string, node: string, cluster: TestCluster): string {
  return `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: ${claim}, namespace: ${namespace}}
spec:
  storageClassName: ${cluster.storageClass}
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: app-${claim}, namespace: ${namespace}}
spec:
  terminationGracePeriodSeconds: 0
  nodeSelector: {kubernetes.io/hostname: ${node}}
  containers:
  - name: app
    image: ${cluster.images.helper}
    command: [sleep, "86400"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: ${claim}}}]
`;
}

/** The workers (their names), the claims and their pods, made once for the suite. */
let workload: Promise<Workload> | undefined;
function seededWorkload(context: SuiteContext): Promise<Workload> {
  workload ??= (async () => {
    const { cluster } = context;
    const nodes = JSON.parse(await cluster.kubectl(['get', 'nodes', '-o', 'json'])) as { items: { metadata: { name: string; labels: Record<string, string> } }[] };
    const workers = nodes.items.filter((node) => !('node-role.kubernetes.io/control-plane' in node.metadata.labels)).map((node) => node.metadata.name).sort();
    if (nodes.items.length !== WORKERS + 1 || workers.length !== WORKERS) throw new Error(`expected one control plane and ${WORKERS} workers, got ${nodes.items.map((n) => n.metadata.name).join(', ')}`);
    const namespace = await createNamespace(cluster, 'multinode');
    const placed = workers.flatMap((node, w) => Array.from({ length: CLAIMS_PER_WORKER }, (_, c) => ({ claim: `data-${w}-${c}`, node })));
    await cluster.kubectl(['apply', '-f', '-'], { input: placed.map(({ claim, node }) => pinnedClaimAndPod(namespace, claim, node, cluster)).join('---\n') });
    await cluster.kubectl(['wait', '--for=condition=Ready', ...placed.map(({ claim }) => `pod/app-${claim}`), '-n', namespace, '--timeout=180s'], { timeoutMs: 190_000 });
    // Written inside each pod, side by side.
    const seed = `set -e; mkdir -p /data/d; i=0; while [ $i -lt ${MIB_PER_CLAIM} ]; do head -c 1048576 /dev/urandom > /data/d/f$i; i=$((i+1)); done`;
    await Promise.all(placed.map(({ claim }) => cluster.kubectl(['exec', `app-${claim}`, '-n', namespace, '--', 'sh', '-c', seed], { timeoutMs: 180_000 })));
    // Where each claim lives: the node its pod runs on, as the API server has it.
    const claimNodes = new Map<string, string>();
    for (const { claim } of placed) claimNodes.set(claim, (await cluster.kubectl(['get', 'pod', `app-${claim}`, '-n', namespace, '-o', 'jsonpath={.spec.nodeName}'])).trim());
    return { namespace, claimNodes, workers };
  })();
  return workload;
}

/** The plugin image, built from dist/release once for the suite and loaded into every node. */
let pluginImage: Promise<BuiltImage> | undefined;
function loadedPluginImage(context: SuiteContext): Promise<BuiltImage> {
  pluginImage ??= (async () => {
    const built = buildImage(path.join(context.workDir, 'image'));
    await context.cluster.loadImageArchive(built.archive);
    return built;
  })();
  return pluginImage;
}

/** The S3 server, on the host's address on the cluster's Docker network only: the nodes' pods reach it there. */
let s3Server: Promise<S3Server> | undefined;
function s3ServerForPods(context: SuiteContext): Promise<S3Server> {
  s3Server ??= kindNetworkGateway(context.cluster).then((host) => startS3Server({ host }));
  return s3Server;
}
if (integrationEnabled) {
  anyTest.after.always(async () => {
    await (await s3Server?.catch(() => undefined))?.dispose();
  });
}

/** The node the scheduler assigned each pod of the namespace to, from its Scheduled events (they outlive the movers). */
async function scheduledNodes(cluster: TestCluster, namespace: string): Promise<Map<string, string>> {
  const events = JSON.parse(await cluster.kubectl(['get', 'events', '-n', namespace, '--field-selector', 'reason=Scheduled', '-o', 'json'])) as {
    items: { involvedObject: { name: string }; message: string }[];
  };
  return new Map(events.items.map((event) => [event.involvedObject.name, /\bto (\S+)$/.exec(event.message)?.[1] ?? `? (${event.message})`]));
}

/**
 * Backs every claim of the namespace up with movers into a new repository under `prefix`; checks
 * what every such run must hold, and returns the results.
 */
async function backupWithMovers(t: ExecutionContext<SuiteContext>, prefix: string, extra: string[] = []): Promise<Result[]> {
  const { cluster } = t.context;
  const { namespace, claimNodes, workers } = await seededWorkload(t.context);
  const image = await loadedPluginImage(t.context);
  const server = await s3ServerForPods(t.context);
  const location = server.location(prefix);
  const env = { ...server.env, RESTIC_PASSWORD: PASSWORD, NKVM_HOME: path.join(t.context.workDir, `home-${prefix}`) };
  const init = await kubectlNkvm(t.context, ['repo', 'init', location], { env });
  t.is(init.exitCode, 0, String(init.stderr));
  const started = Date.now();
  const run = await kubectlNkvm(t.context, ['backup', '--all', '-n', namespace, '--parallel', '4', ...extra, '--repo', location, '--mover', 'pod', '--mover-image', image.reference, '-o', 'json'], { env });
  t.log(`backup --all ${extra.join(' ')}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  t.is(run.exitCode, 0, String(run.stderr) + String(run.stdout));
  const results = (JSON.parse(String(run.stdout)) as { items: Result[] }).items;
  t.deepEqual(results.map((r) => r.pvc).sort(), [...claimNodes.keys()].sort());
  const scheduled = await scheduledNodes(cluster, namespace);
  for (const result of results) {
    const claimNode = claimNodes.get(result.pvc) ?? `(no pod mounts ${result.pvc})`;
    t.is(result.status, 'succeeded', `${result.pvc}: ${result.message}`);
    t.is(result.transfer.mode, 'pod', `${result.pvc}: ${result.transfer.reason}`);
    t.is(result.snapshot.mover, result.helperPod, `${result.pvc}: the snapshot was written by its mover`);
    t.is(result.node, claimNode, `${result.pvc}: the plugin reports its mover on the claim's node`);
    t.is(scheduled.get(result.helperPod), claimNode, `${result.pvc}: the scheduler put mover ${result.helperPod} on the claim's node`);
  }
  t.deepEqual([...new Set(results.map((r) => r.node))].sort(), workers, 'movers ran on both workers');

  // restic, from this machine: every pack read back and verified, one snapshot per claim, whole.
  const restic = (args: string[]) => execa(findRestic(), ['--repo', location, '--no-cache', ...args], { env: { ...server.env, RESTIC_PASSWORD: PASSWORD }, reject: false, timeout: 5 * 60_000 });
  const check = await restic(['check', '--read-data']);
  t.is(check.exitCode, 0, check.stdout + check.stderr);
  const snapshots = JSON.parse((await restic(['snapshots', '--json'])).stdout) as { short_id: string; id: string; paths: string[]; hostname: string }[];
  t.deepEqual(snapshots.map((s) => s.paths.join(',')).sort(), results.map((r) => `/data/${r.pvc}`).sort(), 'one snapshot per claim');
  t.deepEqual(snapshots.map((s) => s.id).sort(), results.map((r) => r.snapshot.id).sort(), 'the snapshots are the ones the results name');
  const SUMS = 'find . -type f | sort | xargs sha256sum';
  for (const result of results) {
    const restored = fs.mkdtempSync(path.join(t.context.workDir, `restored-${result.pvc}-`));
    t.is((await restic(['restore', result.snapshot.id, '--target', restored])).exitCode, 0);
    const inClaim = await cluster.kubectl(['exec', `app-${result.pvc}`, '-n', namespace, '--', 'sh', '-c', `cd /data && ${SUMS}`]);
    t.is((await execa('sh', ['-c', SUMS], { cwd: path.join(restored, 'data', result.pvc) })).stdout.trim(), inClaim.trim(), `${result.pvc}: restored as it is in the claim`);
    fs.rmSync(restored, { recursive: true, force: true });
  }
  await assertNoHelperPods(t, 10_000);
  return results;
}

test('backup --all --parallel 4 --mover pod: every mover runs on its claim\'s node and writes into S3; restic check --read-data passes', async (t) => {
  t.timeout(10 * 60_000);
  const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;
  let started = Date.now();
  const { namespace, claimNodes } = await seededWorkload(t.context);
  t.context.diagnose = { namespace };
  t.log(`${claimNodes.size} claims bound and seeded in ${seconds(started)}: ${[...claimNodes].map(([claim, node]) => `${claim} on ${node}`).join(', ')}`);
  started = Date.now();
  await loadedPluginImage(t.context);
  t.log(`plugin image built and loaded into every node in ${seconds(started)}`);
  const server = await s3ServerForPods(t.context);
  t.log(`S3 server on ${server.endpoint}`);
  await backupWithMovers(t, 'all');
});

test('--max-per-node 1: the copies on each node run one after another, while the two nodes copy at the same time', async (t) => {
  t.timeout(10 * 60_000);
  const { namespace } = await seededWorkload(t.context);
  t.context.diagnose = { namespace };
  // A new repository: every copy reads and uploads all of its claim.
  const results = await backupWithMovers(t, 'max-per-node', ['--max-per-node', '1']);
  const spans = results
    .map((r) => ({ pvc: r.pvc, node: r.node, start: Date.parse(r.copyStartedAt), end: Date.parse(r.copyFinishedAt) }))
    .sort((a, b) => a.start - b.start);
  t.log(spans.map((s) => `${s.pvc} on ${s.node}: ${new Date(s.start).toISOString()} .. ${new Date(s.end).toISOString()}`).join('\n'));
  t.true(spans.every((s) => Number.isFinite(s.start) && Number.isFinite(s.end) && s.start <= s.end), 'every result has its copy interval');
  for (const node of new Set(spans.map((s) => s.node))) {
    const onNode = spans.filter((s) => s.node === node);
    for (let i = 1; i < onNode.length; i++) {
      t.true(onNode[i]!.start >= onNode[i - 1]!.end, `on ${node}, ${onNode[i]!.pvc}'s copy began before ${onNode[i - 1]!.pvc}'s ended`);
    }
  }
  const acrossNodes = spans.some((a) => spans.some((b) => a.node !== b.node && a.start < b.end && b.start < a.end));
  t.true(acrossNodes, 'copies on different nodes ran at the same time');
});

/** Polls until `found` says yes, or throws after `timeoutMs`. */
async function until(what: string, found: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await found())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000}s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// Last (a suite's tests run one after another): a node that does not come back fails this test alone.
test('the mover\'s node dies mid-upload (its container frozen): the backup fails on the mover\'s silence, no snapshot; once the node is back, restic check passes and the next backup succeeds', async (t) => {
  t.timeout(10 * 60_000);
  const { cluster } = t.context;
  const { workers } = await seededWorkload(t.context);
  const node = workers[1]!;
  const namespace = await createNamespace(cluster, 'node-dies');
  t.context.diagnose = { namespace };
  // Enough random data that the mover is still uploading when its node stops: 320 MiB.
  await cluster.kubectl(['apply', '-f', '-'], { input: pinnedClaimAndPod(namespace, 'big', node, cluster) });
  await cluster.kubectl(['wait', '--for=condition=Ready', 'pod/app-big', '-n', namespace, '--timeout=180s'], { timeoutMs: 190_000 });
  await cluster.kubectl(['exec', 'app-big', '-n', namespace, '--', 'sh', '-c', 'for i in 0 1 2 3 4 5 6 7 8 9; do head -c 33554432 /dev/urandom > /data/f$i; done'], { timeoutMs: 180_000 });
  const image = await loadedPluginImage(t.context);
  const server = await s3ServerForPods(t.context);
  const location = server.location('node-dies');
  const env = { ...server.env, RESTIC_PASSWORD: PASSWORD, NKVM_HOME: path.join(t.context.workDir, 'home-node-dies') };
  t.is((await kubectlNkvm(t.context, ['repo', 'init', location], { env })).exitCode, 0);
  const backup = ['backup', 'big', '-n', namespace, '--repo', location, '--mover', 'pod', '--mover-image', image.reference, '-o', 'json'];
  const restic = (args: string[]) => execa(findRestic(), ['--repo', location, '--no-cache', ...args], { env: { ...server.env, RESTIC_PASSWORD: PASSWORD }, reject: false, timeout: 5 * 60_000 });

  const running = kubectlNkvm(t.context, backup, { env: { ...env, NKVM_MOVER_SILENCE_SECONDS: '15' } });
  // The first pack in the bucket: the mover is uploading.
  await until('a pack uploaded by the mover', () => server.hasPack('node-dies'), 120_000);
  await execa('docker', ['pause', node]);
  const frozenAt = Date.now();
  let paused = true;
  t.teardown(async () => {
    if (paused) await execa('docker', ['unpause', node], { reject: false });
  });
  const died = await running;
  t.log(`the backup ended ${((Date.now() - frozenAt) / 1000).toFixed(1)} s after ${node} froze`);
  t.is(died.exitCode, 1, String(died.stderr));
  const [result] = (JSON.parse(String(died.stdout)) as { items: Result[] }).items;
  t.is(result!.status, 'failed');
  t.regex(result!.message, /copy stage failed: the mover in pod \S+ sent nothing for 15s .*its node is down, frozen or cut off/);
  t.is(result!.node, node);
  // While the node is still frozen: the mover's pod is gone from the API, no snapshot was written.
  await assertNoHelperPods(t);
  const snapshots = await restic(['snapshots', '--json']);
  t.is(snapshots.exitCode, 0, snapshots.stderr);
  t.deepEqual(JSON.parse(snapshots.stdout), [], 'no snapshot');
  const locks = await restic(['list', 'locks', '--no-lock']);
  t.is(locks.stdout.trim(), '', 'the lost mover\'s lock was removed');

  await execa('docker', ['unpause', node]);
  paused = false;
  await cluster.kubectl(['wait', '--for=condition=Ready', `node/${node}`, '--timeout=120s'], { timeoutMs: 130_000 });
  const check = await restic(['check', '--read-data']);
  t.is(check.exitCode, 0, check.stdout + check.stderr);
  const again = await kubectlNkvm(t.context, backup, { env });
  t.is(again.exitCode, 0, String(again.stderr) + String(again.stdout));
  const [next] = (JSON.parse(String(again.stdout)) as { items: Result[] }).items;
  t.is(next!.status, 'succeeded', next!.message);
  const after = await restic(['check', '--read-data']);
  t.is(after.exitCode, 0, after.stdout + after.stderr);
  t.true((JSON.parse((await restic(['snapshots', '--json'])).stdout) as { id: string }[]).some((s) => s.id === next!.snapshot.id), 'the next backup\'s snapshot is in the repository');
  await assertNoHelperPods(t, 10_000);
});
