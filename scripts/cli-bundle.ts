// The esbuild options of the CLI bundle, shared by build.mjs (which writes it) and the unit test that
// checks what the bundle evaluates at start (test/unit/startup-graph.test.ts).
import type { BuildOptions, Plugin } from 'esbuild';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

// src/store/sql-wasm.ts reads sql.js's WASM from node_modules when run from source; in the bundle it
// becomes this module instead, which embeds the binary as base64 (the '.wasm' loader below): Buffer
// decodes that natively, where esbuild's binary loader decodes it in JavaScript (~15 ms each start).
const embedSqlWasm: Plugin = {
  name: 'embed-sql-wasm',
  setup(pluginBuild) {
    pluginBuild.onLoad({ filter: /[\\/]src[\\/]store[\\/]sql-wasm\.ts$/ }, (args) => ({
      contents: "import wasm from 'sql.js/dist/sql-wasm.wasm';\nexport function loadSqlWasm() { return Buffer.from(wasm, 'base64'); }\n",
      loader: 'js',
      resolveDir: path.dirname(args.path),
    }));
  },
};

// Every copy of string-width (yargs', cliui's, wrap-ansi's) becomes src/cli/text-width.ts: the same
// widths without the ~40 ms the package costs each start (see that file).
const lazyTextWidth: Plugin = {
  name: 'lazy-text-width',
  setup(pluginBuild) {
    pluginBuild.onResolve({ filter: /^string-width$/ }, () => ({ path: path.join(REPO_ROOT, 'src', 'cli', 'text-width.ts') }));
  },
};

/** CommonJS (what Node's single executable applications load), a node shebang, sql.js's WASM inside. */
export function cliBundleOptions(outfile: string): BuildOptions & { metafile: true } {
  return {
    absWorkingDir: REPO_ROOT,
    entryPoints: ['src/main.ts'],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'cjs',
    minify: false,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
    loader: { '.wasm': 'base64' },
    // ESM dependencies read import.meta.url; give them this file's URL in the CommonJS bundle.
    define: { 'import.meta.url': '__nkvmImportMetaUrl' },
    banner: {
      js: [
        '#!/usr/bin/env node',
        // Before any bundled module runs: older Nodes fail inside dependencies with unhelpful errors.
        'if (Number(process.versions.node.split(".")[0]) < 22) { console.error(`error: kubectl-nkvm needs Node.js 22 or newer; this is ${process.version}`); process.exit(1); }',
        'const __nkvmImportMetaUrl = require("node:url").pathToFileURL(__filename).href;',
      ].join('\n'),
    },
    metafile: true,
    plugins: [embedSqlWasm, lazyTextWidth],
  };
}
