/**
 * sql.js's WebAssembly module, compiled (src/wasm-compilation.ts); src/store/sql-engine.ts asks once
 * a process. Run from source, the binary is read from node_modules. The bundles replace this module
 * (scripts/cli-bundle.ts): dist/kubectl-nkvm embeds the binary; the single executable's front
 * compiles it from an asset, starting before the CLI itself loads (src/sea-front.ts).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { compileWebAssembly } from '../wasm-compilation.ts';

export function compileSqlWasm(): Promise<WebAssembly.Module> {
  return compileWebAssembly(readFileSync(createRequire(import.meta.url).resolve('sql.js/dist/sql-wasm.wasm')));
}
