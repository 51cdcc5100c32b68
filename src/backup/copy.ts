/**
 * The copy stage: tar runs in the helper pod over exec, and its stream flows, with backpressure,
 * through the tar checker, the compressor and a hash into a temporary file. The copy counts as
 * done only when tar's exec status is Success AND the stream ended with tar's end-of-archive marker
 * AND the file is flushed; anything less is a CopyStageError and the caller removes the file.
 */
import fs from 'node:fs';
import { PassThrough, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { KubeConfig } from '@kubernetes/client-node';
import { describeExecFailure, execStream } from '../kube/exec.ts';
import { toKubernetesError } from '../kube/errors.ts';
import { compressor, type Compression } from './artifacts.ts';
import { Digest } from './digest.ts';
import { DATA_MOUNT_PATH, HELPER_CONTAINER } from './helper-pod.ts';
import { TarStreamCheck, type TarSummary } from './tar-stream.ts';

export const TAR_COMMAND = ['tar', '-c', '-f', '-', '-C', DATA_MOUNT_PATH, '.'];

export class CopyStageError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CopyStageError';
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
  signal?: AbortSignal | undefined;
  /** Called with the tar bytes received so far, for progress display. */
  onBytes?: ((tarBytes: number) => void) | undefined;
}

export async function copyClaimData(request: CopyRequest): Promise<CopyResult> {
  const checker = new TarStreamCheck();
  const digest = new Digest();
  // 4 MiB of slack between the socket and the checker; past it, the socket is paused.
  const intake = new PassThrough({ highWaterMark: 4 * 1024 * 1024 });
  if (request.onBytes) {
    checker.on('data', () => request.onBytes!(checker.summary.bytes));
  }
  const compress = compressor(request.compression);
  // flush: true fsyncs the file before it is closed, so the rename publishes durable bytes.
  const file = fs.createWriteStream(request.partialPath, { flags: 'wx', mode: 0o600, flush: true });
  const transforms: Transform[] = [checker, ...(compress ? [compress] : []), digest];
  // If writing fails (disk full, say), stop tar too rather than stream into nothing.
  const writeFailed = new AbortController();
  const written = pipeline([intake, ...transforms, file], request.signal ? { signal: request.signal } : {});
  written.catch(() => writeFailed.abort());
  const execSignal = request.signal ? AbortSignal.any([request.signal, writeFailed.signal]) : writeFailed.signal;

  let outcome;
  try {
    outcome = await execStream(request.kubeConfig, {
      namespace: request.namespace,
      pod: request.pod,
      container: HELPER_CONTAINER,
      command: TAR_COMMAND,
      stdout: intake,
      signal: execSignal,
    });
  } catch (error) {
    intake.destroy(error as Error);
    const typed = toKubernetesError(error, { verb: 'create', resource: 'pods/exec', namespace: request.namespace, name: request.pod });
    throw new CopyStageError(typed.message, { cause: typed });
  }
  if (outcome.exitCode !== 0 && !writeFailed.signal.aborted) {
    intake.destroy(new Error('tar failed'));
    throw new CopyStageError(describeExecFailure('tar in the helper pod', outcome));
  }
  try {
    await written;
  } catch (error) {
    throw new CopyStageError(`writing the artifact failed: ${(error as Error).message}`, { cause: error });
  }
  if (!checker.summary.complete) {
    throw new CopyStageError(`the tar stream ended after ${checker.summary.bytes} bytes without its end-of-archive marker (truncated)`);
  }
  return { tar: checker.summary, bytes: digest.bytes, sha256: digest.hash.digest('hex') };
}
