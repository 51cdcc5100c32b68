/**
 * The copy stage: tar runs in the helper pod over an acknowledged exec (acked-exec.ts), and its
 * stream flows, with backpressure, through the tar checker, the compressor and a hash into a
 * temporary file. The copy counts as done only when the whole output arrived (the wrapper's
 * trailer) AND tar exited 0 AND the stream ended with tar's end-of-archive marker AND the file is
 * flushed; anything less is a CopyStageError (retryable when the stream was cut) and the caller
 * removes the file.
 */
import { PassThrough, type Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { KubeConfig } from '@kubernetes/client-node';
import { ACK_TIMEOUT_EXIT_CODE, execWithAck, type AckedExecOutcome } from '../kube/acked-exec.ts';
import { describeExecFailure, execStream, ExecStreamCutError, TailBuffer } from '../kube/exec.ts';
import { toKubernetesError } from '../kube/errors.ts';
import { compressor, type Compression } from './artifacts.ts';
import { ArtifactFile } from './artifact-file.ts';
import { Digest } from './digest.ts';
import { beforeAckFor, consumerFaultFor, type CopyFault } from './faults.ts';
import { DATA_DEVICE_PATH, HELPER_CONTAINER } from './helper-pod.ts';
import { archiveImage, archiveTree, type ArchivedTree } from '../repository/archiver.ts';
import { countingGarbage } from '../young-garbage.ts';
import type { Repository } from '../repository/repository.ts';
import { ArchivedFiles } from './archived-files.ts';
import { CopyStderr, PathTally, RECENT_FILES_BEGIN, RECENT_FILES_END, type PathSummary } from './copy-stderr.ts';
import { TarStreamCheck, type TarSummary } from './tar-stream.ts';
import { EMPTY_ARCHIVE, NotIncrementalError, prepareIncrementalCopy, type IncrementalCopy } from './incremental-copy.ts';
import type { ParentTrees } from '../repository/incremental.ts';
import type { MoverResult } from '../cli/commands/mover.ts';

/**
 * tar of the claim, then, on stderr between two marker lines, the regular files modified since tar
 * began, as `<mtime> <size> <path>`: busybox tar reads a file once, with the size its header gave,
 * and never looks again, so the client compares this listing with the headers it received
 * (archived-files.ts). -mmin counts whole minutes, so find looks a minute further back and awk keeps
 * what is not older than tar's start. A helper without date, find, stat or awk lists nothing, and
 * the exit status is always tar's.
 */
export function copyScript(root: string, tarCommand = `tar -c -f - -C ${root} .`): string {
  return [
    't0=$(date +%s 2>/dev/null)',
    `${tarCommand}; s=$?`,
    'if [ -n "$t0" ] && command -v find >/dev/null && command -v stat >/dev/null && command -v awk >/dev/null; then',
    '  m=$(( ($(date +%s) - t0) / 60 + 2 ))',
    `  echo ${RECENT_FILES_BEGIN} >&2`,
    `  (cd ${root} && find . -type f -mmin -"$m" -exec stat -c '%Y %s %n' -- {} + 2>/dev/null | awk -v t0="$t0" '$1 >= t0') >&2`,
    `  echo ${RECENT_FILES_END} >&2`,
    'fi',
    'exit $s',
  ].join('\n');
}
/** A Block claim's device, read whole in 1 MiB blocks (dd's record counts on stderr are ignored). */
export const IMAGE_COMMAND = ['dd', `if=${DATA_DEVICE_PATH}`, 'bs=1048576'];

export class CopyStageError extends Error {
  /** A cut or truncated stream: the same copy may well succeed when tried again. */
  readonly retryable: boolean;
  constructor(message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, options.cause !== undefined ? { cause: options.cause } : {});
    this.name = 'CopyStageError';
    this.retryable = options.retryable ?? false;
  }
}

export interface CopyResult {
  /** The tar stream's summary; for a device image, only its byte count is filled in. */
  tar: TarSummary;
  /** sha256 of the raw device image (Block claims); null for tar. */
  imageSha256: string | null;
  /** Bytes written to the artifact (compressed). */
  bytes: number;
  /** sha256 of the artifact file as written. */
  sha256: string;
  /** Paths tar could not read (a helper running as the workload's user): the archive lacks them. */
  unreadable: PathSummary;
  /** Paths that vanished between tar's listing and its read: they no longer exist, so are not archived. */
  vanished: PathSummary;
  /** Files that changed while the copy ran (after tar wrote their header): archived as tar read them. */
  changed: PathSummary;
  /** What else the copy noticed and the result should say (a device that shrank while it was read). */
  notes: string[];
  /** Into a repository: the stored tree, its packs and index written, its snapshot not yet (the caller's to commit). */
  stored?: ArchivedTree;
  /** Bytes of the claim's listing (an incremental copy), which crossed the API server too. */
  listingBytes?: number;
  /** A data mover's result: the copy ran in the cluster, and its snapshot is saved already. */
  moved?: MoverResult;
}

