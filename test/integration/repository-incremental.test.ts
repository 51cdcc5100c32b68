/**
 * Incremental on the wire, on a real cluster: a second backup of a claim reads only what changed
 * since its parent snapshot. Judged by a relay that counts the bytes the API server sends (not by
 * the plugin's own figures) and by the real restic: `restic diff` between the snapshots names
 * exactly the files rewritten, `restic check --read-data` passes, and the last snapshot restores
 * to the claim's exact contents.
 */
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { startCountingProxy } from '../cluster/counting-proxy.ts';
import { findRestic } from '../cluster/restic.ts';
import { seedWorkload } from '../cluster/workload.ts';
import { assertNoHelperPods, clusterSuite, createNamespace, kubectlNkvm } from './support.ts';

const test = clusterSuite();

/** 1,200 files of 1 to 96 KiB in 12 directories, and one of 8 MiB: about 64 MiB. */
const SEED = String.raw`set -e
cd /data
head -c 8388608 /dev/urandom > big.bin
d=0
while [ $d -lt 12 ]; do
  mkdir -p "dir $d"
  f=0
  while [ $f -lt 100 ]; do
    head -c $(( (d * 100 + f) % 96 * 1024 + 1024 )) /dev/urandom > "dir $d/file-$f"
    f=$((f + 1))
  done
  d=$((d + 1))
done
`;

/** 1% of the files (12) rewritten with new random bytes of the same size. */
const REWRITE = String.raw`set -e
cd /data
for f in 0 10 20 30 40 50 60 70 80 90; do head -c $(( f % 96 * 1024 + 1024 )) /dev/urandom > "dir 0/file-$f"; done
head -c 2048 /dev/urandom > "dir 5/file-1" && head -c 5000 /dev/urandom > "dir 7/new file"
`;

const SUMS = `cd /data && find . -type f | sort | while read -r f; do sha256sum "$f"; done`;

function du(dir: string): number {
  let total = 0;
  for (const name of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const stat = fs.statSync(path.join(dir, name));
    if (stat.isFile()) total += stat.size;
  }
  return total;
}

