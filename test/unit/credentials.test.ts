import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { chooseCredentialSource, mergeKubeconfigs, resolveCredentials, type CredentialEnvironment } from '../../src/kube/config.ts';
import { isNkvmError } from '../../src/errors.ts';

function environment(files: string[], env: Record<string, string | undefined> = {}): CredentialEnvironment {
  const present = new Set(files);
  return { env, homeDir: '/home/u', fileExists: (file) => present.has(file) };
}

test('--kubeconfig wins over everything else', (t) => {
  const { chosen } = chooseCredentialSource(
    { kubeconfig: '/flag/config' },
    environment(['/etc/nkvm/remote/config', '/home/u/.kube/config'], { KUBECONFIG: '/env/config' }),
  );
  t.deepEqual(chosen, { source: 'kubeconfig-flag', paths: ['/flag/config'] });
});

test('the remote kubeconfig mount comes before KUBECONFIG, and NKVM_REMOTE_KUBECONFIG moves it', (t) => {
  const env = { KUBECONFIG: '/env/config', NKVM_REMOTE_KUBECONFIG: '/mnt/remote' };
  t.deepEqual(chooseCredentialSource({}, environment(['/mnt/remote', '/env/config'], env)).chosen, {
    source: 'remote-kubeconfig',
    paths: ['/mnt/remote'],
  });
  t.deepEqual(chooseCredentialSource({}, environment(['/etc/nkvm/remote/config'], {})).chosen?.source, 'remote-kubeconfig');
});

test('KUBECONFIG keeps the files of its list that exist, in order, and hides ~/.kube/config', (t) => {
  const { chosen } = chooseCredentialSource(
    {},
    environment(['/a', '/c', '/home/u/.kube/config'], { KUBECONFIG: ['/a', '/b', '/c'].join(path.delimiter) }),
  );
  t.deepEqual(chosen, { source: 'kubeconfig-env', paths: ['/a', '/c'] });
});

test('~/.kube/config is used when KUBECONFIG is unset', (t) => {
  t.deepEqual(chooseCredentialSource({}, environment(['/home/u/.kube/config'])).chosen, {
    source: 'kubeconfig-home',
    paths: ['/home/u/.kube/config'],
  });
});

test('the in-cluster ServiceAccount needs its token and KUBERNETES_SERVICE_HOST/PORT', (t) => {
  const saEnv = { NKVM_SERVICEACCOUNT_DIR: '/sa', KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' };
  t.deepEqual(chooseCredentialSource({}, environment(['/sa/token'], saEnv)).chosen, { source: 'in-cluster', paths: ['/sa'] });
  const withoutHost = chooseCredentialSource({}, environment(['/sa/token'], { NKVM_SERVICEACCOUNT_DIR: '/sa' }));
  t.is(withoutHost.chosen, undefined);
  t.regex(withoutHost.skipped.at(-1)!.reason, /KUBERNETES_SERVICE_HOST/);
});

test('with nothing present, the authentication error names every source tried', (t) => {
  const error = t.throws(() => resolveCredentials({}, environment([], { KUBECONFIG: '/missing' })));
  t.true(isNkvmError(error));
  t.is(error!.name, 'KubernetesAuthenticationError');
  t.regex(error!.message, /^Kubernetes authentication setup failed: no credentials found/);
  for (const tried of ['--kubeconfig', '/etc/nkvm/remote/config', '/missing', 'serviceaccount/token']) t.true(error!.message.includes(tried), tried);
});

function writeKubeconfig(dir: string, name: string, body: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, body);
  return file;
}

const twoContexts = `apiVersion: v1
kind: Config
clusters:
- {name: one, cluster: {server: "https://one.example:6443"}}
- {name: two, cluster: {server: "https://two.example:6443"}}
users:
- {name: u, user: {token: abc}}
contexts:
- {name: first, context: {cluster: one, user: u, namespace: apps}}
- {name: second, context: {cluster: two, user: u}}
current-context: first
`;

test('resolveCredentials reads the chosen file, honours --context and -n, and reports what it used', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-unit-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = writeKubeconfig(dir, 'config', twoContexts);
  const real: CredentialEnvironment = { env: {}, homeDir: dir, fileExists: (f) => fs.existsSync(f) };

  const current = resolveCredentials({ kubeconfig: file }, real);
  t.like(current, { source: 'kubeconfig-flag', context: 'first', server: 'https://one.example:6443', namespace: 'apps' });

  const other = resolveCredentials({ kubeconfig: file, context: 'second', namespace: 'ns1' }, real);
  t.like(other, { context: 'second', server: 'https://two.example:6443', namespace: 'ns1' });

  const unknown = t.throws(() => resolveCredentials({ kubeconfig: file, context: 'third' }, real));
  t.regex(unknown!.message, /context "third" not found/);
  t.regex((unknown as { hint?: string }).hint ?? '', /first, second/);
});

test('a present but broken kubeconfig is an error, not a silent fall-through', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-unit-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const broken = writeKubeconfig(dir, 'broken', 'clusters: [ this is not yaml');
  const error = t.throws(() => resolveCredentials({}, { env: { KUBECONFIG: broken }, homeDir: dir, fileExists: (f) => fs.existsSync(f) }));
  t.is(error!.name, 'KubernetesAuthenticationError');
  t.true(error!.message.includes(broken));

  const empty = writeKubeconfig(dir, 'empty', 'apiVersion: v1\nkind: Config\n');
  const noContext = t.throws(() => resolveCredentials({ kubeconfig: empty }, { env: {}, homeDir: dir, fileExists: (f) => fs.existsSync(f) }));
  t.regex(noContext!.message, /no current context/);
});

