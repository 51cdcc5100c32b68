/**
 * Node.js single executable applications: one preparation blob made from the esbuild bundle, then
 * injected into each platform's official Node.js binary with postject.
 *
 * The blob's main script is the front (src/sea-front.ts), which answers `--help` and `version --client`
 * itself and otherwise runs the CLI bundle, stored as an asset: starting never means compiling 8 MiB of
 * JavaScript first. The blob for the platform this runs on also holds V8's code cache of the front
 * (useCodeCache) and of the bundle (an asset the front hands to vm.Script). A cache is valid only for
 * the Node.js binary that made it, so every other platform gets a blob with the scripts alone. V8
 * seeds its code cache from a random seed: --random-seed fixes it, so the same sources give the
 * same bytes (other seed flags, such as --hash-seed, would make the running executable reject the
 * cache). The blob must be made by the very Node.js version it is injected into, so this refuses to
 * run on any other version.
 *
 * Why postject and not `node --build-sea` (which Node 26 has, and which also takes a foreign
 * "executable"): nodejs/node#65479 reports that --build-sea produces a segfaulting executable for
 * macOS x64 in Node 26 while the blob + postject path works on the same runtime. postject is also the
 * path Node's documentation describes for every platform, so all five are built the same way.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { NODE_VERSION, REPO_ROOT, SEA_BUNDLES, SEA_FRONT, SEA_FUSE, SEA_MACHO_SEGMENT, SEA_RESOURCE, type Platform } from './config.ts';
import { CLI_ASSET, codeCacheAsset, LIBRARY_ASSETS, SQL_WASM_ASSET } from '../../src/sea-assets.ts';

/**
 * The executable's Node.js options. A backup of many small files allocates fast, and V8 grows the
 * young generation to 63 MiB of mostly garbage. With 8 MiB semi-spaces: the same CPU time, 20-70 MiB
 * less peak RSS (100,000 files). V8 stamps most of its flags on a code cache and rejects one made
 * under others (this one is not among them; src/wasm-compilation.ts tells of two that are); the
 * runs that make the caches get the same options all the same. The single executable is also the
 * mover; `node dist/kubectl-nkvm` runs without them.
 */
const EXEC_ARGV = ['--max-semi-space-size=8'];

/** Every bundle asset of the executable: the CLI's and each library's. */
const BUNDLE_ASSETS = [CLI_ASSET, ...LIBRARY_ASSETS];

interface PostjectApi {
  inject(filename: string, resourceName: string, resourceData: Buffer,
    options?: { machoSegmentName?: string; sentinelFuse?: string; overwrite?: boolean }): Promise<void>;
}

/**
 * Writes the SEA preparation blob into `workDir` and returns its path: the front (dist/sea-front.js)
 * as the main script, the CLI's and libraries' bundles (dist/sea/) as assets, and with `codeCache`
 * V8's code cache of each.
 */
export function makeBlob(workDir: string, options: { codeCache: boolean }): string {
  if (process.versions.node !== NODE_VERSION) {
    throw new Error(`the SEA blob must be made by Node.js ${NODE_VERSION} (the version injected into); this is ${process.version}: run it with node_modules/.bin/node`);
  }
  const kind = options.codeCache ? 'with-code-cache' : 'portable';
  const blob = path.join(workDir, `sea-prep-${kind}.blob`);
  const config = path.join(workDir, `sea-config-${kind}.json`);
  const assets: Record<string, string> = Object.fromEntries(BUNDLE_ASSETS.map((asset) => [asset, path.join(SEA_BUNDLES, asset)]));
  assets[SQL_WASM_ASSET] = createRequire(import.meta.url).resolve('sql.js/dist/sql-wasm.wasm');
  if (options.codeCache) Object.assign(assets, makeCodeCaches(workDir));
  fs.writeFileSync(config, `${JSON.stringify({
    main: SEA_FRONT,
    output: blob,
    disableExperimentalSEAWarning: true,
    useSnapshot: false,
    useCodeCache: options.codeCache,
    execArgv: EXEC_ARGV,
    assets,
  }, null, 2)}\n`);
  execFileSync(process.execPath, ['--random-seed=1', ...EXEC_ARGV, '--experimental-sea-config', config], { stdio: ['ignore', 'ignore', 'inherit'] });
  return blob;
}

/**
 * V8's code caches of the bundles as the front compiles them (src/sea-assets.ts), made (like the
 * blob) with a fixed seed, after the CLI has run what people run most: a cache made before running
 * holds only the functions V8 compiles eagerly, and commands load their modules on use. So this runs
 * `artifacts list` (the catalog and sql.js), `discover` against a server that refuses (the
 * kubeconfig and node:https), `diagnose` against it (the generated API and undici, from their
 * bundles), and last `backup --help` (its flags; help exits
 * the process, which writes the caches of the bundles it ran). The CLI bundle exports main(), which
 * these runs await; its own run, which exits the process as it ends (src/main.ts), must wait for them.
 */