export interface CopyRequest {
  kubeConfig: KubeConfig;
  namespace: string;
  pod: string;
  compression: Compression;
  partialPath: string;
  /** How long the helper keeps tar's output available for an acknowledgement (see acked-exec.ts). */
  ackTimeoutSeconds: number;
  signal?: AbortSignal | undefined;
  /** Called with the tar bytes received so far, for progress display. */
  onBytes?: ((tarBytes: number) => void) | undefined;
  /** Called once the copy knows how many content bytes it will read (an incremental copy, after its listing). */
  onTotalBytes?: ((bytes: number) => void) | undefined;
  /** A fault to inject, for tests only (faults.ts). */
  fault?: CopyFault | undefined;
  /** The copy attempt, 1-based (faults may play on the first only). */
  attempt?: number;
  /** A Block claim: the device's size in bytes, all of which must arrive. Absent: tar of the mounted claim. */
  deviceBytes?: number | undefined;
  /** Where the claim is mounted in the helper: /data, or /data/<pvc> in a helper the run's claims share (shared-helpers.ts). */
  mountPath: string;
  /** Into a repository instead of an artifact file (compression and partialPath unused); a device image becomes one file. */
  repository?: RepositoryCopy | undefined;
}

export interface RepositoryCopy {
  repository: Repository;
  /** The snapshot's path, `/data/<pvc>`. */
  path: string;
  /** The parent snapshot's trees at the claim's root: what need not be read again. Undefined: none. */
  parent?: ParentTrees | undefined;
}

export async function copyClaimData(request: CopyRequest): Promise<CopyResult> {
  const image = request.deviceBytes !== undefined;
  const notes: string[] = [];
  let incremental: IncrementalCopy | undefined;
  if (request.repository && !image) {
    try {
      incremental = await prepareIncrementalCopy({ ...request, repository: request.repository.repository, snapshotPath: request.repository.path, parent: request.repository.parent });
      request.onTotalBytes?.(incremental.plan.requestedBytes);
    } catch (error) {
      if (error instanceof ExecStreamCutError) throw new CopyStageError(`listing the claim failed: ${error.message}`, { cause: error, retryable: !request.signal?.aborted });
      if (!(error instanceof NotIncrementalError)) throw error;
      notes.push(`the whole claim was read: ${error.message}`);
    }
  }
  const archived = new ArchivedFiles();
  try {
    return await copyStream(request, incremental, archived, notes);
  } finally {
    incremental?.dispose();
    archived.dispose();
  }
}

