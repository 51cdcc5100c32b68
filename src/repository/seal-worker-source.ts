/**
 * What the sealing worker runs. From source, seal-worker.ts itself; in dist/kubectl-nkvm (and the
 * single executable), build.mjs replaces this module with one that embeds seal-worker.ts bundled,
 * run as a script: the bundle is one file, with nothing beside it to load.
 */
export function sealWorkerScript(): { script: string | URL; eval: boolean } {
  return { script: new URL('./seal-worker.ts', import.meta.url), eval: false };
}
