/**
 * `npm run demo`: the main job for a newcomer. Starts a disposable cluster, seeds a namespace with a
 * PVC holding files and a pod using it, runs the built plugin as `kubectl nkvm ...`, shows what it
 * did, and tears the cluster down.
 */
import { execa } from 'execa';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createCluster } from '../test/cluster/index.ts';
import { kubernetesBinDir, REPO_ROOT } from '../test/cluster/paths.ts';
import { seedWorkload } from '../test/cluster/workload.ts';

const say = (text: string) => process.stdout.write(`\n\u001b[1m== ${text}\u001b[0m\n`);

const binDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-demo-bin-'));
fs.symlinkSync(path.join(REPO_ROOT, 'dist', 'kubectl-nkvm'), path.join(binDir, 'kubectl-nkvm'));
const PATH = [binDir, kubernetesBinDir, process.env.PATH].join(path.delimiter);

say('starting a disposable single-node cluster');
const started = Date.now();
const cluster = await createCluster();
try {
  console.log(`cluster ${cluster.name} (${cluster.provider}) ready in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  const env = { PATH, KUBECONFIG: cluster.kubeconfigPath };
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
} finally {
  say('tearing the cluster down');
  await cluster.dispose();
  fs.rmSync(binDir, { recursive: true, force: true });
  console.log(`cluster ${cluster.name} disposed`);
}
