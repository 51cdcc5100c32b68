/**
 * Backups into a repository in restic's format, on a real cluster, judged by the real restic:
 * `repo init` with a generated key file, `backup` into it, `snapshots`, and restic's own check,
 * snapshots and restore of what the plugin wrote.
 */
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { findRestic } from '../cluster/restic.ts';
import { startS3Server } from '../cluster/s3-server.ts';
import { LocalBackend } from '../../src/repository/backends/local.ts';
import { acquireLock, encodeLock } from '../../src/repository/lock.ts';
import { formatTime, nowNs } from '../../src/repository/time.ts';
import { Repository } from '../../src/repository/repository.ts';
import { seedWorkload } from '../cluster/workload.ts';
import { assertNoHelperPods, clusterSuite, createNamespace, kubectlNkvm, type SuiteContext } from './support.ts';

const test = clusterSuite();

/** Odd names, links, an empty directory and 5 MiB of random bytes: what a claim holds. */
const TREE = String.raw`set -e
cd /data
mkdir -p -- 'dir with spaces/nested' empty-dir '-leading-dash' 'ünïcødé'
head -c 5242880 /dev/urandom > 'dir with spaces/random.bin'
echo hello > 'ünïcødé/grüße.txt'
echo dash > ./-leading-dash/-file
printf 'line1\nline2\n' > 'dir with spaces/nested/text'
ln -s 'dir with spaces/nested/text' link-to-text
ln 'ünïcødé/grüße.txt' hardlink
chmod 640 'dir with spaces/nested/text'
`;

/** sha256 of every regular file under a root, by relative path, as one sorted text. */
const SUMS = `cd /data && find . -type f | sort | while read -r f; do sha256sum "$f"; done`;

