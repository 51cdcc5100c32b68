/**
 * sql.js's WebAssembly binary. Run from source, it is read from node_modules; in dist/kubectl-nkvm,
 * build.mjs replaces this module with one that embeds the binary, so the bundle needs no file beside it.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

export function loadSqlWasm(): Uint8Array {
  return readFileSync(createRequire(import.meta.url).resolve('sql.js/dist/sql-wasm.wasm'));
}
