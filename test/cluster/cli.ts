/**
 * `npm run cluster:up` keeps one cluster running while a developer iterates and prints its
 * kubeconfig; `npm run cluster:down` disposes it. The running cluster is recorded in the cache dir.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createCluster } from './index.ts';
import { disposeKindCluster } from './kind.ts';
import { disposeLocalCluster } from './local.ts';
import { CACHE_DIR } from './paths.ts';

const recordFile = path.join(CACHE_DIR, 'dev-cluster.json');

interface DevClusterRecord {
  name: string;
  provider: 'local' | 'kind';
  dir: string;
  kubeconfigPath: string;
}

async function up(): Promise<void> {
  if (fs.existsSync(recordFile)) {
    const record = JSON.parse(fs.readFileSync(recordFile, 'utf8')) as DevClusterRecord;
    console.error(`a development cluster is already up (${record.name}); \`npm run cluster:down\` first`);
    console.log(record.kubeconfigPath);
    return;
  }
  const started = Date.now();
  const cluster = await createCluster();
  const record: DevClusterRecord = { name: cluster.name, provider: cluster.provider, dir: cluster.dir, kubeconfigPath: cluster.kubeconfigPath };
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  fs.writeFileSync(recordFile, `${JSON.stringify(record, null, 2)}\n`);
  console.error(`cluster ${cluster.name} (${cluster.provider}) is up after ${((Date.now() - started) / 1000).toFixed(1)}s; use it with:`);
  console.error(`  export KUBECONFIG=${cluster.kubeconfigPath}`);
  console.log(cluster.kubeconfigPath);
}

async function down(): Promise<void> {
  if (!fs.existsSync(recordFile)) {
    console.error('no development cluster is up');
    return;
  }
  const record = JSON.parse(fs.readFileSync(recordFile, 'utf8')) as DevClusterRecord;
  if (record.provider === 'local') await disposeLocalCluster(record.dir);
  else await disposeKindCluster(record.name, record.kubeconfigPath, record.dir);
  fs.rmSync(recordFile);
  console.error(`cluster ${record.name} is down`);
}

const action = process.argv[2];
if (action === 'up') await up();
else if (action === 'down') await down();
else {
  console.error('usage: node test/cluster/cli.ts up|down');
  process.exitCode = 2;
}
