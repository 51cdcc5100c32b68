/**
 * The first half of an incremental copy into a repository: the helper lists the claim (claim-listing.ts),
 * the listing is compared with the parent snapshot (src/repository/incremental.ts), and what remains
 * is the command that tars only what changed, its input (the NUL-separated paths for `xargs -0`),
 * and how to archive its output. The listing is planned as it arrives and waits, gzip'd as the
 * helper sent it, in a temporary directory with the path list, for the second walk beside the tar
 * (a million files list as about 150 MB, not held in memory).
 *
 * A helper without what this needs (`xargs -0`, `tar --no-recursion`, `find`, `stat`) gets no
 * incremental copy: the caller reads the whole claim as before, and says why.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Writable, type Readable } from 'node:stream';
import type { KubeConfig } from '@kubernetes/client-node';
import { execWithAck } from '../kube/acked-exec.ts';
import { ExecStreamCutError } from '../kube/exec.ts';
import { toKubernetesError } from '../kube/errors.ts';
import { archiveChanges, archivePlannedTree, planRequests, type ParentTrees, type RequestPlan } from '../repository/incremental.ts';
import type { ArchivedTree } from '../repository/archiver.ts';
import type { Repository } from '../repository/repository.ts';
import { listingScript, newListingNonce, readListing, type ListingCapabilities } from './claim-listing.ts';
import { CopyStderr } from './copy-stderr.ts';
import { HELPER_CONTAINER } from './helper-pod.ts';

/** tar of the paths on stdin, NUL-separated, in batches (each its own archive); xargs' 123 is a tar that exited 1. */
export function requestedTarCommand(root: string): string {
  return `xargs -0 tar -c -f - --no-recursion -C ${root} --; s=$?; [ "$s" -eq 123 ] && s=1; (exit $s)`;
}

/** An empty archive (two zero blocks): what a copy with nothing to read yields, with no command run. */
export const EMPTY_ARCHIVE = Buffer.alloc(1024);

export interface IncrementalCopy {
  plan: RequestPlan;
  /** What the helper runs in place of `tar .` (copy.ts wraps it in its script); undefined: nothing to read, nothing to run. */
  tarCommand: string | undefined;
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
  /** Where the claim is mounted in the helper. */
  mountPath: string;
  repository: Repository;
  /** The snapshot's path, `/data/<pvc>`. */
  snapshotPath: string;
  /** The parent snapshot's trees at the claim's root; undefined for a first backup. */
  parent: ParentTrees | undefined;
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
  const requests = new RequestList(path.join(dir, 'requested'));
  const stderr = new CopyStderr();
  // The plan is made as the listing arrives (the helper's stat takes seconds for many files), and the
  // listing waits on disk for the second pass, beside the tar.
  const toFile = fs.createWriteStream(listingFile);
  const toPlan = new PassThrough({ highWaterMark: LISTING_READ_SIZE });
  let capabilities: ListingCapabilities | undefined;
  const planning = planRequests(request.repository, request.parent, readListing(toPlan, nonce, (caps) => (capabilities = caps)), (name) => requests.add(name), request.snapshotPath);
  // A plan that fails stops reading; the listing still goes to its file, and the failure is told below.
  planning.catch(() => toPlan.destroy());
  let outcome;
  let plan: RequestPlan;
  try {
    try {
      outcome = await execWithAck(request.kubeConfig, {
        namespace: request.namespace,
        pod: request.pod,
        container: HELPER_CONTAINER,
        command: ['sh', '-c', listingScript(request.mountPath, nonce)],
        stdout: teeTo(toFile, toPlan),
        onStderr: (chunk) => stderr.push(chunk),
        signal: request.signal,
        ackTimeoutSeconds: request.ackTimeoutSeconds,
      });
    } catch (error) {
      if (error instanceof ExecStreamCutError) throw error;
      throw toKubernetesError(error, { verb: 'create', resource: 'pods/exec', namespace: request.namespace, name: request.pod });
    }
    if (!toFile.writableFinished) await new Promise((resolve, reject) => toFile.once('finish', resolve).once('error', reject));
    stderr.end();
    // find and stat exit 1 after paths they could not read or that vanished; anything else is a helper without them.
    const listed = outcome.commandExitCode === 0 || (outcome.commandExitCode === 1 && stderr.onlyPathComplaints);
    if (!listed) {
      const why = stderr.complaintText || outcome.stderr || `exit code ${outcome.commandExitCode ?? 'unknown'}`;
      throw new NotIncrementalError(`the helper could not list the claim (${why.trim().split('\n')[0]})`);
    }
    plan = await planning;
  } catch (error) {
    // The plan stops reading, and the listing's file is let go.
    toPlan.destroy();
    toFile.destroy();
    throw error;
  } finally {
    requests.close();
  }
  if (!capabilities?.xargsNul || !capabilities.noRecursion) {
    const missing = [capabilities?.xargsNul ? '' : 'xargs -0', capabilities?.noRecursion ? '' : 'tar --no-recursion'].filter(Boolean).join(' and ');
    throw new NotIncrementalError(`the helper image has no ${missing}`);
  }
  return {
    plan,
    tarCommand: plan.requested > 0 ? requestedTarCommand(request.mountPath) : undefined,
    input: plan.requested > 0 ? { stream: fs.createReadStream(requests.file), bytes: requests.bytes } : undefined,
    stderr,
    listingBytes: outcome.bytes,
    archive: (tar) =>
      plan.unchanged
        ? archivePlannedTree(request.repository, tar, plan.unchanged, request.snapshotPath)
        : archiveChanges(request.repository, tar, readListing(fs.createReadStream(listingFile, { highWaterMark: LISTING_READ_SIZE }), nonce), request.parent, { path: request.snapshotPath }),
    dispose,
  };
}

const LISTING_READ_SIZE = 1024 * 1024;

/** Writes each chunk to both streams, taking the next once both have it; a destroyed second stream is left out. */
function teeTo(first: Writable, second: Writable): Writable {
  const written = (stream: Writable, chunk: Buffer) =>
    new Promise<void>((resolve, reject) => {
      if (stream === second && stream.destroyed) return resolve();
      stream.write(chunk, (error) => (error && stream === first ? reject(error) : resolve()));
    });
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      Promise.all([written(first, chunk), written(second, chunk)]).then(() => callback(), callback);
    },
    final(callback) {
      first.end();
      if (!second.destroyed) second.end();
      callback();
    },
  });
}

/** The paths to read, NUL-separated for `xargs -0`, written to a file in large pieces, not two system calls a path. */
class RequestList {
  readonly file: string;
  bytes = 0;
  private readonly fd: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private closed = false;

  constructor(file: string) {
    this.file = file;
    this.fd = fs.openSync(file, 'w');
  }

  add(name: Buffer): void {
    if (this.closed) throw new Error('the list of paths to read is closed');
    this.pending.push(name, NUL);
    this.pendingBytes += name.length + 1;
    if (this.pendingBytes >= LISTING_READ_SIZE) this.flush();
  }

  private flush(): void {
    fs.writeSync(this.fd, Buffer.concat(this.pending, this.pendingBytes));
    this.bytes += this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.pendingBytes > 0) this.flush();
    fs.closeSync(this.fd);
  }
}

const NUL = Buffer.from([0]);
