/**
 * What a command will need, started before the CLI has loaded, on threads of their own, from the first
 * word that is not a flag (firstWord, src/cli/invocation.ts): a wrong guess costs only the head start,
 * or a few milliseconds of a background thread. The single executable's front (src/sea-front.ts) asks
 * both; main.ts asks opensCatalog again with the command yargs will run.
 */

/**
 * The commands that open the local catalog: SQLite's WebAssembly starts compiling in the background
 * (src/store/sql-engine.ts).
 */
const OPENING_CATALOG: ReadonlySet<string> = new Set(['backup', 'restore', 'verify', 'artifacts', 'forget']);

export function opensCatalog(command: string | undefined): boolean {
  return command !== undefined && OPENING_CATALOG.has(command);
}

/**
 * The commands that always call the API server. Loading node:tls starts Node loading its root
 * certificates (and NODE_EXTRA_CA_CERTS) on a thread of its own, which the first TLS connection waits
 * for: loaded as the front starts, that load overlaps the CLI's own (2-5 ms of `discover`).
 */
const REACHING_CLUSTER: ReadonlySet<string> = new Set(['discover', 'backup', 'restore', 'diagnose', 'version', 'install', 'uninstall', 'status']);

export function reachesCluster(command: string | undefined): boolean {
  return command !== undefined && REACHING_CLUSTER.has(command);
}
