/**
 * How the plugin was invoked, decided without loading the CLI: the single executable's front
 * (src/sea-front.ts) reads it before anything else is loaded.
 */
import path from 'node:path';

/** kubectl (1.26+) runs this name for `kubectl nkvm <TAB>`; under it, every run is a completion request. */
export const COMPLETE_EXECUTABLE = 'kubectl_complete-nkvm';

/** `invokedAs` is process.argv[1]: the script for `node FILE`, the executable's own name for a single executable. */
export function invokedForCompletion(invokedAs: string | undefined): boolean {
  return path.basename(invokedAs ?? '').replace(/\.(exe|cmd|bat)$/i, '') === COMPLETE_EXECUTABLE;
}
