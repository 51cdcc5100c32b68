/**
 * `npm run demo`: the main job for a newcomer. Starts a disposable cluster, seeds a namespace with a
 * PVC holding files and a pod using it, runs the built plugin as `kubectl nkvm ...` (discover,
 * diagnose, backup, the catalog, restore into a second claim, verify), shows what it did, and tears
 * the cluster down.
 */
import { execa } from 'execa';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createCluster } from '../test/cluster/index.ts';
import { kubernetesBinDir, REPO_ROOT } from '../test/cluster/paths.ts';
import { seedWorkload } from '../test/cluster/workload.ts';

const say = (text: string) => process.stdout.write(`\n\u001b[1m== ${text}\u001b[0m\n`);

const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-demo-'));
const binDir = path.join(workDir, 'bin');
fs.mkdirSync(binDir);
fs.symlinkSync(path.join(REPO_ROOT, 'dist', 'kubectl-nkvm'), path.join(binDir, 'kubectl-nkvm'));
// The demo's catalog and artifacts, removed with the rest at the end.
const NKVM_HOME = path.join(workDir, 'home');
const PATH = [binDir, kubernetesBinDir, process.env.PATH].join(path.delimiter);

say('starting a disposable single-node cluster');
const started = Date.now();
const cluster = await createCluster();
try {
  console.log(`cluster ${cluster.name} (${cluster.provider}) ready in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  const env = { PATH, KUBECONFIG: cluster.kubeconfigPath, NKVM_HOME };
  const show = async (command: string[]) => {
    process.stdout.write(`\n$ ${command.join(' ')}\n`);
    const result = await execa(command[0]!, command.slice(1), { env, reject: false, all: true });
    process.stdout.write(`${result.all}\n`);
    if (result.exitCode !== 0) throw new Error(`${command.join(' ')} exited with ${result.exitCode}`);
  };

  say('seeding namespace demo: PVC "data" with files, mounted by pod "app"');
  await seedWorkload(cluster, { namespace: 'demo', claim: 'data', pod: 'app' });
  await show(['kubectl', 'get', 'pvc,pod', '-n', 'demo']);
  await show(['kubectl', 'exec', '-n', 'demo', 'app', '--', 'ls', '-lR', '/data']);

  say('the plugin, as kubectl finds it on PATH');
  await show(['kubectl', 'nkvm', 'version']);
  await show(['kubectl', 'nkvm', 'discover', '-A']);
  await show(['kubectl', 'nkvm', 'diagnose', 'data', '-n', 'demo']);

  say('backing up the claim into the catalogued artifacts under NKVM_HOME');
  await show(['kubectl', 'nkvm', 'backup', 'data', '-n', 'demo']);
  await show(['kubectl', 'nkvm', 'artifacts', 'list']);
  const [latest] = JSON.parse((await execa('kubectl', ['nkvm', 'artifacts', 'list', '-o', 'json'], { env })).stdout).items;
  await show(['kubectl', 'nkvm', 'artifacts', 'show', latest.id.slice(0, 6)]);
  await show(['tar', '-tvf', latest.artifactPath]); // GNU tar reads zstd and gzip by their magic

  say('restoring the backup into a second claim, and verifying the artifact');
  await show(['kubectl', 'nkvm', 'restore', latest.id, '--to', 'data-restored', '--create', '-n', 'demo']);
  await show(['kubectl', 'get', 'pvc', '-n', 'demo']);
  await show(['kubectl', 'nkvm', 'verify', latest.id]);
} finally {
  say('tearing the cluster down');
  await cluster.dispose();
  fs.rmSync(workDir, { recursive: true, force: true });
  console.log(`cluster ${cluster.name} disposed`);
}
