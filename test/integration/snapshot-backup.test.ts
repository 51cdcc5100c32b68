/**
 * Backups of a live application from CSI snapshots, on a real cluster with a CSI driver that takes
 * them (test/cluster/csi-driver). The application rewrites 100 files, one generation after another,
 * as fast as it can, beside a 32 MiB file that takes tar a while to read: a live copy catches files
 * of many generations (torn); a copy while hooks pause the application at a generation's end, or a
 * snapshot cut while they do, holds one generation. The temporary claim and the VolumeSnapshot are
 * gone after a success, a failure and Ctrl-C; `auto` reads a claim no snapshot class fits live and
 * says why; `always` refuses it; --keep-snapshot keeps the snapshot.
 */
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { restrictedWorkload, seedWorkload, waitForDefaultServiceAccount } from '../cluster/workload.ts';
import { assertNoHelperPods, clusterSuite, createNamespace, kubectlNkvm, type SuiteContext } from './support.ts';

const test = clusterSuite();

const FILES = 100;
/**
 * The application: a generation at a time, each of FILES files gets the generation's number. At a
 * generation's end it honours a pause request (/tmp/pause, what the pre-hook makes) and says it is
 * paused (/tmp/paused) until the post-hook removes the request.
 */
const WRITER = `mkdir -p /data/s && head -c 33554432 /dev/urandom > /data/s/big.bin && g=0
while :; do
  if [ -e /tmp/pause ]; then touch /tmp/paused; while [ -e /tmp/pause ]; do sleep 0.05; done; rm -f /tmp/paused; fi
  g=$((g+1)); i=0
  while [ $i -lt ${FILES} ]; do echo $g > /data/s/f$i; i=$((i+1)); done
  echo $g > /tmp/generation.new && mv /tmp/generation.new /tmp/generation
done`;
const PRE_HOOK = 'touch /tmp/pause; while [ ! -e /tmp/paused ]; do sleep 0.05; done';
const POST_HOOK = 'rm -f /tmp/pause';
const TEMPORARY = 'app.kubernetes.io/component=backup-snapshot';

async function writerWorkload(t: ExecutionContext<SuiteContext>, namespace: string): Promise<void> {
  const { cluster } = t.context;
  await cluster.kubectl(['apply', '-f', '-'], {
    input: `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: db, namespace: ${namespace}}
spec:
  storageClassName: nkvm-csi
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: writer, namespace: ${namespace}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: app
    image: ${cluster.images.helper}
    command: [sh, -c, ${JSON.stringify(WRITER)}]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: db}}]
`,
  });
  await cluster.kubectl(['wait', '--for=condition=Ready', 'pod/writer', '-n', namespace, '--timeout=120s'], { timeoutMs: 130_000 });
  // Writing has begun once a generation is complete.
  await cluster.kubectl(['exec', 'writer', '-n', namespace, '--', 'sh', '-c', 'while [ ! -s /tmp/generation ]; do sleep 0.1; done'], { timeoutMs: 60_000 });
}

/** The generation of each of the files in a tar artifact, in the files' order. */
async function generationsIn(artifact: string, dir: string): Promise<number[]> {
  fs.mkdirSync(dir, { recursive: true });
  await execa('tar', ['-xf', artifact, '-C', dir]);
  return Array.from({ length: FILES }, (_, i) => Number(fs.readFileSync(path.join(dir, 's', `f${i}`), 'utf8').trim()));
}

const distinct = (generations: number[]) => [...new Set(generations)].sort((a, b) => a - b);

async function temporaryObjects(t: ExecutionContext<SuiteContext>, namespace: string): Promise<string> {
  return (await t.context.cluster.kubectl(['get', 'pvc,volumesnapshot', '-n', namespace, '-l', TEMPORARY, '-o', 'name'])).trim();
}

/**
 * After a success or a failure the plugin has waited until its objects were gone; after Ctrl-C it
 * asked for their deletion and waited at most a minute, so a snapshot the driver was still cutting
 * may outlive it: `graceMs` waits for that.
 */
async function assertNoTemporaryObjects(t: ExecutionContext<SuiteContext>, namespace: string, why: string, graceMs = 0): Promise<void> {
  const deadline = Date.now() + graceMs;
  while ((await temporaryObjects(t, namespace)) !== '' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 1000));
  t.is(await temporaryObjects(t, namespace), '', `no temporary claim or VolumeSnapshot is left ${why}`);
  const contents = await t.context.cluster.kubectl(['get', 'volumesnapshotcontent', '-o', `jsonpath={range .items[?(@.spec.volumeSnapshotRef.namespace=="${namespace}")]}{.metadata.name}{"\\n"}{end}`]);
  t.is(contents.trim(), '', `no VolumeSnapshotContent is left ${why}`);
}

