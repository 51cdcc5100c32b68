import test from 'ava';
import { build, type Metafile } from 'esbuild';
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { cliBundleOptions, kubeconfigBundleOptions, kubeconfigModules, libraryBundleOptions } from '../../scripts/cli-bundle.ts';

// What every command pays before it starts is what main.ts reaches through static imports: the
// bundle evaluates those modules at load, and only those (the rest wait for an `await import()`).
// The cluster client, the HTTP and WebSocket clients, the repository and the catalog's SQLite are
// most of the bundle; a static import of any of them from a command file costs every command,
// `artifacts list` included, tens of milliseconds (docs: README "Start-up").
const LOADED_ON_USE = [
  /^src\/cli\/commands\/(?!index\.ts$)/,
  /^node_modules\/@kubernetes\/client-node\//,
  /^node_modules\/undici\//,
  /^node_modules\/ws\//,
  /^node_modules\/sql\.js\//,
  /^src\/repository\/(repository|archiver|chunker|rolling-hash|crypto|poly1305|wasm-encoding|pack|index|restorer|check|key|lock|prune|forget|tree|snapshot)\.ts$/,
  /^src\/repository\/backends\/(s3|local|open)\.ts$/,
  /^src\/kube\/(client|config|exec|acked-exec)\.ts$/,
  /^src\/backup\/(manager|restore|volume-snapshot|copy)\.ts$/,
  /^src\/store\/catalog\.ts$/,
  /^src\/install\/(cluster-store|fetch)\.ts$/,
];

async function metafile(): Promise<Metafile> {
  const result = await build({ ...cliBundleOptions('kubectl-nkvm'), write: false, logLevel: 'silent' });
  return result.metafile;
}

/** Each module `root` (main.ts) reaches through static imports, with the module that imported it first. */
function staticGraph(meta: Metafile, root = 'src/main.ts'): Map<string, string | null> {
  const importedBy = new Map<string, string | null>([[root, null]]);
  const queue = [root];
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    for (const edge of meta.inputs[file]?.imports ?? []) {
      if (edge.kind === 'dynamic-import' || edge.external || importedBy.has(edge.path)) continue;
      importedBy.set(edge.path, file);
      queue.push(edge.path);
    }
  }
  return importedBy;
}

function chain(importedBy: Map<string, string | null>, file: string): string {
  const path: string[] = [];
  for (let at: string | null | undefined = file; at; at = importedBy.get(at)) path.unshift(at);
  return path.join(' -> ');
}

test('start-up evaluates no command module, nor the cluster client, HTTP, repository or SQLite code: each is imported on use', async (t) => {
  const meta = await metafile();
  const importedBy = staticGraph(meta);
  t.true(importedBy.has('src/cli/commands/index.ts') && importedBy.has('node_modules/yargs/index.mjs'), 'the walk reaches the command list and the parser');
  const leaks = [...importedBy.keys()].filter((file) => LOADED_ON_USE.some((pattern) => pattern.test(file)));
  t.deepEqual(leaks.map((file) => chain(importedBy, file)), []);
  t.true(Object.keys(meta.inputs).some((file) => file.startsWith('node_modules/@kubernetes/client-node/')), 'the bundle still holds the client, for when it is used');
});

