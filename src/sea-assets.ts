/**
 * The CLI as the single executable stores it, shared by the front that runs it (src/sea-front.ts)
 * and the release build that makes its code caches (scripts/release/sea.ts): V8 accepts a cache only
 * for the very source it was made from, so both compile through this module.
 *
 * The executable holds the CLI bundle and, apart, each library only some commands use (build.mjs
 * makes them from the same sources as dist/kubectl-nkvm): undici (the S3 client's HTTP, and the
 * Kubernetes client's), and the Kubernetes client in two, its kubeconfig and its generated API, which
 * require undici from its own bundle. Each is compiled, from its own code cache, only when needed:
 * V8 deserializes a whole cache at once, so one cache for all would cost `artifacts list` the
 * Kubernetes client's, discover the generated API it never calls, and a data mover writing to S3
 * the Kubernetes client.
 */
import path from 'node:path';
import vm from 'node:vm';

export const CLI_ASSET = 'kubectl-nkvm.js';

/** sql.js's WebAssembly binary, which the front compiles (src/store/sql-wasm.ts). */
export const SQL_WASM_ASSET = 'sql-wasm.wasm';

/**
 * What the front shares with the CLI: the CLI bundle requires it under this name (src/store/sql-wasm.ts
 * becomes a re-export of it in that bundle), and runCli answers with the front's own module.
 */
export const FRONT_MODULE = 'kubectl-nkvm:front';

export interface FrontModule {
  compileSqlWasm(): Promise<WebAssembly.Module>;
}

/**
 * The libraries the executable's CLI bundle leaves out, each with the assets of the bundles that hold
 * it, read in turn for a name: the Kubernetes client's kubeconfig (KubeConfig and its authenticators,
 * a twelfth of the client: what discover needs) apart from its generated API, whose bundle takes the
 * client's modules it shares with the first from there (SHARED_MODULE).
 */
export const LIBRARIES = [
  { name: 'undici', assets: ['kubectl-nkvm-undici.js'] },
  { name: '@kubernetes/client-node', assets: ['kubectl-nkvm-kubeconfig.js', 'kubectl-nkvm-kubernetes.js'] },
] as const;

export const LIBRARY_PACKAGES: readonly string[] = LIBRARIES.map((library) => library.name);
export const LIBRARY_ASSETS: readonly string[] = LIBRARIES.flatMap((library) => library.assets);

/** How a bundle requires a module another bundle holds: this, that bundle's asset, a slash, the module's path from the repository. */
export const SHARED_MODULE = 'kubectl-nkvm:shared:';
/** The export of a bundle that holds shared modules: their namespaces by path. */
export const SHARED_MODULES_EXPORT = 'kubectl-nkvm:modules';

/** The asset of V8's code cache of a bundle's asset. */
export function codeCacheAsset(asset: string): string {
  return `${asset}.cache`;
}

export interface CompiledSource {
  source: string;
  cachedData?: Buffer | undefined;
}

/** A CommonJS bundle (with or without a shebang line) as a function of CommonJS's five arguments. */
function wrapCommonJs(bundle: string): string {
  const body = bundle.startsWith('#!') ? bundle.slice(bundle.indexOf('\n') + 1) : bundle;
  return `(function (exports, require, module, __filename, __dirname) {\n${body}\n})`;
}

/**
 * Runs a bundle as Node runs a CommonJS module, as `filename` (its __filename), and returns its
 * Script (for its code cache) and exports. The Script is named after its asset.
 */
function runCommonJs(compiled: CompiledSource, asset: string, filename: string, require: NodeJS.Require): { script: vm.Script; exports: Record<string, unknown> } {
  const script = new vm.Script(wrapCommonJs(compiled.source), { filename: asset, cachedData: compiled.cachedData });
  const module = { exports: {} as Record<string, unknown> };
  const run = script.runInThisContext() as (exports: object, require: NodeJS.Require, module: object, filename: string, dirname: string) => void;
  run.call(module.exports, module.exports, require, module, filename, path.dirname(filename));
  return { script, exports: module.exports };
}

