import { build } from 'esbuild';
import { cliBundleOptions } from './scripts/cli-bundle.ts';
const r = await build({ ...cliBundleOptions('x'), write: false, logLevel: 'silent' });
const inputs = r.metafile.inputs;
const out = Object.values(r.metafile.outputs)[0]!.inputs;
const seen = new Set(['src/main.ts']); const q = ['src/main.ts'];
const builtins = new Map<string, string[]>();
while (q.length) { const f = q.shift()!; for (const i of inputs[f]?.imports ?? []) { if (i.kind === 'dynamic-import') continue; if (i.external) { const l = builtins.get(i.path) ?? []; l.push(f); builtins.set(i.path, l); continue; } if (!seen.has(i.path)) { seen.add(i.path); q.push(i.path); } } }
for (const [b, fs] of builtins) console.log(b.padEnd(22), fs.join(' '));
let src = 0; for (const f of seen) if (f.startsWith('src/')) src += out[f]?.bytesInOutput ?? 0;
console.log('eager src KiB', (src/1024).toFixed(0), [...seen].filter(f => f.startsWith('src/')).length, 'files');
