/**
 * Restore fidelity on a real cluster: a claim holding every awkward kind of entry is backed up and
 * restored into a new claim, and a manifest taken inside a pod (path, type, mode, owner, size,
 * mtime, link count, link target, sha256) is identical on both sides, entry for entry. Also: a
 * non-empty or in-use target is refused and left unchanged, overwrite replaces, verify reads the
 * artifact back, and a crafted artifact is rejected before anything is written.
 */
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { Catalog } from '../../src/store/catalog.ts';
import { backupRecord } from '../unit/fixtures/backup-record.ts';
import type { TestCluster } from '../cluster/types.ts';
import { seedWorkload } from '../cluster/workload.ts';
import { assertNoHelperPods, clusterSuite, createNamespace, kubectlNkvm, type SuiteContext } from './support.ts';

const test = clusterSuite();

/** Every kind of entry users lose in other tools' restores (busybox ash; $'...' for odd bytes). */
const FIDELITY_TREE = String.raw`set -e
cd /data
mkdir -p nested/deeper/deepest 'empty dir'
: > zero-bytes
head -c 67108864 /dev/urandom > big-64MiB.bin
dd if=/dev/zero of=sparse bs=1 count=0 seek=104857600 2>/dev/null
echo tail >> sparse
echo hello > nested/file.txt
ln -s file.txt nested/relative-link
ln -s /data/nested/file.txt absolute-link
ln nested/file.txt hard-link
printf a > mode-0600 && chown 65534:65534 mode-0600 && chmod 0600 mode-0600
printf b > mode-0755 && chown 1234:5678 mode-0755 && chmod 0755 mode-0755
printf c > setuid-4755 && chown 1000:1000 setuid-4755 && chmod 4755 setuid-4755
printf d > 'with space'
printf e > $'new\nline'
printf f > $'non-utf8-\377-byte'
printf g > ./-leading-dash
chown 1000:1000 nested
chown -h 4321:4321 nested/relative-link
touch -d @1600000000 nested/file.txt zero-bytes
touch -h -d @1500000000 absolute-link nested/relative-link
touch -d @1400000000 nested/deeper/deepest nested/deeper 'empty dir' nested
`;

/**
 * One line per entry: hex of the name | type | mode | uid | gid | mtime | links | size | sha256 |
 * hex of the link target. Directory sizes are left out: they depend on the file system's history.
 */
const MANIFEST = String.raw`cd /data && find . -print0 | xargs -0 sh -c '
for f; do
  name=$(printf "%s" "$f" | od -An -tx1 | tr -d " \n")
  type=$(stat -c %F "$f")
  meta=$(stat -c "%a|%u|%g|%Y|%h" "$f")
  size=""; hash=""; target=""
  case "$type" in
    "regular file"|"regular empty file") size=$(stat -c %s "$f"); hash=$(sha256sum < "$f" | cut -d" " -f1) ;;
    "symbolic link") size=$(stat -c %s "$f"); target=$(readlink "$f" | od -An -tx1 | tr -d " \n") ;;
  esac
  echo "$name|$type|$meta|$size|$hash|$target"
done' sh | sort`;

function readerPod(namespace: string, name: string, claim: string, image: string): string {
  return `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${namespace}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {name: reader, image: ${image}, command: [sleep, "3600"], volumeMounts: [{name: data, mountPath: /data, readOnly: true}]}
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: ${claim}, readOnly: true}}
`;
}

/** The manifest of a claim, taken by a short-lived pod that mounts it. */
async function manifestOf(cluster: TestCluster, namespace: string, claim: string): Promise<string[]> {
  const pod = `manifest-${Math.random().toString(36).slice(2, 8)}`;
  await cluster.kubectl(['apply', '-f', '-'], { input: readerPod(namespace, pod, claim, cluster.images.helper) });
  try {
    await cluster.kubectl(['wait', '--for=condition=Ready', `pod/${pod}`, '-n', namespace, '--timeout=120s'], { timeoutMs: 130_000 });
    const out = await cluster.kubectl(['exec', pod, '-n', namespace, '--', 'sh', '-c', MANIFEST], { timeoutMs: 300_000 });
    return out.trim().split('\n');
  } finally {
    await cluster.kubectl(['delete', 'pod', pod, '-n', namespace, '--wait=true', '--grace-period=0']);
  }
}