async function copyStream(request: CopyRequest, incremental: IncrementalCopy | undefined, archived: ArchivedFiles, notes: string[]): Promise<CopyResult> {
  const image = request.deviceBytes !== undefined;
  // A tar stream is checked entry by entry; a device image is hashed raw and counted.
  /** The entry tar was writing when its stream ended: the file that shrank under busybox tar. */
  let lastEntry = '';
  const checker = image
    ? new Digest()
    : new TarStreamCheck({
        concatenated: incremental !== undefined,
        onEntry: (entry) => {
          lastEntry = entry.name.toString('utf8');
          if (entry.type === 'file') archived.add(entry.name, entry.size, entry.mtime);
        },
      });
  const contentBytes = () => (checker instanceof Digest ? checker.bytes : checker.summary.bytes);
  const digest = new Digest();
  if (request.onBytes) {
    checker.on('data', () => request.onBytes!(contentBytes()));
  }
  const stderr = new CopyStderr();
  const fault = consumerFaultFor(request.fault);
  const intoRepository = request.repository;
  let storing: Promise<ArchivedTree> | undefined;
  let sink: Writable;
  let transforms: Transform[];
  if (intoRepository) {
    // The repository reads the tar stream at its own pace; a failure there stops the pipeline, and tar.
    const feed = new PassThrough({ highWaterMark: 4 * 1024 * 1024 });
    const { repository, path } = intoRepository;
    storing = image ? archiveImage(repository, feed, { path }) : incremental ? incremental.archive(feed) : archiveTree(repository, feed, { path });
    storing.catch((error: Error) => feed.destroy(error));
    sink = feed;
    transforms = [...(fault ? [fault] : []), checker];
  } else {
    const compress = compressor(request.compression);
    // Synced before it finishes, so the rename publishes durable bytes.
    sink = new ArtifactFile(request.partialPath);
    // Each block the exec hands over is garbage once compressed and written (the repository counts its own).
    transforms = [...(fault ? [fault] : []), checker, countingGarbage(), ...(compress ? [compress] : []), digest];
  }
  // The exec's output (gathered into blocks, with slack, by acked-exec's splitter) enters here.
  const intake = transforms[0]!;
  // If the pipeline fails (disk full, a cut stream), stop tar too rather than stream into nothing.
  const pipelineFailed = new AbortController();
  const written = pipeline([intake, ...transforms.slice(1), sink], request.signal ? { signal: request.signal } : {});
  written.catch(() => pipelineFailed.abort(new Error('the artifact pipeline failed')));
  const execSignal = request.signal ? AbortSignal.any([request.signal, pipelineFailed.signal]) : pipelineFailed.signal;
  /** A cut stream is worth another attempt, unless the user interrupted it. */
  const cut = (error: ExecStreamCutError) => new CopyStageError(error.message, { cause: error, retryable: !request.signal?.aborted });
  /** Stops the pipeline and lets it settle, so no write lands in the file after we give up. */
  const fail = async (error: CopyStageError): Promise<never> => {
    intake.destroy(error);
    await written.catch(() => {});
    throw error;
  };

  let outcome: AckedExecOutcome;
  try {
    // An incremental copy with nothing to read runs no command.
    const command = image ? IMAGE_COMMAND : incremental ? incremental.tarCommand && ['sh', '-c', copyScript(request.mountPath, incremental.tarCommand)] : ['sh', '-c', copyScript(request.mountPath)];
    outcome = !command ? nothingToRead(intake) : await execWithAck(request.kubeConfig, {
      namespace: request.namespace,
      pod: request.pod,
      container: HELPER_CONTAINER,
      command,
      input: incremental?.input,
      stdout: intake,
      onStderr: (chunk) => stderr.push(chunk),
      signal: execSignal,
      ackTimeoutSeconds: request.ackTimeoutSeconds,
      beforeAck: beforeAckFor(request.fault, request.attempt ?? 1),
    });
  } catch (error) {
    if (error instanceof ExecStreamCutError) return fail(cut(error));
    const typed = toKubernetesError(error, { verb: 'create', resource: 'pods/exec', namespace: request.namespace, name: request.pod });
    return fail(new CopyStageError(typed.message, { cause: typed }));
  }
  if (!pipelineFailed.signal.aborted) {
    if (outcome.commandExitCode === undefined && outcome.status) {
      // The wrapper ended without running tar to its end (no sh in the image, say).
      return fail(new CopyStageError(describeExecFailure('the copy command in the helper pod', outcome)));
    }
    stderr.end();
    if (stderr.shortRead) {
      // Worth another try: the file is unlikely to shrink again at the very moment tar reads it.
      const file = lastEntry ? ` (${lastEntry.replace(/^\.\//, '')})` : '';
      return fail(new CopyStageError(`a file shrank while busybox tar read it${file}, and tar stops there: the archive is cut`, { retryable: !request.signal?.aborted }));
    }
    // tar exits 1 after skipping paths it could not read or that vanished, the archive otherwise whole.
    const pathsOnly = outcome.commandExitCode === 1 && stderr.onlyPathComplaints;
    if (outcome.commandExitCode !== undefined && outcome.commandExitCode !== 0 && !pathsOnly) {
      const described = { ...outcome, exitCode: outcome.commandExitCode, stderr: image ? outcome.stderr : stderr.complaintText };
      return fail(new CopyStageError(describeExecFailure(`${image ? 'dd' : 'tar'} in the helper pod`, described)));
    }
    if (outcome.exitCode === ACK_TIMEOUT_EXIT_CODE) {
      return fail(new CopyStageError(`the helper pod gave up waiting for this client's acknowledgement: ${image ? outcome.stderr : stderr.complaintText}`));
    }
  }
  try {
    await written;
  } catch (error) {
    if (error instanceof ExecStreamCutError) throw cut(error);
    throw new CopyStageError(`writing ${intoRepository ? 'into the repository' : 'the artifact'} failed: ${(error as Error).message}`, { cause: error });
  }
  let stored: ArchivedTree | undefined;
  try {
    stored = await storing;
  } catch (error) {
    throw new CopyStageError(`writing into the repository failed: ${(error as Error).message}`, { cause: error });
  }
  const result = { bytes: digest.bytes, sha256: digest.hash.digest('hex') };
  const none = new PathTally().summary;
  if (checker instanceof Digest) {
    if (checker.bytes !== request.deviceBytes) {
      // dd reads to the device's end: an image of another length is whole if the device now has that length.
      const now = await measureDeviceBytes(request.kubeConfig, request.namespace, request.pod, request.signal).catch(() => undefined);
      if (now !== checker.bytes) {
        throw new CopyStageError(`the device image ended after ${checker.bytes} of ${request.deviceBytes} bytes (truncated)`, { retryable: true });
      }
      notes.push(`the device ${now < request.deviceBytes! ? 'shrank' : 'grew'} from ${request.deviceBytes} to ${now} bytes while it was read; the image holds all ${now}`);
    }
    const tar: TarSummary = { bytes: checker.bytes, entries: 0, regularFiles: 0, directories: 0, contentBytes: checker.bytes, complete: true };
    return { ...result, tar, imageSha256: checker.hash.digest('hex'), unreadable: none, vanished: none, changed: none, notes, ...(stored ? { stored } : {}) };
  }
  if (!checker.summary.complete) {
    throw new CopyStageError(`the tar stream ended after ${checker.summary.bytes} bytes without its end-of-archive marker (truncated)`, { retryable: true });
  }
  // What the listing could not read or saw vanish counts as tar's own complaints do.
  if (incremental) {
    stderr.unreadable.absorb(incremental.stderr.unreadable);
    stderr.vanished.absorb(incremental.stderr.vanished);
  }
  return {
    ...result,
    tar: checker.summary,
    imageSha256: null,
    unreadable: stderr.unreadable.summary,
    vanished: stderr.vanished.summary,
    changed: changedFiles(stderr, archived),
    notes,
    ...(stored ? { stored } : {}),
    ...(incremental ? { listingBytes: incremental.listingBytes } : {}),
  };
}

