/**
 * Data movers on a real cluster: pods of the plugin's image that read a claim on its node and write
 * straight into S3 (versitygw on the node's address), judged by the real restic and by the bytes a
 * relay in front of the API server counts; their faults (the pod deleted mid-upload, bad
 * credentials, an image that cannot be pulled, and --mover auto's fallback to exec); a mover reading
 * a claim made from a CSI snapshot; restore's --mover auto, by a mover or, where its image cannot be
 * pulled, over exec.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { execa } from 'execa';
import { findRestic } from '../cluster/restic.ts';
import { startCountingProxy } from '../cluster/counting-proxy.ts';
import { seedWorkload } from '../cluster/workload.ts';
import { loadedPluginImage, s3ServerForPods } from './in-cluster.ts';
import { assertNoHelperPods, clusterSuite, createNamespace, kubectlNkvm, type SuiteContext } from './support.ts';

const test = clusterSuite();

test('--mover pod: a pod of the plugin image reads the claim on its node and writes straight into S3; the API server carries under 1% of the claim; restic checks and restores it; unchanged, the next run reads nothing; restore --mover pod writes it back the same way', async (t) => {
  t.timeout(10 * 60_000);
  const { cluster } = t.context;
  const server = await s3ServerForPods(t);
  if (!server) return;
  const restic = findRestic();
  const image = await loadedPluginImage(t.context);
  const namespace = await createNamespace(cluster, 'mover');
  t.context.diagnose = { namespace, sourcePod: 'app' };
  await seedWorkload(cluster, { namespace, claim: 'data', pod: 'app' }, 'set -e; mkdir -p /data/d; i=0; while [ $i -lt 40 ]; do head -c 524288 /dev/urandom > /data/d/f$i; i=$((i+1)); done; ln -s d/f1 /data/link; chmod 600 /data/d/f2; chown 1234:5678 /data/d/f3');
  const location = server.location('movers');
  const home = fs.mkdtempSync(path.join(t.context.workDir, 'mover-'));
  const proxy = await startCountingProxy(cluster.kubeconfigPath, path.join(home, 'relayed.kubeconfig'));
  t.teardown(() => proxy.close());
  const env = { ...server.env, RESTIC_PASSWORD: 'mover-password', NKVM_HOME: home, KUBECONFIG: proxy.kubeconfigFile };
  t.is((await kubectlNkvm(t.context, ['repo', 'init', location], { env })).exitCode, 0);
  const backup = async () => {
    proxy.reset();
    const run = await kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, '--repo', location, '--mover', 'pod', '--mover-image', image.reference, '-o', 'json'], { env });
    t.is(run.exitCode, 0, String(run.stderr) + String(run.stdout));
    const [result] = JSON.parse(String(run.stdout)).items;
    t.is(result.status, 'succeeded', result.message);
    return { result, relayed: proxy.received };
  };
  const first = await backup();
  const claimBytes = 40 * 524288;
  t.like(first.result.snapshot, { files: 40, filesNew: 40, bytesRead: claimBytes });
  t.regex(first.result.snapshot.mover, /^nkvm-backup-data-/);
  t.true(first.relayed < 0.01 * claimBytes, `the API server sent ${first.relayed} bytes for a ${claimBytes}-byte claim`);
  t.log(`--mover pod: the API server sent ${first.relayed} bytes (${((100 * first.relayed) / claimBytes).toFixed(2)}%) for a ${claimBytes}-byte claim`);

  const resticRun = (args: string[]) => execa(restic, ['--repo', location, '--no-cache', ...args], { env: { ...server.env, RESTIC_PASSWORD: 'mover-password' }, reject: false });
  const check = await resticRun(['check', '--read-data']);
  t.is(check.exitCode, 0, check.stdout + check.stderr);
  const restored = path.join(home, 'restored');
  t.is((await resticRun(['restore', first.result.snapshot.id, '--target', restored])).exitCode, 0);
  const SUMS = 'find . -type f | sort | xargs sha256sum';
  const inClaim = await cluster.kubectl(['exec', 'app', '-n', namespace, '--', 'sh', '-c', `cd /data && ${SUMS}`]);
  t.is((await execa('sh', ['-c', SUMS], { cwd: path.join(restored, 'data', 'data') })).stdout.trim(), inClaim.trim());
  t.is(fs.readlinkSync(path.join(restored, 'data', 'data', 'link')), 'd/f1');
  t.like(fs.statSync(path.join(restored, 'data', 'data', 'd', 'f3')), { uid: 1234, gid: 5678 });

  const second = await backup();
  t.like(second.result.snapshot, { parent: first.result.snapshot.id, filesUnmodified: 40, bytesRead: 0 });

  // And back, the same way: the mover writes the snapshot into a new claim straight from S3.
  proxy.reset();
  const back = await kubectlNkvm(t.context, ['restore', first.result.snapshot.id.slice(0, 8), '--to', 'copy', '--create', '--size', '1Gi', '-n', namespace, '--repo', location, '--mover', 'pod', '--mover-image', image.reference, '-o', 'json'], { env });
  t.is(back.exitCode, 0, String(back.stderr) + String(back.stdout));
  t.regex(JSON.parse(String(back.stdout)).message, /restored 4\d entries from snapshot [0-9a-f]{8} into .*\/copy \(in the cluster, by data mover nkvm-restore-copy-/);
  // No data: what the API server sends is a fixed cost (the new claim, the pod's start, polls of both),
  // 250-480 KB as the machine is loaded; over exec the whole claim would come through it.
  t.true(proxy.received < 0.05 * claimBytes, `the restore: the API server sent ${proxy.received} bytes`);
  t.log(`--mover pod restore: the API server sent ${proxy.received} bytes`);
  const reader = await mountClaim(t, namespace, 'copy');
  t.is((await cluster.kubectl(['exec', reader, '-n', namespace, '--', 'sh', '-c', `cd /data && ${SUMS}`])).trim(), inClaim.trim());
  t.is((await cluster.kubectl(['exec', 'reader', '-n', namespace, '--', 'stat', '-c', '%u:%g %a', '/data/d/f3', '/data/d/f2'])).trim(), '1234:5678 644\n0:0 600');
  t.is((await cluster.kubectl(['exec', 'reader', '-n', namespace, '--', 'readlink', '/data/link'])).trim(), 'd/f1');
  await assertNoHelperPods(t, 10_000);
});

test('mover faults: its pod deleted mid-upload fails the backup with the cause and no snapshot, restic check passes and the next backup succeeds; bad S3 credentials are named, with the exec path\'s exit code; an image that cannot be pulled is named without waiting out --pod-ready-timeout, and --mover auto copies over exec instead', async (t) => {
  t.timeout(8 * 60_000);
  const { cluster } = t.context;
  const server = await s3ServerForPods(t);
  if (!server) return;
  const restic = findRestic();
  const image = await loadedPluginImage(t.context);
  const namespace = await createNamespace(cluster, 'moverfault');
  t.context.diagnose = { namespace, sourcePod: 'app' };
  await seedWorkload(cluster, { namespace, claim: 'data', pod: 'app' }, 'set -e; mkdir -p /data/d; i=0; while [ $i -lt 24 ]; do head -c 8388608 /dev/urandom > /data/d/f$i; i=$((i+1)); done');
  const location = server.location('mover-faults');
  const env = { ...server.env, RESTIC_PASSWORD: 'mover-password', NKVM_HOME: fs.mkdtempSync(path.join(t.context.workDir, 'moverfault-')) };
  t.is((await kubectlNkvm(t.context, ['repo', 'init', location], { env })).exitCode, 0);
  const moverFlags = ['data', '-n', namespace, '--repo', location, '--mover', 'pod', '--mover-image', image.reference, '-o', 'json'];

  // The mover pod deleted while it uploads (as when its node goes away).
  const run = kubectlNkvm(t.context, ['backup', ...moverFlags], { env });
  // Once its first pack is in the bucket the S3 server freezes, so the mover is deleted mid-upload
  // however fast it goes (it uploads the 192 MiB in under 2 s here); the server goes on afterwards.
  const deadline = Date.now() + 60_000;
  while (!server.hasPack('mover-faults') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  server.freeze();
  try {
    const mover = (await cluster.kubectl(['get', 'pods', '-n', namespace, '-l', 'app.kubernetes.io/component=backup-helper', '-o', 'jsonpath={.items[0].metadata.name}'])).trim();
    await cluster.kubectl(['delete', 'pod', mover, '-n', namespace, '--grace-period=0', '--force', '--wait=false']);
  } finally {
    server.thaw();
  }
  const cut = await run;
  t.is(cut.exitCode, 1, String(cut.stderr) + String(cut.stdout));
  const [failed] = JSON.parse(String(cut.stdout)).items;
  t.like(failed, { status: 'failed', stage: 'copy', errorCode: 'CopyStageError' });
  t.regex(failed.message, /^copy stage failed: .*(cut|closed|terminated|exit code|not found|deleted)/i);
  t.is(failed.snapshot, undefined);
  const resticRun = (args: string[]) => execa(restic, ['--repo', location, '--no-cache', ...args], { env: { ...server.env, RESTIC_PASSWORD: 'mover-password' }, reject: false });
  t.is((await resticRun(['snapshots', '--json'])).stdout.trim(), '[]', 'no snapshot was saved');
  const check = await resticRun(['check']);
  t.is(check.exitCode, 0, check.stdout + check.stderr);
  const next = await kubectlNkvm(t.context, ['backup', ...moverFlags], { env });
  t.is(next.exitCode, 0, String(next.stderr) + String(next.stdout));
  t.like(JSON.parse(String(next.stdout)).items[0], { status: 'succeeded', snapshot: { files: 24 } });

  // Bad credentials: the repository's 403, named, with the same exit code as the exec path.
  const badEnv = { ...env, AWS_SECRET_ACCESS_KEY: 'not-the-secret' };
  const refused = await kubectlNkvm(t.context, ['backup', ...moverFlags], { env: badEnv });
  const refusedExec = await kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, '--repo', location, '-o', 'json'], { env: badEnv });
  t.not(refused.exitCode, 0);
  t.is(refused.exitCode, refusedExec.exitCode, 'the same exit code as the exec path');
  t.regex(String(refused.stderr), /403|SignatureDoesNotMatch|InvalidAccessKeyId|AccessDenied/);

  // An image that cannot be pulled (no registry answers here): named, long before --pod-ready-timeout.
  const unpulled = await kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, '--repo', location, '--mover', 'pod', '--mover-image', 'registry.invalid/nkvm/missing:1', '--pod-ready-timeout', '2m', '-o', 'json'], { env });
  t.is(unpulled.exitCode, 1, String(unpulled.stderr));
  const [pull] = JSON.parse(String(unpulled.stdout)).items;
  t.like(pull, { status: 'failed', stage: 'helper-pod' });
  t.regex(pull.message, /ErrImagePull|ImagePullBackOff/);
  t.notRegex(pull.message, /not running after/, 'the pull error ends the wait, not the timeout');
  // --mover auto (the default) copies over exec instead, and says why.
  const fellBack = await kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, '--repo', location, '--mover-image', 'registry.invalid/nkvm/missing:1', '-o', 'json'], { env });
  t.is(fellBack.exitCode, 0, String(fellBack.stderr) + String(fellBack.stdout));
  const [overExec] = JSON.parse(String(fellBack.stdout)).items;
  t.like(overExec, { status: 'succeeded', transfer: { mode: 'exec' }, snapshot: { files: 24 } });
  t.regex(overExec.transfer.reason, /^the mover image registry\.invalid\/nkvm\/missing:1 could not be pulled \(.*(ErrImagePull|ImagePullBackOff).*\): copied over exec instead \(--mover auto\)$/);
  t.is(overExec.snapshot.mover, undefined);
  // And with the image at hand, auto writes from the cluster.
  const auto = await kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, '--repo', location, '--mover-image', image.reference, '-o', 'json'], { env });
  t.is(auto.exitCode, 0, String(auto.stderr));
  t.like(JSON.parse(String(auto.stdout)).items[0], { transfer: { mode: 'pod', reason: 'an S3 repository, written from the cluster (--mover auto)' } });
  await assertNoHelperPods(t, 10_000);
});

test('--mover pod --snapshot always: the mover reads a claim made from a VolumeSnapshot of the workload\'s, writes into S3, and the snapshot\'s objects are removed; restic checks it', async (t) => {
  t.timeout(8 * 60_000);
  const { cluster } = t.context;
  const server = await s3ServerForPods(t);
  if (!server) return;
  await cluster.enableSnapshots();
  const restic = findRestic();
  const image = await loadedPluginImage(t.context);
  const namespace = await createNamespace(cluster, 'moversnap');
  t.context.diagnose = { namespace, sourcePod: 'app' };
  await cluster.kubectl(['apply', '-f', '-'], {
    input: `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: db, namespace: ${namespace}}
spec: {storageClassName: nkvm-csi, accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: app, namespace: ${namespace}}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: ${cluster.images.helper}, command: [sleep, "3600"], volumeMounts: [{name: d, mountPath: /data}]}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: db}}]
`,
  });
  await cluster.kubectl(['wait', '--for=condition=Ready', 'pod/app', '-n', namespace, '--timeout=120s'], { timeoutMs: 130_000 });
  const SUMS = 'find . -type f | sort | xargs sha256sum';
  const inClaim = await cluster.kubectl(['exec', 'app', '-n', namespace, '--', 'sh', '-c', `set -e; mkdir -p /data/t; i=0; while [ $i -lt 20 ]; do head -c 262144 /dev/urandom > /data/t/f$i; i=$((i+1)); done; cd /data && ${SUMS}`]);
  const location = server.location('mover-snapshots');
  const env = { ...server.env, RESTIC_PASSWORD: 'mover-password', NKVM_HOME: fs.mkdtempSync(path.join(t.context.workDir, 'moversnap-')) };
  t.is((await kubectlNkvm(t.context, ['repo', 'init', location], { env })).exitCode, 0);
  const run = await kubectlNkvm(t.context, ['backup', 'db', '-n', namespace, '--repo', location, '--mover', 'pod', '--mover-image', image.reference, '--snapshot', 'always', '-o', 'json'], { env });
  t.is(run.exitCode, 0, String(run.stderr) + String(run.stdout));
  const [result] = JSON.parse(String(run.stdout)).items;
  t.like(result, { status: 'succeeded', source: { kind: 'snapshot', kept: false }, snapshot: { path: '/data/db', files: 20, bytesRead: 20 * 262144 } });
  t.regex(result.snapshot.mover, /^nkvm-backup-nkvm-snap-db-/, 'the mover mounted the claim made from the snapshot');
  const left = await cluster.kubectl(['get', 'pvc,volumesnapshot', '-n', namespace, '-l', 'app.kubernetes.io/component=backup-snapshot', '-o', 'name']);
  t.is(left.trim(), '', 'the temporary claim and the VolumeSnapshot are gone');

  const resticRun = (args: string[]) => execa(restic, ['--repo', location, '--no-cache', ...args], { env: { ...server.env, RESTIC_PASSWORD: 'mover-password' }, reject: false });
  const check = await resticRun(['check', '--read-data']);
  t.is(check.exitCode, 0, check.stdout + check.stderr);
  const restored = path.join(env.NKVM_HOME, 'restored');
  t.is((await resticRun(['restore', result.snapshot.id, '--target', restored])).exitCode, 0);
  t.is((await execa('sh', ['-c', SUMS], { cwd: path.join(restored, 'data', 'db') })).stdout.trim(), inClaim.trim());
  await assertNoHelperPods(t, 10_000);
});

/**
 * A claim of a few files backed up over exec into a new repository on the S3 server pods reach, and
 * the sums of its files: what a restore's tests start from, each in a namespace of its own.
 */
