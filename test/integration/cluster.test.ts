/**
 * Proves the test cluster is real before anything is built on it: a Ready node, a claim bound by
 * the real PV controller and mounted by a running pod, exec streaming 50 MiB of binary data intact,
 * ServiceAccount tokens from the TokenRequest API under real RBAC, and the plugin reaching it all as
 * `kubectl nkvm`.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { buildImage } from '../../scripts/image/build.ts';
import { findRestic } from '../cluster/restic.ts';
import { seedWorkload } from '../cluster/workload.ts';
import { loadedPluginImage, s3ServerForPods } from './in-cluster.ts';
import { assertNoHelperPods, clusterSuite, createNamespace, kubectlNkvm } from './support.ts';

const test = clusterSuite();

const FIFTY_MIB = 50 * 1024 * 1024;

function podWithClaim(namespace: string, image: string): string {
  return `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: ${namespace}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: v1
kind: Pod
metadata:
  name: writer
  namespace: ${namespace}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: writer
    image: ${image}
    command: [sleep, "3600"]
    volumeMounts:
    - name: data
      mountPath: /data
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: data
`;
}

test('the node is Ready', async (t) => {
  const nodes = JSON.parse(await t.context.cluster.kubectl(['get', 'nodes', '-o', 'json'])) as {
    items: { status: { conditions: { type: string; status: string }[] } }[];
  };
  t.is(nodes.items.length, 1);
  t.is(nodes.items[0]!.status.conditions.find((c) => c.type === 'Ready')?.status, 'True');
});

test('a pod using a claim bound through the PV controller runs, and exec streams 50 MiB intact', async (t) => {
  const { cluster } = t.context;
  const namespace = await createNamespace(cluster, 'storage');
  t.context.diagnose = { namespace, sourcePod: 'writer' };
  await cluster.kubectl(['apply', '-f', '-'], { input: podWithClaim(namespace, cluster.images.helper) });
  await cluster.kubectl(['wait', '--for=jsonpath={.status.phase}=Bound', 'pvc/data', '-n', namespace, '--timeout=120s'], { timeoutMs: 130_000 });
  await cluster.kubectl(['wait', '--for=condition=Ready', 'pod/writer', '-n', namespace, '--timeout=120s'], { timeoutMs: 130_000 });
  const volumeName = (await cluster.kubectl(['get', 'pvc', 'data', '-n', namespace, '-o', 'jsonpath={.spec.volumeName}'])).trim();
  t.truthy(volumeName, 'the claim names the volume the PV controller bound it to');

  // Random bytes written inside the pod onto the claim; their hash taken there, then the bytes
  // streamed out over exec and hashed here.
  const inside = await cluster.kubectl([
    'exec', 'writer', '-n', namespace, '--', 'sh', '-c',
    `head -c ${FIFTY_MIB} /dev/urandom > /data/blob && sha256sum /data/blob`,
  ], { timeoutMs: 120_000 });
  const expected = inside.trim().split(/\s+/)[0]!;
  const streamed = await execa('kubectl', ['--kubeconfig', cluster.kubeconfigPath, 'exec', 'writer', '-n', namespace, '--', 'cat', '/data/blob'], {
    encoding: 'buffer',
    maxBuffer: FIFTY_MIB * 2,
    env: { PATH: t.context.pluginPath },
  });
  t.is(streamed.stdout.length, FIFTY_MIB);
  t.is(createHash('sha256').update(streamed.stdout).digest('hex'), expected);
  await cluster.kubectl(['delete', 'namespace', namespace, '--wait=false']);
});

test('a TokenRequest token authenticates, and RBAC denies listing claims until a RoleBinding allows it', async (t) => {
  const { cluster, workDir } = t.context;
  const namespace = await createNamespace(cluster, 'rbac');
  t.context.diagnose = { namespace, serviceAccounts: ['reader'] };
  await cluster.kubectl(['create', 'serviceaccount', 'reader', '-n', namespace]);
  const token = (await cluster.kubectl(['create', 'token', 'reader', '-n', namespace, '--duration=10m'])).trim();
  const server = (await cluster.kubectl(['config', 'view', '--minify', '-o', 'jsonpath={.clusters[0].cluster.server}'])).trim();
  // The local provider's kubeconfig names a CA file, KinD's embeds the CA: the reader's takes either.
  const caFile = (await cluster.kubectl(['config', 'view', '--minify', '-o', 'jsonpath={.clusters[0].cluster.certificate-authority}'])).trim();
  const caData = (await cluster.kubectl(['config', 'view', '--minify', '--raw', '-o', 'jsonpath={.clusters[0].cluster.certificate-authority-data}'])).trim();
  const ca = caFile ? `certificate-authority: "${caFile}"` : `certificate-authority-data: "${caData}"`;
  const kubeconfig = path.join(workDir, `reader-${namespace}.kubeconfig`);
  fs.writeFileSync(kubeconfig, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "${server}", ${ca}}}]
users: [{name: reader, user: {token: "${token}"}}]
contexts: [{name: reader, context: {cluster: c, user: reader, namespace: ${namespace}}}]
current-context: reader
`);
  const asReader = (args: string[]) => execa('kubectl', ['--kubeconfig', kubeconfig, ...args], { reject: false, env: { PATH: t.context.pluginPath } });

  let whoami = await asReader(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
  // The API server checks a token's ServiceAccount in its informer cache, which learns of a new one
  // through a watch: a token of an account made a moment before may be refused until it has.
  for (let attempt = 0; attempt < 20 && whoami.exitCode !== 0; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    whoami = await asReader(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
  }
  t.is(whoami.stdout, `system:serviceaccount:${namespace}:reader`, `the token authenticates as the ServiceAccount: ${String(whoami.stderr)}`);

  const denied = await asReader(['get', 'pvc', '-n', namespace]);
  t.not(denied.exitCode, 0);
  t.regex(String(denied.stderr), /Forbidden/);
  t.regex(String(denied.stderr), /cannot list resource "persistentvolumeclaims"/);

  await cluster.kubectl(['create', 'role', 'pvc-reader', '-n', namespace, '--verb=list,get', '--resource=persistentvolumeclaims']);
  await cluster.kubectl(['create', 'rolebinding', 'pvc-reader', '-n', namespace, '--role=pvc-reader', `--serviceaccount=${namespace}:reader`]);
  let allowed = await asReader(['get', 'pvc', '-n', namespace]);
  // RBAC changes reach the authorizer through a watch; give it a moment.
  for (let attempt = 0; attempt < 20 && allowed.exitCode !== 0; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    allowed = await asReader(['get', 'pvc', '-n', namespace]);
  }
  t.is(allowed.exitCode, 0, String(allowed.stderr));
  await cluster.kubectl(['delete', 'namespace', namespace, '--wait=false']);
});

test('the plugin on PATH runs as `kubectl nkvm version` and reports the server it reached', async (t) => {
  const { cluster } = t.context;
  const serverVersion = JSON.parse(await cluster.kubectl(['version', '-o', 'json'])).serverVersion.gitVersion as string;

  const text = await kubectlNkvm(t.context, ['version']);
  t.is(text.exitCode, 0, String(text.stderr));
  t.regex(String(text.stdout), new RegExp(`^Client Version: v\\d+\\.\\d+\\.\\d+`, 'm'));
  t.true(String(text.stdout).includes(`Server Version: ${serverVersion}`), String(text.stdout));

  const json = await kubectlNkvm(t.context, ['version', '-o', 'json']);
  t.is(json.exitCode, 0, String(json.stderr));
  const report = JSON.parse(String(json.stdout));
  t.is(report.serverVersion.gitVersion, serverVersion);
  t.is(report.credentials.source, 'kubeconfig-env');
});

test('the plugin image (npm run image) is reproducible, imports into the node, and runs with no root and no shell in a restricted namespace', async (t) => {
  t.timeout(10 * 60_000);
  const { cluster, workDir } = t.context;
  const first = await loadedPluginImage(t.context);
  const second = buildImage(path.join(workDir, 'image-2'), { fresh: true });
  t.is(second.digest, first.digest, 'the same sources give the same digest');
  t.is(createHash('sha256').update(fs.readFileSync(second.archive)).digest('hex'), createHash('sha256').update(fs.readFileSync(first.archive)).digest('hex'));

  const namespace = await createNamespace(cluster, 'image');
  await cluster.kubectl(['label', 'namespace', namespace, 'pod-security.kubernetes.io/enforce=restricted']);
  await cluster.kubectl(['apply', '-f', '-'], {
    input: `apiVersion: v1
kind: Pod
metadata: {name: plugin, namespace: ${namespace}}
spec:
  restartPolicy: Never
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: plugin
    image: ${first.reference}
    imagePullPolicy: Never
    args: [version, --client]
    securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
`,
  });
  await cluster.kubectl(['wait', '--for=jsonpath={.status.phase}=Succeeded', 'pod/plugin', '-n', namespace, '--timeout=120s'], { timeoutMs: 130_000 });
  t.regex(await cluster.kubectl(['logs', 'plugin', '-n', namespace]), /^Client Version: v\d+\.\d+\.\d+ \(node v\d+\.\d+\.\d+, linux\/x64\)$/m);
  // What is inside: the executable, its libraries and the CAs; no shell, no package manager. (The layer
  // is binary: a gzip stream may well end in a newline byte, which execa would otherwise strip.)
  const unpacked = path.join(workDir, 'image-unpacked');
  fs.mkdirSync(unpacked);
  await execa('tar', ['-xf', first.archive, '-C', unpacked, './manifest.json']);
  const [hostImage] = JSON.parse(fs.readFileSync(path.join(unpacked, 'manifest.json'), 'utf8')) as { Layers: string[] }[];
  const files = (await execa('tar', ['-xOf', first.archive, `./${hostImage!.Layers[0]}`], { encoding: 'buffer', stripFinalNewline: false }).then((layer) => execa('tar', ['-tz'], { input: layer.stdout }))).stdout.split('\n');
  t.true(files.includes('./usr/local/bin/kubectl-nkvm') && files.includes('./etc/ssl/certs/ca-certificates.crt'));
  t.false(files.some((file) => /^\.\/(usr\/)?bin\/(sh|bash|dash|busybox)$/.test(file)), 'no shell');
});

test('install creates the schedule with exactly its objects, updates in place, equals its printed YAML applied, and uninstall removes only its own', async (t) => {
  const { cluster } = t.context;
  const home = path.join(t.context.workDir, 'install-home');
  const target = await createNamespace(cluster, 'install-target');
  const system = `nkvm-system-${target.split('-').pop()}`;
  const common = ['-n', system, '--store-size', '1Gi', '--keep-last', '3', '--image', 'example.invalid/nkvm:test'];
  const installed = await kubectlNkvm(t.context, ['install', '--name', 'one', ...common, '--', '-n', target, '--all'], { env: { NKVM_HOME: home } });
  t.is(installed.exitCode, 0, String(installed.stderr));
  t.regex(String(installed.stdout), /cronjob\/one applied/);
  const get = (args: string[]) => cluster.kubectl(['get', ...args, '-o', 'name']).then((out) => out.trim().split('\n').filter(Boolean));
  t.deepEqual(await get(['cronjob,serviceaccount,pvc', '-n', system, '-l', 'nkvm.dev/install=one']), ['cronjob.batch/one', 'serviceaccount/one', 'persistentvolumeclaim/one-store']);
  t.deepEqual(await get(['role,rolebinding', '-n', target, '-l', 'nkvm.dev/install=one']), ['role.rbac.authorization.k8s.io/one', 'rolebinding.rbac.authorization.k8s.io/one']);
  const can = await cluster.kubectl(['auth', 'can-i', 'create', 'pods/exec', '-n', target, `--as=system:serviceaccount:${system}:one`]);
  t.is(can.trim(), 'yes');

  const again = await kubectlNkvm(t.context, ['install', '--name', 'one', ...common, '--schedule', '15 3 * * *', '--', '-n', target, '--all'], { env: { NKVM_HOME: home } });
  t.is(again.exitCode, 0, String(again.stderr));
  t.is((await cluster.kubectl(['get', 'cronjob', 'one', '-n', system, '-o', 'jsonpath={.spec.schedule}'])).trim(), '15 3 * * *', 'updated in place');

  const printed = await kubectlNkvm(t.context, ['install', '--name', 'two', ...common, '--dry-run=client', '-o', 'yaml', '--', '-n', target, '--all']);
  t.is(printed.exitCode, 0, String(printed.stderr));
  await cluster.kubectl(['apply', '-f', '-'], { input: String(printed.stdout) });
  const byPlugin = await kubectlNkvm(t.context, ['install', '--name', 'two', ...common, '-o', 'json', '--', '-n', target, '--all']);
  t.is(byPlugin.exitCode, 0, String(byPlugin.stderr));
  const cronSpec = async (name: string) => JSON.parse(await cluster.kubectl(['get', 'cronjob', name, '-n', system, '-o', 'json'])).spec.jobTemplate.spec.template.spec;
  t.deepEqual((await cronSpec('two')).containers, (await cronSpec('one')).containers, 'the printed YAML and install give the same job');

  const removed = await kubectlNkvm(t.context, ['uninstall', '-n', system, '--name', 'one']);
  t.is(removed.exitCode, 0, String(removed.stderr));
  t.deepEqual(await get(['cronjob,serviceaccount', '-n', system, '-l', 'nkvm.dev/install=one']), []);
  t.deepEqual(await get(['role,rolebinding', '-n', target, '-l', 'nkvm.dev/install=one']), []);
  t.deepEqual(await get(['pvc', '-n', system, '-l', 'nkvm.dev/install=one']), ['persistentvolumeclaim/one-store'], 'the store stays');
  t.deepEqual(await get(['cronjob', '-n', system, '-l', 'nkvm.dev/install=two']), ['cronjob.batch/two'], 'another install is untouched');
  const purged = await kubectlNkvm(t.context, ['uninstall', '-n', system, '--name', 'two', '--purge']);
  t.is(purged.exitCode, 0, String(purged.stderr));
  t.deepEqual(await get(['pvc,cronjob,serviceaccount', '-n', system, '-l', 'nkvm.dev/install=two']), []);
  t.deepEqual(await get(['namespace', system]), [`namespace/${system}`], 'the namespace is not the install\'s to remove');
});

test('a scheduled backup runs in a pod as its ServiceAccount, through the kubernetes Service: claims of two namespaces, then the prune, on the store claim; without its permissions the Job fails with the RBAC diagnosis', async (t) => {
  t.timeout(10 * 60_000);
  const { cluster } = t.context;
  const image = await loadedPluginImage(t.context);
  const targets = [await createNamespace(cluster, 'scheduled'), await createNamespace(cluster, 'scheduled')];
  const mark = `nkvm.dev/scheduled=${targets[0]!.split('-').pop()}`;
  for (const namespace of targets) {
    await seedWorkload(cluster, { namespace, claim: 'data', pod: 'app' });
    await cluster.kubectl(['label', 'pvc', 'data', '-n', namespace, mark]);
  }
  const system = `nkvm-${targets[0]!.split('-').pop()}`;
  // Across namespaces (-A): a ClusterRole, exactly as the README writes it but for the image and the size.
  const installed = await kubectlNkvm(t.context, ['install', '-n', system, '--name', 'nightly', '--image', image.reference, '--store-size', '1Gi', '--keep-last', '1', '--', '--all', '-A', '-l', mark]);
  t.is(installed.exitCode, 0, String(installed.stderr));
  t.regex(String(installed.stdout), /clusterrole\/nightly-/);
  const home = path.join(t.context.workDir, 'scheduled-home');
  const from = ['--from-cluster', '-n', system, '--install-name', 'nightly'];
  const beforeAnyRun = await kubectlNkvm(t.context, ['artifacts', 'list', ...from, '-o', 'json'], { env: { NKVM_HOME: home } });
  t.is(beforeAnyRun.exitCode, 0, `a store the job has not written to yet lists nothing: ${beforeAnyRun.stderr}`);
  t.deepEqual(JSON.parse(String(beforeAnyRun.stdout)).items, []);
  const run = async (job: string, outcome: 'Complete' | 'Failed') => {
    await cluster.kubectl(['create', 'job', `--from=cronjob/nightly`, job, '-n', system]);
    await cluster.kubectl(['wait', `--for=condition=${outcome}`, `job/${job}`, '-n', system, '--timeout=180s'], { timeoutMs: 190_000 });
    const logs = async (container: string) => cluster.kubectl(['logs', `job/${job}`, '-n', system, '-c', container]).catch((error: Error) => error.message);
    return { backup: await logs('backup'), prune: await logs('prune') };
  };
  const first = await run('first', 'Complete');
  for (const namespace of targets) t.regex(first.backup, new RegExp(`^${namespace}\\s+data\\s+succeeded\\s.*/store/artifacts/${namespace}/data/\\S+\\.tar\\.zst$`, 'm'));
  t.regex(first.prune, /Nothing to prune/);
  const second = await run('second', 'Complete');
  t.is(second.backup.match(/succeeded/g)?.length, 2);
  t.regex(second.prune, /Pruned 2 backups/, 'the first backup of each claim goes, keeping the last one');

  // Read from outside: the in-cluster catalog, and one artifact brought out, checked and unpacked.
  const listed = await kubectlNkvm(t.context, ['artifacts', 'list', ...from, '-o', 'json'], { env: { NKVM_HOME: home } });
  t.is(listed.exitCode, 0, String(listed.stderr));
  const rows = JSON.parse(String(listed.stdout)).items as { id: string; status: string; namespace: string; credentialSource: string }[];
  t.deepEqual(rows.map((row) => row.status).sort(), ['pruned', 'pruned', 'succeeded', 'succeeded']);
  const kept = rows.find((row) => row.status === 'succeeded' && row.namespace === targets[1])!;
  t.like(kept, { credentialSource: 'in-cluster' });
  const fetched = await kubectlNkvm(t.context, ['artifacts', 'fetch', kept.id, ...from], { env: { NKVM_HOME: home } });
  t.is(fetched.exitCode, 0, String(fetched.stderr));
  t.regex(String(fetched.stderr), /sha256 checked/);
  const verified = await kubectlNkvm(t.context, ['verify', kept.id], { env: { NKVM_HOME: home } });
  t.is(verified.exitCode, 0, String(verified.stdout) + String(verified.stderr));
  const unpackDir = path.join(t.context.workDir, 'scheduled-unpacked');
  fs.mkdirSync(unpackDir);
  await execa('sh', ['-c', `zstd -dc '${String(fetched.stdout).trim()}' | tar -xf - -C '${unpackDir}'`]);
  const SUMS = 'find . -type f | sort | xargs sha256sum';
  const inClaim = await cluster.kubectl(['exec', 'app', '-n', targets[1]!, '--', 'sh', '-c', `cd /data && ${SUMS}`]);
  t.is((await execa('sh', ['-c', SUMS], { cwd: unpackDir })).stdout.trim(), inClaim.trim(), 'byte for byte');

  await cluster.kubectl(['delete', 'clusterrolebinding', '-l', `nkvm.dev/install=nightly,nkvm.dev/install-namespace=${system}`]);
  const denied = await run('denied', 'Failed');
  t.regex(denied.backup, /\[KubernetesDiscoveryError\] list persistentvolumeclaims failed: API status 403 \(Forbidden\)/);
  const status = await kubectlNkvm(t.context, ['status', '-n', system, '--name', 'nightly', '-o', 'json']);
  t.is(status.exitCode, 0, String(status.stderr));
  const report = JSON.parse(String(status.stdout)) as { schedule: string; jobs: { name: string; result: string }[] };
  t.is(report.schedule, '0 2 * * *');
  t.deepEqual(report.jobs.map((job) => [job.name, job.result]), [['denied', 'failed'], ['second', 'succeeded'], ['first', 'succeeded']]);
  await kubectlNkvm(t.context, ['uninstall', '-n', system, '--name', 'nightly', '--purge']);
});

test('a scheduled backup into an S3 repository: the job creates it, its credentials come from a Secret, forget --keep-last 1 --prune runs after each backup; restic checks and restores it', async (t) => {
  t.timeout(10 * 60_000);
  const { cluster } = t.context;
  const server = await s3ServerForPods(t);
  if (!server) return;
  const restic = findRestic();
  const image = await loadedPluginImage(t.context);
  const target = await createNamespace(cluster, 'repo-cron');
  await seedWorkload(cluster, { namespace: target, claim: 'data', pod: 'app' });
  const system = await createNamespace(cluster, 'nkvm-repo');
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  await cluster.kubectl(['create', 'secret', 'generic', 'backup-repo', '-n', system, `--from-literal=RESTIC_PASSWORD=${password}`, ...Object.entries(server.env).map(([key, value]) => `--from-literal=${key}=${value}`)]);
  const location = server.location('cluster');
  const installed = await kubectlNkvm(t.context, ['install', '-n', system, '--name', 'repo', '--image', image.reference, '--store-size', '1Gi', '--repo', location, '--repo-secret', 'backup-repo', '--keep-last', '1', '--prune', '--', '-n', target, '--all']);
  t.is(installed.exitCode, 0, String(installed.stderr));
  t.false((await cluster.kubectl(['get', 'cronjob', 'repo', '-n', system, '-o', 'json'])).includes(password), 'the password is in the Secret only');
  const run = async (job: string) => {
    await cluster.kubectl(['create', 'job', '--from=cronjob/repo', job, '-n', system]);
    const done = await cluster.kubectl(['wait', '--for=condition=Complete', `job/${job}`, '-n', system, '--timeout=180s'], { timeoutMs: 190_000 }).then(() => true, () => false);
    const logs = async (container: string) => cluster.kubectl(['logs', `job/${job}`, '-n', system, '-c', container]).catch((error: Error) => error.message);
    const result = { backup: await logs('backup'), prune: await logs('prune') };
    t.true(done, `job ${job} did not complete: ${result.backup}\n${result.prune}`);
    return result;
  };
  const first = await run('first');
  t.regex(first.backup, new RegExp(`^${target}\\s+data\\s+succeeded\\s.*snapshot [0-9a-f]{8} in ${location.replaceAll('.', '\\.')}`, 'm'));
  const second = await run('second');
  t.regex(second.backup, /files unchanged since [0-9a-f]{8} \(not read\)/, 'the second run reads only what changed');
  t.regex(first.backup, /by data mover nkvm-backup-data-/, 'the job\'s copies run in movers: no data through the API server');
  t.regex(second.prune, /removed 1 snapshot/);

  // restic, from outside, with the same credentials: one snapshot left (--keep-last 1), sound, whole.
  const env = { ...server.env, RESTIC_PASSWORD: password };
  const resticRun = (args: string[]) => execa(restic, ['--repo', location, '--no-cache', ...args], { env, reject: false });
  const snapshots = JSON.parse((await resticRun(['snapshots', '--json'])).stdout) as { hostname: string; paths: string[] }[];
  t.deepEqual(snapshots.map((snapshot) => [snapshot.hostname, snapshot.paths]), [[target, ['/data/data']]]);
  const check = await resticRun(['check', '--read-data']);
  t.is(check.exitCode, 0, check.stdout + check.stderr);
  const restored = fs.mkdtempSync(path.join(t.context.workDir, 'repo-cron-'));
  t.is((await resticRun(['restore', 'latest', '--target', restored])).exitCode, 0);
  const SUMS = 'find . -type f | sort | xargs sha256sum';
  const inClaim = await cluster.kubectl(['exec', 'app', '-n', target, '--', 'sh', '-c', `cd /data && ${SUMS}`]);
  t.is((await execa('sh', ['-c', SUMS], { cwd: path.join(restored, 'data', 'data') })).stdout.trim(), inClaim.trim());
  await kubectlNkvm(t.context, ['uninstall', '-n', system, '--name', 'repo', '--purge']);
});

test('a scheduled backup with --remote-kubeconfig-secret uses the kubeconfig mounted from a real Secret, and its rows say so', async (t) => {
  t.timeout(10 * 60_000);
  const { cluster } = t.context;
  const image = await loadedPluginImage(t.context);
  const target = await createNamespace(cluster, 'remote');
  await seedWorkload(cluster, { namespace: target, claim: 'data', pod: 'app' });
  const system = `nkvm-${target.split('-').pop()}`;
  // "The other cluster": this one, through its Service address as a pod sees it, as another ServiceAccount.
  await cluster.kubectl(['create', 'serviceaccount', 'remote-backup', '-n', target]);
  await cluster.kubectl(['create', 'role', 'remote-backup', '-n', target, '--verb=get,list', '--resource=persistentvolumeclaims', '--verb=get,list,create,delete', '--resource=pods', '--verb=create,get', '--resource=pods/exec']);
  await cluster.kubectl(['create', 'rolebinding', 'remote-backup', '-n', target, '--role=remote-backup', `--serviceaccount=${target}:remote-backup`]);
  const token = (await cluster.kubectl(['create', 'token', 'remote-backup', '-n', target, '--duration=1h'])).trim();
  const clusterIP = (await cluster.kubectl(['get', 'service', 'kubernetes', '-n', 'default', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
  const caData = (await cluster.kubectl(['get', 'configmap', 'kube-root-ca.crt', '-n', 'default', '-o', 'jsonpath={.data.ca\\.crt}']));
  const kubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: remote, cluster: {server: "https://${clusterIP}:443", certificate-authority-data: "${Buffer.from(caData).toString('base64')}"}}]
users: [{name: remote-backup, user: {token: "${token}"}}]
contexts: [{name: remote, context: {cluster: remote, user: remote-backup, namespace: ${target}}}]
current-context: remote
`;
  await cluster.kubectl(['create', 'namespace', system]);
  const kubeconfigFile = path.join(t.context.workDir, `${target}.kubeconfig`);
  fs.writeFileSync(kubeconfigFile, kubeconfig, { mode: 0o600 });
  await cluster.kubectl(['create', 'secret', 'generic', 'remote-kubeconfig', '-n', system, `--from-file=config=${kubeconfigFile}`]);
  const installed = await kubectlNkvm(t.context, ['install', '-n', system, '--name', 'remote', '--image', image.reference, '--store-size', '1Gi', '--remote-kubeconfig-secret', 'remote-kubeconfig', '--', '-n', target, 'data']);
  t.is(installed.exitCode, 0, String(installed.stderr));
  await cluster.kubectl(['create', 'job', '--from=cronjob/remote', 'once', '-n', system]);
  await cluster.kubectl(['wait', '--for=condition=Complete', 'job/once', '-n', system, '--timeout=180s'], { timeoutMs: 190_000 });
  const listed = await kubectlNkvm(t.context, ['artifacts', 'list', '--from-cluster', '-n', system, '--install-name', 'remote', '-o', 'json'], { env: { NKVM_HOME: path.join(t.context.workDir, 'remote-home') } });
  t.is(listed.exitCode, 0, String(listed.stderr));
  t.like(JSON.parse(String(listed.stdout)).items[0], { status: 'succeeded', namespace: target, pvc: 'data', credentialSource: 'remote-kubeconfig', cluster: `https://${clusterIP}:443` });
  await kubectlNkvm(t.context, ['uninstall', '-n', system, '--name', 'remote', '--purge']);
});
