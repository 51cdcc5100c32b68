// The esbuild options of the CLI bundle, shared by build.mjs (which writes it) and the unit test that
// checks what the bundle evaluates at start (test/unit/startup-graph.test.ts).
import { build, type BuildOptions, type Plugin } from 'esbuild';
import { readFile } from 'node:fs/promises';
import http2 from 'node:http2';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { FRONT_MODULE, LIBRARY_PACKAGES, SHARED_MODULE, SHARED_MODULES_EXPORT } from '../src/sea-assets.ts';

const REPO_ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

// src/store/sql-wasm.ts reads sql.js's WASM from node_modules when run from source. In
// dist/kubectl-nkvm it becomes this module instead, which embeds the binary as base64 (the '.wasm'
// loader below): Buffer decodes that natively, where esbuild's binary loader decodes it in
// JavaScript (~15 ms each start). In the single executable's CLI bundle it is the front's
// (FRONT_MODULE, src/sea-front.ts), which compiles the binary from an asset of its own.
const EMBEDDED_SQL_WASM = `import wasm from 'sql.js/dist/sql-wasm.wasm';
import { compileWebAssembly } from ${JSON.stringify(path.join(REPO_ROOT, 'src', 'wasm-compilation.ts'))};
export function compileSqlWasm() {
  return compileWebAssembly(Buffer.from(wasm, 'base64'));
}
`;
function sqlWasm(from: 'embedded' | 'front'): Plugin {
  return {
    name: 'sql-wasm',
    setup(pluginBuild) {
      pluginBuild.onLoad({ filter: /[\\/]src[\\/]store[\\/]sql-wasm\.ts$/ }, (args) => ({
        contents: from === 'embedded' ? EMBEDDED_SQL_WASM : `export { compileSqlWasm } from ${JSON.stringify(FRONT_MODULE)};\n`,
        loader: 'js',
        resolveDir: path.dirname(args.path),
      }));
      pluginBuild.onResolve({ filter: new RegExp(`^${FRONT_MODULE}$`) }, (args) => ({ path: args.path, external: true }));
    },
  };
}