async function backedUpToS3(t: ExecutionContext<SuiteContext>, name: string) {
  const { cluster } = t.context;
  const server = await s3ServerForPods(t);
  if (!server) return undefined;
  const namespace = await createNamespace(cluster, name);
  t.context.diagnose = { namespace, sourcePod: 'app' };
  await seedWorkload(cluster, { namespace, claim: 'data', pod: 'app' }, 'set -e; mkdir -p /data/d; for i in 1 2 3 4; do head -c 262144 /dev/urandom > /data/d/f$i; done; ln -s d/f1 /data/link');
  const location = server.location(name);
  const env = { ...server.env, RESTIC_PASSWORD: 'mover-password', NKVM_HOME: fs.mkdtempSync(path.join(t.context.workDir, `${name}-`)) };
  t.is((await kubectlNkvm(t.context, ['repo', 'init', location], { env })).exitCode, 0);
  const run = await kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, '--repo', location, '--mover', 'exec', '-o', 'json'], { env });
  t.is(run.exitCode, 0, String(run.stderr) + String(run.stdout));
  const snapshotId: string = JSON.parse(String(run.stdout)).items[0].snapshot.id;
  const sums = await claimSums(t, namespace, 'app');
  return { namespace, location, env, snapshotId, sums };
}

const CLAIM_SUMS = 'cd /data && find . -type f | sort | xargs sha256sum && readlink link';