function home(t: ExecutionContext<SuiteContext>): { env: Record<string, string>; dir: string; flags: string[] } {
  const dir = fs.mkdtempSync(path.join(t.context.workDir, 'repo-home-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return { dir, env: { NKVM_HOME: dir }, flags: ['--catalog', path.join(dir, 'catalog.sqlite')] };
}

/** The SUMS of a claim, read by a throw-away pod that mounts it. */
async function sumsOfClaim(t: ExecutionContext<SuiteContext>, namespace: string, claim: string): Promise<string> {
  const { cluster } = t.context;
  const name = `sums-${Math.random().toString(36).slice(2, 8)}`;
  await cluster.kubectl(['apply', '-f', '-'], {
    input: `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${namespace}}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: ${cluster.images.helper}, command: [sleep, "3600"], volumeMounts: [{name: d, mountPath: /data}]}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: ${claim}}}]
`,
  });
  try {
    await cluster.kubectl(['wait', '--for=condition=Ready', `pod/${name}`, '-n', namespace, '--timeout=120s'], { timeoutMs: 130_000 });
    return await cluster.kubectl(['exec', name, '-n', namespace, '--', 'sh', '-c', SUMS]);
  } finally {
    await cluster.kubectl(['delete', 'pod', name, '-n', namespace, '--wait=false', '--grace-period=0']);
  }
}

function resticRun(repo: string, keyFile: string, args: string[]) {
  return execa(findRestic(), ['--repo', repo, '--no-cache', ...args], { reject: false, env: { RESTIC_PASSWORD_FILE: keyFile }, timeout: 5 * 60_000 });
}

test('repo init, then backups go into the repository: restic checks it, lists the snapshot and restores every file; an unchanged claim adds almost nothing', async (t) => {
  t.timeout(10 * 60_000);
  findRestic();
  const { cluster } = t.context;
  const namespace = await createNamespace(cluster, 'repo');
  t.context.diagnose = { namespace, sourcePod: 'app' };
  await seedWorkload(cluster, { namespace, claim: 'data', pod: 'app' }, TREE);
  const h = home(t);

  const init = await kubectlNkvm(t.context, ['repo', 'init', '-o', 'json'], { env: h.env });
  t.is(init.exitCode, 0, String(init.stderr));
  const created = JSON.parse(String(init.stdout));
  const repo = path.join(h.dir, 'repository');
  const keyFile = path.join(h.dir, 'repository.key');
  t.like(created, { repository: repo, keyFile });
  t.is(fs.statSync(keyFile).mode & 0o777, 0o600, 'the generated key file is its owner\'s alone');
  t.regex(String(init.stderr), /password was generated into .*repository\.key.*Keep a copy of it/);

  const first = await kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, '-o', 'json', ...h.flags], { env: h.env });
  t.is(first.exitCode, 0, String(first.stderr));
  const [result] = JSON.parse(String(first.stdout)).items;
  t.like(result, { status: 'succeeded', snapshot: { repository: repo, path: '/data/data' } });
  t.is(result.artifact, undefined, 'no tar artifact beside the snapshot');
  t.true(result.snapshot.bytesAdded > 5 * 1024 * 1024 * 0.9, `added ${result.snapshot.bytesAdded} bytes`);
  const row = JSON.parse((await execa('sqlite3', ['-json', h.flags[1]!, `SELECT status, repository, snapshot_id, files_new, bytes_added FROM backups WHERE id = '${result.id}'`])).stdout);
  t.deepEqual(row, [{ status: 'succeeded', repository: repo, snapshot_id: result.snapshot.id, files_new: result.snapshot.files, bytes_added: result.snapshot.bytesAdded }]);

  // The real restic is the judge: the repository is sound, the snapshot k8up-shaped, the files whole.
  const check = await resticRun(repo, keyFile, ['check', '--read-data']);
  t.is(check.exitCode, 0, String(check.stdout) + String(check.stderr));
  const listed = JSON.parse(String((await resticRun(repo, keyFile, ['snapshots', '--json'])).stdout));
  t.like(listed[0], { id: result.snapshot.id, hostname: namespace, paths: ['/data/data'] });
  const target = fs.mkdtempSync(path.join(h.dir, 'restored-'));
  const restore = await resticRun(repo, keyFile, ['restore', result.snapshot.id, '--target', target]);
  t.is(restore.exitCode, 0, String(restore.stderr));
  const inPod = await cluster.kubectl(['exec', 'app', '-n', namespace, '--', 'sh', '-c', SUMS]);
  const restored = (await execa('sh', ['-c', SUMS.replace('cd /data', `cd '${path.join(target, 'data', 'data')}'`)])).stdout;
  t.is(restored.trim(), inPod.trim());
  t.is(fs.readlinkSync(path.join(target, 'data', 'data', 'link-to-text')), 'dir with spaces/nested/text');
  t.is(fs.statSync(path.join(target, 'data', 'data', 'hardlink')).ino, fs.statSync(path.join(target, 'data', 'data', 'ünïcødé', 'grüße.txt')).ino, 'hard links stay linked');
  t.true(fs.statSync(path.join(target, 'data', 'data', 'empty-dir')).isDirectory());

  const snapshots = await kubectlNkvm(t.context, ['snapshots', '-n', namespace, '--pvc', 'data', '-o', 'json'], { env: h.env });
  t.is(snapshots.exitCode, 0, String(snapshots.stderr));
  t.deepEqual(JSON.parse(String(snapshots.stdout)).items.map((s: { id: string }) => s.id), [result.snapshot.id]);

  // Back into the cluster: the catalogued backup, restored from its snapshot into a new claim.
  const back = await kubectlNkvm(t.context, ['restore', result.id, '--to', 'copy', '--create', '-n', namespace, '-o', 'json', ...h.flags], { env: h.env });
  t.is(back.exitCode, 0, String(back.stderr) + String(back.stdout));
  t.regex(JSON.parse(String(back.stdout)).message, new RegExp(`^restored \\d+ entries from snapshot ${result.snapshot.id.slice(0, 8)} into ${namespace}/copy`));
  t.is((await sumsOfClaim(t, namespace, 'copy')).trim(), inPod.trim());

  // Unchanged, the claim's second snapshot stores no new data (the wire still carries it, for now).
  const second = await kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, '-o', 'json', ...h.flags], { env: h.env });
  t.is(second.exitCode, 0, String(second.stderr));
  const [again] = JSON.parse(String(second.stdout)).items;
  t.true(again.snapshot.bytesAdded < 0.005 * result.snapshot.bytesAdded, `the second backup added ${again.snapshot.bytesAdded} bytes`);
  t.not(again.snapshot.id, result.snapshot.id);
  await assertNoHelperPods(t, 10_000);

  // verify reads each snapshot back whole; a flipped byte in a pack is found.
  const verified = await kubectlNkvm(t.context, ['verify', result.id, ...h.flags], { env: h.env });
  t.is(verified.exitCode, 0, String(verified.stdout) + String(verified.stderr));
  t.regex(String(verified.stdout), new RegExp(`${result.id} .* OK `));
  const packs = (fs.readdirSync(path.join(repo, 'data'), { recursive: true }) as string[])
    .map((name) => path.join(repo, 'data', name))
    .filter((file) => fs.statSync(file).isFile())
    .sort((a, b) => fs.statSync(b).size - fs.statSync(a).size);
  const damaged = fs.readFileSync(packs[0]!);
  damaged[Math.floor(damaged.length / 2)]! ^= 0xff;
  fs.chmodSync(packs[0]!, 0o600);
  fs.writeFileSync(packs[0]!, damaged);
  const broken = await kubectlNkvm(t.context, ['verify', result.id, '-o', 'json', ...h.flags], { env: h.env });
  t.is(broken.exitCode, 1, String(broken.stdout) + String(broken.stderr));
  const [report] = JSON.parse(String(broken.stdout)).items;
  t.like(report, { id: result.id, ok: false });
  t.regex(report.problems.join('; '), new RegExp(`snapshot ${result.snapshot.id.slice(0, 8)} cannot be read back: `));
  // --read-data checks the packs as restic check does, and names both snapshots the pack's blobs cost.
  const checked = await kubectlNkvm(t.context, ['verify', '--all', '--read-data', '-o', 'json', ...h.flags], { env: h.env });
  t.is(checked.exitCode, 1, String(checked.stdout) + String(checked.stderr));
  for (const item of JSON.parse(String(checked.stdout)).items) {
    t.false(item.ok);
    t.regex(item.problems.join('; '), new RegExp(`damages snapshots (?=.*${result.snapshot.id.slice(0, 8)})(?=.*${again.snapshot.id.slice(0, 8)})`));
  }
  const badSubset = await kubectlNkvm(t.context, ['verify', '--all', '--read-data-subset', 'lots', ...h.flags], { env: h.env });
  t.is(badSubset.exitCode, 2, String(badSubset.stderr));
});