// `artifacts list` reads the local catalog and nothing else: importing a constant from install.ts
// once made it load the exec stream, ws, and with them node:https, node:tls and node:crypto.
const CLUSTER_CODE = [/^node_modules\/(ws|undici|@kubernetes\/client-node)\//, /^src\/kube\/(client|exec|acked-exec|config)\.ts$/, /^src\/backup\/(helper-pod|manager|copy)\.ts$/];

test('artifacts loads no cluster code unless it reaches a cluster (--from-cluster)', async (t) => {
  const meta = await metafile();
  const importedBy = staticGraph(meta, 'src/cli/commands/artifacts.ts');
  const leaks = [...importedBy.keys()].filter((file) => CLUSTER_CODE.some((pattern) => pattern.test(file)));
  t.true(importedBy.has('src/cli/commands/artifacts.ts') && importedBy.size > 5, 'the walk reaches what artifacts imports');
  t.deepEqual(leaks.map((file) => chain(importedBy, file)), []);
});

test('no copy of string-width is in the bundle: its imports resolve to src/cli/text-width.ts', async (t) => {
  const meta = await metafile();
  t.deepEqual(Object.keys(meta.inputs).filter((file) => /(^|\/)string-width\//.test(file)), []);
  t.true('src/cli/text-width.ts' in meta.inputs);
});

// undici's index.js loads all of undici, node:http2 among it, as it loads: the bundles take only what
// is used, keep the one side effect of the index that matters (agent.request()), and load node:http2
// on use. Checked on the bundle itself, in a process of its own.
test('the bundle loads only the undici it uses, without node:http2, and its agents still have request()', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nkvm-undici-'));
  try {
    const bundle = path.join(dir, 'undici.cjs');
    await build(libraryBundleOptions('undici', ['Agent', 'ProxyAgent', 'fetch', 'getGlobalDispatcher'], bundle));
    const meta = (await build({ ...libraryBundleOptions('undici', ['Agent'], path.join(dir, 'unused.cjs')), write: false })).metafile;
    t.false('node_modules/undici/index.js' in meta.inputs);
    const script = `
      const undici = require(${JSON.stringify(bundle)});
      const agent = new undici.Agent();
      console.log(JSON.stringify({
        http2: process.moduleLoadList.some((name) => name === 'NativeModule http2'),
        request: typeof agent.request, fetch: typeof undici.fetch, dispatcher: typeof undici.getGlobalDispatcher().dispatch, proxy: typeof undici.ProxyAgent,
      }));
      agent.close();
    `;
    const run = await execa(process.execPath, ['-e', script]);
    t.deepEqual(JSON.parse(run.stdout), { http2: false, request: 'function', fetch: 'function', dispatcher: 'function', proxy: 'function' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// yargs' platform shim loads node:assert (~6 ms a start) and yargs renders a command's whole help
// after its handler starts (5-15 ms): the bundle gives the shim src/cli/yargs-assert.ts and leaves
// the rendering out (scripts/cli-bundle.ts).
test('the bundle neither loads node:assert for yargs nor renders a command help no one asked for', async (t) => {
  const result = await build({ ...cliBundleOptions('kubectl-nkvm'), write: false, logLevel: 'silent' });
  const bundle = result.outputFiles[0]!.text;
  const shim = result.metafile.inputs['node_modules/yargs/lib/platform-shims/esm.mjs'];
  t.truthy(shim, 'the walk reaches yargs\' platform shim');
  const asserts = shim!.imports.filter((edge) => /assert/.test(edge.path)).map((edge) => edge.path);
  t.deepEqual(asserts, ['src/cli/yargs-assert.ts']);
  t.notRegex(bundle, /\.cacheHelpMessage\(\);/);
});

// The client's kubeconfig imports, as it loads, what only a proxy-url or an auth provider uses: the
// SOCKS and HTTP proxy agents (with debug, socks, ip-address, node:dns, node:tty), JSONPath, the
// OpenID client and node:child_process. The bundles load each on use (scripts/cli-bundle.ts):
// checked on the kubeconfig's bundle, in a process of its own, by node:tty (which debug loads) and
// node:child_process (the auth providers), with a SOCKS proxy and an exec credential plugin that
// still work. (undici, outside as in the single executable, loads node:dns itself.)
test('the kubeconfig bundle loads the proxy agents, auth libraries and child_process only when a kubeconfig uses them', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nkvm-kubeconfig-'));
  try {
    const bundle = path.join(dir, 'kubeconfig.cjs');
    // undici stays outside, as in the single executable (it has a bundle of its own there).
    await build(kubeconfigBundleOptions(await kubeconfigModules(['undici']), bundle, ['undici']));
    const credential = JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 'from-exec' } });
    const kubeconfig = (user: object, cluster: object = {}) => JSON.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
      clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:6443', ...cluster } }],
      users: [{ name: 'u', user }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
    });
    const script = `
      const before = new Set(process.moduleLoadList);
      const { KubeConfig } = require(${JSON.stringify(bundle)});
      const loadedBy = () => process.moduleLoadList.filter((name) => !before.has(name) && /^NativeModule (tty|child_process)$/.test(name)).map((name) => name.slice(13));
      (async () => {
        const plain = new KubeConfig();
        plain.loadFromString(${JSON.stringify(kubeconfig({ token: 'plain' }))});
        const plainOptions = {};
        await plain.applyToHTTPSOptions(plainOptions);
        const atStart = loadedBy();
        const proxied = new KubeConfig();
        proxied.loadFromString(${JSON.stringify(kubeconfig({ token: 'plain' }, { 'proxy-url': 'socks5://127.0.0.1:1080' }))});
        const proxiedOptions = {};
        await proxied.applyToHTTPSOptions(proxiedOptions);
        const exec = new KubeConfig();
        exec.loadFromString(${JSON.stringify(kubeconfig({ exec: { apiVersion: 'client.authentication.k8s.io/v1', command: '/bin/sh', args: ['-c', `echo '${credential}'`], interactiveMode: 'Never' } }))});
        const execOptions = { headers: {} };
        await exec.applyToHTTPSOptions(execOptions);
        console.log(JSON.stringify({ atStart, plain: plainOptions.headers.Authorization, agent: proxiedOptions.agent.constructor.name, exec: execOptions.headers.Authorization, after: loadedBy().sort() }));
      })();
    `;
    const run = await execa(process.execPath, ['-e', script], { env: { NODE_PATH: path.resolve('node_modules') } });
    t.deepEqual(JSON.parse(run.stdout), { atStart: [], plain: 'Bearer plain', agent: 'SocksProxyAgent', exec: 'Bearer from-exec', after: ['child_process', 'tty'] });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
