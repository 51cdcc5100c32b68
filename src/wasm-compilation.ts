/** Whether compileHotLoop has run in this process: SQLite then runs as V8 decides too. */
let hotLoopCompiled = false;

/**
 * How SQLite's WebAssembly (sql.js) runs here: on V8's baseline compiler (Liftoff) only. By default
 * V8 also recompiles hot functions with its optimizing compiler on a background thread, and a
 * process cannot end while such a compile runs: reading the catalog set SQLite's interpreter loop
 * compiling, and `artifacts list` waited some 30 ms for it at exit. The catalog's statements are
 * small; optimized code never paid for itself.
 *
 * V8 decides to tier up as the code runs, so the flags are set just before SQLite first runs
 * (src/store/sql-engine.ts), not at start: they are part of the hash V8 stamps on code caches, Node's
 * own cache of its built-in modules among them, and set at start (the executable's execArgv) they
 * made every built-in a command loads compile from source: `discover` took 50 ms longer. Set late,
 * they cost only what compiles afterwards, such as a library bundle a backup loads after its first
 * catalog write. Says whether it set them: not once a hot loop was compiled (compileHotLoop).
 */
export function runWebAssemblyOnBaselineOnly(): boolean {
  // The flags are the process's, read as code runs: set after a hot loop was compiled, they would put
  // that loop on the baseline compiler too, whichever of the catalog and the repository opens first.
  if (hotLoopCompiled) return false;
  process.getBuiltinModule('node:v8').setFlagsFromString('--no-wasm-dynamic-tiering --no-wasm-tier-up');
  return true;
}

/** V8's defaults again: what the release sets before it writes code caches (scripts/release/sea.ts). */
export function runWebAssemblyAsV8Does(): void {
  process.getBuiltinModule('node:v8').setFlagsFromString('--wasm-dynamic-tiering --wasm-tier-up');
}

/**
 * Compiles a small module whose loop is a long command's hot path (the chunker's rolling hash,
 * Poly1305): V8's defaults again, whatever SQLite asked for, so that the loop reaches the optimizing
 * compiler. On the baseline compiler alone it ran at half the speed; a command that runs such a loop
 * runs for long enough not to notice what the baseline-only flags save at exit.
 */
export function compileHotLoop(bytes: Uint8Array): WebAssembly.Module {
  hotLoopCompiled = true;
  runWebAssemblyAsV8Does();
  return new webAssembly.Module(bytes);
}

/** The WebAssembly global, as used here: this project's TypeScript libraries (no DOM) do not declare it. */
interface WebAssemblyApi {
  compile(bytes: Uint8Array): Promise<WebAssembly.Module>;
  Module: new (bytes: Uint8Array) => WebAssembly.Module;
  Instance: new (module: WebAssembly.Module, imports: unknown) => { exports: unknown };
}
export const webAssembly = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

/**
 * Compiles `bytes` (decoded and validated on a background thread; functions compile on first call),
 * keeping the process alive until it is done.
 */
export function compileWebAssembly(bytes: Uint8Array): Promise<WebAssembly.Module> {
  const compiling = webAssembly.compile(bytes);
  // Node's event loop does not wait for a compile under way: with nothing else pending (a catalog
  // awaiting it) the process would end, silently, with exit code 0.
  const keepAlive = setInterval(() => {}, 60_000);
  compiling.catch(() => {}).finally(() => clearInterval(keepAlive)); // whoever awaits it hears of a failure
  return compiling;
}
