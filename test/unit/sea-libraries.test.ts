import test from 'ava';
import { createRequire } from 'node:module';
import { LIBRARIES, runCli } from '../../src/sea-assets.ts';

// The single executable's CLI takes each library from a bundle of its own (src/sea-assets.ts): one
// is compiled when a name is first read from it, not when it is required, so that a command that
// requires the Kubernetes client (and, through it, undici) for its kubeconfig alone never pays for
// undici.
test('a library bundle runs when a name is first read from it, once, and not when it is required', (t) => {
  const [undici, kubernetes] = LIBRARIES;
  const compiled: string[] = [];
  const sources: Record<string, string> = {
    [kubernetes.asset]: `const undici = require(${JSON.stringify(undici.name)}); module.exports = { KubeConfig: class KubeConfig {}, dispatcher: () => new undici.Agent() };`,
    [undici.asset]: 'module.exports = { Agent: class Agent { constructor() { this.kind = "agent"; } } };',
  };
  const cli = `const k8s = require(${JSON.stringify(kubernetes.name)}); module.exports = { kubeConfigName: () => k8s.KubeConfig.name, dispatcher: () => k8s.dispatcher() };`;
  const running = runCli({ source: cli }, (asset) => {
    compiled.push(asset);
    return { source: sources[asset]! };
  }, createRequire(import.meta.url), '/opt/kubectl-nkvm', { compileSqlWasm: () => Promise.reject(new Error('unused')) });
  t.deepEqual(compiled, [], 'required at load, compiled on use');
  const exports = running.exports as { kubeConfigName(): string; dispatcher(): { kind: string } };
  t.is(exports.kubeConfigName(), 'KubeConfig');
  t.deepEqual(compiled, [kubernetes.asset], 'the Kubernetes client ran and required undici without reading from it');
  t.is(exports.dispatcher().kind, 'agent');
  t.is(exports.kubeConfigName(), 'KubeConfig');
  t.deepEqual(compiled, [kubernetes.asset, undici.asset], 'each ran once');
  t.deepEqual([...running.libraries.keys()], [kubernetes.asset, undici.asset], 'their Scripts, for the code caches');
});
