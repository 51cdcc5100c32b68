/**
 * The seed harness's suite: discovery and backup on a real cluster, through `kubectl nkvm ...` as a
 * user runs it and through BackupManager.backupOne(), over every credential path, and the three
 * failure signatures (authentication, RBAC, copy stage). Titles carry remote_kubeconfig,
 * incluster_serviceaccount, auth_failure, rbac_failure and copy_stage_failure for --match.
 */
import { execa, type ResultPromise } from 'execa';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { BackupManager } from '../../src/backup/manager.ts';
import { discoverClaims } from '../../src/backup/discovery.ts';
import { connect } from '../../src/kube/client.ts';
import { Catalog } from '../../src/store/catalog.ts';
import { startCountingProxy } from '../cluster/counting-proxy.ts';
import { seedWorkload } from '../cluster/workload.ts';
import type { TestCluster } from '../cluster/types.ts';
import { assertNoHelperPods, clusterSuite, createNamespace, HELPER_SELECTOR, kubectlNkvm, type SuiteContext } from './support.ts';

const test = clusterSuite();

/** Files of several shapes, written inside the pod so their hashes come from the pod's side. */
const SEED_SCRIPT = [
  'set -e',
  'mkdir -p /data/reports/2026 /data/empty-dir "/data/with space"',
  'echo "hello from nkvm" > /data/hello.txt',
  ': > /data/zero-bytes',
  'head -c 3145728 /dev/urandom > /data/reports/2026/random.bin',
  'printf "a\\nb\\n" > "/data/with space/notes.txt"',
  'ln -s hello.txt /data/hello-link',
  'chmod 0600 /data/hello.txt',
].join(' && ');

/** Every regular file's sha256, keyed by path relative to the root, as the pod sees them. */
async function podFileHashes(cluster: TestCluster, namespace: string, pod: string): Promise<Map<string, string>> {
  const out = await cluster.kubectl(['exec', pod, '-n', namespace, '--', 'sh', '-c', 'cd /data && find . -type f -exec sha256sum {} +']);
  return new Map(
    out.trim().split('\n').map((line) => {
      const [hash, ...name] = line.split('  ');
      return [path.normalize(name.join('  ')), hash!] as [string, string];
    }),
  );
}

