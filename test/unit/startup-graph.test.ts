import test from 'ava';
import { build, type Metafile } from 'esbuild';
import { cliBundleOptions } from '../../scripts/cli-bundle.ts';

// What every command pays before it starts is what main.ts reaches through static imports: the
// bundle evaluates those modules at load, and only those (the rest wait for an `await import()`).
// The cluster client, the HTTP and WebSocket clients, the repository and the catalog's SQLite are
// most of the bundle; a static import of any of them from a command file costs every command,
// `artifacts list` included, tens of milliseconds (docs: README "Start-up").
const LOADED_ON_USE = [
  /^src\/cli\/commands\/(?!index\.ts$)/,
  /^node_modules\/@kubernetes\/client-node\//,
  /^node_modules\/undici\//,
  /^node_modules\/ws\//,
  /^node_modules\/sql\.js\//,
  /^node_modules\/@noble\//,
  /^src\/repository\/(repository|archiver|chunker|crypto|pack|index|restorer|check|key|lock|prune|forget|tree|snapshot)\.ts$/,
  /^src\/repository\/backends\/(s3|local|open)\.ts$/,
  /^src\/kube\/(client|config|exec|acked-exec)\.ts$/,
  /^src\/backup\/(manager|restore|volume-snapshot|copy)\.ts$/,
  /^src\/store\/catalog\.ts$/,
  /^src\/install\/(cluster-store|fetch)\.ts$/,
];

async function metafile(): Promise<Metafile> {
  const result = await build({ ...cliBundleOptions('kubectl-nkvm'), write: false, logLevel: 'silent' });
  return result.metafile;
}

/** Each module main.ts reaches through static imports, with the module that imported it first. */
function staticGraph(meta: Metafile): Map<string, string | null> {
  const importedBy = new Map<string, string | null>([['src/main.ts', null]]);
  const queue = ['src/main.ts'];
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    for (const edge of meta.inputs[file]?.imports ?? []) {
      if (edge.kind === 'dynamic-import' || edge.external || importedBy.has(edge.path)) continue;
      importedBy.set(edge.path, file);
      queue.push(edge.path);
    }
  }
  return importedBy;
}

function chain(importedBy: Map<string, string | null>, file: string): string {
  const path: string[] = [];
  for (let at: string | null | undefined = file; at; at = importedBy.get(at)) path.unshift(at);
  return path.join(' -> ');
}

test('start-up evaluates no command module, nor the cluster client, HTTP, repository or SQLite code: each is imported on use', async (t) => {
  const meta = await metafile();
  const importedBy = staticGraph(meta);
  t.true(importedBy.has('src/cli/commands/index.ts') && importedBy.has('node_modules/yargs/index.mjs'), 'the walk reaches the command list and the parser');
  const leaks = [...importedBy.keys()].filter((file) => LOADED_ON_USE.some((pattern) => pattern.test(file)));
  t.deepEqual(leaks.map((file) => chain(importedBy, file)), []);
  t.true(Object.keys(meta.inputs).some((file) => file.startsWith('node_modules/@kubernetes/client-node/')), 'the bundle still holds the client, for when it is used');
});

test('no copy of string-width is in the bundle: its imports resolve to src/cli/text-width.ts', async (t) => {
  const meta = await metafile();
  t.deepEqual(Object.keys(meta.inputs).filter((file) => /(^|\/)string-width\//.test(file)), []);
  t.true('src/cli/text-width.ts' in meta.inputs);
});