test('the in-cluster source builds a kubeconfig from the ServiceAccount directory', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-unit-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const [name, content] of [['token', 'tkn'], ['ca.crt', 'ca'], ['namespace', 'jobs\n']]) fs.writeFileSync(path.join(dir, name!), content!);
  const resolved = resolveCredentials(
    {},
    {
      env: { NKVM_SERVICEACCOUNT_DIR: dir, NKVM_REMOTE_KUBECONFIG: path.join(dir, 'absent'), KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' },
      homeDir: dir,
      fileExists: (f) => fs.existsSync(f),
    },
  );
  t.like(resolved, { source: 'in-cluster', server: 'https://10.96.0.1:443', namespace: 'jobs' });
  t.is(resolved.kubeConfig.getCurrentCluster()?.caFile, path.join(dir, 'ca.crt'));
});

test('merging kubeconfigs follows kubectl: the first definition and current-context win', (t) => {
  const a = new KubeConfig();
  a.loadFromOptions({ clusters: [{ name: 'c', server: 'https://a', skipTLSVerify: false }], users: [{ name: 'u' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: '' });
  const b = new KubeConfig();
  b.loadFromOptions({
    clusters: [{ name: 'c', server: 'https://b', skipTLSVerify: false }, { name: 'd', server: 'https://d', skipTLSVerify: false }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'y', cluster: 'd', user: 'u' }],
    currentContext: 'y',
  });
  const merged = mergeKubeconfigs([a, b]);
  t.is(merged.getCluster('c')?.server, 'https://a');
  t.is(merged.getCluster('d')?.server, 'https://d');
  t.is(merged.getCurrentContext(), 'y');
});

test('connection flags override the kubeconfig as kubectl does: --cluster, --user, --server, CA or insecure, token, client cert', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-unit-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = writeKubeconfig(dir, 'config', twoContexts.replace('users:\n', 'users:\n- {name: exec-user, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: get-token}}}\n'));
  const real: CredentialEnvironment = { env: {}, homeDir: dir, fileExists: (f) => fs.existsSync(f) };

  const other = resolveCredentials({ kubeconfig: file, overrides: { cluster: 'two', tlsServerName: 'api.internal' } }, real);
  t.like(other, { context: 'first', cluster: 'two', server: 'https://two.example:6443', namespace: 'apps' });
  t.is(other.kubeConfig.getCurrentCluster()?.tlsServerName, 'api.internal');

  const server = resolveCredentials({ kubeconfig: file, overrides: { server: 'https://10.0.0.9:6443', insecureSkipTlsVerify: true } }, real);
  t.like(server, { server: 'https://10.0.0.9:6443' });
  t.true(server.kubeConfig.getCurrentCluster()?.skipTLSVerify);

  const token = resolveCredentials({ kubeconfig: file, overrides: { user: 'exec-user', token: 'override' } }, real);
  t.like(token.kubeConfig.getCurrentUser(), { name: 'exec-user', token: 'override', exec: undefined });

  const certs = resolveCredentials({ kubeconfig: file, overrides: { clientCertificate: '/c.crt', clientKey: '/c.key', certificateAuthority: '/ca.crt' } }, real);
  t.like(certs.kubeConfig.getCurrentUser(), { certFile: '/c.crt', keyFile: '/c.key', token: 'abc' });
  t.like(certs.kubeConfig.getCurrentCluster(), { caFile: '/ca.crt', skipTLSVerify: false });

  t.throws(() => resolveCredentials({ kubeconfig: file, overrides: { user: 'nobody' } }, real), { message: /user "nobody" not found/ });
  t.throws(() => resolveCredentials({ kubeconfig: file, overrides: { certificateAuthority: '/ca', insecureSkipTlsVerify: true } }, real), {
    message: /cannot be used together/,
  });
});

test('--server with no kubeconfig at all: the flags alone are the source', (t) => {
  const resolved = resolveCredentials({ overrides: { server: 'https://10.1.2.3:6443', token: 't0k', certificateAuthority: '/ca.crt' } }, environment([]));
  t.like(resolved, { source: 'flags', server: 'https://10.1.2.3:6443', namespace: 'default', paths: [] });
  t.like(resolved.kubeConfig.getCurrentUser(), { token: 't0k' });
  t.like(resolved.kubeConfig.getCurrentCluster(), { caFile: '/ca.crt' });
  const none = t.throws(() => resolveCredentials({ overrides: { token: 't0k' } }, environment([])));
  t.regex(none!.message, /no credentials found/);
});

test('impersonation adds its headers to API calls and to exec', async (t) => {
  const resolved = resolveCredentials({ overrides: { server: 'https://10.1.2.3:6443', token: 't', impersonate: { user: 'system:serviceaccount:shop:backup', groups: ['a', 'b,c'], uid: '42' } } }, environment([]));
  t.deepEqual(resolved.impersonate, { user: 'system:serviceaccount:shop:backup', groups: ['a', 'b,c'], uid: '42' });
  const options: { headers?: Record<string, unknown> } = {};
  await resolved.kubeConfig.applyToHTTPSOptions(options as never);
  t.like(options.headers, { 'Impersonate-User': 'system:serviceaccount:shop:backup', 'Impersonate-Uid': '42', 'Impersonate-Group': ['a', 'b,c'] });
});