test.before(async (t) => {
  t.timeout(10 * 60_000, 'enabling snapshots');
  await t.context.cluster.enableSnapshots();
});

test('a busy application: the live copy is torn; hooks alone, and a snapshot cut while hooks pause it, hold one generation; the temporary objects are removed', async (t) => {
  t.timeout(10 * 60_000);
  const { cluster } = t.context;
  const namespace = await createNamespace(cluster, 'snap');
  t.context.diagnose = { namespace, sourcePod: 'writer' };
  await writerWorkload(t, namespace);
  const home = fs.mkdtempSync(path.join(t.context.workDir, 'snap-'));
  const catalog = path.join(home, 'catalog.sqlite');
  const flags = ['db', '-n', namespace, '--compression', 'none', '--output-dir', path.join(home, 'out'), '--catalog', catalog, '-o', 'json'];
  const backup = async (extra: string[]) => {
    const run = await kubectlNkvm(t.context, ['backup', ...flags, ...extra]);
    t.is(run.exitCode, 0, String(run.stderr) + String(run.stdout));
    return JSON.parse(String(run.stdout)).items[0];
  };

  const live = await backup(['--snapshot', 'never']);
  t.like(live.source, { kind: 'live', reason: 'read live: --snapshot never' });
  const torn = distinct(await generationsIn(live.artifact.path, path.join(home, 'live')));
  t.true(torn.length > 1, `a live copy of a busy application is torn: generations ${torn.join(', ')}`);

  const hooksOnly = await backup(['--snapshot', 'never', '--pre-hook', PRE_HOOK, '--post-hook', POST_HOOK]);
  t.deepEqual(hooksOnly.hooks.map((hook: { phase: string; ok: boolean }) => [hook.phase, hook.ok]), [['pre', true], ['post', true]]);
  t.is(distinct(await generationsIn(hooksOnly.artifact.path, path.join(home, 'hooks'))).length, 1, 'paused for the copy: one generation');

  const snapshot = await backup(['--snapshot', 'always', '--pre-hook', PRE_HOOK, '--post-hook', POST_HOOK]);
  t.like(snapshot.source, { kind: 'snapshot', snapshotClass: 'nkvm-csi-snapclass', kept: false });
  t.regex(snapshot.source.reason, /^a snapshot of class nkvm-csi-snapclass, the only one for driver hostpath\.csi\.nkvm\.local$/);
  t.regex(snapshot.source.volumeSnapshot, /^nkvm-snap-db-/);
  t.regex(snapshot.placement, /it reads claim nkvm-snap-db-\S+, made from the snapshot/);
  t.deepEqual(snapshot.hooks.map((hook: { phase: string; ok: boolean }) => [hook.phase, hook.ok]), [['pre', true], ['post', true]]);
  const held = distinct(await generationsIn(snapshot.artifact.path, path.join(home, 'snapshot')));
  t.is(held.length, 1, `a snapshot cut while paused: one generation (${held.join(', ')})`);
  // Paused for the snapshot only: the application wrote on while the copy was made.
  const now = Number((await cluster.kubectl(['exec', 'writer', '-n', namespace, '--', 'cat', '/tmp/generation'])).trim());
  t.true(now > held[0]!, `the application went on writing during the copy (generation ${now} now, ${held[0]} in the backup)`);
  await assertNoTemporaryObjects(t, namespace, 'after a success');
  const shown = await kubectlNkvm(t.context, ['artifacts', 'show', snapshot.id, '--catalog', catalog]);
  t.regex(String(shown.stdout), /Source: +VolumeSnapshot nkvm-snap-db-\S+ \(class nkvm-csi-snapclass, removed\), read through claim nkvm-snap-db-\S+: a snapshot of class nkvm-csi-snapclass/);

  // --keep-snapshot keeps the VolumeSnapshot, and says its name; the temporary claim still goes.
  const kept = await backup(['--keep-snapshot']);
  t.like(kept.source, { kind: 'snapshot', kept: true });
  t.regex(kept.message, new RegExp(`VolumeSnapshot ${namespace}/${kept.source.volumeSnapshot} kept \\(--keep-snapshot\\)`));
  t.is(await temporaryObjects(t, namespace), `volumesnapshot.snapshot.storage.k8s.io/${kept.source.volumeSnapshot}`);
  await cluster.kubectl(['delete', 'volumesnapshot', kept.source.volumeSnapshot, '-n', namespace, '--wait=true', '--timeout=60s']);
  await assertNoHelperPods(t, 10_000);
});