test('a wrong password or a missing repository stops the backup before any helper pod, with restic\'s exit codes; a prune\'s lock taken in the lock\'s wait fails the copy', async (t) => {
  t.timeout(5 * 60_000);
  const { cluster } = t.context;
  const namespace = await createNamespace(cluster, 'repo-pw');
  await seedWorkload(cluster, { namespace, claim: 'data', pod: 'app' });
  const h = home(t);
  t.is((await kubectlNkvm(t.context, ['repo', 'init'], { env: h.env })).exitCode, 0);
  const before = fs.readdirSync(path.join(h.dir, 'repository', 'snapshots'));

  const wrong = await kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, '-o', 'json', ...h.flags], { env: { ...h.env, RESTIC_PASSWORD: 'not the password' } });
  t.is(wrong.exitCode, 12, String(wrong.stderr));
  t.regex(String(wrong.stderr), /\[WrongPasswordError\] wrong password or no key found in repository/);
  t.is(String(wrong.stdout), '');
  t.deepEqual(fs.readdirSync(path.join(h.dir, 'repository', 'snapshots')), before, 'nothing was written');
  await assertNoHelperPods(t);

  const missing = await kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, '--repo', path.join(h.dir, 'nowhere'), ...h.flags], { env: h.env });
  t.is(missing.exitCode, 10, String(missing.stderr));
  t.regex(String(missing.stderr), /\[NoRepositoryError\] there is no repository at .*nowhere/);

  // Another process's exclusive lock (a prune, say) stops the backup before any helper pod, naming the holder.
  const repository = await Repository.open(new LocalBackend(path.join(h.dir, 'repository')), fs.readFileSync(path.join(h.dir, 'repository.key'), 'utf8').trim());
  const exclusive = await acquireLock(repository, { exclusive: true });
  try {
    const locked = await kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, ...h.flags], { env: h.env });
    t.is(locked.exitCode, 11, String(locked.stderr));
    t.regex(String(locked.stderr), new RegExp(`\\[RepositoryLockedError\\] repository .* is already locked exclusively by PID ${process.pid} `));
    await assertNoHelperPods(t);
    const unlock = await kubectlNkvm(t.context, ['repo', 'unlock'], { env: h.env });
    t.is(unlock.exitCode, 0, String(unlock.stderr));
    t.regex(String(unlock.stdout), /^removed 0 locks from .*; kept 1 that is not stale/);
  } finally {
    await exclusive.release();
  }
  t.deepEqual(fs.readdirSync(path.join(h.dir, 'repository', 'locks')), [], 'the backup released its shared lock, and ours is gone');

  // A prune's lock that appears while the backup's lock waits for its second look (which goes on
  // while the helper starts; lengthened here) fails the copy: exit 11, no snapshot, no helper left.
  const locksDir = path.join(h.dir, 'repository', 'locks');
  const racing = kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, '-o', 'json', ...h.flags], { env: { ...h.env, NKVM_TEST_LOCK_WAIT_MS: '4000' } });
  for (let waited = 0; fs.readdirSync(locksDir).length === 0; waited += 20) {
    if (waited > 60_000) throw new Error('the backup never wrote its lock');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const pruneLock = await repository.saveUnpacked('locks', encodeLock({ time: formatTime(nowNs()), exclusive: true, hostname: 'pruner', username: 'ops', pid: 4242 }));
  const raced = await racing;
  t.is(raced.exitCode, 11, String(raced.stderr));
  const [racedItem] = JSON.parse(String(raced.stdout)).items as { status: string; errorCode: string; message: string }[];
  t.is(racedItem!.status, 'failed');
  t.is(racedItem!.errorCode, 'RepositoryLockedError');
  t.regex(racedItem!.message, /locked exclusively by PID 4242 on pruner by ops/);
  t.deepEqual(fs.readdirSync(path.join(h.dir, 'repository', 'snapshots')), before, 'no snapshot');
  t.deepEqual(fs.readdirSync(locksDir), [pruneLock], 'the backup removed its own lock');
  await assertNoHelperPods(t);
  await repository.backend.remove('locks', pruneLock);

  // --format tar still makes today's artifacts, whatever repository is configured.
  const tar = await kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, '--format', 'tar', '--output-dir', path.join(h.dir, 'artifacts'), '-o', 'json', ...h.flags], { env: h.env });
  t.is(tar.exitCode, 0, String(tar.stderr));
  t.regex(JSON.parse(String(tar.stdout)).items[0].artifact.path, /\.tar\.zst$/);
});

