/**
 * `npm run cluster:up` keeps one cluster running while a developer iterates and prints its
 * kubeconfig; `npm run cluster:down` disposes it. The running cluster is recorded in the cache dir.
 * `run -- COMMAND...` starts a cluster for COMMAND alone (the integration suites share it) and
 * disposes it when COMMAND ends, however it ends (test/cluster/shared.ts).
 * `up --with-plugin-image` (what npm run cluster:up does, after building it) also imports the
 * plugin's image under the name `kubectl nkvm install` uses by default, so install works there as
 * the README writes it. `provider` prints the provider a suite would get (NKVM_CLUSTER_PROVIDER, or
 * the default).
 */
import fs from 'node:fs';
import path from 'node:path';
import { chooseProvider, createCluster } from './index.ts';
import { disposeKindCluster } from './kind.ts';
import { disposeLocalCluster } from './local.ts';
import { CACHE_DIR, REPO_ROOT } from './paths.ts';
import { readRecord, recordOf, runWithSharedCluster } from './shared.ts';
import { pluginVersion } from '../../src/version.ts';
import { imageReference } from '../../src/install/image.ts';

const recordFile = path.join(CACHE_DIR, 'dev-cluster.json');

async function up(): Promise<void> {
  if (fs.existsSync(recordFile)) {
    const record = readRecord(recordFile);
    console.error(`a development cluster is already up (${record.name}); \`npm run cluster:down\` first`);
    console.log(record.kubeconfigPath);
    return;
  }
  const started = Date.now();
  const cluster = await createCluster();
  if (process.argv.includes('--with-plugin-image')) {
    const archive = path.join(REPO_ROOT, 'dist', 'image', `kubectl-nkvm-${pluginVersion}.oci.tar`);
    if (!fs.existsSync(archive)) throw new Error(`${archive} is missing: run \`npm run image\` first`);
    await cluster.loadImageArchive(archive);
    console.error(`imported ${imageReference(pluginVersion)} from ${archive}`);
  }
  const record = recordOf(cluster);
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
  const record = readRecord(recordFile);
  if (record.provider === 'local') await disposeLocalCluster(record.dir);
  else await disposeKindCluster(record.name, record.kubeconfigPath, record.dir);
  fs.rmSync(recordFile);
  console.error(`cluster ${record.name} is down`);
}

const action = process.argv[2];
if (action === 'up') await up();
else if (action === 'down') await down();
else if (action === 'provider') console.log(await chooseProvider());
else if (action === 'run' && process.argv[3] === '--' && process.argv.length > 4) process.exitCode = await runWithSharedCluster(process.argv.slice(4));
else {
  console.error('usage: node test/cluster/cli.ts up|down|provider|run -- COMMAND...');
  process.exitCode = 2;
}
