/**
 * The shapes real clusters have, on a real cluster: namespaces that enforce Pod Security
 * "restricted" (the helper runs as the workload's user and says what it could not read) and
 * "baseline" (root, owners kept), a ResourceQuota that demands limits, a claim held by a pod that
 * is not running, and raw Block claims backed by loop devices.
 */
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import type { TestCluster } from '../cluster/types.ts';
import { findRestic } from '../cluster/restic.ts';
import { createBoundClaims, restrictedWorkload } from '../cluster/workload.ts';
import { assertNoHelperPods, clusterSuite, createNamespace, kubectlNkvm, type SuiteContext } from './support.ts';

const test = clusterSuite();

interface Store {
  catalog: string;
  outputDir: string;
  flags: string[];
}

function store(t: ExecutionContext<SuiteContext>, prefix: string): Store {
  const home = fs.mkdtempSync(path.join(t.context.workDir, `${prefix}-home-`));
  t.teardown(() => fs.rmSync(home, { recursive: true, force: true }));
  const catalog = path.join(home, 'catalog.sqlite');
  const outputDir = path.join(home, 'artifacts');
  return { catalog, outputDir, flags: ['--catalog', catalog, '--output-dir', outputDir] };
}

function filesUnder(dir: string): string[] {
  return fs.existsSync(dir) ? (fs.readdirSync(dir, { recursive: true }) as string[]).filter((entry) => fs.statSync(path.join(dir, entry)).isFile()) : [];
}

async function sql(catalog: string, query: string): Promise<unknown> {
  return JSON.parse((await execa('sqlite3', ['-json', catalog, query])).stdout || '[]');
}

/** Runs `script` as root in a pod that mounts the claims at /<claim>, then deletes the pod. */
async function asRoot(cluster: TestCluster, namespace: string, claims: string[], script: string): Promise<string> {
  const name = `root-${Math.random().toString(36).slice(2, 8)}`;
  await cluster.kubectl(['apply', '-f', '-'], {
    input: `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${namespace}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: ${cluster.images.helper}
    command: [sleep, "3600"]
    volumeMounts: [${claims.map((claim) => `{name: ${claim}, mountPath: /${claim}}`).join(', ')}]
  volumes: [${claims.map((claim) => `{name: ${claim}, persistentVolumeClaim: {claimName: ${claim}}}`).join(', ')}]
`,
  });
  try {
    await cluster.kubectl(['wait', '--for=condition=Ready', `pod/${name}`, '-n', namespace, '--timeout=120s'], { timeoutMs: 130_000 });
    return await cluster.kubectl(['exec', name, '-n', namespace, '--', 'sh', '-c', script], { timeoutMs: 120_000 });
  } finally {
    await cluster.kubectl(['delete', 'pod', name, '-n', namespace, '--wait=true', '--grace-period=0']);
  }
}

const SUMS = `cd /data && find . -type f | sort | xargs sha256sum`;