test('a snapshot the restic CLI wrote is listed and restored into a new claim', async (t) => {
  t.timeout(5 * 60_000);
  const { cluster } = t.context;
  const namespace = await createNamespace(cluster, 'repo-restic');
  t.context.diagnose = { namespace };
  const h = home(t);
  t.is((await kubectlNkvm(t.context, ['repo', 'init'], { env: h.env })).exitCode, 0);
  const repo = path.join(h.dir, 'repository');
  const keyFile = path.join(h.dir, 'repository.key');
  // What k8up does: restic backup of a claim's directory, the namespace as host.
  const source = path.join(h.dir, 'source');
  fs.mkdirSync(path.join(source, 'sub dir'), { recursive: true });
  fs.writeFileSync(path.join(source, 'sub dir', 'a.txt'), 'written by restic\n');
  fs.writeFileSync(path.join(source, 'big.bin'), Buffer.alloc(3 * 1024 * 1024, 7));
  fs.symlinkSync('sub dir/a.txt', path.join(source, 'link'));
  const backup = await resticRun(repo, keyFile, ['backup', '--host', namespace, '--json', source]);
  t.is(backup.exitCode, 0, String(backup.stderr));
  const snapshotId = JSON.parse(String(backup.stdout).trim().split('\n').at(-1)!).snapshot_id as string;

  const listed = await kubectlNkvm(t.context, ['snapshots', '-n', namespace, '-o', 'json'], { env: h.env });
  t.deepEqual(JSON.parse(String(listed.stdout)).items.map((s: { id: string; paths: string[] }) => [s.id, s.paths]), [[snapshotId, [source]]]);

  const restored = await kubectlNkvm(t.context, ['restore', snapshotId.slice(0, 8), '--to', 'from-restic', '--create', '--size', '64Mi', '-n', namespace, '-o', 'json', ...h.flags], { env: h.env });
  t.is(restored.exitCode, 0, String(restored.stderr) + String(restored.stdout));
  const expected = (await execa('sh', ['-c', SUMS.replace('cd /data', `cd '${source}'`)])).stdout;
  t.is((await sumsOfClaim(t, namespace, 'from-restic')).trim(), expected.trim());
  const rows = JSON.parse((await execa('sqlite3', ['-json', h.flags[1]!, 'SELECT backup_id, status FROM restores'])).stdout);
  t.deepEqual(rows, [{ backup_id: snapshotId, status: 'succeeded' }]);
  // verify reads restic's snapshot back by its ID, with no backup of it in the catalog.
  const verified = await kubectlNkvm(t.context, ['verify', snapshotId.slice(0, 8), '-o', 'json', ...h.flags], { env: h.env });
  t.is(verified.exitCode, 0, String(verified.stderr) + String(verified.stdout));
  t.like(JSON.parse(String(verified.stdout)).items[0], { id: snapshotId, namespace, ok: true, problems: [] });
  t.true(JSON.parse(String(verified.stdout)).items[0].entries >= 5);
  await assertNoHelperPods(t, 10_000);
});

