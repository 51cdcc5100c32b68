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
import { clusterSuite, createNamespace, kubectlNkvm } from './support.ts';

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
  const caFile = (await cluster.kubectl(['config', 'view', '--minify', '-o', 'jsonpath={.clusters[0].cluster.certificate-authority}'])).trim();
  const kubeconfig = path.join(workDir, `reader-${namespace}.kubeconfig`);
  fs.writeFileSync(kubeconfig, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "${server}", certificate-authority: "${caFile}"}}]
users: [{name: reader, user: {token: "${token}"}}]
contexts: [{name: reader, context: {cluster: c, user: reader, namespace: ${namespace}}}]
current-context: reader
`);
  const asReader = (args: string[]) => execa('kubectl', ['--kubeconfig', kubeconfig, ...args], { reject: false, env: { PATH: t.context.pluginPath } });

  const whoami = await asReader(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
  t.is(whoami.stdout, `system:serviceaccount:${namespace}:reader`, 'the token authenticates as the ServiceAccount');

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
  const first = buildImage(path.join(workDir, 'image-1'));
  const second = buildImage(path.join(workDir, 'image-2'));
  t.is(second.digest, first.digest, 'the same sources give the same digest');
  t.is(createHash('sha256').update(fs.readFileSync(second.archive)).digest('hex'), createHash('sha256').update(fs.readFileSync(first.archive)).digest('hex'));
  await cluster.loadImageArchive(first.archive);

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
  // What is inside: the executable, its libraries and the CAs; no shell, no package manager.
  const unpacked = path.join(workDir, 'image-unpacked');
  fs.mkdirSync(unpacked);
  await execa('tar', ['-xf', first.archive, '-C', unpacked, './manifest.json']);
  const [hostImage] = JSON.parse(fs.readFileSync(path.join(unpacked, 'manifest.json'), 'utf8')) as { Layers: string[] }[];
  const files = (await execa('tar', ['-xOf', first.archive, `./${hostImage!.Layers[0]}`], { encoding: 'buffer' }).then((layer) => execa('tar', ['-tz'], { input: layer.stdout }))).stdout.split('\n');
  t.true(files.includes('./usr/local/bin/kubectl-nkvm') && files.includes('./etc/ssl/certs/ca-certificates.crt'));
  t.false(files.some((file) => /^\.\/(usr\/)?bin\/(sh|bash|dash|busybox)$/.test(file)), 'no shell');
});
