/** The real restic the repository tests hold our work against (scripts/build-repository-tools.sh builds it). */
import fs from 'node:fs';
import path from 'node:path';
import { CACHE_DIR } from './paths.ts';

export const RESTIC_VERSION = 'v0.19.1';

export function resticBinary(): string {
  const binary = path.join(CACHE_DIR, `restic-${RESTIC_VERSION}`, 'bin', 'restic');
  if (!fs.existsSync(binary)) {
    throw new Error(`restic ${RESTIC_VERSION} is missing at ${binary}: build it with \`bash scripts/build-repository-tools.sh\` (or \`sh scripts/bootstrap.sh --cluster\`)`);
  }
  return binary;
}
