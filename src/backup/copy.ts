/**
 * The copy stage: tar runs in the helper pod over an acknowledged exec (acked-exec.ts), and its
 * stream flows, with backpressure, through the tar checker, the compressor and a hash into a
 * temporary file. The copy counts as done only when the whole output arrived (the wrapper's
 * trailer) AND tar exited 0 AND the stream ended with tar's end-of-archive marker AND the file is
 * flushed; anything less is a CopyStageError (retryable when the stream was cut) and the caller
 * removes the file.
 */
import type { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { KubeConfig } from '@kubernetes/client-node';
import { ACK_TIMEOUT_EXIT_CODE, execWithAck, type AckedExecOutcome } from '../kube/acked-exec.ts';
import { describeExecFailure, execStream, ExecStreamCutError, TailBuffer } from '../kube/exec.ts';
import { toKubernetesError } from '../kube/errors.ts';
import { compressor, type Compression } from './artifacts.ts';
import { ArtifactFile } from './artifact-file.ts';
import { Digest } from './digest.ts';
import { beforeAckFor, consumerStallFor, type CopyFault } from './faults.ts';
import { DATA_MOUNT_PATH, HELPER_CONTAINER } from './helper-pod.ts';
import { TarStreamCheck, type TarSummary } from './tar-stream.ts';

export const TAR_COMMAND = ['tar', '-c', '-f', '-', '-C', DATA_MOUNT_PATH, '.'];

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
  tar: TarSummary;
  /** Bytes written to the artifact (compressed). */
  bytes: number;
  /** sha256 of the artifact file as written. */
  sha256: string;
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
  /** A fault to inject, for tests only (faults.ts). */
  fault?: CopyFault | undefined;
  /** The copy attempt, 1-based (faults may play on the first only). */
  attempt?: number;
}

export async function copyClaimData(request: CopyRequest): Promise<CopyResult> {
  const checker = new TarStreamCheck();
  const digest = new Digest();
  if (request.onBytes) {
    checker.on('data', () => request.onBytes!(checker.summary.bytes));
  }
  const compress = compressor(request.compression);
  // Synced before it finishes, so the rename publishes durable bytes.
  const file = new ArtifactFile(request.partialPath);
  const stall = consumerStallFor(request.fault);
  const transforms: Transform[] = [...(stall ? [stall] : []), checker, ...(compress ? [compress] : []), digest];
  // The exec's output (gathered into blocks, with slack, by acked-exec's splitter) enters here.
  const intake = transforms[0]!;
  // If the pipeline fails (disk full, a cut stream), stop tar too rather than stream into nothing.
  const pipelineFailed = new AbortController();
  const written = pipeline([intake, ...transforms.slice(1), file], request.signal ? { signal: request.signal } : {});
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
    outcome = await execWithAck(request.kubeConfig, {
      namespace: request.namespace,
      pod: request.pod,
      container: HELPER_CONTAINER,
      command: TAR_COMMAND,
      stdout: intake,
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
    if (outcome.commandExitCode !== undefined && outcome.commandExitCode !== 0) {
      return fail(new CopyStageError(describeExecFailure('tar in the helper pod', { ...outcome, exitCode: outcome.commandExitCode })));
    }
    if (outcome.exitCode === ACK_TIMEOUT_EXIT_CODE) {
      return fail(new CopyStageError(`the helper pod gave up waiting for this client's acknowledgement: ${outcome.stderr}`));
    }
  }
  try {
    await written;
  } catch (error) {
    if (error instanceof ExecStreamCutError) throw cut(error);
    throw new CopyStageError(`writing the artifact failed: ${(error as Error).message}`, { cause: error });
  }
  if (!checker.summary.complete) {
    throw new CopyStageError(`the tar stream ended after ${checker.summary.bytes} bytes without its end-of-archive marker (truncated)`, { retryable: true });
  }
  return { tar: checker.summary, bytes: digest.bytes, sha256: digest.hash.digest('hex') };
}

/** The claim's disk usage as `du` sees it, in bytes: the progress display's (approximate) total. */
export async function measureClaimBytes(kubeConfig: KubeConfig, namespace: string, pod: string, signal?: AbortSignal): Promise<number> {
  const sink = new TailBuffer();
  // du's exit code is not checked: unreadable corners make it fail, yet it still prints a total.
  await execStream(kubeConfig, { namespace, pod, container: HELPER_CONTAINER, command: ['du', '-s', '-k', DATA_MOUNT_PATH], stdout: sink, signal });
  const kib = /^(\d+)\s/.exec(sink.text);
  if (!kib) throw new Error(`du printed no total: ${sink.text.slice(0, 200)}`);
  return Number(kib[1]) * 1024;
}