test('into an S3 bucket (a real S3 server): repo init, backup, snapshots, and restic checks and restores it from the bucket', async (t) => {
  t.timeout(5 * 60_000);
  const { cluster } = t.context;
  const namespace = await createNamespace(cluster, 'repo-s3');
  t.context.diagnose = { namespace, sourcePod: 'app' };
  await seedWorkload(cluster, { namespace, claim: 'data', pod: 'app' }, TREE);
  const server = await startS3Server();
  t.teardown(() => server.dispose());
  const h = home(t);
  const location = server.location('shop');
  const env = { ...h.env, ...server.env };

  const init = await kubectlNkvm(t.context, ['repo', 'init', location], { env });
  t.is(init.exitCode, 0, String(init.stderr));
  const backup = await kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, '-o', 'json', ...h.flags], { env });
  t.is(backup.exitCode, 0, String(backup.stderr));
  const [result] = JSON.parse(String(backup.stdout)).items;
  t.like(result, { status: 'succeeded', snapshot: { repository: location } });
  const snapshots = await kubectlNkvm(t.context, ['snapshots', '-o', 'name'], { env });
  t.is(String(snapshots.stdout).trim(), result.snapshot.id);

  const keyFile = path.join(h.dir, 'repository.key');
  const resticS3 = (args: string[]) => execa(findRestic(), ['--repo', location, '--no-cache', ...args], { reject: false, env: { RESTIC_PASSWORD_FILE: keyFile, ...server.env }, timeout: 5 * 60_000 });
  const check = await resticS3(['check', '--read-data']);
  t.is(check.exitCode, 0, String(check.stdout) + String(check.stderr));
  const target = fs.mkdtempSync(path.join(h.dir, 'restored-'));
  t.is((await resticS3(['restore', result.snapshot.id, '--target', target])).exitCode, 0);
  const inPod = await cluster.kubectl(['exec', 'app', '-n', namespace, '--', 'sh', '-c', SUMS]);
  t.is((await execa('sh', ['-c', SUMS.replace('cd /data', `cd '${path.join(target, 'data', 'data')}'`)])).stdout.trim(), inPod.trim());

  // A wrong secret is the server's refusal, named, before any helper pod.
  const refused = await kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, ...h.flags], { env: { ...env, AWS_SECRET_ACCESS_KEY: 'wrong' } });
  t.is(refused.exitCode, 1, String(refused.stderr));
  t.regex(String(refused.stderr), /\[RepositoryError\] .*secret access key is likely wrong/);
  await assertNoHelperPods(t, 10_000);
});