// src/repository/seal-worker-source.ts names seal-worker.ts, which a worker thread runs from source;
// in the bundle it becomes this module instead, which holds seal-worker.ts bundled, for the worker
// to run as a script: the bundle stays one file.
const embedSealWorker: Plugin = {
  name: 'embed-seal-worker',
  setup(pluginBuild) {
    pluginBuild.onLoad({ filter: /[\\/]src[\\/]repository[\\/]seal-worker-source\.ts$/ }, async () => {
      const worker = await build({ ...NODE_BUNDLE, absWorkingDir: REPO_ROOT, entryPoints: ['src/repository/seal-worker.ts'], write: false, minifyWhitespace: true, logLevel: 'silent' });
      return { contents: `export function sealWorkerScript() { return { script: ${JSON.stringify(worker.outputFiles[0]!.text)}, eval: true }; }\n`, loader: 'js' };
    });
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

// yargs' platform shim imports node:assert for two sanity checks: src/cli/yargs-assert.ts has them
// without the module's ~6 ms a start.
const yargsAssert: Plugin = {
  name: 'yargs-assert',
  setup(pluginBuild) {
    pluginBuild.onResolve({ filter: /^assert$/ }, (args) =>
      /[\\/]yargs[\\/]lib[\\/]platform-shims[\\/]/.test(args.importer) ? { path: path.join(REPO_ROOT, 'src', 'cli', 'yargs-assert.ts') } : undefined,
    );
  },
};

// After starting a command's handler, yargs renders that command's whole help and keeps it, for a
// handler that might ask for it: 5-15 ms of every command, and none of ours asks (src/main.ts
// turns every failure into its own message). The build fails if yargs' code no longer reads so.
const YARGS_HELP_CACHING = `            if (!isDefaultCommand) {
                yargs.getInternalMethods().getUsageInstance().cacheHelpMessage();
            }
`;
const yargsNoHelpCaching: Plugin = {
  name: 'yargs-no-help-caching',
  setup(pluginBuild) {
    pluginBuild.onLoad({ filter: /[\\/]yargs[\\/]build[\\/]lib[\\/]command\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      if (!source.includes(YARGS_HELP_CACHING)) throw new Error(`${args.path} no longer caches help as yargs-no-help-caching expects: check the plugin against this yargs`);
      return { contents: source.replace(YARGS_HELP_CACHING, ''), loader: 'js' };
    });
  },
};

// undici loads node:http2 as it loads, for the names of a few constants: 8-27 ms of every command
// that talks to a cluster or S3, and none of them speaks HTTP/2 (each Agent says allowH2: false).
// Here the constants are values (node:http2's own, read as this builds) and node:http2 is loaded
// by connect(), the one function of it undici calls. The build fails if undici's code changes.
const UNDICI_HTTP2_LOAD = `let http2
try {
  http2 = require('node:http2')
} catch {
  // @ts-ignore
  http2 = { constants: {} }
}
`;
const UNDICI_HTTP2_CONSTANTS = ['HTTP2_HEADER_AUTHORITY', 'HTTP2_HEADER_METHOD', 'HTTP2_HEADER_PATH', 'HTTP2_HEADER_SCHEME', 'HTTP2_HEADER_CONTENT_LENGTH',
  'HTTP2_HEADER_EXPECT', 'HTTP2_HEADER_STATUS', 'HTTP2_HEADER_PROTOCOL', 'NGHTTP2_NO_ERROR', 'NGHTTP2_PROTOCOL_ERROR', 'NGHTTP2_REFUSED_STREAM'] as const;
export function undiciHttp2OnUse(): string {
  const constants = Object.fromEntries(UNDICI_HTTP2_CONSTANTS.map((name) => [name, (http2.constants as Record<string, string | number>)[name]]));
  return `let http2Module
const http2 = {
  connect: (...args) => (http2Module ??= require('node:http2')).connect(...args),
  constants: ${JSON.stringify(constants)}
}
`;
}
const undiciHttp2: Plugin = {
  name: 'undici-http2-on-use',
  setup(pluginBuild) {
    pluginBuild.onLoad({ filter: /[\\/]undici[\\/]lib[\\/]dispatcher[\\/]client-h2\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      const uses = [...source.matchAll(/\bhttp2\.(\w+)/g)].map((match) => match[1]).filter((name) => name !== 'constants' && name !== 'connect');
      if (!source.includes(UNDICI_HTTP2_LOAD) || uses.length > 0) throw new Error(`${args.path} no longer loads node:http2 as undici-http2-on-use expects: check the plugin against this undici`);
      return { contents: source.replace(UNDICI_HTTP2_LOAD, undiciHttp2OnUse()), loader: 'js', resolveDir: path.dirname(args.path) };
    });
  },
};

// What the plugin and the Kubernetes client use of undici, in place of undici's index.js, which
// loads all of undici as it loads (mock agents, cache stores, WebSocket, EventSource, cookies, ...):
// some 40% of undici's start, which every command that talks to a cluster or S3 paid. The index's
// one side effect is kept: the request API on every dispatcher (agent.request()). A name used but
// not exported here fails the single executable's undici bundle ("No matching export").
const UNDICI_USED = `export { default as Agent } from 'undici/lib/dispatcher/agent.js';
export { default as ProxyAgent } from 'undici/lib/dispatcher/proxy-agent.js';
export { getGlobalDispatcher } from 'undici/lib/global.js';
import { fetch as fetchImplementation } from 'undici/lib/web/fetch/index.js';
import Dispatcher from 'undici/lib/dispatcher/dispatcher.js';
import api from 'undici/lib/api/index.js';
Object.assign(Dispatcher.prototype, api);
export function fetch(input, init) {
  return fetchImplementation(input, init);
}
`;
const undiciUsed: Plugin = {
  name: 'undici-used',
  setup(pluginBuild) {
    pluginBuild.onResolve({ filter: /^undici$/ }, () => ({ path: 'undici', namespace: 'undici-used' }));
    pluginBuild.onLoad({ filter: /.*/, namespace: 'undici-used' }, () => ({ contents: UNDICI_USED, loader: 'js', resolveDir: REPO_ROOT }));
  },
};

// The single executable's CLI bundle requires these from the libraries' bundles (src/sea-assets.ts).
function outside(packages: readonly string[]): Plugin {
  const names = new RegExp(`^(${packages.map((name) => name.replace(/[/.]/g, '\\$&')).join('|')})$`);
  return {
    name: 'libraries-outside',
    setup(pluginBuild) {
      pluginBuild.onResolve({ filter: names }, (args) => ({ path: args.path, external: true }));
    },
  };
}

/** What every bundle of the plugin is: CommonJS for Node 22 and newer, no license comments. */
export const NODE_BUNDLE = { bundle: true, platform: 'node', target: 'node22', format: 'cjs', legalComments: 'none', logLevel: 'warning' } as const satisfies BuildOptions;

// ESM dependencies read import.meta.url; give them the bundle's own URL in CommonJS.
const IMPORT_META_URL = 'const __nkvmImportMetaUrl = require("node:url").pathToFileURL(__filename).href;';

/**
 * The CLI: CommonJS (what Node's single executable applications load), a node shebang, sql.js's
 * WASM inside. With `libraries: 'outside'`, the single executable's CLI bundle, which leaves
 * LIBRARY_PACKAGES to libraryBundleOptions' bundles.
 */
export function cliBundleOptions(outfile: string, options: { libraries: 'inside' | 'outside' } = { libraries: 'inside' }): BuildOptions & { metafile: true } {
  return {
    absWorkingDir: REPO_ROOT,
    ...NODE_BUNDLE,
    entryPoints: ['src/main.ts'],
    outfile,
    minify: false,
    sourcemap: false,
    loader: { '.wasm': 'base64' },
    define: { 'import.meta.url': '__nkvmImportMetaUrl' },
    banner: {
      js: [
        '#!/usr/bin/env node',
        // Before any bundled module runs: older Nodes fail inside dependencies with unhelpful errors.
        'if (Number(process.versions.node.split(".")[0]) < 22) { console.error(`error: kubectl-nkvm needs Node.js 22 or newer; this is ${process.version}`); process.exit(1); }',
        IMPORT_META_URL,
      ].join('\n'),
    },
    metafile: true,
    plugins: [sqlWasm(options.libraries === 'outside' ? 'front' : 'embedded'), embedSealWorker, lazyTextWidth, yargsAssert, yargsNoHelpCaching, undiciHttp2, kubernetesClientSources('index'), ...(options.libraries === 'outside' ? [outside(LIBRARY_PACKAGES)] : [undiciUsed])],
  };
}

/**
 * The names a bundle takes from each of LIBRARY_PACKAGES, read off its text: esbuild binds each
 * require() of an external package to a variable (`import_undici2 = require("undici")`) and reads
 * names off it (`import_undici2.Agent`). Exporting just these lets esbuild leave the rest of the
 * libraries out, as it does in dist/kubectl-nkvm (5 MiB of the Kubernetes client, not 16).
 */
export function namesUsedFromLibraries(bundle: string): Map<string, string[]> {
  const used = new Map<string, Set<string>>(LIBRARY_PACKAGES.map((name) => [name, new Set<string>()]));
  for (const [, variable, library] of bundle.matchAll(/\b(import_[\w$]+) = (?:__toESM\()?require\("([^"]+)"\)/g)) {
    const names = used.get(library!);
    if (!names) continue;
    for (const [, name] of bundle.matchAll(new RegExp(`\\b${variable!.replace(/\$/g, '\\$')}\\.([A-Za-z_$][\\w$]*)`, 'g'))) names.add(name!);
  }
  return new Map([...used].map(([library, names]) => [library, [...names].sort()]));
}

// The Kubernetes client's kubeconfig (KubeConfig and its authenticators: config.js and what it
// imports), which discover needs alone, in a bundle of its own: a twelfth of the client. config.js
// takes two names from the generated code's index, which imports every API and model; with
// `generatedApi: 'own-modules'` this takes them from their own modules. The build fails if config.js
// no longer imports them so.
const KUBECONFIG_MODULE = '@kubernetes/client-node/dist/config.js';
const CONFIG_FROM_GENERATED_INDEX = "import { createConfiguration, ServerConfiguration, } from './gen/index.js';";

// What only a kubeconfig with a proxy-url or an auth provider (azure, gcp, oidc, exec) uses: the SOCKS
// and HTTP proxy agents (with debug, socks and ip-address: some 5 ms of every command that reads a
// kubeconfig), JSONPath, the OpenID client and node:child_process. The client imports them as it
// loads; here each is required when it is first used. The build fails if an import of one reads
// otherwise.
const CLIENT_LIBRARIES_ON_USE = ['socks-proxy-agent', 'socks', 'hpagent', 'jsonpath-plus', 'openid-client'];
const CLIENT_BUILTIN_ON_USE = 'node:child_process';
const CLIENT_FILES_IMPORTING_THEM = /[\\/]@kubernetes[\\/]client-node[\\/]dist[\\/](config|azure_auth|gcp_auth|oidc_auth|exec_auth)\.js$/;
// A stand-in for a library's namespace or one of its exports, which loads the library on first use:
// reading a name, calling, `new`, `instanceof`.
const ON_USE = `const __nkvmOnUse = (load) => new Proxy(function () {}, {
  get: (_, name) => Reflect.get(load(), name),
  has: (_, name) => Reflect.has(load(), name),
  apply: (_, self, args) => Reflect.apply(load(), self, args),
  construct: (_, args) => Reflect.construct(load(), args),
});
`;

/** `source` (a client module's) with the imports of CLIENT_LIBRARIES_ON_USE and CLIENT_BUILTIN_ON_USE made on use. */
export function librariesOnUse(source: string, file: string): string {
  const unread = (library: string) => new Error(`${file} imports ${library} in a form libraries-on-use does not read: check the plugin against this client`);
  let replaced = source;
  for (const library of CLIENT_LIBRARIES_ON_USE) {
    const from = `from '${library}';`;
    if (!replaced.includes(from)) continue;
    const load = `__nkvmLoad_${library.replace(/\W/g, '_')}`;
    replaced = replaced.replace(new RegExp(`^import (?:\\* as (\\w+)|\\{([\\w\\s,]+)\\}) ${from}$`, 'm'), (_, namespace: string | undefined, names: string | undefined) => [
      `let ${load}_module; const ${load} = () => (${load}_module ??= require('${library}'));`,
      ...(namespace ? [`const ${namespace} = __nkvmOnUse(${load});`] : []),
      ...(names ?? '').split(',').map((name) => name.trim()).filter(Boolean).map((name) => `const ${name} = __nkvmOnUse(() => ${load}().${name});`),
    ].join('\n'));
    if (replaced.includes(from)) throw unread(library);
  }
  // The client keeps child_process's functions (ExecAuth's `this.execFn = child_process.spawn` as it is
  // made), so the stand-in is an object of functions, one for each name the module calls.
  const builtinImport = new RegExp(`^import (\\w+) from '${CLIENT_BUILTIN_ON_USE}';$`, 'm').exec(replaced);
  if (builtinImport) {
    const [line, name] = builtinImport as unknown as [string, string];
    const rest = replaced.replace(line, '');
    const uses = [...rest.matchAll(new RegExp(`\\b${name}\\b(\\.\\w+)?`, 'g'))];
    if (uses.some((use) => !use[1])) throw unread(CLIENT_BUILTIN_ON_USE);
    const functions = [...new Set(uses.map((use) => use[1]!.slice(1)))].map((fn) => `${fn}: (...args) => require('${CLIENT_BUILTIN_ON_USE}').${fn}(...args)`);
    replaced = replaced.replace(line, `const ${name} = { ${functions.join(', ')} };`);
  }
  if (replaced.includes(`from '${CLIENT_BUILTIN_ON_USE}';`)) throw unread(CLIENT_BUILTIN_ON_USE);
  return replaced === source ? source : ON_USE + replaced;
}

function kubernetesClientSources(generatedApi: 'index' | 'own-modules'): Plugin {
  return {
    name: 'kubernetes-client-sources',
    setup(pluginBuild) {
      pluginBuild.onLoad({ filter: CLIENT_FILES_IMPORTING_THEM, namespace: 'file' }, async (args) => {
        let source = await readFile(args.path, 'utf8');
        if (generatedApi === 'own-modules' && args.path.endsWith(`${path.sep}config.js`)) {
          if (!source.includes(CONFIG_FROM_GENERATED_INDEX)) throw new Error(`${args.path} no longer imports from the generated index as kubernetes-client-sources expects: check the plugin against this client`);
          source = source.replace(CONFIG_FROM_GENERATED_INDEX, "import { createConfiguration } from './gen/configuration.js';\nimport { ServerConfiguration } from './gen/servers.js';");
        }
        return { contents: librariesOnUse(source, args.path), loader: 'js', resolveDir: path.dirname(args.path) };
      });
    },
  };
}

/**
 * The client's own modules (ESM) in the kubeconfig's bundle, as paths from the repository: the
 * Kubernetes client's bundle takes these from it rather than holding a second copy (sharedModules).
 */
export async function kubeconfigModules(external: readonly string[]): Promise<string[]> {
  const result = await build({ absWorkingDir: REPO_ROOT, ...NODE_BUNDLE, entryPoints: [KUBECONFIG_MODULE], write: false, metafile: true, logLevel: 'silent', plugins: [kubernetesClientSources('own-modules'), outside(external)] });
  return Object.entries(result.metafile.inputs)
    .filter(([file, input]) => file.startsWith('node_modules/@kubernetes/client-node/') && input.format === 'esm')
    .map(([file]) => file)
    .sort();
}

/**
 * The kubeconfig's bundle: config.js's exports, and under SHARED_MODULES_EXPORT the namespace of each
 * of `modules`, by path, for the Kubernetes client's bundle.
 */
export function kubeconfigBundleOptions(modules: readonly string[], outfile: string, external: readonly string[]): BuildOptions & { metafile: true } {
  const config = `node_modules/${KUBECONFIG_MODULE}`;
  if (!modules.includes(config)) throw new Error(`${config} is not among the kubeconfig's modules`);
  const imports = modules.map((file, index) => `import * as m${index} from ${JSON.stringify(`./${file}`)};`);
  const shared = modules.map((file, index) => `${JSON.stringify(file)}: m${index}`);
  const contents = `${imports.join('\n')}\nexport default { ...m${modules.indexOf(config)}, ${JSON.stringify(SHARED_MODULES_EXPORT)}: { ${shared.join(', ')} } };\n`;
  return exportingBundle(contents, 'kubeconfig.js', outfile, [kubernetesClientSources('own-modules'), outside(external)]);
}

/** A bundle of the single executable whose module.exports is the default export of `contents`, an entry module. */
function exportingBundle(contents: string, sourcefile: string, outfile: string, plugins: Plugin[]): BuildOptions & { metafile: true } {
  return {
    absWorkingDir: REPO_ROOT,
    stdin: { contents, resolveDir: REPO_ROOT, sourcefile },
    ...NODE_BUNDLE,
    outfile,
    define: { 'import.meta.url': '__nkvmImportMetaUrl' },
    banner: { js: IMPORT_META_URL },
    footer: { js: 'module.exports = module.exports.default;' },
    metafile: true,
    plugins,
  };
}

/**
 * Takes each of `shared.modules` from the bundle of `shared.asset` (src/sea-assets.ts answers
 * SHARED_MODULE): in its place goes a module that requires it from there and exports its names,
 * read here by importing it. Named exports, not `export *` of an external module: that would keep
 * every module an index re-exports, the whole client (16 MiB) rather than what is used of it.
 * Snapshots of the values, which is right for modules whose exports are never reassigned (no
 * `export let` or `export var` in the client), and the bundle checks that.
 */
function sharedModules(shared: { asset: string; modules: readonly string[] }): Plugin {
  const modules = new Set(shared.modules);
  return {
    name: 'shared-modules',
    setup(pluginBuild) {
      pluginBuild.onResolve({ filter: new RegExp(`^${SHARED_MODULE}`) }, (args) => ({ path: args.path, external: true }));
      pluginBuild.onResolve({ filter: /.*/ }, async (args) => {
        if (args.pluginData === 'shared-modules' || args.kind === 'entry-point') return undefined;
        const resolved = await pluginBuild.resolve(args.path, { resolveDir: args.resolveDir, kind: args.kind, importer: args.importer, pluginData: 'shared-modules' });
        if (resolved.errors.length > 0 || resolved.external) return undefined;
        const file = path.relative(REPO_ROOT, resolved.path).split(path.sep).join('/');
        return modules.has(file) ? { path: resolved.path, namespace: 'shared-module', pluginData: file } : undefined;
      });
      pluginBuild.onLoad({ filter: /.*/, namespace: 'shared-module' }, async (args) => {
        const source = await readFile(args.path, 'utf8');
        if (/^export (let|var) /m.test(source)) throw new Error(`${args.path} exports a variable that may be reassigned: shared-modules would hand out a stale copy`);
        const names = Object.keys(await import(pathToFileURL(args.path).href));
        const named = names.filter((name) => name !== 'default');
        return {
          contents: [
            `const shared = require(${JSON.stringify(`${SHARED_MODULE}${shared.asset}/${args.pluginData as string}`)});`,
            ...(named.length > 0 ? [`export const { ${named.join(', ')} } = shared;`] : []),
            ...(names.includes('default') ? ['export default shared.default;'] : []),
          ].join('\n'),
          loader: 'js',
        };
      });
    },
  };
}

/**
 * One library's bundle for the single executable: its exports are the names given (what the CLI
 * bundle and the other libraries use of it); the packages in `external` are required from their
 * own bundles, and the modules in `shared` from the bundle that holds them.
 */
export function libraryBundleOptions(name: string, names: readonly string[], outfile: string, external: readonly string[] = [], shared?: { asset: string; modules: readonly string[] }): BuildOptions & { metafile: true } {
  return exportingBundle(`import { ${names.join(', ')} } from '${name}';\nexport default { ${names.join(', ')} };\n`, 'library.js', outfile, [
    undiciHttp2,
    ...(name === 'undici' ? [undiciUsed] : []),
    ...(external.length > 0 ? [outside(external)] : []),
    ...(shared ? [sharedModules(shared)] : []),
  ]);
}