/** What an exec of a command that sends an empty archive gives, without one. */
function nothingToRead(intake: Writable): AckedExecOutcome {
  intake.end(EMPTY_ARCHIVE);
  return { status: undefined, exitCode: 0, stderr: '', commandExitCode: 0, bytes: EMPTY_ARCHIVE.length };
}

/**
 * The files tar reported changing, and those the helper saw modified since tar began whose size or
 * mtime is not what their header said. Files archived as they are now, or not archived at all
 * (created behind tar's walk), are not changes to this backup.
 */
function changedFiles(stderr: CopyStderr, archived: ArchivedFiles): PathSummary {
  const paths = new Set(stderr.changedByTar);
  const states = archived.compare(stderr.recentFiles);
  stderr.recentFiles.forEach((file, i) => {
    if (states[i] === 'changed') paths.add(file.name.toString('utf8'));
  });
  const changed = new PathTally();
  for (const path of paths) changed.add(path);
  return changed.summary;
}

/** The claim's disk usage as `du` sees it, in bytes: the progress display's (approximate) total. */
export async function measureClaimBytes(kubeConfig: KubeConfig, namespace: string, pod: string, mountPath: string, signal?: AbortSignal): Promise<number> {
  const sink = new TailBuffer();
  // du's exit code is not checked: unreadable corners make it fail, yet it still prints a total.
  await execStream(kubeConfig, { namespace, pod, container: HELPER_CONTAINER, command: ['du', '-s', '-k', mountPath], stdout: sink, signal });
  const kib = /^(\d+)\s/.exec(sink.text);
  if (!kib) throw new Error(`du printed no total: ${sink.text.slice(0, 200)}`);
  return Number(kib[1]) * 1024;
}

/** The size of a Block claim's device, as the helper sees it: what a complete image must hold. */
export async function measureDeviceBytes(kubeConfig: KubeConfig, namespace: string, pod: string, signal?: AbortSignal): Promise<number> {
  const sink = new TailBuffer();
  let outcome: AckedExecOutcome;
  try {
    outcome = await execWithAck(kubeConfig, {
      namespace, pod, container: HELPER_CONTAINER, command: ['blockdev', '--getsize64', DATA_DEVICE_PATH], stdout: sink, signal, ackTimeoutSeconds: 60,
    });
  } catch (error) {
    if (error instanceof ExecStreamCutError) throw new CopyStageError(`measuring the device failed: ${error.message}`, { cause: error, retryable: true });
    throw toKubernetesError(error, { verb: 'create', resource: 'pods/exec', namespace, name: pod });
  }
  const size = /^(\d+)\s*$/.exec(sink.text);
  if (outcome.commandExitCode !== 0 || !size) {
    throw new CopyStageError(describeExecFailure(`blockdev --getsize64 ${DATA_DEVICE_PATH} in the helper pod`, { ...outcome, exitCode: outcome.commandExitCode }));
  }
  return Number(size[1]);
}