/** Unpacks an artifact with the system's GNU tar and hashes every regular file in it. */
async function artifactFileHashes(artifact: string, into: string): Promise<Map<string, string>> {
  fs.mkdirSync(into, { recursive: true });
  await execa('tar', ['-xf', artifact, '-C', into]); // GNU tar reads gzip and zstd by their magic
  const hashes = new Map<string, string>();
  for (const entry of fs.readdirSync(into, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = path.join(entry.parentPath, entry.name);
    hashes.set(path.relative(into, full), createHash('sha256').update(fs.readFileSync(full)).digest('hex'));
  }
  return hashes;
}

function sha256File(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Files left in a directory tree (to prove partial files are gone). */
function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

interface Workspace {
  namespace: string;
  home: string;
  catalog: string;
  outputDir: string;
  storeFlags: string[];
}

/** A seeded namespace (PVC "data" + pod "app") and a private NKVM_HOME for one test. */
async function workspace(t: ExecutionContext<SuiteContext>, prefix: string, serviceAccounts: string[] = []): Promise<Workspace> {
  const { cluster, workDir } = t.context;
  const namespace = await createNamespace(cluster, prefix);
  t.context.diagnose = { namespace, sourcePod: 'app', serviceAccounts };
  await seedWorkload(cluster, { namespace, claim: 'data', pod: 'app' }, SEED_SCRIPT);
  const home = fs.mkdtempSync(path.join(workDir, `${prefix}-home-`));
  t.teardown(() => fs.rmSync(home, { recursive: true, force: true }));
  const catalog = path.join(home, 'catalog.sqlite');
  const outputDir = path.join(home, 'artifacts');
  return { namespace, home, catalog, outputDir, storeFlags: ['--catalog', catalog, '--output-dir', outputDir] };
}

/** The Role a backup needs, bound to a ServiceAccount; returns a short-lived token for it. */
async function boundServiceAccount(cluster: TestCluster, namespace: string, name: string): Promise<string> {
  await cluster.kubectl(['apply', '-f', '-'], {
    input: `apiVersion: v1
kind: ServiceAccount
metadata: {name: ${name}, namespace: ${namespace}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: nkvm-backup, namespace: ${namespace}}
rules:
- {apiGroups: [""], resources: [persistentvolumeclaims], verbs: [get, list]}
- {apiGroups: [""], resources: [pods], verbs: [get, list, create, delete]}
- {apiGroups: [""], resources: [pods/exec], verbs: [create, get]}
- {apiGroups: [""], resources: [events], verbs: [list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ${name}-nkvm-backup, namespace: ${namespace}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: nkvm-backup}
subjects:
- {kind: ServiceAccount, name: ${name}, namespace: ${namespace}}
`,
  });
  return (await cluster.kubectl(['create', 'token', name, '-n', namespace, '--duration=10m'])).trim();
}

async function clusterEndpoint(cluster: TestCluster): Promise<{ server: string; caFile: string; caData: string }> {
  const view = JSON.parse(await cluster.kubectl(['config', 'view', '--minify', '--raw', '-o', 'json'])) as {
    clusters: { cluster: { server: string; 'certificate-authority'?: string; 'certificate-authority-data'?: string } }[];
  };
  const entry = view.clusters[0]!.cluster;
  const caData = entry['certificate-authority-data'] ?? fs.readFileSync(entry['certificate-authority']!).toString('base64');
  const caFile = path.join(path.dirname(cluster.kubeconfigPath), 'cluster-ca.crt');
  fs.writeFileSync(caFile, Buffer.from(caData, 'base64'));
  return { server: entry.server, caFile, caData };
}

function tokenKubeconfig(server: string, caData: string, token: string, namespace: string): string {
  return `apiVersion: v1
kind: Config
clusters: [{name: remote, cluster: {server: "${server}", certificate-authority-data: "${caData}"}}]
users: [{name: sa, user: {token: "${token}"}}]
contexts: [{name: remote, context: {cluster: remote, user: sa, namespace: ${namespace}}}]
current-context: remote
`;
}

/** The plugin's environment with no kubeconfig anywhere: only what the test hands it counts. */
function isolatedEnv(ws: Workspace, extra: Record<string, string>): Record<string, string> {
  return { KUBECONFIG: '', HOME: ws.home, NKVM_REMOTE_KUBECONFIG: path.join(ws.home, 'no-remote-config'), NKVM_SERVICEACCOUNT_DIR: path.join(ws.home, 'no-sa'), ...extra };
}

test('discover lists the seeded claim with its capacity, class, volume, pod and node', async (t) => {
  const { cluster } = t.context;
  const ws = await workspace(t, 'discover');
  const node = (await cluster.kubectl(['get', 'pod', 'app', '-n', ws.namespace, '-o', 'jsonpath={.spec.nodeName}'])).trim();
  const volume = (await cluster.kubectl(['get', 'pvc', 'data', '-n', ws.namespace, '-o', 'jsonpath={.spec.volumeName}'])).trim();

  const json = await kubectlNkvm(t.context, ['discover', '-n', ws.namespace, '-o', 'json']);
  t.is(json.exitCode, 0, String(json.stderr));
  const list = JSON.parse(String(json.stdout));
  t.like(list, { apiVersion: 'v1', kind: 'List' });
  t.is(list.items.length, 1);
  t.like(list.items[0], { namespace: ws.namespace, name: 'data', phase: 'Bound', storageClass: cluster.storageClass, volume, accessModes: ['ReadWriteOnce'] });
  t.deepEqual(list.items[0].pods, [{ name: 'app', node, phase: 'Running', identity: {} }], 'the workload names no user: identity is empty');

  const table = await kubectlNkvm(t.context, ['discover', '-n', ws.namespace]);
  t.is(table.exitCode, 0);
  t.regex(String(table.stdout), /^NAME\s+STATUS\s+CAPACITY\s+ACCESS MODES\s+STORAGECLASS\s+VOLUME\s+USED BY$/m);
  t.regex(String(table.stdout), new RegExp(`^data\\s+Bound\\s+\\S+\\s+RWO\\s+${cluster.storageClass}\\s+${volume}\\s+app@${node}$`, 'm'));

  const names = await kubectlNkvm(t.context, ['discover', '-A', '-o', 'name']);
  t.true(String(names.stdout).split('\n').includes(`${ws.namespace}/data`));
});

test('backup end to end: the artifact unpacks to the claim files byte for byte, and the catalog records it', async (t) => {
  const { cluster } = t.context;
  const ws = await workspace(t, 'e2e');
  const expected = await podFileHashes(cluster, ws.namespace, 'app');

  const run = await kubectlNkvm(t.context, ['backup', 'data', '-n', ws.namespace, '-o', 'json', ...ws.storeFlags]);
  t.is(run.exitCode, 0, String(run.stderr) + String(run.stdout));
  const [result] = JSON.parse(String(run.stdout)).items;
  t.like(result, { namespace: ws.namespace, pvc: 'data', status: 'succeeded', stage: 'done', credentialSource: 'kubeconfig-env' });
  const artifact = result.artifact.path as string;
  t.true(artifact.startsWith(path.join(ws.outputDir, ws.namespace, 'data') + path.sep));
  t.regex(path.basename(artifact), /^\d{8}T\d{6}Z-[0-9a-f]{12}\.tar\.zst$/, 'zstd by default');
  t.is(result.artifact.sha256, sha256File(artifact));
  t.is(result.artifact.bytes, fs.statSync(artifact).size);

  const unpacked = await artifactFileHashes(artifact, path.join(ws.home, 'unpacked'));
  t.deepEqual(new Map([...unpacked].sort()), new Map([...expected].sort()), 'every file, byte for byte');
  t.is(fs.readlinkSync(path.join(ws.home, 'unpacked', 'hello-link')), 'hello.txt');
  t.true(fs.statSync(path.join(ws.home, 'unpacked', 'empty-dir')).isDirectory());
  t.is(fs.statSync(path.join(ws.home, 'unpacked', 'hello.txt')).mode & 0o777, 0o600);

  const shown = await kubectlNkvm(t.context, ['artifacts', 'show', result.id, '-o', 'json', ...ws.storeFlags]);
  t.is(shown.exitCode, 0, String(shown.stderr));
  const record = JSON.parse(String(shown.stdout));
  t.like(record, {
    id: result.id, namespace: ws.namespace, pvc: 'data', status: 'succeeded', artifactPath: artifact, sha256: result.artifact.sha256,
    bytes: result.artifact.bytes, compression: 'zstd', pv: result.pv, storageClass: cluster.storageClass, failedStage: null,
  });
  t.truthy(record.finishedAt);
  t.is(record.fileCount, result.artifact.entries);

  // The catalog is a real SQLite file that the stock sqlite3 reads.
  const sqlite = await execa('sqlite3', ['-json', ws.catalog, `SELECT id, status, sha256, bytes, artifact_path FROM backups WHERE id = '${result.id}'`]);
  t.deepEqual(JSON.parse(sqlite.stdout), [{ id: result.id, status: 'succeeded', sha256: result.artifact.sha256, bytes: result.artifact.bytes, artifact_path: artifact }]);

  const listed = await kubectlNkvm(t.context, ['artifacts', 'list', '-n', ws.namespace, '--pvc', 'data', '-o', 'name', ...ws.storeFlags]);
  t.is(String(listed.stdout).trim(), result.id);
  t.deepEqual(filesUnder(ws.outputDir), [artifact], 'only the artifact, no partial file');
  await assertNoHelperPods(t, 10_000);
});

test('remote_kubeconfig: a kubeconfig mounted from a Secret is used when nothing else is given, and backs up', async (t) => {
  const { cluster } = t.context;
  const ws = await workspace(t, 'remote', ['remote-backup']);
  const token = await boundServiceAccount(cluster, ws.namespace, 'remote-backup');
  const { server, caData } = await clusterEndpoint(cluster);
  const mount = path.join(ws.home, 'etc-nkvm-remote');
  fs.mkdirSync(mount);
  fs.writeFileSync(path.join(mount, 'config'), tokenKubeconfig(server, caData, token, ws.namespace), { mode: 0o600 });
  const env = isolatedEnv(ws, { NKVM_REMOTE_KUBECONFIG: path.join(mount, 'config') });

  const diagnose = await kubectlNkvm(t.context, ['diagnose', '-o', 'json'], { env });
  t.is(diagnose.exitCode, 0, String(diagnose.stdout) + String(diagnose.stderr));
  const report = JSON.parse(String(diagnose.stdout));
  t.is(report.credentials.source, 'remote-kubeconfig');
  t.deepEqual(report.access.filter((c: { required: boolean; allowed: boolean }) => c.required && !c.allowed), []);

  const run = await kubectlNkvm(t.context, ['backup', 'data', '-o', 'json', ...ws.storeFlags], { env });
  t.is(run.exitCode, 0, String(run.stderr) + String(run.stdout));
  const [result] = JSON.parse(String(run.stdout)).items;
  t.like(result, { status: 'succeeded', namespace: ws.namespace, credentialSource: 'remote-kubeconfig' });
  t.true(fs.existsSync(result.artifact.path));
  await assertNoHelperPods(t, 10_000);
});

test('incluster_serviceaccount: a projected token, ca.crt and namespace with KUBERNETES_SERVICE_HOST/PORT back up', async (t) => {
  const { cluster } = t.context;
  const ws = await workspace(t, 'incluster', ['job']);
  const token = await boundServiceAccount(cluster, ws.namespace, 'job');
  const { server, caData } = await clusterEndpoint(cluster);
  const saDir = path.join(ws.home, 'serviceaccount');
  fs.mkdirSync(saDir);
  fs.writeFileSync(path.join(saDir, 'token'), token);
  fs.writeFileSync(path.join(saDir, 'ca.crt'), Buffer.from(caData, 'base64'));
  fs.writeFileSync(path.join(saDir, 'namespace'), ws.namespace);
  const url = new URL(server);
  const env = isolatedEnv(ws, { NKVM_SERVICEACCOUNT_DIR: saDir, KUBERNETES_SERVICE_HOST: url.hostname, KUBERNETES_SERVICE_PORT: url.port || '443' });

  // Through the CLI, the namespace coming from the ServiceAccount's namespace file.
  const run = await kubectlNkvm(t.context, ['backup', 'data', '-o', 'json', ...ws.storeFlags], { env });
  t.is(run.exitCode, 0, String(run.stderr) + String(run.stdout));
  const [result] = JSON.parse(String(run.stdout)).items;
  t.like(result, { status: 'succeeded', namespace: ws.namespace, credentialSource: 'in-cluster' });

  // And through the library, as a program embedding it would.
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const client = connect({ requestTimeoutMs: 30_000 });
    t.is(client.credentials.source, 'in-cluster');
    const catalog = await Catalog.open(ws.catalog);
    const manager = new BackupManager(client, catalog, {
      outputDir: ws.outputDir,
      compression: 'gzip',
      podReadyTimeoutMs: 120_000,
      helper: { image: cluster.images.helper, deadlineSeconds: 600 },
    });
    const direct = await manager.backupOne({ namespace: ws.namespace, pvc: 'data' });
    t.like(direct, { status: 'succeeded', stage: 'done', credentialSource: 'in-cluster' });
    t.is(direct.artifact!.sha256, sha256File(direct.artifact!.path));
    t.is((await catalog.getBackup(direct.id))?.status, 'succeeded');
    t.is((await catalog.listBackups({ namespace: ws.namespace })).length, 2);
  } finally {
    process.env = saved;
  }
  await assertNoHelperPods(t, 10_000);
});

test('auth_failure: a rejected token and a wrong CA are KubernetesAuthenticationError, exit 3', async (t) => {
  const { cluster } = t.context;
  const ws = await workspace(t, 'authfail', ['gone']);
  const { server, caData } = await clusterEndpoint(cluster);
  // A token whose ServiceAccount no longer exists is rejected (401) by the API server.
  await cluster.kubectl(['create', 'serviceaccount', 'gone', '-n', ws.namespace]);
  const token = (await cluster.kubectl(['create', 'token', 'gone', '-n', ws.namespace])).trim();
  await cluster.kubectl(['delete', 'serviceaccount', 'gone', '-n', ws.namespace]);
  const badToken = path.join(ws.home, 'bad-token.kubeconfig');
  fs.writeFileSync(badToken, tokenKubeconfig(server, caData, token, ws.namespace));

  for (const command of [['discover'], ['backup', 'data', ...ws.storeFlags]]) {
    const run = await kubectlNkvm(t.context, [...command, '--kubeconfig', badToken]);
    t.is(run.exitCode, 3, `${command[0]}: ${run.stderr}`);
    t.regex(String(run.stderr), /KubernetesAuthenticationError/);
    t.regex(String(run.stderr), /Kubernetes authentication setup failed: .*API status 401 \(Unauthorized\)/);
  }

  // A CA that did not sign the server's certificate.
  const otherCa = path.join(ws.home, 'other-ca');
  fs.mkdirSync(otherCa);
  await execa('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', path.join(otherCa, 'ca.key'), '-out', path.join(otherCa, 'ca.crt'), '-subj', '/CN=not-this-cluster', '-days', '1']);
  const badCa = path.join(ws.home, 'bad-ca.kubeconfig');
  fs.writeFileSync(badCa, tokenKubeconfig(server, fs.readFileSync(path.join(otherCa, 'ca.crt')).toString('base64'), token, ws.namespace));
  const tls = await kubectlNkvm(t.context, ['discover', '--kubeconfig', badCa]);
  t.is(tls.exitCode, 3, String(tls.stderr));
  t.regex(String(tls.stderr), /Kubernetes authentication setup failed: TLS verification of the API server .* failed/);

  // No credentials at all.
  const none = await kubectlNkvm(t.context, ['discover'], { env: isolatedEnv(ws, {}) });
  t.is(none.exitCode, 3);
  t.regex(String(none.stderr), /Kubernetes authentication setup failed: no credentials found/);

  // The library raises the same typed error.
  const client = connect({ kubeconfig: badToken, requestTimeoutMs: 30_000 });
  const error = await t.throwsAsync(discoverClaims(client, { namespace: ws.namespace, allNamespaces: false }));
  t.is(error!.name, 'KubernetesAuthenticationError');
  t.regex(error!.message, /^Kubernetes authentication setup failed/);
  t.deepEqual(filesUnder(ws.outputDir), []);
});

