import test from 'ava';
import { createRequire } from 'node:module';
import { LIBRARIES, runCli, SHARED_MODULE, SHARED_MODULES_EXPORT } from '../../src/sea-assets.ts';

// The single executable's CLI takes each library from bundles of its own (src/sea-assets.ts): one is
// run when a name is first looked for in it, not when the library is required, so that discover,
// which reads the kubeconfig alone, runs neither the generated API nor undici; and the generated
// API's bundle takes the modules it shares with the kubeconfig's from there, not from a copy.
test('a library\'s bundles run when a name is first looked for in them, in turn and once each; shared modules come from the bundle that holds them', (t) => {
  const [undici, kubernetes] = LIBRARIES;
  const [kubeconfigAsset, apiAsset] = kubernetes.assets;
  const compiled: string[] = [];
  const sources: Record<string, string> = {
    [kubeconfigAsset]: `class RequestContext {}
      const undici = require(${JSON.stringify(undici.name)});
      module.exports = { KubeConfig: class KubeConfig { dispatcher() { return new undici.Agent(); } }, ${JSON.stringify(SHARED_MODULES_EXPORT)}: { 'dist/http.js': { RequestContext } } };`,
    [apiAsset]: `const http = require(${JSON.stringify(`${SHARED_MODULE}${kubeconfigAsset}/dist/http.js`)});
      module.exports = { CoreV1Api: class CoreV1Api { context() { return new http.RequestContext(); } }, RequestContext: http.RequestContext };`,
    [undici.assets[0]]: 'module.exports = { Agent: class Agent { constructor() { this.kind = "agent"; } } };',
  };
  const cli = `const k8s = require(${JSON.stringify(kubernetes.name)});
    module.exports = { kubeConfig: () => new k8s.KubeConfig(), api: () => new k8s.CoreV1Api(), RequestContext: () => k8s.RequestContext };`;
  const running = runCli({ source: cli }, (asset) => {
    compiled.push(asset);
    return { source: sources[asset]! };
  }, createRequire(import.meta.url), '/opt/kubectl-nkvm', { compileSqlWasm: () => Promise.reject(new Error('unused')) });
  t.deepEqual(compiled, [], 'required at load, run on use');
  const exports = running.exports as { kubeConfig(): { dispatcher(): { kind: string } }; api(): { context(): object }; RequestContext(): new () => object };
  const kubeConfig = exports.kubeConfig();
  t.deepEqual(compiled, [kubeconfigAsset], 'the kubeconfig ran, and required undici without reading from it');
  t.true(exports.api().context() instanceof exports.RequestContext(), 'the generated API uses the kubeconfig bundle\'s module, not a copy');
  t.deepEqual(compiled, [kubeconfigAsset, apiAsset]);
  t.is(kubeConfig.dispatcher().kind, 'agent');
  exports.kubeConfig();
  exports.api();
  t.deepEqual(compiled, [kubeconfigAsset, apiAsset, undici.assets[0]], 'each ran once');
  t.deepEqual([...running.libraries.keys()], compiled, 'their Scripts, for the code caches');
});