test('Pod Security "restricted": backup runs as the workload\'s user, names what it cannot read, keeps it only with --allow-partial; restore and verify round-trip', async (t) => {
  t.timeout(10 * 60_000);
  const { cluster } = t.context;
  const namespace = await createNamespace(cluster, 'restricted');
  t.context.diagnose = { namespace, sourcePod: 'web' };
  const s = store(t, 'restricted');
  await createBoundClaims(cluster, namespace, ['data', 'copy', 'back']);
  // Laid out by root before the namespace is locked down: the workload's files, and two of root's.
  await asRoot(cluster, namespace, ['data', 'copy', 'back'], [
    'cd /data && mkdir -p app/logs private && echo config > app/config.yaml && head -c 2097152 /dev/urandom > app/logs/blob.bin',
    'echo root-only > secret.key && chmod 600 secret.key && echo hidden > private/x && chmod 700 private',
    'chown -R 1000:2000 app && chmod 2775 /data && chgrp 2000 /data',
    'chown 1000:2000 /copy && chmod 2770 /copy',
    'chown 1000:2000 /back && chmod 2770 /back',
  ].join(' && '));
  await cluster.kubectl(['label', 'namespace', namespace, 'pod-security.kubernetes.io/enforce=restricted']);
  await cluster.kubectl(['apply', '-f', '-'], { input: restrictedWorkload(namespace, 'data', cluster.images.helper) });
  await cluster.kubectl(['wait', '--for=condition=Ready', 'pod/web', '-n', namespace, '--timeout=120s'], { timeoutMs: 130_000 });

  const diagnose = await kubectlNkvm(t.context, ['diagnose', 'data', '-n', namespace, '-o', 'json']);
  t.is(diagnose.exitCode, 0, String(diagnose.stderr));
  const report = JSON.parse(String(diagnose.stdout));
  t.like(report.podSecurity, { enforce: 'restricted' });
  t.like(report.helperAdmission, { admitted: true, runAs: 'uid 1000, gid 1000, fsGroup 2000 (pod web)' });

  const refused = await kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, '-o', 'json', ...s.flags]);
  t.is(refused.exitCode, 1, String(refused.stderr));
  const [failed] = JSON.parse(String(refused.stdout)).items;
  t.like(failed, { status: 'failed', stage: 'copy', errorCode: 'UnreadableFilesError', runAs: 'uid 1000, gid 1000, fsGroup 2000 (pod web)', unreadable: { count: 2 } });
  t.deepEqual([...failed.unreadable.sample].sort(), ['private', 'secret.key']);
  t.regex(failed.message, /^copy stage failed: 2 paths could not be read as uid 1000.*--allow-partial/);
  t.deepEqual(filesUnder(s.outputDir), [], 'a refused partial backup leaves no file');

  const partial = await kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, '--allow-partial', '-o', 'json', ...s.flags]);
  t.is(partial.exitCode, 0, String(partial.stderr));
  t.regex(String(partial.stderr), /warning: .*data is a partial backup: .*2 paths could not be read/);
  const [kept] = JSON.parse(String(partial.stdout)).items;
  t.like(kept, { status: 'succeeded', unreadable: { count: 2 }, volumeMode: 'Filesystem' });
  t.deepEqual(await sql(s.catalog, `SELECT run_as, unreadable, volume_mode FROM backups WHERE id = '${kept.id}'`), [
    { run_as: 'uid 1000, gid 1000, fsGroup 2000 (pod web)', unreadable: 2, volume_mode: 'Filesystem' },
  ]);
  const verify = await kubectlNkvm(t.context, ['verify', kept.id, ...s.flags]);
  t.is(verify.exitCode, 0, String(verify.stdout) + String(verify.stderr));

  // Nobody mounts "copy": the user is named, as the workload's.
  const restore = await kubectlNkvm(t.context, ['restore', kept.id, '--to', 'copy', '-n', namespace, '--run-as-user', '1000', '--run-as-group', '1000', '--fs-group', '2000', '-o', 'json', ...s.flags]);
  t.is(restore.exitCode, 0, String(restore.stderr) + String(restore.stdout));
  const restored = JSON.parse(String(restore.stdout));
  t.like(restored, { status: 'succeeded', runAs: 'uid 1000, gid 1000, fsGroup 2000 (--run-as-user)' });
  t.regex(restored.message, /file owners could not be restored: the helper ran as uid 1000/);
  const readable = await cluster.kubectl(['exec', 'web', '-n', namespace, '--', 'sh', '-c', `cd /data/app && find . -type f | sort | xargs sha256sum`]);
  await cluster.kubectl(['delete', 'pod', 'web', '-n', namespace, '--wait=true', '--grace-period=0']);
  await cluster.kubectl(['apply', '-f', '-'], { input: restrictedWorkload(namespace, 'copy', cluster.images.helper) });
  await cluster.kubectl(['wait', '--for=condition=Ready', 'pod/web', '-n', namespace, '--timeout=120s'], { timeoutMs: 130_000 });
  t.is(await cluster.kubectl(['exec', 'web', '-n', namespace, '--', 'sh', '-c', `cd /data/app && find . -type f | sort | xargs sha256sum`]), readable);

  // No pod mounts "back" and no flag names a user: the restore runs as the owner of the claim's root,
  // which nobody (the identity of last resort) could not write into.
  const owner = await kubectlNkvm(t.context, ['restore', kept.id, '--to', 'back', '-n', namespace, '-o', 'json', ...s.flags]);
  t.is(owner.exitCode, 0, String(owner.stderr) + String(owner.stdout));
  t.like(JSON.parse(String(owner.stdout)), { status: 'succeeded', runAs: "uid 1000, gid 2000, fsGroup 2000 (owner of the claim's root)" });

  // Root, asked for outright, is refused by Pod Security: its own diagnosis and exit code, not RBAC's.
  const root = await kubectlNkvm(t.context, ['backup', 'copy', '-n', namespace, '--run-as-user', '0', '-o', 'json', ...s.flags]);
  t.is(root.exitCode, 5, String(root.stderr));
  const [rejected] = JSON.parse(String(root.stdout)).items;
  t.like(rejected, { status: 'failed', stage: 'helper-pod', errorCode: 'KubernetesAdmissionError' });
  t.regex(rejected.message, /refused by admission: the namespace enforces Pod Security level "restricted", and the helper pod violates it: .*runAsNonRoot/);
  t.regex(String(root.stderr), /--run-as-user/);
  t.notRegex(String(root.stderr), /auth can-i|create role/);
  await assertNoHelperPods(t, 10_000);
});

