/**
 * `npm run bench`: backup throughput and the plugin's peak memory on a real cluster. Seeds a claim
 * with NKVM_BENCH_MIB (default 1024) MiB of incompressible data plus a directory of small files,
 * backs it up once per compression through `kubectl nkvm backup`, and prints figures: MiB/s of tar
 * stream, the artifact size, and the peak RSS of the plugin process (GNU time's maximum resident set).
 * Figures, not pass/fail: speed goals are judged by reading them.
 */
import { execa } from 'execa';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createCluster } from '../test/cluster/index.ts';
import { kubernetesBinDir, REPO_ROOT } from '../test/cluster/paths.ts';
import { seedWorkload } from '../test/cluster/workload.ts';

const sizeMiB = Number(process.env.NKVM_BENCH_MIB ?? 1024);
const compressions = (process.env.NKVM_BENCH_COMPRESSIONS ?? 'gzip,zstd,none').split(',');

const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-bench-'));
const binDir = path.join(workDir, 'bin');
fs.mkdirSync(binDir);
fs.symlinkSync(path.join(REPO_ROOT, 'dist', 'kubectl-nkvm'), path.join(binDir, 'kubectl-nkvm'));

const cluster = await createCluster();
try {
  const seed = [
    `head -c ${sizeMiB * 1024 * 1024} /dev/urandom > /data/large.bin`,
    'mkdir -p /data/small && i=0 && while [ $i -lt 2000 ]; do echo "file $i" > /data/small/f$i; i=$((i+1)); done',
  ].join(' && ');
  process.stderr.write(`seeding ${sizeMiB} MiB of random data and 2000 small files...\n`);
  await seedWorkload(cluster, { namespace: 'bench', claim: 'data', pod: 'app' }, seed);
  const env = { PATH: [binDir, kubernetesBinDir, process.env.PATH].join(path.delimiter), KUBECONFIG: cluster.kubeconfigPath, NKVM_HOME: path.join(workDir, 'home') };
  console.log(`kubectl-nkvm backup of ${sizeMiB} MiB random + 2000 small files, ${os.cpus().length} cores, node ${process.version}`);
  console.log('compression   tar MiB   artifact MiB   seconds   MiB/s   peak RSS MiB');
  for (const compression of compressions) {
    const run = await execa('/usr/bin/time', ['-f', 'maxrss_kib=%M', 'kubectl', 'nkvm', 'backup', 'data', '-n', 'bench', '--compression', compression, '-o', 'json'], { env, reject: false });
    if (run.exitCode !== 0) throw new Error(`backup with ${compression} failed: ${run.stderr}`);
    const [result] = JSON.parse(run.stdout).items;
    const peakKiB = Number(/maxrss_kib=(\d+)/.exec(run.stderr)?.[1]);
    const tarMiB = result.artifact.tarBytes / 1048576;
    const seconds = result.durationMs / 1000;
    console.log(
      [compression.padEnd(11), tarMiB.toFixed(0).padStart(7), (result.artifact.bytes / 1048576).toFixed(0).padStart(12),
        seconds.toFixed(1).padStart(9), (tarMiB / seconds).toFixed(1).padStart(7), (peakKiB / 1024).toFixed(0).padStart(14)].join('   '),
    );
    fs.rmSync(result.artifact.path);
  }
} finally {
  await cluster.dispose();
  fs.rmSync(workDir, { recursive: true, force: true });
}
