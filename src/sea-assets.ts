/**
 * The CLI as the single executable stores it, shared by the front that runs it (src/sea-front.ts)
 * and the release build that makes its code caches (scripts/release/sea.ts): V8 accepts a cache only
 * for the very source it was made from, so both compile through this module.
 *
 * The executable holds two bundles (build.mjs makes them from the same sources as dist/kubectl-nkvm):
 * the CLI, and the libraries only cluster commands use (the Kubernetes client and undici, over two
 * thirds of the code). Each is compiled, from its own code cache, only when needed: V8 deserializes a
 * whole cache at once, so one cache for both would cost `artifacts list` the Kubernetes client's.
 */
import path from 'node:path';
import vm from 'node:vm';

export const CLI_ASSET = 'kubectl-nkvm.js';
export const CLI_CODE_CACHE_ASSET = 'kubectl-nkvm.js.cache';
export const LIBRARIES_ASSET = 'kubectl-nkvm-libraries.js';
export const LIBRARIES_CODE_CACHE_ASSET = 'kubectl-nkvm-libraries.js.cache';

/** The packages the CLI bundle of the executable leaves out and requires from the libraries bundle. */
export const LIBRARY_PACKAGES = ['@kubernetes/client-node', 'undici'] as const;

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
  /** The libraries' Script once a command has needed them. */
  libraries(): vm.Script | undefined;
}

/**
 * Runs the CLI bundle; its require() of a LIBRARY_PACKAGES name compiles the libraries bundle (once)
 * and answers from it, anything else goes to `require` (Node's built-in modules). `filename` is
 * the executable's path, the CLI's __filename.
 */
export function runCli(cli: CompiledSource, libraries: () => CompiledSource, require: NodeJS.Require, filename: string): RunningCli {
  let loaded: { script: vm.Script; exports: Record<string, unknown> } | undefined;
  const requireWithLibraries = ((id: string) => {
    if (!(LIBRARY_PACKAGES as readonly string[]).includes(id)) return require(id);
    loaded ??= runCommonJs(libraries(), LIBRARIES_ASSET, filename, require);
    return loaded.exports[id];
  }) as NodeJS.Require;
  const { script, exports } = runCommonJs(cli, CLI_ASSET, filename, requireWithLibraries);
  return { cli: script, exports, libraries: () => loaded?.script };
}