test('Pod Security "baseline": the helper runs as root and the restore gives every file its owner back', async (t) => {
  t.timeout(10 * 60_000);
  const { cluster } = t.context;
  const namespace = await createNamespace(cluster, 'baseline');
  t.context.diagnose = { namespace };
  const s = store(t, 'baseline');
  await createBoundClaims(cluster, namespace, ['data', 'copy']);
  const OWNERS = `cd /data && find . -exec stat -c '%n %u:%g %a' {} + | sort`;
  await asRoot(cluster, namespace, ['data'], 'cd /data && echo a > a && chown 1000:2000 a && mkdir d && echo b > d/b && chown 33:33 d/b && chmod 640 d/b && echo c > c && chmod 600 c');
  await cluster.kubectl(['label', 'namespace', namespace, 'pod-security.kubernetes.io/enforce=baseline']);

  const backup = await kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, '-o', 'json', ...s.flags]);
  t.is(backup.exitCode, 0, String(backup.stderr));
  const [result] = JSON.parse(String(backup.stdout)).items;
  t.like(result, { status: 'succeeded', runAs: 'root' });
  t.false('unreadable' in result);
  const restore = await kubectlNkvm(t.context, ['restore', result.id, '--to', 'copy', '-n', namespace, '-o', 'json', ...s.flags]);
  t.is(restore.exitCode, 0, String(restore.stderr));
  t.like(JSON.parse(String(restore.stdout)), { status: 'succeeded', runAs: 'root' });
  t.notRegex(JSON.parse(String(restore.stdout)).message, /owners could not/);
  const [source, copy] = await Promise.all([
    asRoot(cluster, namespace, ['data'], OWNERS),
    asRoot(cluster, namespace, ['copy'], OWNERS.replace('/data', '/copy')),
  ]);
  t.is(copy, source);
  t.regex(copy, /\.\/d\/b 33:33 640/);
  await assertNoHelperPods(t, 10_000);
});

test('a quota that demands limits admits the default helper; one too small is named with the flags to use', async (t) => {
  t.timeout(5 * 60_000);
  const { cluster } = t.context;
  const namespace = await createNamespace(cluster, 'quota');
  t.context.diagnose = { namespace };
  const s = store(t, 'quota');
  await createBoundClaims(cluster, namespace, ['data']);
  await cluster.kubectl(['create', 'quota', 'q', '--hard=limits.cpu=2,limits.memory=1Gi,requests.cpu=1,requests.memory=512Mi', '-n', namespace]);
  const admitted = await kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, '-o', 'json', ...s.flags]);
  t.is(admitted.exitCode, 0, String(admitted.stderr));

  await cluster.kubectl(['delete', 'quota', 'q', '-n', namespace]);
  await cluster.kubectl(['create', 'quota', 'small', '--hard=limits.memory=100Mi', '-n', namespace]);
  const refused = await kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, '-o', 'json', ...s.flags]);
  t.is(refused.exitCode, 5, String(refused.stderr));
  const [result] = JSON.parse(String(refused.stdout)).items;
  t.like(result, { status: 'failed', stage: 'helper-pod', errorCode: 'KubernetesAdmissionError' });
  t.regex(result.message, /ResourceQuota "small" refused the helper pod: .*exceeded quota/);
  t.regex(String(refused.stderr), /--helper-limits/);
  const fitted = await kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, '--helper-limits', 'memory=64Mi', '-o', 'json', ...s.flags]);
  t.is(fitted.exitCode, 0, String(fitted.stderr));
  await assertNoHelperPods(t, 10_000);
});

