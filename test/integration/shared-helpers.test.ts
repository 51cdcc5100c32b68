/**
 * Claims held on one node share one helper pod (src/backup/shared-helpers.ts), on a real cluster:
 * each claim's artifact and snapshot hold its own files and no other's, a claim that no pod holds
 * keeps a helper of its own, an incremental backup lists and reads each claim at its own mount, and
 * no helper pod is left behind.
 */
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { findRestic } from '../cluster/restic.ts';
import { createBoundClaims, seedWorkload } from '../cluster/workload.ts';
import { assertNoHelperPods, clusterSuite, createNamespace, kubectlNkvm } from './support.ts';

const test = clusterSuite();

interface Result {
  pvc: string;
  status: string;
  message: string;
  helperPod: string;
  node: string;
  artifact?: { path: string };
  snapshot?: { id: string; files: number; filesNew: number; filesUnmodified: number; bytesRead: number };
}

/** Each claim gets files named after it, in a directory of its own. */
const seedFor = (claim: string) => `set -e; mkdir -p /data/${claim}-dir; echo ${claim} > /data/only-${claim}.txt; head -c 300000 /dev/urandom > /data/${claim}-dir/blob.bin`;
const filesOf = (claim: string) => ['./', `./${claim}-dir/`, `./${claim}-dir/blob.bin`, `./only-${claim}.txt`];

test('claims held on one node share a helper pod; each artifact holds its own claim only; claims no pod holds share another', async (t) => {
  t.timeout(6 * 60_000);
  const { cluster, workDir } = t.context;
  const namespace = await createNamespace(cluster, 'shared');
  t.context.diagnose = { namespace };
  const held = ['alpha', 'bravo', 'charlie'];
  await Promise.all(held.map((claim) => seedWorkload(cluster, { namespace, claim, pod: `app-${claim}` }, seedFor(claim))));
  // Bound, and then held by no pod: their volumes' node affinity (the local provisioner's node) places them.
  await createBoundClaims(cluster, namespace, ['loose-1', 'loose-2']);
  const catalog = path.join(workDir, 'shared.sqlite');
  const run = await kubectlNkvm(t.context, ['backup', '--all', '-n', namespace, '--parallel', '2', '--compression', 'none', '--output-dir', path.join(workDir, 'shared'), '--catalog', catalog, '-o', 'json']);
  t.is(run.exitCode, 0, String(run.stderr));
  const results = JSON.parse(String(run.stdout)).items as Result[];
  t.deepEqual(results.map((r) => [r.pvc, r.status]), [['alpha', 'succeeded'], ['bravo', 'succeeded'], ['charlie', 'succeeded'], ['loose-1', 'succeeded'], ['loose-2', 'succeeded']]);
  const byClaim = new Map(results.map((r) => [r.pvc, r]));
  const sharedPod = byClaim.get('alpha')!.helperPod;
  t.regex(sharedPod, /^nkvm-backup-shared-/);
  t.deepEqual(held.map((claim) => byClaim.get(claim)!.helperPod), [sharedPod, sharedPod, sharedPod], 'one helper for the claims held on one node');
  const loosePod = byClaim.get('loose-1')!.helperPod;
  t.regex(loosePod, /^nkvm-backup-shared-/);
  t.is(byClaim.get('loose-2')!.helperPod, loosePod, 'volumes with one node affinity share a helper');
  t.not(loosePod, sharedPod, 'claims no pod holds are planned apart from those pods hold on a node');
  for (const claim of held) {
    const listed = (await execa('tar', ['-tf', byClaim.get(claim)!.artifact!.path])).stdout.split('\n').sort();
    t.deepEqual(listed, filesOf(claim), `${claim}'s artifact`);
  }
  const rows = JSON.parse((await execa('sqlite3', ['-json', catalog, "SELECT pvc, helper_pod FROM backups ORDER BY pvc"])).stdout) as { pvc: string; helper_pod: string }[];
  t.deepEqual(rows.filter((row) => held.includes(row.pvc)).map((row) => row.helper_pod), [sharedPod, sharedPod, sharedPod]);
  await assertNoHelperPods(t, 10_000);
});

test('into a repository through a shared helper: each snapshot holds its own claim, and the second backup lists each at its own mount and reads nothing', async (t) => {
  t.timeout(6 * 60_000);
  const restic = findRestic();
  const { cluster, workDir } = t.context;
  const namespace = await createNamespace(cluster, 'shared-repo');
  t.context.diagnose = { namespace };
  const held = ['delta', 'echo'];
  await Promise.all(held.map((claim) => seedWorkload(cluster, { namespace, claim, pod: `app-${claim}` }, seedFor(claim))));
  const home = fs.mkdtempSync(path.join(workDir, 'shared-repo-'));
  const env = { NKVM_HOME: home };
  t.is((await kubectlNkvm(t.context, ['repo', 'init'], { env })).exitCode, 0);
  const backup = async () => {
    const run = await kubectlNkvm(t.context, ['backup', ...held, '-n', namespace, '--parallel', '2', '-o', 'json'], { env });
    t.is(run.exitCode, 0, String(run.stderr));
    const results = JSON.parse(String(run.stdout)).items as Result[];
    t.deepEqual(results.map((r) => r.status), ['succeeded', 'succeeded'], results.map((r) => r.message).join('; '));
    t.is(new Set(results.map((r) => r.helperPod)).size, 1, 'one shared helper');
    return results;
  };
  const first = await backup();
  for (const result of first) t.like(result.snapshot, { files: 2, filesNew: 2 });
  const second = await backup();
  for (const result of second) t.like(result.snapshot, { files: 2, filesNew: 0, filesUnmodified: 2, bytesRead: 0 });

  const resticRun = (args: string[]) => execa(restic, ['--repo', path.join(home, 'repository'), '--no-cache', ...args], { env: { RESTIC_PASSWORD_FILE: path.join(home, 'repository.key') }, timeout: 120_000 });
  for (const [i, claim] of held.entries()) {
    const listed = (await resticRun(['ls', second[i]!.snapshot!.id])).stdout.split('\n').filter((line) => line.startsWith('/')).sort();
    t.deepEqual(listed, ['/data', `/data/${claim}`, `/data/${claim}/${claim}-dir`, `/data/${claim}/${claim}-dir/blob.bin`, `/data/${claim}/only-${claim}.txt`]);
  }
  t.is((await resticRun(['check', '--read-data'])).exitCode, 0);
  await assertNoHelperPods(t, 10_000);
});
