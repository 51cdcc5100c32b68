// Bundles the plugin into one executable file, dist/kubectl-nkvm: CommonJS (what Node's single
// executable applications load), a node shebang, and sql.js's WASM embedded so nothing else is
// needed beside it at run time.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { PRERENDERED_HELP_WIDTHS } from './src/cli/fast-paths.ts';
import { cliBundleOptions, kubeconfigBundleOptions, kubeconfigModules, libraryBundleOptions, namesUsedFromLibraries, NODE_BUNDLE } from './scripts/cli-bundle.ts';
import { CLI_ASSET, LIBRARIES } from './src/sea-assets.ts';

/**
 * V8 keeps a script's source for as long as the process runs, and one character above Latin-1 (a
 * quote mark in a dependency's comment, a µ in a regular expression) makes the whole source a
 * two-byte string: 10 MB more at every start. esbuild escapes strings but leaves comments and
 * regular expressions as they are; \uXXXX means the same in every one of those places.
 */
async function asciiOnly(file) {
  const source = await readFile(file, 'utf8');
  await writeFile(file, source.replace(/[^\0-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

const outfile = 'dist/kubectl-nkvm';
await mkdir('dist', { recursive: true });
const result = await build(cliBundleOptions(outfile));
await asciiOnly(outfile);
await chmod(outfile, 0o755);
// Only for running it from this repository, whose package.json says "type": "module": an
// extensionless file inside it would otherwise be loaded as ESM. Installed copies need no such file.
await writeFile('dist/package.json', '{ "type": "commonjs" }\n');
const bytes = Object.values(result.metafile.outputs).reduce((sum, output) => sum + output.bytes, 0);
console.error(`built ${outfile} (${(bytes / 1024 / 1024).toFixed(1)} MiB)`);

// The single executable's bundles, from the same sources (src/sea-assets.ts says why apart): the CLI,
// the Kubernetes client's kubeconfig, its generated API (which takes the client's modules the
// kubeconfig has from that bundle; both take undici from undici's), and undici with what all use of
// it; and its main script (src/sea-front.ts) with the bundle's own --help output at each width it
// answers for.
const seaBundle = async (options, file) => {
  await build(options);
  await asciiOnly(file);
  return namesUsedFromLibraries(await readFile(file, 'utf8'));
};
const seaAsset = (asset) => `dist/sea/${asset}`;
const usedByCli = await seaBundle(cliBundleOptions(seaAsset(CLI_ASSET), { libraries: 'outside' }), seaAsset(CLI_ASSET));
const [undici, kubernetes] = LIBRARIES;
const [kubeconfigAsset, kubernetesAsset] = kubernetes.assets;
const kubeconfigShared = { asset: kubeconfigAsset, modules: await kubeconfigModules([undici.name]) };
const usedByKubeconfig = await seaBundle(kubeconfigBundleOptions(kubeconfigShared.modules, seaAsset(kubeconfigAsset), [undici.name]), seaAsset(kubeconfigAsset));
const usedByKubernetes = await seaBundle(libraryBundleOptions(kubernetes.name, usedByCli.get(kubernetes.name), seaAsset(kubernetesAsset), [undici.name], kubeconfigShared), seaAsset(kubernetesAsset));
const undiciNames = [...new Set([usedByCli, usedByKubeconfig, usedByKubernetes].flatMap((used) => used.get(undici.name)))].sort();
await seaBundle(libraryBundleOptions(undici.name, undiciNames, seaAsset(undici.assets[0])), seaAsset(undici.assets[0]));
const helpByWidth = Object.fromEntries(PRERENDERED_HELP_WIDTHS.map((width) => [width, execFileSync(process.execPath, [
  '--import', `data:text/javascript,Object.defineProperty(process.stdout, "columns", { value: ${width} })`, outfile, '--help',
], { encoding: 'utf8' })]));
await build({
  ...NODE_BUNDLE,
  entryPoints: ['src/sea-front.ts'],
  outfile: 'dist/sea-front.js',
  define: { NKVM_HELP_BY_WIDTH: JSON.stringify(helpByWidth) },
});