test('a claim held by a pod that is scheduled but cannot start: the helper goes to that node and the result says why', async (t) => {
  t.timeout(5 * 60_000);
  const { cluster } = t.context;
  const namespace = await createNamespace(cluster, 'pending');
  t.context.diagnose = { namespace };
  const s = store(t, 'pending');
  await createBoundClaims(cluster, namespace, ['data']);
  await cluster.kubectl(['apply', '-f', '-'], {
    input: `apiVersion: v1
kind: Pod
metadata: {name: stuck, namespace: ${namespace}}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: "nkvm.invalid/no-such-image:1", volumeMounts: [{name: data, mountPath: /data}]}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
`,
  });
  await cluster.kubectl(['wait', '--for=jsonpath={.spec.nodeName}', 'pod/stuck', '-n', namespace, '--timeout=60s'], { timeoutMs: 70_000 });
  const node = (await cluster.kubectl(['get', 'pod', 'stuck', '-n', namespace, '-o', 'jsonpath={.spec.nodeName}'])).trim();
  const backup = await kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, '-o', 'json', ...s.flags]);
  t.is(backup.exitCode, 0, String(backup.stderr));
  const [result] = JSON.parse(String(backup.stdout)).items;
  t.like(result, { status: 'succeeded', node, placement: `on node ${node}, where pod stuck (Pending) holds the ReadWriteOnce claim` });
  await assertNoHelperPods(t, 10_000);
});

/** Writes 1 MiB of random bytes at the start, the middle and the end of the device, through a pod. */
function blockPod(namespace: string, name: string, claim: string, image: string): string {
  return `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${namespace}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {name: c, image: ${image}, command: [sleep, "3600"], volumeDevices: [{name: disk, devicePath: /dev/xvda}]}
  volumes: [{name: disk, persistentVolumeClaim: {claimName: ${claim}}}]
`;
}

async function blockClaim(cluster: TestCluster, namespace: string, name: string, size: string): Promise<void> {
  await cluster.kubectl(['apply', '-f', '-'], {
    input: `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: ${name}, namespace: ${namespace}}
spec: {storageClassName: ${cluster.blockStorageClass}, volumeMode: Block, accessModes: [ReadWriteOnce], resources: {requests: {storage: ${size}}}}
`,
  });
  await cluster.kubectl(['wait', '--for=jsonpath={.status.phase}=Bound', `pvc/${name}`, '-n', namespace, '--timeout=120s'], { timeoutMs: 130_000 });
}

/** A 64Mi Block claim "disk" held by pod "vm" (device /dev/xvda): the device's size in bytes. */
async function blockWorkload(cluster: TestCluster, namespace: string): Promise<number> {
  await blockClaim(cluster, namespace, 'disk', '64Mi');
  await cluster.kubectl(['apply', '-f', '-'], { input: blockPod(namespace, 'vm', 'disk', cluster.images.helper) });
  await cluster.kubectl(['wait', '--for=condition=Ready', 'pod/vm', '-n', namespace, '--timeout=120s'], { timeoutMs: 130_000 });
  return Number((await cluster.kubectl(['exec', 'vm', '-n', namespace, '--', 'blockdev', '--getsize64', '/dev/xvda'])).trim());
}

async function deviceSha256(cluster: TestCluster, namespace: string, claim: string, bytes: number): Promise<string> {
  const pod = `reader-${Math.random().toString(36).slice(2, 8)}`;
  await cluster.kubectl(['apply', '-f', '-'], { input: blockPod(namespace, pod, claim, cluster.images.helper) });
  try {
    await cluster.kubectl(['wait', '--for=condition=Ready', `pod/${pod}`, '-n', namespace, '--timeout=120s'], { timeoutMs: 130_000 });
    return (await cluster.kubectl(['exec', pod, '-n', namespace, '--', 'sh', '-c', `head -c ${bytes} /dev/xvda | sha256sum`])).split(/\s+/)[0]!;
  } finally {
    await cluster.kubectl(['delete', 'pod', pod, '-n', namespace, '--wait=true', '--grace-period=0']);
  }
}