test('rbac_failure: an unbound ServiceAccount gets KubernetesDiscoveryError with API status 403 (Forbidden), exit 4', async (t) => {
  const { cluster } = t.context;
  const ws = await workspace(t, 'rbacfail', ['unbound', 'remote-backup']);
  await cluster.kubectl(['create', 'serviceaccount', 'unbound', '-n', ws.namespace]);
  const token = (await cluster.kubectl(['create', 'token', 'unbound', '-n', ws.namespace, '--duration=10m'])).trim();
  const { server, caData } = await clusterEndpoint(cluster);
  const kubeconfig = path.join(ws.home, 'unbound.kubeconfig');
  fs.writeFileSync(kubeconfig, tokenKubeconfig(server, caData, token, ws.namespace));

  const discover = await kubectlNkvm(t.context, ['discover', '--kubeconfig', kubeconfig]);
  t.is(discover.exitCode, 4, String(discover.stderr));
  t.regex(String(discover.stderr), /KubernetesDiscoveryError/);
  t.regex(String(discover.stderr), /list persistentvolumeclaims in namespace "[^"]+" failed: API status 403 \(Forbidden\)/);
  t.regex(String(discover.stderr), /kubectl auth can-i list persistentvolumeclaims/);

  const backup = await kubectlNkvm(t.context, ['backup', 'data', '--kubeconfig', kubeconfig, '-o', 'json', ...ws.storeFlags]);
  t.is(backup.exitCode, 4, String(backup.stderr));
  const [result] = JSON.parse(String(backup.stdout)).items;
  t.like(result, { status: 'failed', stage: 'discovery', errorCode: 'KubernetesDiscoveryError' });
  t.regex(result.message, /API status 403 \(Forbidden\)/);

  const all = await kubectlNkvm(t.context, ['backup', '--all', '--kubeconfig', kubeconfig, ...ws.storeFlags]);
  t.is(all.exitCode, 4);
  t.regex(String(all.stderr), /API status 403 \(Forbidden\)/);

  const diagnose = await kubectlNkvm(t.context, ['diagnose', '--kubeconfig', kubeconfig, '-o', 'json']);
  t.is(diagnose.exitCode, 4);
  const checks = JSON.parse(String(diagnose.stdout)).access as { verb: string; resource: string; allowed: boolean }[];
  t.true(checks.length > 0 && checks.every((check) => !check.allowed));

  const client = connect({ kubeconfig, requestTimeoutMs: 30_000 });
  const error = await t.throwsAsync(discoverClaims(client, { namespace: ws.namespace, allNamespaces: false }));
  t.is(error!.name, 'KubernetesDiscoveryError');
  t.regex(error!.message, /API status 403 \(Forbidden\)/);
  t.deepEqual(filesUnder(ws.outputDir), []);
  await assertNoHelperPods(t, 10_000);
});