interface Restored {
  namespace: string;
  storeFlags: string[];
  backupId: string;
  sourceManifest: string[];
}

/** Seeds the fidelity tree once, backs it up, and shares the result between the tests below. */
let seeded: Promise<Restored> | undefined;
function seedAndBackUp(t: ExecutionContext<SuiteContext>): Promise<Restored> {
  seeded ??= (async () => {
    const { cluster, workDir } = t.context;
    const namespace = await createNamespace(cluster, 'fidelity');
    await seedWorkload(cluster, { namespace, claim: 'source', pod: 'app' }, FIDELITY_TREE);
    const home = fs.mkdtempSync(path.join(workDir, 'restore-home-'));
    const storeFlags = ['--catalog', path.join(home, 'catalog.sqlite'), '--output-dir', path.join(home, 'artifacts')];
    const backup = await kubectlNkvm(t.context, ['backup', 'source', '-n', namespace, '-o', 'json', ...storeFlags]);
    if (backup.exitCode !== 0) throw new Error(`backup failed: ${backup.stderr}`);
    const [result] = JSON.parse(String(backup.stdout)).items;
    // The source pod no longer needs the claim; the manifest pods mount it read-only.
    await cluster.kubectl(['delete', 'pod', 'app', '-n', namespace, '--wait=true', '--grace-period=0']);
    return { namespace, storeFlags, backupId: result.id, sourceManifest: await manifestOf(cluster, namespace, 'source') };
  })();
  return seeded;
}

test('restore into a new claim gives back every entry exactly: types, modes, owners, sizes, times, links, contents', async (t) => {
  t.timeout(15 * 60_000);
  const { cluster } = t.context;
  const { namespace, storeFlags, backupId, sourceManifest } = await seedAndBackUp(t);
  t.context.diagnose = { namespace };
  t.is(sourceManifest.length, 19, 'every seeded entry, the root included');

  const restore = await kubectlNkvm(t.context, ['restore', backupId.slice(0, 6), '--to', 'copy', '--create', '-n', namespace, '-o', 'json', ...storeFlags]);
  t.is(restore.exitCode, 0, String(restore.stderr) + String(restore.stdout));
  const result = JSON.parse(String(restore.stdout));
  t.like(result, { status: 'succeeded', stage: 'done', backupId, namespace, pvc: 'copy', createdClaim: true, mode: 'empty-only' });

  const restoredManifest = await manifestOf(cluster, namespace, 'copy');
  t.deepEqual(restoredManifest, sourceManifest);
  await assertNoHelperPods(t);

  const rows = await execa('sqlite3', ['-json', storeFlags[1]!, `SELECT backup_id, pvc, status, created_claim FROM restores WHERE id = '${result.id}'`]);
  t.deepEqual(JSON.parse(rows.stdout), [{ backup_id: backupId, pvc: 'copy', status: 'succeeded', created_claim: 1 }]);
});

