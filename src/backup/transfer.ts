/**
 * How a copy between a claim and an S3 repository travels: in a data mover pod (straight between
 * the claim's node and the repository) or over exec through this machine. Backup and restore choose
 * the same way; their managers fall back to exec where a mover turns out unusable (mover.ts).
 */
import { isS3Location, parseS3Location } from '../repository/backends/s3-location.ts';

export const MOVER_MODES = ['auto', 'pod', 'exec'] as const;
export type MoverMode = (typeof MOVER_MODES)[number];

/** How a copy's data went between the claim and the repository, and why. */
export interface Transfer {
  mode: 'pod' | 'exec';
  reason: string;
}

/**
 * --mover auto: a pod where the cluster can reach the repository (S3 at an address that is not this
 * machine's loopback); else exec, and why. `direction` only words the reason: a backup writes the
 * repository from the cluster, a restore reads it there.
 */
export function chooseTransfer(mode: MoverMode, location: string, direction: 'backup' | 'restore'): { mover: boolean; reason: string } {
  if (mode === 'exec') return { mover: false, reason: '--mover exec' };
  if (mode === 'pod') return { mover: true, reason: '--mover pod' };
  if (!isS3Location(location)) return { mover: false, reason: 'the repository is a directory on this machine, out of the cluster\'s reach (--mover auto)' };
  const host = parseS3Location(location).host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host === '::1' || /^127\./.test(host)) {
    return { mover: false, reason: `the repository's endpoint ${host} is this machine's loopback address, out of the pods' reach (--mover auto)` };
  }
  return { mover: true, reason: `an S3 repository, ${direction === 'backup' ? 'written' : 'read'} from the cluster (--mover auto)` };
}
