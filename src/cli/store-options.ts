/** --catalog and --output-dir, shared by the commands that read or write backups. */
import path from 'node:path';
import type { Argv } from 'yargs';
import type { Catalog } from '../store/catalog.ts';
import { ensureCatalogLocation, ensureWritableDirectory, nkvmHome } from './local-paths.ts';

export interface StoreOptions {
  catalog: string | undefined;
  outputDir: string | undefined;
}

export function withStoreOptions<T>(argv: Argv<T>): Argv<T & StoreOptions> {
  return argv
    .option('catalog', { type: 'string', description: 'Catalog file (default: $NKVM_HOME/catalog.sqlite)' })
    .option('output-dir', { type: 'string', description: 'Directory for artifacts (default: $NKVM_HOME/artifacts)' }) as unknown as Argv<T & StoreOptions>;
}

export function catalogPath(options: StoreOptions): string {
  return path.resolve(options.catalog ?? path.join(nkvmHome(), 'catalog.sqlite'));
}

export function outputDir(options: StoreOptions): string {
  return path.resolve(options.outputDir ?? path.join(nkvmHome(), 'artifacts'));
}

/** The output directory, created and proven writable: backup calls this before any cluster work. */
export function writableOutputDir(options: StoreOptions): string {
  const dir = outputDir(options);
  ensureWritableDirectory(dir, options.outputDir ? '--output-dir' : 'the artifact directory ($NKVM_HOME/artifacts)');
  return dir;
}

/** The catalog (sql.js and its WASM load here, on first use, not at start-up). */
export async function openCatalog(options: StoreOptions): Promise<Catalog> {
  const file = catalogPath(options);
  ensureCatalogLocation(file, options.catalog ? '--catalog' : 'the catalog ($NKVM_HOME/catalog.sqlite)');
  const { Catalog } = await import('../store/catalog.ts');
  return Catalog.open(file);
}
