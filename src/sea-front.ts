/**
 * The single executable's main script (scripts/release/sea.ts builds it): small, so that it starts
 * in the time Node.js itself takes. It answers `--help` and `version --client` itself
 * (src/cli/fast-paths.ts) and otherwise runs the CLI bundle stored in the executable as an asset,
 * with V8's code cache of it where the release made one for this platform (src/sea-assets.ts). It first
 * starts what the command will need on threads of their own (src/cli/head-starts.ts): compiling
 * SQLite's WebAssembly, which the CLI takes from it (FRONT_MODULE), and loading Node's root
 * certificates.
 */
import sea from 'node:sea';
import { opensCatalog, reachesCluster } from './cli/head-starts.ts';
import { fastAnswer } from './cli/fast-paths.ts';
import { firstWord } from './cli/invocation.ts';
import { CLI_ASSET, codeCacheAsset, runCli, SQL_WASM_ASSET, type CompiledSource, type FrontModule } from './sea-assets.ts';
import { compileWebAssembly } from './wasm-compilation.ts';

/** The CLI's own `--help` output at each prerendered width, put here by the release build. */
declare const NKVM_HELP_BY_WIDTH: Record<string, string>;

function asset(name: string): CompiledSource {
  let cachedData: Buffer | undefined;
  try {
    cachedData = Buffer.from(sea.getRawAsset(codeCacheAsset(name)) as ArrayBuffer);
  } catch {
    // Only the executable for the platform the release was built on has one.
  }
  return { source: sea.getAsset(name, 'utf8'), cachedData };
}

let sqlWasm: Promise<WebAssembly.Module> | undefined;
const front: FrontModule = {
  compileSqlWasm: () => (sqlWasm ??= compileWebAssembly(new Uint8Array(sea.getRawAsset(SQL_WASM_ASSET) as ArrayBuffer))),
};

const argv = process.argv.slice(2);
const command = firstWord(argv);
// First of all: it runs on a background thread while the CLI loads (none of these is a fast answer).
if (opensCatalog(command)) void front.compileSqlWasm();
const answer = fastAnswer(argv, process.argv[1], process.stdout.columns, NKVM_HELP_BY_WIDTH);
if (answer !== undefined) process.stdout.write(answer);
else {
  const asksForHelp = argv.includes('--help') || argv.includes('-h');
  if (reachesCluster(command) && !asksForHelp) require('node:tls'); // its root certificates load meanwhile (head-starts.ts)
  runCli(asset(CLI_ASSET), asset, require, __filename, front);
}