test('a non-empty target is refused and unchanged; one in use is refused; --mode overwrite replaces the contents', async (t) => {
  t.timeout(15 * 60_000);
  const { cluster } = t.context;
  const { namespace, storeFlags, backupId, sourceManifest } = await seedAndBackUp(t);
  t.context.diagnose = { namespace };
  await seedWorkload(cluster, { namespace, claim: 'busy', pod: 'busy-app' }, 'echo keep-me > /data/existing.txt && mkdir /data/old-dir');

  const inUse = await kubectlNkvm(t.context, ['restore', backupId, '--to', 'busy', '-n', namespace, '-o', 'json', ...storeFlags]);
  t.is(inUse.exitCode, 1);
  t.regex(JSON.parse(String(inUse.stdout)).message, /is in use by pod busy-app \(Running on .*--pin-to-node/);

  await cluster.kubectl(['delete', 'pod', 'busy-app', '-n', namespace, '--wait=true', '--grace-period=0']);
  const before = await manifestOf(cluster, namespace, 'busy');
  const refused = await kubectlNkvm(t.context, ['restore', backupId, '--to', 'busy', '-n', namespace, '-o', 'json', ...storeFlags]);
  t.is(refused.exitCode, 1);
  const refusal = JSON.parse(String(refused.stdout));
  t.like(refusal, { status: 'failed', stage: 'prepare' });
  t.regex(refusal.message, /is not empty .*--mode overwrite/);
  t.deepEqual(await manifestOf(cluster, namespace, 'busy'), before, 'a refused restore changes nothing');

  const dryRun = await kubectlNkvm(t.context, ['restore', backupId, '--to', 'busy', '-n', namespace, '--mode', 'overwrite', '--dry-run', '-o', 'json', ...storeFlags]);
  t.is(dryRun.exitCode, 0, String(dryRun.stderr));
  t.regex(JSON.parse(String(dryRun.stdout)).message, /^dry run: would restore \d+ entries/);
  t.deepEqual(await manifestOf(cluster, namespace, 'busy'), before, 'a dry run changes nothing');

  const overwrite = await kubectlNkvm(t.context, ['restore', backupId, '--to', 'busy', '-n', namespace, '--mode', 'overwrite', '-o', 'json', ...storeFlags]);
  t.is(overwrite.exitCode, 0, String(overwrite.stderr) + String(overwrite.stdout));
  t.deepEqual(await manifestOf(cluster, namespace, 'busy'), sourceManifest, 'overwrite leaves exactly the backup');
  await assertNoHelperPods(t);
});

test('verify reads the artifact back against the catalog, and reports a damaged one', async (t) => {
  const { namespace, storeFlags, backupId } = await seedAndBackUp(t);
  t.context.diagnose = { namespace };
  const ok = await kubectlNkvm(t.context, ['verify', backupId, '-o', 'json', ...storeFlags]);
  t.is(ok.exitCode, 0, String(ok.stderr) + String(ok.stdout));
  const [report] = JSON.parse(String(ok.stdout)).items;
  t.like(report, { id: backupId, ok: true });

  const shown = JSON.parse(String((await kubectlNkvm(t.context, ['artifacts', 'show', backupId, '-o', 'json', ...storeFlags])).stdout));
  const artifact = shown.artifactPath as string;
  const saved = fs.readFileSync(artifact);
  try {
    const damaged = Buffer.from(saved);
    damaged[Math.floor(damaged.length / 2)]! ^= 0xff;
    fs.writeFileSync(artifact, damaged);
    const bad = await kubectlNkvm(t.context, ['verify', backupId, '-o', 'json', ...storeFlags]);
    t.is(bad.exitCode, 1);
    t.like(JSON.parse(String(bad.stdout)).items[0], { ok: false });
    const refused = await kubectlNkvm(t.context, ['restore', backupId, '--to', 'never', '--create', '-n', namespace, '-o', 'json', ...storeFlags]);
    t.is(refused.exitCode, 1);
    t.like(JSON.parse(String(refused.stdout)), { status: 'failed', stage: 'verify' });
  } finally {
    fs.writeFileSync(artifact, saved);
  }
});

test('a crafted artifact with ../, absolute paths or an escaping link is rejected before anything is written', async (t) => {
  const { cluster, workDir } = t.context;
  const namespace = await createNamespace(cluster, 'crafted');
  t.context.diagnose = { namespace };
  const home = fs.mkdtempSync(path.join(workDir, 'crafted-'));
  const catalogFile = path.join(home, 'catalog.sqlite');
  const catalog = await Catalog.open(catalogFile);
  const tree = path.join(home, 'tree');
  fs.mkdirSync(path.join(tree, 'inside'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'inside', 'ok.txt'), 'fine');
  fs.writeFileSync(path.join(home, 'outside.txt'), 'escaped');
  fs.symlinkSync('../../../etc', path.join(tree, 'inside', 'escape'));

  const crafted = [
    ['dot-dot', ['-czf', '-', '-C', tree, '--transform', 's,^inside/ok.txt$,../evil.txt,', 'inside/ok.txt'], /"\.\." path segment/],
    ['absolute', ['-czf', '-', '-P', path.join(home, 'outside.txt')], /absolute/],
    ['escaping-link', ['-czf', '-', '-C', tree, 'inside/escape'], /points outside the archive root/],
  ] as const;
  for (const [name, tarArgs, reason] of crafted) {
    const archive = (await execa('tar', [...tarArgs], { encoding: 'buffer' })).stdout;
    const file = path.join(home, 'artifacts', `${name}.tar.gz`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, archive);
    const id = `crafted${name.replace(/-/g, '')}`.slice(0, 12);
    await catalog.insertBackup(backupRecord({
      id, namespace, pvc: 'victim', status: 'succeeded', artifactPath: file, compression: 'gzip', capacity: '1Gi',
      bytes: archive.length, sha256: createHash('sha256').update(archive).digest('hex'), finishedAt: new Date().toISOString(),
    }));
    const run = await kubectlNkvm(t.context, ['restore', id, '--to', 'victim', '--create', '-n', namespace, '-o', 'json', '--catalog', catalogFile]);
    t.is(run.exitCode, 1, `${name}: ${run.stderr}`);
    const result = JSON.parse(String(run.stdout));
    t.like(result, { status: 'failed', stage: 'verify', errorCode: 'UnsafeArchiveError', createdClaim: false }, name);
    t.regex(result.message, reason, name);
  }
  const victim = await execa('kubectl', ['--kubeconfig', cluster.kubeconfigPath, 'get', 'pvc', 'victim', '-n', namespace], { reject: false, env: { PATH: t.context.pluginPath } });
  t.not(victim.exitCode, 0, 'the target claim was never even created');
  t.is(fs.readFileSync(path.join(home, 'outside.txt'), 'utf8'), 'escaped');
  await assertNoHelperPods(t);
});

test('SIGINT during a restore removes the helper pod, records it as interrupted, and exits 130', async (t) => {
  t.timeout(10 * 60_000);
  const { cluster } = t.context;
  const { namespace, storeFlags, backupId } = await seedAndBackUp(t);
  t.context.diagnose = { namespace };
  const run = kubectlNkvm(t.context, ['restore', backupId, '--to', 'interrupted', '--create', '-n', namespace, '-o', 'json', ...storeFlags]);
  let helperRunning = false;
  for (let attempt = 0; attempt < 480 && !helperRunning; attempt++) {
    const pods = await cluster.kubectl(['get', 'pods', '-n', namespace, '-l', 'nkvm.dev/purpose=restore', '--field-selector=status.phase=Running', '-o', 'name']);
    helperRunning = pods.trim() !== '';
    if (!helperRunning) await new Promise((resolve) => setTimeout(resolve, 250));
  }
  t.true(helperRunning, 'the restore helper pod ran');
  // At once: the 64 MiB file streams in a second or two.
  run.kill('SIGINT');
  const finished = await run;
  t.is(finished.exitCode, 130, String(finished.stderr));
  const rows = await execa('sqlite3', ['-json', storeFlags[1]!, "SELECT status FROM restores WHERE pvc = 'interrupted'"]);
  t.deepEqual(JSON.parse(rows.stdout), [{ status: 'interrupted' }]);
  await assertNoHelperPods(t);
});
