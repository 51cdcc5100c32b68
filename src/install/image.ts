/**
 * The plugin's container image: where releases publish it (tag = plugin version; manifests pin the
 * digest) and what in-cluster installs run by default. `npm run image` builds it locally.
 */
export const IMAGE_REPOSITORY = 'ghcr.io/kubectl-nkvm/kubectl-nkvm';

export function imageReference(version: string): string {
  return `${IMAGE_REPOSITORY}:${version}`;
}