test('a second backup reads only what changed: under 1% of the claim through the API server unchanged, under 3% with 1% of its files rewritten', async (t) => {
  t.timeout(10 * 60_000);
  const restic = findRestic();
  const { cluster } = t.context;
  const namespace = await createNamespace(cluster, 'incr');
  t.context.diagnose = { namespace, sourcePod: 'app' };
  await seedWorkload(cluster, { namespace, claim: 'data', pod: 'app' }, SEED, 240_000);
  const home = fs.mkdtempSync(path.join(t.context.workDir, 'incr-home-'));
  const proxy = await startCountingProxy(cluster.kubeconfigPath, path.join(home, 'relayed.kubeconfig'));
  t.teardown(() => proxy.close());
  const env = { NKVM_HOME: home, KUBECONFIG: proxy.kubeconfigFile };
  const flags = ['-n', namespace, '-o', 'json', '--catalog', path.join(home, 'catalog.sqlite')];
  const repo = path.join(home, 'repository');
  const keyFile = path.join(home, 'repository.key');
  const resticRun = (args: string[]) => execa(restic, ['--repo', repo, '--no-cache', ...args], { reject: false, env: { RESTIC_PASSWORD_FILE: keyFile }, timeout: 5 * 60_000 });
  t.is((await kubectlNkvm(t.context, ['repo', 'init'], { env })).exitCode, 0);

  const backup = async () => {
    proxy.reset();
    const run = await kubectlNkvm(t.context, ['backup', 'data', ...flags], { env });
    t.is(run.exitCode, 0, String(run.stderr));
    const [result] = JSON.parse(String(run.stdout)).items;
    t.is(result.status, 'succeeded', result.message);
    return { result, relayed: proxy.received, repoBytes: du(repo) };
  };

  const first = await backup();
  const claimBytes = first.result.snapshot.bytesRead;
  t.true(claimBytes > 60 * 1024 * 1024, `the claim holds ${claimBytes} bytes`);
  t.like(first.result.snapshot, { files: 1201, filesNew: 1201, filesUnmodified: 0 });
  t.true(first.relayed > claimBytes, `the first backup moved the whole claim (${first.relayed} bytes relayed)`);

  // Unchanged: nothing read again, the repository grows by a snapshot file.
  const second = await backup();
  t.like(second.result.snapshot, { parent: first.result.snapshot.id, files: 1201, filesNew: 0, filesChanged: 0, filesUnmodified: 1201, bytesRead: 0 });
  t.true(second.relayed < 0.01 * claimBytes, `unchanged: ${second.relayed} bytes relayed, ${((100 * second.relayed) / claimBytes).toFixed(2)}% of the claim`);
  t.true(second.repoBytes - first.repoBytes < 0.005 * first.repoBytes, `the repository grew by ${second.repoBytes - first.repoBytes} bytes`);
  const row = JSON.parse((await execa('sqlite3', ['-json', path.join(home, 'catalog.sqlite'), `SELECT files_new, files_changed, files_unmodified, bytes_read, bytes_sent FROM backups WHERE id = '${second.result.id}'`])).stdout);
  t.deepEqual(row, [{ files_new: 0, files_changed: 0, files_unmodified: 1201, bytes_read: 0, bytes_sent: second.result.snapshot.bytesSent }]);
  const shown = await kubectlNkvm(t.context, ['artifacts', 'show', second.result.id, '--catalog', path.join(home, 'catalog.sqlite')], { env });
  t.regex(String(shown.stdout), /Files: +0 new, 0 changed \(read\), 1201 unmodified \(not read\)/);
  const noDiff = await resticRun(['diff', first.result.snapshot.id, second.result.snapshot.id]);
  t.is(noDiff.exitCode, 0, String(noDiff.stderr));
  t.notRegex(String(noDiff.stdout), /^[+-M] /m, 'restic sees no difference');

  // 1% rewritten (and one file added): only those are read.
  await cluster.kubectl(['exec', 'app', '-n', namespace, '--', 'sh', '-c', REWRITE]);
  const third = await backup();
  t.like(third.result.snapshot, { parent: second.result.snapshot.id, files: 1202, filesNew: 1, filesChanged: 11, filesUnmodified: 1190 });
  t.true(third.relayed < 0.03 * claimBytes, `1% rewritten: ${third.relayed} bytes relayed, ${((100 * third.relayed) / claimBytes).toFixed(2)}% of the claim`);
  const diff = await resticRun(['diff', second.result.snapshot.id, third.result.snapshot.id]);
  t.is(diff.exitCode, 0, String(diff.stderr));
  const changes = String(diff.stdout).split('\n').filter((line) => /^[+-M] /.test(line)).sort();
  t.deepEqual(changes, [
    '+    /data/data/dir 7/new file',
    ...[0, 10, 20, 30, 40, 50, 60, 70, 80, 90].map((f) => `M    /data/data/dir 0/file-${f}`),
    'M    /data/data/dir 5/file-1',
  ].sort());

  // The real restic reads it all back: sound, and the last snapshot is the claim as it is now.
  const check = await resticRun(['check', '--read-data']);
  t.is(check.exitCode, 0, String(check.stdout) + String(check.stderr));
  const target = fs.mkdtempSync(path.join(home, 'restored-'));
  const restore = await resticRun(['restore', third.result.snapshot.id, '--target', target]);
  t.is(restore.exitCode, 0, String(restore.stderr));
  const inPod = await cluster.kubectl(['exec', 'app', '-n', namespace, '--', 'sh', '-c', SUMS]);
  const restored = (await execa('sh', ['-c', SUMS.replace('cd /data', `cd '${path.join(target, 'data', 'data')}'`)])).stdout;
  t.is(restored.trim(), inPod.trim());
  t.log(`relayed: first ${first.relayed}, unchanged ${second.relayed} (${((100 * second.relayed) / claimBytes).toFixed(2)}%), 1% rewritten ${third.relayed} (${((100 * third.relayed) / claimBytes).toFixed(2)}%)`);
  await assertNoHelperPods(t, 10_000);
});