test('copy_stage_failure: a helper image without sh and tar fails the copy stage, leaving no artifact and no helper pod', async (t) => {
  const { cluster } = t.context;
  const ws = await workspace(t, 'copyfail');
  const run = await kubectlNkvm(t.context, ['backup', 'data', '-n', ws.namespace, '--helper-image', cluster.images.helperWithoutShell, '-o', 'json', ...ws.storeFlags]);
  t.is(run.exitCode, 1, String(run.stderr));
  const [result] = JSON.parse(String(run.stdout)).items;
  t.like(result, { status: 'failed', stage: 'copy', errorCode: 'CopyStageError' });
  t.regex(result.message, /^copy stage failed: /);
  t.is(result.artifact, undefined);
  t.deepEqual(filesUnder(ws.outputDir), [], 'no artifact and no partial file');
  const sqlite = await execa('sqlite3', ['-json', ws.catalog, `SELECT status, failed_stage, message FROM backups WHERE id = '${result.id}'`]);
  const [row] = JSON.parse(sqlite.stdout);
  t.like(row, { status: 'failed', failed_stage: 'copy' });
  t.regex(row.message, /^copy stage failed: /);
  await assertNoHelperPods(t, 10_000);
});

/** Starts a backup of a large claim and waits until its helper pod runs (the copy is under way). */
async function backupInFlight(t: ExecutionContext<SuiteContext>, ws: Workspace, env: Record<string, string> = {}): Promise<{ run: ResultPromise; pod: string }> {
  const run = kubectlNkvm(t.context, ['backup', 'data', '-n', ws.namespace, '-o', 'json', ...ws.storeFlags], { env });
  for (let attempt = 0; attempt < 240; attempt++) {
    const running = await t.context.cluster.kubectl(['get', 'pods', '-n', ws.namespace, '-l', HELPER_SELECTOR, '--field-selector=status.phase=Running', '-o', 'name']);
    if (running.trim()) return { run, pod: running.trim().split('\n')[0]!.replace('pod/', '') };
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  run.kill('SIGKILL');
  throw new Error('the helper pod never ran');
}

const LARGE_SEED = 'head -c 402653184 /dev/urandom > /data/large.bin';

test('copy_stage_failure: a stream cut mid-copy (helper pod deleted) is a failed backup, never a short artifact', async (t) => {
  const { cluster } = t.context;
  const ws = await workspace(t, 'truncated');
  await cluster.kubectl(['exec', 'app', '-n', ws.namespace, '--', 'sh', '-c', LARGE_SEED], { timeoutMs: 180_000 });
  // The copy holds still at 64 MiB for 10 s, so the pod is surely deleted mid-copy (a fast copy
  // could otherwise end before the kubelet kills the container).
  const { run, pod } = await backupInFlight(t, ws, { NKVM_TEST_FAULT: 'stall-at=67108864:10' });
  await new Promise((resolve) => setTimeout(resolve, 1500));
  await cluster.kubectl(['delete', 'pod', pod, '-n', ws.namespace, '--grace-period=0', '--force']);
  const finished = await run;
  t.is(finished.exitCode, 1, String(finished.stderr));
  const [result] = JSON.parse(String(finished.stdout)).items;
  t.like(result, { status: 'failed', stage: 'copy' });
  t.regex(result.message, /^copy stage failed: /);
  t.deepEqual(filesUnder(ws.outputDir), [], 'no artifact and no partial file');
  await assertNoHelperPods(t, 10_000);
});

for (const [signal, exitCode] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  test(`${signal} during a backup removes the helper pod and the partial file, records it, and exits ${exitCode}`, async (t) => {
    const { cluster } = t.context;
    const ws = await workspace(t, signal.toLowerCase());
    await cluster.kubectl(['exec', 'app', '-n', ws.namespace, '--', 'sh', '-c', LARGE_SEED], { timeoutMs: 180_000 });
    const { run } = await backupInFlight(t, ws);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    run.kill(signal);
    const finished = await run;
    t.is(finished.exitCode, exitCode, String(finished.stderr));
    t.regex(String(finished.stderr), new RegExp(`${signal} received`));
    t.deepEqual(filesUnder(ws.outputDir), [], 'no partial file');
    const sqlite = await execa('sqlite3', ['-json', ws.catalog, 'SELECT status FROM backups']);
    t.deepEqual(JSON.parse(sqlite.stdout), [{ status: 'interrupted' }]);
    await assertNoHelperPods(t, 10_000);
  });
}

test('an exception nothing catches during a backup (a bug) still removes the helper pod and the partial file, records it as failed with the error, and exits 1', async (t) => {
  const { cluster } = t.context;
  const ws = await workspace(t, 'crash');
  await cluster.kubectl(['exec', 'app', '-n', ws.namespace, '--', 'sh', '-c', LARGE_SEED], { timeoutMs: 180_000 });
  // At 64 MiB the copy's consumer throws from a callback and never calls back, as a bug would.
  const finished = await kubectlNkvm(t.context, ['backup', 'data', '-n', ws.namespace, '-o', 'json', ...ws.storeFlags], { env: { NKVM_TEST_FAULT: 'crash-at=67108864' } });
  t.is(finished.exitCode, 1, String(finished.stderr));
  t.regex(String(finished.stderr), /internal error: NKVM_TEST_FAULT crash-at=67108864: thrown from a callback/);
  t.deepEqual(filesUnder(ws.outputDir), [], 'no partial file');
  // Recorded as the failure it is, with the error: only the user's Ctrl-C or SIGTERM is an interruption.
  const sqlite = await execa('sqlite3', ['-json', ws.catalog, 'SELECT status, message FROM backups']);
  t.deepEqual(JSON.parse(sqlite.stdout), [{ status: 'failed', message: 'stopped by an internal error: NKVM_TEST_FAULT crash-at=67108864: thrown from a callback (during the copy stage)' }]);
  await assertNoHelperPods(t, 10_000);
});

test('backup --all reports each claim: an unbound claim fails at once, a helper that cannot be scheduled fails at --pod-ready-timeout', async (t) => {
  const { cluster } = t.context;
  const ws = await workspace(t, 'edges');
  await cluster.kubectl(['apply', '-f', '-'], {
    input: `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: unbound, namespace: ${ws.namespace}}
spec:
  storageClassName: no-such-class
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
`,
  });
  const all = await kubectlNkvm(t.context, ['backup', '--all', '-n', ws.namespace, '--parallel', '2', '-o', 'json', ...ws.storeFlags]);
  t.is(all.exitCode, 1, String(all.stderr));
  const results = JSON.parse(String(all.stdout)).items as { pvc: string; status: string; stage: string; message: string }[];
  t.deepEqual(results.map((r) => [r.pvc, r.status]), [['data', 'succeeded'], ['unbound', 'failed']]);
  t.like(results[1], { stage: 'discovery' });
  t.regex(results[1]!.message, /claim \S+\/unbound is Pending, not Bound/);
  t.regex(String(all.stderr), /unbound: claim .* is Pending, not Bound/);

  const stuck = await kubectlNkvm(t.context, [
    'backup', 'data', '-n', ws.namespace, '--node-selector', 'nkvm.dev/nowhere=true', '--pod-ready-timeout', '5s', '-o', 'json', ...ws.storeFlags,
  ]);
  t.is(stuck.exitCode, 1);
  const [result] = JSON.parse(String(stuck.stdout)).items;
  t.like(result, { status: 'failed', stage: 'helper-pod' });
  t.regex(result.message, /not running after 5s \(--pod-ready-timeout\): not scheduled: .*node affinity\/selector/);
  await assertNoHelperPods(t, 10_000);
});

test('backup --parallel 2 over four claims: helpers start ahead of the copies (claims on one node share one); SIGINT finishes every started claim as interrupted and leaves no helper pod', async (t) => {
  const { cluster } = t.context;
  const ws = await workspace(t, 'parallel');
  const claims = ['c0', 'c1', 'c2', 'c3'];
  for (const [index, claim] of claims.entries()) {
    await seedWorkload(cluster, { namespace: ws.namespace, claim, pod: `app${index}` }, `head -c 100663296 /dev/urandom > /data/${claim}.bin`);
  }
  const all = await kubectlNkvm(t.context, ['backup', ...claims, '-n', ws.namespace, '--parallel', '2', '-o', 'json', ...ws.storeFlags]);
  t.is(all.exitCode, 0, String(all.stderr));
  t.deepEqual((JSON.parse(String(all.stdout)).items as { pvc: string; status: string; attempts: number }[]).map((r) => [r.pvc, r.status, r.attempts]), claims.map((claim) => [claim, 'succeeded', 1]));
  await assertNoHelperPods(t, 10_000);

  const run = kubectlNkvm(t.context, ['backup', ...claims, '-n', ws.namespace, '--parallel', '2', '-o', 'json', ...ws.storeFlags]);
  // Two copying and two more helpers started ahead (claims on one node share one, which mounts them
  // all): interrupt when running helpers mount at least three of the claims.
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 200))) {
    const mounted = await cluster.kubectl(['get', 'pods', '-n', ws.namespace, '-l', HELPER_SELECTOR, '--field-selector=status.phase=Running', '-o', `jsonpath={range .items[*]}{.metadata.annotations.nkvm\\.dev/pvc}{","}{end}`]);
    if (mounted.split(',').filter(Boolean).length >= 3) break;
  }
  run.kill('SIGINT');
  const finished = await run;
  t.is(finished.exitCode, 130, String(finished.stderr));
  const results = JSON.parse(String(finished.stdout)).items as { status: string }[];
  t.true(results.length >= 3, `${results.length} claims had started`);
  t.true(results.every((result) => result.status === 'interrupted' || result.status === 'succeeded'));
  const rows = await execa('sqlite3', ['-json', ws.catalog, "SELECT count(*) AS running FROM backups WHERE status = 'running'"]);
  t.deepEqual(JSON.parse(rows.stdout), [{ running: 0 }]);
  t.deepEqual(filesUnder(ws.outputDir).filter((file) => file.includes('.partial-')), [], 'no partial file');
  await assertNoHelperPods(t, 10_000);
});