test('a Block claim: backed up as a compressed device image, verified, restored into a device at least as big (never a smaller one), read back identical', async (t) => {
  t.timeout(10 * 60_000);
  const { cluster } = t.context;
  if (!cluster.blockStorageClass) {
    t.log(`the ${cluster.provider} provider has no Block volumes`);
    t.pass();
    return;
  }
  const namespace = await createNamespace(cluster, 'block');
  t.context.diagnose = { namespace, sourcePod: 'vm' };
  const s = store(t, 'block');
  const size = await blockWorkload(cluster, namespace);
  const mib = size / 1048576;
  await cluster.kubectl(['exec', 'vm', '-n', namespace, '--', 'sh', '-c', [0, Math.floor(mib / 2), mib - 1]
    .map((at) => `head -c 1048576 /dev/urandom | dd of=/dev/xvda bs=1048576 seek=${at} conv=fsync 2>/dev/null`)
    .join(' && ')]);
  const source = (await cluster.kubectl(['exec', 'vm', '-n', namespace, '--', 'sh', '-c', 'sha256sum < /dev/xvda'])).split(/\s+/)[0]!;

  const backup = await kubectlNkvm(t.context, ['backup', 'disk', '-n', namespace, '-o', 'json', ...s.flags]);
  t.is(backup.exitCode, 0, String(backup.stderr));
  const [result] = JSON.parse(String(backup.stdout)).items;
  t.like(result, { status: 'succeeded', volumeMode: 'Block', artifact: { tarBytes: size, imageSha256: source, entries: 0 } });
  t.regex(result.artifact.path, /\.img\.zst$/);
  t.true(result.artifact.bytes < 4 * 1048576, `3 MiB of random data and zeros make a small image (${result.artifact.bytes} bytes)`);
  const unpacked = await execa('sh', ['-c', `zstd -dc '${result.artifact.path}' | sha256sum`]);
  t.is(unpacked.stdout.split(/\s+/)[0], source, 'the artifact is the raw image, readable with zstd alone');
  t.deepEqual(await sql(s.catalog, `SELECT volume_mode, content_sha256, tar_bytes FROM backups WHERE id = '${result.id}'`), [
    { volume_mode: 'Block', content_sha256: source, tar_bytes: size },
  ]);
  const verify = await kubectlNkvm(t.context, ['verify', result.id, '-o', 'json', ...s.flags]);
  t.is(verify.exitCode, 0, String(verify.stdout));

  await blockClaim(cluster, namespace, 'small', '32Mi');
  const tooSmall = await kubectlNkvm(t.context, ['restore', result.id, '--to', 'small', '-n', namespace, '--mode', 'overwrite', '-o', 'json', ...s.flags]);
  t.is(tooSmall.exitCode, 1, String(tooSmall.stderr));
  t.regex(JSON.parse(String(tooSmall.stdout)).message, /is a \d+-byte device, smaller than the \d+-byte image; nothing was changed/);

  await blockClaim(cluster, namespace, 'spare', '64Mi');
  const notOverwrite = await kubectlNkvm(t.context, ['restore', result.id, '--to', 'spare', '-n', namespace, '-o', 'json', ...s.flags]);
  t.is(notOverwrite.exitCode, 1, String(notOverwrite.stderr));
  t.regex(JSON.parse(String(notOverwrite.stdout)).message, /Block device, whose contents would be overwritten; nothing was changed. Pass --mode overwrite/);
  const overwrite = await kubectlNkvm(t.context, ['restore', result.id, '--to', 'spare', '-n', namespace, '--mode', 'overwrite', '-o', 'json', ...s.flags]);
  t.is(overwrite.exitCode, 0, String(overwrite.stderr) + String(overwrite.stdout));
  t.regex(JSON.parse(String(overwrite.stdout)).message, /read back, sha256 matches/);
  t.is(await deviceSha256(cluster, namespace, 'spare', size), source);

  const created = await kubectlNkvm(t.context, ['restore', result.id, '--to', 'fresh', '--create', '--storage-class', cluster.blockStorageClass, '-n', namespace, '-o', 'json', ...s.flags]);
  t.is(created.exitCode, 0, String(created.stderr) + String(created.stdout));
  t.like(JSON.parse(String(created.stdout)), { status: 'succeeded', createdClaim: true });
  t.is((await cluster.kubectl(['get', 'pvc', 'fresh', '-n', namespace, '-o', 'jsonpath={.spec.volumeMode}'])).trim(), 'Block');
  t.is(await deviceSha256(cluster, namespace, 'fresh', size), source);

  const intoFiles = await kubectlNkvm(t.context, ['restore', result.id, '--to', 'files', '--create', '-n', namespace, '--dry-run', '-o', 'json', ...s.flags]);
  t.is(intoFiles.exitCode, 0, 'a dry run into a new claim is fine: it would be made a Block claim');
  await assertNoHelperPods(t, 10_000);
});

