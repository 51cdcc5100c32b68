/**
 * The CLI bundle as the single executable stores it, shared by the front that runs it
 * (src/sea-front.ts) and the release build that makes its code cache: V8 accepts a cache only for
 * the very source it was made from, so both wrap the bundle with this one function.
 */
import path from 'node:path';
import type { Script } from 'node:vm';

export const CLI_ASSET = 'kubectl-nkvm.js';
export const CLI_CODE_CACHE_ASSET = 'kubectl-nkvm.js.cache';
export const CLI_FILENAME = 'kubectl-nkvm.js';

/** The bundle (CommonJS, with a shebang line) as a function of CommonJS's five arguments. */
export function wrapCliBundle(bundle: string): string {
  const body = bundle.startsWith('#!') ? bundle.slice(bundle.indexOf('\n') + 1) : bundle;
  return `(function (exports, require, module, __filename, __dirname) {\n${body}\n})`;
}

/** Runs the compiled wrapper as Node runs a CommonJS module: `filename` is its __filename. */
export function runCliScript(script: Script, module: { exports: object }, require: NodeJS.Require, filename: string): void {
  const cli = script.runInThisContext() as (exports: object, require: NodeJS.Require, module: object, filename: string, dirname: string) => void;
  cli.call(module.exports, module.exports, require, module, filename, path.dirname(filename));
}
