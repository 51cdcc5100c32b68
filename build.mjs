// Bundles the plugin into one executable file, dist/kubectl-nkvm: CommonJS (what Node's single
// executable applications load), a node shebang, and sql.js's WASM embedded so nothing else is
// needed beside it at run time.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PRERENDERED_HELP_WIDTHS } from './src/cli/fast-paths.ts';

// src/store/sql-wasm.ts reads sql.js's WASM from node_modules when run from source; in the bundle it
// becomes this module instead, which embeds the binary through the '.wasm' binary loader below.
const embedSqlWasm = {
  name: 'embed-sql-wasm',
  setup(pluginBuild) {
    pluginBuild.onLoad({ filter: /[\\/]src[\\/]store[\\/]sql-wasm\.ts$/ }, (args) => ({
      contents: "import wasm from 'sql.js/dist/sql-wasm.wasm';\nexport function loadSqlWasm() { return wasm; }\n",
      loader: 'js',
      resolveDir: path.dirname(args.path),
    }));
  },
};

const outfile = 'dist/kubectl-nkvm';
await mkdir('dist', { recursive: true });
const result = await build({
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
  loader: { '.wasm': 'binary' },
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
  plugins: [embedSqlWasm],
});
// V8 keeps a script's source for as long as the process runs, and one character above Latin-1 (a
// quote mark in a dependency's comment, a µ in a regular expression) makes the whole 9 MiB source a
// two-byte string: 10 MB more at every start. esbuild escapes strings but leaves comments and
// regular expressions as they are; \uXXXX means the same in every one of those places.
const source = await readFile(outfile, 'utf8');
await writeFile(outfile, source.replace(/[^\0-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
await chmod(outfile, 0o755);
// Only for running it from this repository, whose package.json says "type": "module": an
// extensionless file inside it would otherwise be loaded as ESM. Installed copies need no such file.
await writeFile('dist/package.json', '{ "type": "commonjs" }\n');
const bytes = Object.values(result.metafile.outputs).reduce((sum, output) => sum + output.bytes, 0);
console.error(`built ${outfile} (${(bytes / 1024 / 1024).toFixed(1)} MiB)`);

// The single executable's main script (src/sea-front.ts; the release stores the bundle beside it),
// with the bundle's own --help output at each width the front answers for.
const helpByWidth = Object.fromEntries(PRERENDERED_HELP_WIDTHS.map((width) => [width, execFileSync(process.execPath, [
  '--import', `data:text/javascript,Object.defineProperty(process.stdout, "columns", { value: ${width} })`, outfile, '--help',
], { encoding: 'utf8' })]));
await build({
  entryPoints: ['src/sea-front.ts'],
  outfile: 'dist/sea-front.js',
  bundle: true,
  platform: 'node',
  target: 'node22',
  format: 'cjs',
  legalComments: 'none',
  logLevel: 'warning',
  define: { NKVM_HELP_BY_WIDTH: JSON.stringify(helpByWidth) },
});
