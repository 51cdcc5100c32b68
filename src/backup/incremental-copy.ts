/**
 * The first half of an incremental copy into a repository: the helper lists the claim (claim-listing.ts),
 * the listing is compared with the parent snapshot (src/repository/incremental.ts), and what remains
 * is the command that tars only what changed, its input (the NUL-separated paths for `xargs -0`),
 * and how to archive its output. The listing and the path list wait in a temporary directory, read
 * twice from disk rather than held in memory (a million files list as about 150 MB).
 *
 * A helper without what this needs (`xargs -0`, `tar --no-recursion`, `find`, `stat`) gets no
 * incremental copy: the caller reads the whole claim as before, and says why.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { KubeConfig } from '@kubernetes/client-node';
import { execWithAck } from '../kube/acked-exec.ts';
import { ExecStreamCutError } from '../kube/exec.ts';
import { toKubernetesError } from '../kube/errors.ts';
import { archiveChanges, planRequests, type RequestPlan } from '../repository/incremental.ts';
import type { ArchivedTree } from '../repository/archiver.ts';
import type { Repository } from '../repository/repository.ts';
import type { NodesByName } from '../repository/tree-nodes.ts';
import { listingScript, newListingNonce, readListing, type ListingCapabilities } from './claim-listing.ts';
import { CopyStderr } from './copy-stderr.ts';
import { DATA_MOUNT_PATH, HELPER_CONTAINER } from './helper-pod.ts';

/** tar of the paths on stdin, NUL-separated, in batches (each its own archive); xargs' 123 is a tar that exited 1. */
export function requestedTarCommand(root: string): string {
  return `xargs -0 tar -c -f - --no-recursion -C ${root} --; s=$?; [ "$s" -eq 123 ] && s=1; (exit $s)`;
}

/** An empty archive (two zero blocks): nothing changed, nothing to read. */
export const EMPTY_ARCHIVE_COMMAND = 'head -c 1024 /dev/zero';

export interface IncrementalCopy {
  plan: RequestPlan;
  /** What the helper runs in place of `tar .` (copy.ts wraps it in its script). */
  tarCommand: string;
  input: { stream: Readable; bytes: number } | undefined;
  /** The listing's own complaints (unreadable directories, paths gone while listed). */
  stderr: CopyStderr;
  /** Bytes of the listing, which crossed the API server as the tar does. */
  listingBytes: number;
  /** Archives the tar of the requested paths into the repository, as they stream in. */
  archive(tar: AsyncIterable<Buffer | Uint8Array>): Promise<ArchivedTree>;
  /** Removes the temporary files. */
  dispose(): void;
}

export interface IncrementalRequest {
  kubeConfig: KubeConfig;
  namespace: string;
  pod: string;
  repository: Repository;
  /** The snapshot's path, `/data/<pvc>`. */
  snapshotPath: string;
  /** The parent snapshot's nodes at the claim's root; undefined for a first backup. */
  previousRoot: NodesByName | undefined;
  ackTimeoutSeconds: number;
  signal?: AbortSignal | undefined;
}

/** Why the copy cannot be incremental in this helper: the caller reads everything instead. */
export class NotIncrementalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotIncrementalError';
  }
}

export async function prepareIncrementalCopy(request: IncrementalRequest): Promise<IncrementalCopy> {
  let dir: string;
  try {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-listing-'));
  } catch (error) {
    throw new NotIncrementalError(`the listing has nowhere to wait (${(error as Error).message}; set TMPDIR to a writable directory)`);
  }
  const dispose = () => fs.rmSync(dir, { recursive: true, force: true });
  try {
    return await prepare(request, dir, dispose);
  } catch (error) {
    dispose();
    throw error;
  }
}

async function prepare(request: IncrementalRequest, dir: string, dispose: () => void): Promise<IncrementalCopy> {
  const nonce = newListingNonce();
  const listingFile = path.join(dir, 'listing');
  const stderr = new CopyStderr();
  const stdout = fs.createWriteStream(listingFile);
  let outcome;
  try {
    outcome = await execWithAck(request.kubeConfig, {
      namespace: request.namespace,
      pod: request.pod,
      container: HELPER_CONTAINER,
      command: ['sh', '-c', listingScript(DATA_MOUNT_PATH, nonce)],
      stdout,
      onStderr: (chunk) => stderr.push(chunk),
      signal: request.signal,
      ackTimeoutSeconds: request.ackTimeoutSeconds,
    });
  } catch (error) {
    if (error instanceof ExecStreamCutError) throw error;
    throw toKubernetesError(error, { verb: 'create', resource: 'pods/exec', namespace: request.namespace, name: request.pod });
  }
  if (!stdout.writableFinished) await new Promise((resolve, reject) => stdout.once('finish', resolve).once('error', reject));
  stderr.end();
  // find and stat exit 1 after paths they could not read or that vanished; anything else is a helper without them.
  const listed = outcome.commandExitCode === 0 || (outcome.commandExitCode === 1 && stderr.onlyPathComplaints);
  if (!listed) {
    const why = stderr.complaintText || outcome.stderr || `exit code ${outcome.commandExitCode ?? 'unknown'}`;
    throw new NotIncrementalError(`the helper could not list the claim (${why.trim().split('\n')[0]})`);
  }

  let capabilities: ListingCapabilities | undefined;
  const requestFile = path.join(dir, 'requested');
  const out = fs.openSync(requestFile, 'w');
  let requestBytes = 0;
  const NUL = Buffer.from([0]);
  // Read twice from the file: once to plan, once beside the tar.
  const listing = (onCapabilities?: (caps: ListingCapabilities) => void) => readListing(fs.createReadStream(listingFile, { highWaterMark: 1024 * 1024 }), nonce, onCapabilities);
  let plan: RequestPlan;
  try {
    plan = await planRequests(request.repository, request.previousRoot, listing((caps) => (capabilities = caps)), (name) => {
      fs.writeSync(out, name);
      fs.writeSync(out, NUL);
      requestBytes += name.length + 1;
    });
  } finally {
    fs.closeSync(out);
  }
  if (!capabilities?.xargsNul || !capabilities.noRecursion) {
    const missing = [capabilities?.xargsNul ? '' : 'xargs -0', capabilities?.noRecursion ? '' : 'tar --no-recursion'].filter(Boolean).join(' and ');
    throw new NotIncrementalError(`the helper image has no ${missing}`);
  }
  return {
    plan,
    tarCommand: plan.requested > 0 ? requestedTarCommand(DATA_MOUNT_PATH) : EMPTY_ARCHIVE_COMMAND,
    input: plan.requested > 0 ? { stream: fs.createReadStream(requestFile), bytes: requestBytes } : undefined,
    stderr,
    listingBytes: outcome.bytes,
    archive: (tar) => archiveChanges(request.repository, tar, listing(), request.previousRoot, { path: request.snapshotPath }),
    dispose,
  };
}
