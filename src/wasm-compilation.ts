/**
 * How this process compiles WebAssembly (SQLite's, through sql.js; undici's HTTP parser): with V8's
 * baseline compiler (Liftoff) only, each function on its first call. By default V8 also recompiles
 * hot functions with its optimizing compiler on a background thread, and a process cannot end while
 * such a compile runs: reading the catalog set SQLite's interpreter loop compiling, and `artifacts
 * list` waited some 30 ms for it at exit. The catalog's statements are small; optimized code never
 * paid for itself. (Compiling every function eagerly, on background threads, was measured too: the
 * same wall time on two CPUs, 30-45 ms more CPU a run.)
 *
 * The flags are part of what V8 stamps on a code cache (one made under other flags is rejected): the
 * single executable gets them on its command line (its execArgv), as do the release's runs that
 * make its caches (scripts/release/sea.ts); the bundle on Node sets them when it first compiles.
 */
export const WEBASSEMBLY_FLAGS = ['--no-wasm-dynamic-tiering', '--no-wasm-tier-up'] as const;

/** The WebAssembly global, as used here: this project's TypeScript libraries (no DOM) do not declare it. */
interface WebAssemblyApi {
  compile(bytes: Uint8Array): Promise<WebAssembly.Module>;
  Instance: new (module: WebAssembly.Module, imports: unknown) => never;
}
export const webAssembly = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

function configureWebAssembly(): void {
  // In the single executable they are there from the start, and node:v8 would cost ~3 ms to load.
  if (WEBASSEMBLY_FLAGS.every((flag) => process.execArgv.includes(flag))) return;
  process.getBuiltinModule('node:v8').setFlagsFromString(WEBASSEMBLY_FLAGS.join(' '));
}

/**
 * Compiles `bytes` as above (decoded and validated on a background thread), keeping the process
 * alive until it is done.
 */
export function compileWebAssembly(bytes: Uint8Array): Promise<WebAssembly.Module> {
  configureWebAssembly();
  const compiling = webAssembly.compile(bytes);
  // Node's event loop does not wait for a compile under way: with nothing else pending (a catalog
  // awaiting it) the process would end, silently, with exit code 0.
  const keepAlive = setInterval(() => {}, 60_000);
  compiling.catch(() => {}).finally(() => clearInterval(keepAlive)); // whoever awaits it hears of a failure
  return compiling;
}
