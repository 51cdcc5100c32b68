/**
 * The commands that open the local catalog. As one starts, SQLite's WebAssembly starts compiling in
 * the background (src/store/sql-engine.ts): main.ts asks with the command yargs will run, the single
 * executable's front (src/sea-front.ts), earlier, with the first word that is not a flag (firstWord,
 * src/cli/invocation.ts: a wrong guess costs only the head start, or a few milliseconds of a
 * background thread).
 */
const OPENING_CATALOG: ReadonlySet<string> = new Set(['backup', 'restore', 'verify', 'artifacts', 'forget']);

export function opensCatalog(command: string | undefined): boolean {
  return command !== undefined && OPENING_CATALOG.has(command);
}