test('a Block claim into a repository: one file of the device\'s bytes that restic reads and checks, unchanged regions stored once, restored into a new Block claim identical', async (t) => {
  t.timeout(10 * 60_000);
  const { cluster } = t.context;
  if (!cluster.blockStorageClass) {
    t.log(`the ${cluster.provider} provider has no Block volumes`);
    t.pass();
    return;
  }
  const restic = findRestic();
  const namespace = await createNamespace(cluster, 'block-repo');
  t.context.diagnose = { namespace, sourcePod: 'vm' };
  const s = store(t, 'block-repo');
  const repo = path.join(path.dirname(s.catalog), 'repository');
  const env = { RESTIC_PASSWORD: 'block-password' };
  const size = await blockWorkload(cluster, namespace);
  const write = (at: number) => cluster.kubectl(['exec', 'vm', '-n', namespace, '--', 'sh', '-c', `head -c 4194304 /dev/urandom | dd of=/dev/xvda bs=1048576 seek=${at} conv=fsync 2>/dev/null`]);
  await write(0);
  await write(40);
  const source = (await cluster.kubectl(['exec', 'vm', '-n', namespace, '--', 'sh', '-c', 'sha256sum < /dev/xvda'])).split(/\s+/)[0]!;
  t.is((await kubectlNkvm(t.context, ['repo', 'init', repo], { env })).exitCode, 0);

  const backup = await kubectlNkvm(t.context, ['backup', 'disk', '-n', namespace, '--repo', repo, '-o', 'json', ...s.flags], { env });
  t.is(backup.exitCode, 0, String(backup.stderr));
  const [result] = JSON.parse(String(backup.stdout)).items;
  t.like(result, { status: 'succeeded', volumeMode: 'Block', snapshot: { path: '/data/disk', imageSha256: source, bytesRead: size } });
  t.true(result.snapshot.bytesAdded < 10 * 1048576, `8 MiB of random data and zeros add ${result.snapshot.bytesAdded} bytes`);
  // restic reads it as it reads `restic backup --stdin --stdin-filename /data/disk`: one file, the device's bytes.
  const dumped = await execa('sh', ['-c', `'${restic}' --repo '${repo}' --no-cache dump ${result.snapshot.id} /data/disk | sha256sum`], { env });
  t.is(dumped.stdout.split(/\s+/)[0], source);
  const check = await execa(restic, ['--repo', repo, '--no-cache', 'check', '--read-data'], { env, reject: false });
  t.is(check.exitCode, 0, check.stdout + check.stderr);

  // 4 MiB rewritten after the last random region: the rest of the image is stored already. (Before
  // one, the chunk that runs from the zeros into it would differ too: content-defined chunks
  // resynchronise one chunk after a change.)
  await write(52);
  const changed = (await cluster.kubectl(['exec', 'vm', '-n', namespace, '--', 'sh', '-c', 'sha256sum < /dev/xvda'])).split(/\s+/)[0]!;
  const second = await kubectlNkvm(t.context, ['backup', 'disk', '-n', namespace, '--repo', repo, '-o', 'json', ...s.flags], { env });
  t.is(second.exitCode, 0, String(second.stderr));
  const [again] = JSON.parse(String(second.stdout)).items;
  t.like(again.snapshot, { imageSha256: changed, parent: result.snapshot.id });
  t.true(again.snapshot.bytesAdded < 6 * 1048576, `4 MiB rewritten add ${again.snapshot.bytesAdded} bytes`);
  const verify = await kubectlNkvm(t.context, ['verify', again.id, '-o', 'json', ...s.flags], { env });
  t.is(verify.exitCode, 0, String(verify.stdout) + String(verify.stderr));

  const created = await kubectlNkvm(t.context, ['restore', result.id, '--to', 'fresh', '--create', '--storage-class', cluster.blockStorageClass, '-n', namespace, '-o', 'json', ...s.flags], { env });
  t.is(created.exitCode, 0, String(created.stderr) + String(created.stdout));
  t.regex(JSON.parse(String(created.stdout)).message, /read back, sha256 matches/);
  t.is(await deviceSha256(cluster, namespace, 'fresh', size), source);
  // A snapshot found by its ID alone (no catalog row) is known for an image by its one file.
  await blockClaim(cluster, namespace, 'spare', '64Mi');
  const byId = await kubectlNkvm(t.context, ['restore', again.snapshot.id.slice(0, 8), '--to', 'spare', '--mode', 'overwrite', '--repo', repo, '-n', namespace, '-o', 'json', '--catalog', path.join(path.dirname(s.catalog), 'other.sqlite')], { env });
  t.is(byId.exitCode, 0, String(byId.stderr) + String(byId.stdout));
  t.is(await deviceSha256(cluster, namespace, 'spare', size), changed);
  await assertNoHelperPods(t, 10_000);
});