test('local paths are checked before any cluster work: an output dir on procfs or a FIFO catalog is exit 2 at once, and no helper pod is made', async (t) => {
  const ws = await workspace(t, 'paths');
  const started = Date.now();
  const proc = await kubectlNkvm(t.context, ['backup', 'data', '-n', ws.namespace, '--output-dir', '/proc/nkvm-no', '--catalog', ws.catalog]);
  t.is(proc.exitCode, 2, String(proc.stderr));
  t.regex(String(proc.stderr), /\[UsageError\] --output-dir \/proc\/nkvm-no: cannot create \/proc\/nkvm-no \(ENOENT/);
  t.true(Date.now() - started < 30_000);
  fs.mkdirSync(path.dirname(ws.catalog), { recursive: true });
  await execa('mkfifo', [ws.catalog]);
  const fifo = await kubectlNkvm(t.context, ['backup', 'data', '-n', ws.namespace, ...ws.storeFlags]);
  t.is(fifo.exitCode, 2, String(fifo.stderr));
  t.regex(String(fifo.stderr), /--catalog .*: not a regular file/);
  const events = await t.context.cluster.kubectl(['get', 'events', '-n', ws.namespace, '-o', 'jsonpath={.items[*].involvedObject.name}']);
  t.notRegex(events, /nkvm-backup-/, 'no helper pod was ever created');
  await assertNoHelperPods(t);
});

test("kubectl's connection flags: --token with -s and --certificate-authority and no kubeconfig backs up; --insecure-skip-tls-verify works and warns", async (t) => {
  const { cluster } = t.context;
  const ws = await workspace(t, 'flags', ['flags-sa']);
  const token = await boundServiceAccount(cluster, ws.namespace, 'flags-sa');
  const { server, caFile } = await clusterEndpoint(cluster);
  const env = isolatedEnv(ws, {});
  const backup = await kubectlNkvm(t.context, ['backup', 'data', '-n', ws.namespace, '-s', server, '--token', token, '--certificate-authority', caFile, '-o', 'json', ...ws.storeFlags], { env });
  t.is(backup.exitCode, 0, String(backup.stderr));
  t.like(JSON.parse(String(backup.stdout)).items[0], { status: 'succeeded', credentialSource: 'flags' });
  t.notRegex(String(backup.stderr), /insecure/);

  const insecure = await kubectlNkvm(t.context, ['discover', '-n', ws.namespace, '--server', server, '--token', token, '--insecure-skip-tls-verify', '-o', 'name'], { env });
  t.is(insecure.exitCode, 0, String(insecure.stderr));
  t.is(String(insecure.stdout).trim(), `${ws.namespace}/data`);
  t.regex(String(insecure.stderr), /warning: --insecure-skip-tls-verify: the API server's certificate is not checked/);
  const untrusted = await kubectlNkvm(t.context, ['discover', '-n', ws.namespace, '--server', server, '--token', token], { env });
  t.is(untrusted.exitCode, 3, 'without a CA the server is not trusted');
});

test('an API server on a bad port (6000, which fetch refuses): discover and a backup, exec included, reach it through a TCP relay', async (t) => {
  const { cluster } = t.context;
  const ws = await workspace(t, 'badport');
  const expected = await podFileHashes(cluster, ws.namespace, 'app');
  // Ports of the Fetch standard's "bad ports" list; the first free one (6000 unless the machine uses it).
  const relay = await startCountingProxy(cluster.kubeconfigPath, path.join(ws.home, 'bad-port.kubeconfig'), [6000, 6665, 6666, 6667, 6668, 6669]);
  t.teardown(() => relay.close());
  t.log(`API server relayed on 127.0.0.1:${relay.port}`);
  const env = isolatedEnv(ws, { KUBECONFIG: relay.kubeconfigFile });

  const discover = await kubectlNkvm(t.context, ['discover', '-n', ws.namespace, '-o', 'json'], { env });
  t.is(discover.exitCode, 0, String(discover.stderr));
  t.deepEqual(JSON.parse(String(discover.stdout)).items.map((item: { name: string }) => item.name), ['data']);

  relay.reset();
  const backup = await kubectlNkvm(t.context, ['backup', 'data', '-n', ws.namespace, '-o', 'json', ...ws.storeFlags], { env });
  t.is(backup.exitCode, 0, String(backup.stderr));
  const [result] = JSON.parse(String(backup.stdout)).items;
  t.like(result, { pvc: 'data', status: 'succeeded', credentialSource: 'kubeconfig-env' });
  t.true(relay.received > 3 * 1024 * 1024, `the claim's 3 MiB of random bytes came through the relay (${relay.received} bytes)`);
  const unpacked = await artifactFileHashes(result.artifact.path, path.join(ws.home, 'unpacked'));
  t.deepEqual(new Map([...unpacked].sort()), new Map([...expected].sort()), 'every file, byte for byte');
  await assertNoHelperPods(t, 10_000);
});

test('--as impersonates on every request, exec included: a user who may only impersonate one ServiceAccount backs up as it; --as-group sends each group', async (t) => {
  const { cluster } = t.context;
  const ws = await workspace(t, 'impersonate', ['backup-sa', 'impersonator']);
  await boundServiceAccount(cluster, ws.namespace, 'backup-sa');
  const backupSa = `system:serviceaccount:${ws.namespace}:backup-sa`;
  await cluster.kubectl(['apply', '-f', '-'], {
    input: `apiVersion: v1
kind: ServiceAccount
metadata: {name: impersonator, namespace: ${ws.namespace}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: impersonate-backup-sa, namespace: ${ws.namespace}}
rules:
- {apiGroups: [""], resources: [serviceaccounts], verbs: [impersonate], resourceNames: [backup-sa]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: impersonator, namespace: ${ws.namespace}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: impersonate-backup-sa}
subjects: [{kind: ServiceAccount, name: impersonator, namespace: ${ws.namespace}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: ${ws.namespace}-impersonate-groups}
rules:
- {apiGroups: [""], resources: [groups], verbs: [impersonate], resourceNames: [nkvm-one, "nkvm two"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ${ws.namespace}-impersonate-groups}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ${ws.namespace}-impersonate-groups}
subjects: [{kind: ServiceAccount, name: impersonator, namespace: ${ws.namespace}}]
`,
  });
  t.teardown(() => cluster.kubectl(['delete', 'clusterrole,clusterrolebinding', `${ws.namespace}-impersonate-groups`]).then(() => {}, () => {}));
  const token = (await cluster.kubectl(['create', 'token', 'impersonator', '-n', ws.namespace, '--duration=10m'])).trim();
  const { server, caFile } = await clusterEndpoint(cluster);
  const connection = ['-s', server, '--token', token, '--certificate-authority', caFile, '-n', ws.namespace];
  const env = isolatedEnv(ws, {});

  const itself = await kubectlNkvm(t.context, ['backup', 'data', ...connection, '-o', 'json', ...ws.storeFlags], { env });
  t.is(itself.exitCode, 4, 'the impersonator itself may not even read the claim');

  const as = await kubectlNkvm(t.context, ['backup', 'data', ...connection, '--as', backupSa, '-o', 'json', ...ws.storeFlags], { env });
  t.is(as.exitCode, 0, String(as.stderr));
  t.like(JSON.parse(String(as.stdout)).items[0], { status: 'succeeded' });

  const other = await kubectlNkvm(t.context, ['discover', ...connection, '--as', `system:serviceaccount:${ws.namespace}:impersonator-not`], { env });
  t.is(other.exitCode, 4, String(other.stderr));
  t.regex(String(other.stderr), /cannot impersonate resource "serviceaccounts"/);
  t.regex(String(other.stderr), /need the "impersonate" verb on serviceaccounts/);

  const diagnose = await kubectlNkvm(t.context, ['diagnose', ...connection, '--as', backupSa, '--as-group', 'nkvm-one', '--as-group', 'nkvm two', '-o', 'json'], { env });
  t.is(diagnose.exitCode, 0, String(diagnose.stderr) + String(diagnose.stdout));
  const { identity } = JSON.parse(String(diagnose.stdout));
  t.like(identity, { username: backupSa, impersonated: true });
  t.true(identity.groups.includes('nkvm-one') && identity.groups.includes('nkvm two'), `two groups, each its own header: ${identity.groups}`);
  await assertNoHelperPods(t, 10_000);
});