test('a failed copy from a snapshot, and Ctrl-C during one, remove the temporary claim and the VolumeSnapshot and thaw the application', async (t) => {
  t.timeout(10 * 60_000);
  const { cluster } = t.context;
  const namespace = await createNamespace(cluster, 'snapfail');
  t.context.diagnose = { namespace, sourcePod: 'writer' };
  await writerWorkload(t, namespace);
  const home = fs.mkdtempSync(path.join(t.context.workDir, 'snapfail-'));
  const flags = ['db', '-n', namespace, '--snapshot', 'always', '--output-dir', path.join(home, 'out'), '--catalog', path.join(home, 'catalog.sqlite'), '-o', 'json'];

  const failed = await kubectlNkvm(t.context, ['backup', ...flags, '--helper-image', cluster.images.helperWithoutShell, '--pre-hook', PRE_HOOK, '--post-hook', POST_HOOK]);
  t.is(failed.exitCode, 1, String(failed.stderr));
  const [result] = JSON.parse(String(failed.stdout)).items;
  t.like(result, { status: 'failed', stage: 'copy', source: { kind: 'snapshot' } });
  t.regex(result.message, /^copy stage failed: /);
  await assertNoTemporaryObjects(t, namespace, 'after a failure');

  const run = kubectlNkvm(t.context, ['backup', ...flags, '--pre-hook', PRE_HOOK, '--post-hook', POST_HOOK]);
  // Interrupted once the snapshot exists: while it is made ready, the claim made from it, or the copy.
  const deadline = Date.now() + 60_000;
  while (!(await temporaryObjects(t, namespace)).includes('volumesnapshot') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  run.kill('SIGINT');
  const interrupted = await run;
  t.is(interrupted.exitCode, 130, String(interrupted.stderr));
  t.like(JSON.parse(String(interrupted.stdout) || '{"items":[{}]}').items[0], { status: 'interrupted', source: { kind: 'snapshot' } });
  await assertNoTemporaryObjects(t, namespace, 'after Ctrl-C', 180_000);
  const paused = await cluster.kubectl(['exec', 'writer', '-n', namespace, '--', 'sh', '-c', 'ls /tmp/pause 2>/dev/null || echo thawed']);
  t.is(paused.trim(), 'thawed', 'the post-hook ran after Ctrl-C');
  await assertNoHelperPods(t, 10_000);
});

test('--snapshot auto reads a claim no snapshot class fits live and says why; --snapshot always refuses it; a class of another driver is refused', async (t) => {
  t.timeout(5 * 60_000);
  const { cluster } = t.context;
  const namespace = await createNamespace(cluster, 'snaplive');
  t.context.diagnose = { namespace, sourcePod: 'app' };
  await seedWorkload(cluster, { namespace, claim: 'data', pod: 'app' });
  await waitForDefaultServiceAccount(cluster, namespace);
  const home = fs.mkdtempSync(path.join(t.context.workDir, 'snaplive-'));
  const flags = ['data', '-n', namespace, '--output-dir', path.join(home, 'out'), '--catalog', path.join(home, 'catalog.sqlite'), '-o', 'json'];

  const auto = await kubectlNkvm(t.context, ['backup', ...flags]);
  t.is(auto.exitCode, 0, String(auto.stderr));
  const [live] = JSON.parse(String(auto.stdout)).items;
  t.like(live, { status: 'succeeded', source: { kind: 'live' } });
  t.regex(live.source.reason, /^read live: (its volume is not a CSI volume|no VolumeSnapshotClass is for its CSI driver)/);

  const always = await kubectlNkvm(t.context, ['backup', ...flags, '--snapshot', 'always']);
  t.is(always.exitCode, 1);
  const [refused] = JSON.parse(String(always.stdout)).items;
  t.like(refused, { status: 'failed', stage: 'snapshot', errorCode: 'SnapshotError' });
  t.regex(refused.message, /^no snapshot: --snapshot always: /);
  t.regex(String(always.stderr), /\[SnapshotError\]/);

  // A class of another driver leaves such a claim live (backup --all over claims of several drivers); a class that does not exist is refused.
  const otherClass = await kubectlNkvm(t.context, ['backup', ...flags, '--snapshot-class', 'nkvm-csi-snapclass']);
  t.is(otherClass.exitCode, 0, String(otherClass.stderr));
  t.like(JSON.parse(String(otherClass.stdout)).items[0], { status: 'succeeded', source: { kind: 'live' } });
  const typo = await kubectlNkvm(t.context, ['backup', ...flags, '--snapshot-class', 'nkvm-csi-snapclas']);
  t.is(typo.exitCode, 1);
  t.like(JSON.parse(String(typo.stdout)).items[0], { status: 'failed', stage: 'snapshot', message: 'no snapshot: there is no VolumeSnapshotClass nkvm-csi-snapclas (--snapshot-class)' });
  await assertNoHelperPods(t, 10_000);
});

test('from snapshots, as today: a claim in a Pod Security "restricted" namespace read as the workload\'s user, and a Block claim\'s device image', async (t) => {
  t.timeout(8 * 60_000);
  const { cluster } = t.context;
  const namespace = await createNamespace(cluster, 'snaprestricted');
  const blockNamespace = await createNamespace(cluster, 'snapblock');
  t.context.diagnose = { namespace, sourcePod: 'web' };
  const home = fs.mkdtempSync(path.join(t.context.workDir, 'snapshape-'));
  const store = ['--snapshot', 'always', '--compression', 'none', '--output-dir', path.join(home, 'out'), '--catalog', path.join(home, 'catalog.sqlite'), '-o', 'json'];
  await cluster.kubectl(['label', 'namespace', namespace, 'pod-security.kubernetes.io/enforce=restricted']);
  await cluster.kubectl(['apply', '-f', '-'], {
    input: `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: files, namespace: ${namespace}}
spec: {storageClassName: nkvm-csi, accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
${restrictedWorkload(namespace, 'files', cluster.images.helper)}---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: disk, namespace: ${blockNamespace}}
spec: {storageClassName: nkvm-csi, volumeMode: Block, accessModes: [ReadWriteOnce], resources: {requests: {storage: 8Mi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: vm, namespace: ${blockNamespace}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: app
    image: ${cluster.images.helper}
    command: [sleep, "86400"]
    volumeDevices: [{name: disk, devicePath: /dev/xvda}]
  volumes: [{name: disk, persistentVolumeClaim: {claimName: disk}}]
`,
  });
  await cluster.kubectl(['wait', '--for=condition=Ready', 'pod/web', '-n', namespace, '--timeout=120s'], { timeoutMs: 130_000 });
  await cluster.kubectl(['wait', '--for=condition=Ready', 'pod/vm', '-n', blockNamespace, '--timeout=120s'], { timeoutMs: 130_000 });
  const sh = (ns: string, pod: string, script: string) => cluster.kubectl(['exec', pod, '-n', ns, '--', 'sh', '-c', script]);
  await sh(namespace, 'web', 'mkdir -p /data/app && echo config > /data/app/config.yaml && head -c 1048576 /dev/urandom > /data/app/blob.bin');
  const files = await sh(namespace, 'web', 'cd /data && find . -type f | sort | xargs sha256sum');

  const fromSnapshot = await kubectlNkvm(t.context, ['backup', 'files', '-n', namespace, ...store]);
  t.is(fromSnapshot.exitCode, 0, String(fromSnapshot.stderr) + String(fromSnapshot.stdout));
  const [result] = JSON.parse(String(fromSnapshot.stdout)).items;
  t.like(result, { status: 'succeeded', runAs: 'uid 1000, gid 1000, fsGroup 2000 (pod web)', source: { kind: 'snapshot' } });
  const extracted = path.join(home, 'files');
  fs.mkdirSync(extracted);
  await execa('tar', ['-xf', result.artifact.path, '-C', extracted]);
  t.is((await execa('sh', ['-c', 'find . -type f | sort | xargs sha256sum'], { cwd: extracted })).stdout.trim(), files.trim());

  await sh(blockNamespace, 'vm', 'head -c 2097152 /dev/urandom > /tmp/block && dd if=/tmp/block of=/dev/xvda bs=1M conv=fsync 2>/dev/null');
  const device = (await sh(blockNamespace, 'vm', 'sha256sum < /dev/xvda | cut -d" " -f1')).trim();
  const block = await kubectlNkvm(t.context, ['backup', 'disk', '-n', blockNamespace, ...store]);
  t.is(block.exitCode, 0, String(block.stderr) + String(block.stdout));
  const [image] = JSON.parse(String(block.stdout)).items;
  t.like(image, { status: 'succeeded', volumeMode: 'Block', source: { kind: 'snapshot' }, artifact: { imageSha256: device, tarBytes: 8 * 1024 * 1024 } });
  await assertNoTemporaryObjects(t, namespace, 'after the backups');
  await assertNoTemporaryObjects(t, blockNamespace, 'after the backups');
  await assertNoHelperPods(t, 10_000);
});
