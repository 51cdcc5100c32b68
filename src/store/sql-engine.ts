/**
 * sql.js, started where it costs a command least: its WebAssembly module is decoded and validated on
 * a background thread from the moment a command that reads the catalog begins (main.ts; in the
 * single executable, its front, before the CLI itself loads); it runs as src/wasm-compilation.ts
 * says. sql.js itself (Emscripten's JavaScript) is imported only when the catalog opens, so that
 * every other command pays nothing for it.
 */
import type { SqlJsStatic } from 'sql.js';
import { runWebAssemblyOnBaselineOnly, webAssembly } from '../wasm-compilation.ts';
import { compileSqlWasm } from './sql-wasm.ts';

let compiling: Promise<WebAssembly.Module> | undefined;
let ready: Promise<SqlJsStatic> | undefined;

/** Starts compiling sql.js's module in the background; once a process. */
export function compileSqlEngineAhead(): void {
  compiling ??= compileSqlWasm();
}

/** sql.js, initialised once a process. */
export function sqlEngine(): Promise<SqlJsStatic> {
  ready ??= (async () => {
    compileSqlEngineAhead();
    const { default: initSqlJs } = await import('sql.js');
    const module = await compiling!;
    runWebAssemblyOnBaselineOnly();
    // Emscripten's protocol: the instance comes through the callback; what this throws rejects initSqlJs.
    return initSqlJs({ instantiateWasm: (imports, receive) => (receive(new webAssembly.Instance(module, imports)), {}) });
  })();
  return ready;
}
