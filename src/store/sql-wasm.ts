/**
 * sql.js's WebAssembly module, compiled (src/wasm-compilation.ts) once a process. Run from source,
 * the binary is read from node_modules. The bundles replace this module (scripts/cli-bundle.ts):
 * dist/kubectl-nkvm embeds the binary; the single executable's front compiles it from an asset,
 * starting before the CLI itself loads (src/sea-front.ts).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { compileWebAssembly } from '../wasm-compilation.ts';

let compiled: Promise<WebAssembly.Module> | undefined;

export function compileSqlWasm(): Promise<WebAssembly.Module> {
  compiled ??= compileWebAssembly(readFileSync(createRequire(import.meta.url).resolve('sql.js/dist/sql-wasm.wasm')));
  return compiled;
}