function makeCodeCaches(workDir: string): Record<string, string> {
  const caches = Object.fromEntries(BUNDLE_ASSETS.map((asset) => [codeCacheAsset(asset), path.join(workDir, codeCacheAsset(asset))]));
  const assets = path.join(REPO_ROOT, 'src', 'sea-assets.ts');
  const cli = path.join(SEA_BUNDLES, CLI_ASSET);
  const home = fs.mkdtempSync(path.join(workDir, 'code-cache-home-'));
  const kubeconfig = path.join(home, 'kubeconfig');
  fs.writeFileSync(kubeconfig, [
    'apiVersion: v1', 'kind: Config', 'current-context: refused',
    'clusters: [{name: refused, cluster: {server: "https://127.0.0.1:1"}}]',
    'users: [{name: refused, user: {token: none}}]',
    'contexts: [{name: refused, context: {cluster: refused, user: refused, namespace: default}}]', '',
  ].join('\n'));
  const refused = ['--kubeconfig', kubeconfig, '--request-timeout', '5s'];
  const runs = [['artifacts', 'list'], ['discover', ...refused], ['diagnose', ...refused]];
  execFileSync(process.execPath, ['--random-seed=1', ...EXEC_ARGV, '--input-type=module', '-e', `
    import fs from 'node:fs';
    import path from 'node:path';
    import { createRequire } from 'node:module';
    import { codeCacheAsset, runCli } from ${JSON.stringify(assets)};
    import { compileSqlWasm } from ${JSON.stringify(path.join(REPO_ROOT, 'src', 'store', 'sql-wasm.ts'))};
    import { runWebAssemblyAsV8Does } from ${JSON.stringify(path.join(REPO_ROOT, 'src', 'wasm-compilation.ts'))};
    const source = (file) => ({ source: fs.readFileSync(file, 'utf8') });
    process.argv = [process.execPath, ${JSON.stringify(cli)}, 'version', '--client'];
    const running = runCli(source(${JSON.stringify(cli)}), (asset) => source(path.join(${JSON.stringify(SEA_BUNDLES)}, asset)), createRequire(${JSON.stringify(cli)}), ${JSON.stringify(cli)}, { compileSqlWasm });
    const caches = ${JSON.stringify(caches)};
    process.once('exit', () => {
      runWebAssemblyAsV8Does(); // artifacts list ran SQLite, which set flags that a cache's stamp would carry
      for (const [asset, script] of [[${JSON.stringify(CLI_ASSET)}, running.cli], ...running.libraries]) fs.writeFileSync(caches[codeCacheAsset(asset)], script.createCachedData());
    });
    const exit = process.exit;
    process.exit = () => undefined; // the CLI's own run (version --client) exits as it ends: not before these
    for (const args of ${JSON.stringify(runs)}) await running.exports.main(args);
    process.exit = exit;
    await running.exports.main(['backup', '--help']);
  `], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NKVM_HOME: home, KUBECONFIG: kubeconfig } }); // the runs' errors are expected; a failure's show in the exception
  fs.rmSync(home, { recursive: true, force: true });
  return Object.fromEntries(Object.entries(caches).filter(([, file]) => fs.existsSync(file)));
}

/**
 * Copies `nodeBinary` to `output` and injects `blob`. postject's LIEF prints warnings about
 * Node's ELF notes and the PE's (now stale) Authenticode signature; they are harmless and hidden
 * unless the injection fails.
 */
export async function injectBlob(postjectApi: string, nodeBinary: string, blob: string, output: string, platform: Platform): Promise<void> {
  const { inject } = createRequire(import.meta.url)(postjectApi) as PostjectApi;
  const tmp = `${output}.partial-${process.pid}`;
  fs.copyFileSync(nodeBinary, tmp);
  fs.chmodSync(tmp, 0o755);
  const quiet = await silenced(() => inject(tmp, SEA_RESOURCE, fs.readFileSync(blob), {
    sentinelFuse: SEA_FUSE,
    ...(platform.os === 'darwin' ? { machoSegmentName: SEA_MACHO_SEGMENT } : {}),
  }));
  if (quiet.error) {
    fs.rmSync(tmp, { force: true });
    process.stderr.write(quiet.output);
    throw quiet.error;
  }
  fs.renameSync(tmp, output);
}

/**
 * Runs `fn` with what it writes to stdout and stderr captured (postject's WASM module prints through
 * console.log and console.warn, which write to these streams).
 */
async function silenced(fn: () => Promise<void>): Promise<{ error?: unknown; output: string }> {
  const streams = [process.stdout, process.stderr] as const;
  const originals = streams.map((stream) => stream.write);
  let output = '';
  for (const stream of streams) {
    stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      output += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      const callback = rest.find((arg) => typeof arg === 'function') as (() => void) | undefined;
      callback?.();
      return true;
    }) as typeof stream.write;
  }
  try {
    await fn();
    return { output };
  } catch (error) {
    return { error, output };
  } finally {
    streams.forEach((stream, i) => { stream.write = originals[i]!; });
  }
}