/** The sums of the files in the claim `pod` mounts at /data, and where its symlink points. */
function claimSums(t: ExecutionContext<SuiteContext>, namespace: string, pod: string): Promise<string> {
  return t.context.cluster.kubectl(['exec', pod, '-n', namespace, '--', 'sh', '-c', CLAIM_SUMS]);
}

/** A pod that mounts `claim`, ready: to read what a restore wrote. */
async function mountClaim(t: ExecutionContext<SuiteContext>, namespace: string, claim: string): Promise<string> {
  const { cluster } = t.context;
  await cluster.kubectl(['apply', '-f', '-'], {
    input: `apiVersion: v1
kind: Pod
metadata: {name: reader, namespace: ${namespace}}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: ${cluster.images.helper}, command: [sleep, "3600"], volumeMounts: [{name: d, mountPath: /data}]}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: ${claim}}}]
`,
  });
  await cluster.kubectl(['wait', '--for=condition=Ready', 'pod/reader', '-n', namespace, '--timeout=120s'], { timeoutMs: 130_000 });
  return 'reader';
}

test('restore --mover auto, the default: a snapshot of an S3 repository the pods reach is written by a mover pod, and the result says why', async (t) => {
  t.timeout(8 * 60_000);
  const image = await loadedPluginImage(t.context);
  const source = await backedUpToS3(t, 'restoreauto');
  if (!source) return;
  const { namespace, location, env, snapshotId, sums } = source;
  const run = await kubectlNkvm(t.context, ['restore', snapshotId.slice(0, 8), '--to', 'copy', '--create', '--size', '1Gi', '-n', namespace, '--repo', location, '--mover-image', image.reference, '-o', 'json'], { env });
  t.is(run.exitCode, 0, String(run.stderr) + String(run.stdout));
  const result = JSON.parse(String(run.stdout));
  t.like(result, { status: 'succeeded', transfer: { mode: 'pod', reason: 'an S3 repository, read from the cluster (--mover auto)' } });
  t.regex(result.message, /\(in the cluster, by data mover nkvm-restore-copy-/);
  t.is(await claimSums(t, namespace, await mountClaim(t, namespace, 'copy')), sums);
  await assertNoHelperPods(t, 10_000);
});

test('restore --mover auto: a mover image that cannot be pulled leaves the restore to exec, and the result says why', async (t) => {
  t.timeout(8 * 60_000);
  const source = await backedUpToS3(t, 'restorepull');
  if (!source) return;
  const { namespace, location, env, snapshotId, sums } = source;
  const run = await kubectlNkvm(t.context, ['restore', snapshotId.slice(0, 8), '--to', 'copy', '--create', '--size', '1Gi', '-n', namespace, '--repo', location, '--mover-image', 'registry.invalid/nkvm/missing:1', '--pod-ready-timeout', '2m', '-o', 'json'], { env });
  t.is(run.exitCode, 0, String(run.stderr) + String(run.stdout));
  const result = JSON.parse(String(run.stdout));
  t.like(result, { status: 'succeeded', transfer: { mode: 'exec' } });
  t.regex(result.transfer.reason, /^the mover image registry\.invalid\/nkvm\/missing:1 could not be pulled \(.*(ErrImagePull|ImagePullBackOff).*\): restored over exec instead \(--mover auto\)$/);
  t.regex(result.message, /^restored \d+ entries from snapshot [0-9a-f]{8} into .*\/copy \(the mover image .* could not be pulled/);
  t.is(await claimSums(t, namespace, await mountClaim(t, namespace, 'copy')), sums);
  await assertNoHelperPods(t, 10_000);
});