test('forget removes what restic forget would remove, and the repository stays sound', async (t) => {
  t.timeout(5 * 60_000);
  const h = home(t);
  t.is((await kubectlNkvm(t.context, ['repo', 'init'], { env: h.env })).exitCode, 0);
  const repo = path.join(h.dir, 'repository');
  const keyFile = path.join(h.dir, 'repository.key');
  const source = path.join(h.dir, 'source');
  fs.mkdirSync(source);
  for (const [i, time] of ['2026-10-30 23:00:00', '2026-10-31 10:00:00', '2026-11-01 09:00:00', '2026-11-01 18:00:00', '2026-11-08 12:00:00', '2026-11-09 12:00:00'].entries()) {
    fs.writeFileSync(path.join(source, 'file'), `version ${i}\n`);
    t.is((await resticRun(repo, keyFile, ['backup', '-q', '--host', 'shop', '--time', time, source])).exitCode, 0);
  }
  const policy = ['--keep-last', '1', '--keep-daily', '2', '--keep-monthly', '2'];
  const oracle = JSON.parse(String((await resticRun(repo, keyFile, ['forget', '--dry-run', '--json', ...policy])).stdout)) as { keep: { id: string }[]; remove: { id: string }[] }[];
  const planned = await kubectlNkvm(t.context, ['forget', ...policy, '--dry-run', '-o', 'json', ...h.flags], { env: h.env });
  t.is(planned.exitCode, 0, String(planned.stderr));
  const [group] = JSON.parse(String(planned.stdout));
  t.deepEqual(group.keep, oracle[0]!.keep.map((snapshot) => snapshot.id));
  t.deepEqual(group.remove, oracle[0]!.remove.map((snapshot) => snapshot.id));
  t.true(group.remove.length > 0);

  const applied = await kubectlNkvm(t.context, ['forget', ...policy, ...h.flags], { env: h.env });
  t.is(applied.exitCode, 0, String(applied.stderr));
  const left = JSON.parse(String((await resticRun(repo, keyFile, ['snapshots', '--json'])).stdout)) as { id: string }[];
  t.deepEqual(left.map((snapshot) => snapshot.id).sort(), [...group.keep].sort());
  t.is((await resticRun(repo, keyFile, ['check'])).exitCode, 0);
  t.deepEqual(fs.readdirSync(path.join(repo, 'locks')), [], 'the exclusive lock is released');

  const empty = await kubectlNkvm(t.context, ['forget', ...h.flags], { env: h.env });
  t.is(empty.exitCode, 2);
  t.regex(String(empty.stderr), /no policy was specified, no snapshots will be removed/);
});