export interface RunningCli {
  cli: vm.Script;
  /** The CLI bundle's exports (main). */
  exports: Record<string, unknown>;
  /** The Scripts of the libraries a command has needed so far, by asset. */
  libraries: Map<string, vm.Script>;
}

/**
 * A library's exports, from the first of its bundles that has the name, each bundle run when a name
 * is first looked for in it, not when the library is required: the Kubernetes client requires undici
 * as it loads, and only its API calls use it; discover reads the kubeconfig and lists over node:https
 * (src/kube/json-get.ts), so it runs neither undici nor the generated API.
 */
function loadedOnFirstUse(bundles: readonly (() => Record<string, unknown>)[]): Record<string, unknown> {
  const holder = (name: string | symbol): Record<string, unknown> | undefined => {
    for (const bundle of bundles) {
      const exports = bundle();
      if (Reflect.has(exports, name)) return exports;
    }
    return undefined;
  };
  return new Proxy({}, {
    get: (_, name) => holder(name)?.[name as string],
    has: (_, name) => holder(name) !== undefined,
    ownKeys: () => [...new Set(bundles.flatMap((exports) => Reflect.ownKeys(exports())))],
    getOwnPropertyDescriptor: (_, name) => {
      const exports = holder(name);
      const descriptor = exports && Reflect.getOwnPropertyDescriptor(exports, name);
      return descriptor && { ...descriptor, configurable: true }; // a proxy may not call its target's own properties fixed
    },
  });
}

/**
 * Runs the CLI bundle; a require() of a LIBRARIES name (from the CLI or from another library)
 * answers that library's exports (loadedOnFirstUse), of a SHARED_MODULE the module from the bundle
 * that holds it, of FRONT_MODULE `front`; anything else goes to `require` (Node's built-in modules).
 * Each bundle runs once. `filename` is the executable's path, the CLI's __filename.
 */
export function runCli(cli: CompiledSource, library: (asset: string) => CompiledSource, require: NodeJS.Require, filename: string, front: FrontModule): RunningCli {
  const libraries = new Map<string, vm.Script>();
  const ran = new Map<string, Record<string, unknown>>();
  const required = new Map<string, Record<string, unknown>>();
  const bundleExports = (asset: string): Record<string, unknown> => {
    let exports = ran.get(asset);
    if (!exports) {
      // Which commands load which library is a cost worth guarding (test/integration/krew.test.ts).
      if (process.env.NKVM_TRACE_BUNDLES === '1') process.stderr.write(`kubectl-nkvm: loading bundle ${asset}\n`);
      const run = runCommonJs(library(asset), asset, filename, requireWithLibraries);
      libraries.set(asset, run.script);
      ran.set(asset, (exports = run.exports));
    }
    return exports;
  };
  const requireWithLibraries = ((id: string) => {
    if (id === FRONT_MODULE) return front;
    if (id.startsWith(SHARED_MODULE)) {
      const where = id.slice(SHARED_MODULE.length);
      const slash = where.indexOf('/');
      const modules = bundleExports(where.slice(0, slash))[SHARED_MODULES_EXPORT] as Record<string, unknown> | undefined;
      const module = modules?.[where.slice(slash + 1)];
      if (!module) throw new Error(`${id}: no such shared module (the executable's bundles do not match)`);
      return module;
    }
    const wanted = LIBRARIES.find((candidate) => candidate.name === id);
    if (!wanted) return require(id);
    let exports = required.get(id);
    if (!exports) required.set(id, (exports = loadedOnFirstUse(wanted.assets.map((asset) => () => bundleExports(asset)))));
    return exports;
  }) as NodeJS.Require;
  const { script, exports } = runCommonJs(cli, CLI_ASSET, filename, requireWithLibraries);
  return { cli: script, exports, libraries };
}
