/**
 * The CLI bundle as the single executable stores it, shared by the front that runs it
 * (src/sea-front.ts) and the release build that makes its code cache: V8 accepts a cache only for
 * the very source it was made from, so both wrap the bundle with this one function.
 */
export const CLI_ASSET = 'kubectl-nkvm.js';
export const CLI_CODE_CACHE_ASSET = 'kubectl-nkvm.js.cache';
export const CLI_FILENAME = 'kubectl-nkvm.js';

/** The bundle (CommonJS, with a shebang line) as a function of CommonJS's five arguments. */
export function wrapCliBundle(bundle: string): string {
  const body = bundle.startsWith('#!') ? bundle.slice(bundle.indexOf('\n') + 1) : bundle;
  return `(function (exports, require, module, __filename, __dirname) {\n${body}\n})`;
}
