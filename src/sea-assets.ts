/**
 * The CLI as the single executable stores it, shared by the front that runs it (src/sea-front.ts)
 * and the release build that makes its code caches (scripts/release/sea.ts): V8 accepts a cache only
 * for the very source it was made from, so both compile through this module.
 *
 * The executable holds the CLI bundle and, apart, each library only some commands use (build.mjs
 * makes them from the same sources as dist/kubectl-nkvm): undici (the S3 client's HTTP, and the
 * Kubernetes client's), and the Kubernetes client, which requires undici from its own bundle. Each
 * is compiled, from its own code cache, only when needed: V8 deserializes a whole cache at once, so
 * one cache for all would cost `artifacts list` the Kubernetes client's, and a data mover writing
 * to S3 the Kubernetes client it never calls.
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

/** The libraries the executable's CLI bundle leaves out, each with the asset that holds its bundle. */
export const LIBRARIES = [
  { name: 'undici', asset: 'kubectl-nkvm-undici.js' },
  { name: '@kubernetes/client-node', asset: 'kubectl-nkvm-kubernetes.js' },
] as const;

export const LIBRARY_PACKAGES: readonly string[] = LIBRARIES.map((library) => library.name);

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
 * A library's exports, run when a name is first read from them, not when the library is required:
 * the Kubernetes client requires undici as it loads, and only its API calls use it; discover reads
 * the kubeconfig and lists over node:https (src/kube/json-get.ts) and never does.
 */
function loadedOnFirstUse(load: () => Record<string, unknown>): Record<string, unknown> {
  return new Proxy({}, {
    get: (_, name) => Reflect.get(load(), name),
    has: (_, name) => Reflect.has(load(), name),
    ownKeys: () => Reflect.ownKeys(load()),
    getOwnPropertyDescriptor: (_, name) => {
      const descriptor = Reflect.getOwnPropertyDescriptor(load(), name);
      return descriptor && { ...descriptor, configurable: true }; // a proxy may not call its target's own properties fixed
    },
  });
}

/**
 * Runs the CLI bundle; a require() of a LIBRARIES name (from the CLI or from another library)
 * answers that library's exports, whose bundle is compiled (once) when a name is first read from
 * them; of FRONT_MODULE answers `front`; anything else goes to `require` (Node's built-in modules).
 * `filename` is the executable's path, the CLI's __filename.
 */
export function runCli(cli: CompiledSource, library: (asset: string) => CompiledSource, require: NodeJS.Require, filename: string, front: FrontModule): RunningCli {
  const libraries = new Map<string, vm.Script>();
  const required = new Map<string, Record<string, unknown>>();
  const requireWithLibraries = ((id: string) => {
    if (id === FRONT_MODULE) return front;
    const wanted = LIBRARIES.find((candidate) => candidate.name === id);
    if (!wanted) return require(id);
    let exports = required.get(id);
    if (!exports) {
      let loaded: Record<string, unknown> | undefined;
      exports = loadedOnFirstUse(() => {
        if (!loaded) {
          const ran = runCommonJs(library(wanted.asset), wanted.asset, filename, requireWithLibraries);
          libraries.set(wanted.asset, ran.script);
          loaded = ran.exports;
        }
        return loaded;
      });
      required.set(id, exports);
    }
    return exports;
  }) as NodeJS.Require;
  const { script, exports } = runCommonJs(cli, CLI_ASSET, filename, requireWithLibraries);
  return { cli: script, exports, libraries };
}
