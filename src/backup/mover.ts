/**
 * A data mover: the copy runs in the cluster, in a pod on the claim's node that runs the plugin's own
 * image, reads the claim in place and writes straight into the repository (`kubectl-nkvm mover
 * backup`, src/cli/commands/mover.ts). The API server carries only the request and the result: the
 * pod waits (`mover wait`), and `mover backup` runs in it over exec with the repository's password
 * and S3 credentials on its stdin, its one-line JSON result on stdout, as the helper's tar runs today.
 */
import { Readable } from 'node:stream';
import type { KubeConfig } from '@kubernetes/client-node';
import { describeExecFailure, execStream, ExecStreamCutError, TailBuffer } from '../kube/exec.ts';
import { toKubernetesError } from '../kube/errors.ts';
import type { MoverCredentials, MoverRestoreResult, MoverResult } from '../cli/commands/mover.ts';
import { CopyStageError, type CopyResult } from './copy.ts';
import { HELPER_CONTAINER } from './helper-pod.ts';

/** The plugin's executable in its image (scripts/image/build.ts). */
const MOVER_EXECUTABLE = '/usr/local/bin/kubectl-nkvm';

/** The mover pod's own process: it waits for the exec, its deadline ending it if the plugin never does. */
export function moverWaitCommand(deadlineSeconds: number): string[] {
  return [MOVER_EXECUTABLE, 'mover', 'wait', '--seconds', String(deadlineSeconds)];
}

export interface MoverRequest {
  kubeConfig: KubeConfig;
  namespace: string;
  pod: string;
  /** The snapshot's path, `/data/<pvc>`; its host is the namespace. */
  path: string;
  credentials: MoverCredentials;
  allowPartial: boolean;
  signal?: AbortSignal | undefined;
}

/** Runs `mover backup` in the mover pod; its result as the copy stage's, the snapshot already saved (`moved`). */
export async function runMoverBackup(request: MoverRequest): Promise<CopyResult> {
  const stdout = new TailBuffer();
  // A cut exec destroys its stdout with the reason, which the outcome reports.
  stdout.on('error', () => {});
  const command = [MOVER_EXECUTABLE, 'mover', 'backup', '--credentials-stdin', '--path', request.path, '--host', request.namespace, ...(request.allowPartial ? ['--allow-partial'] : [])];
  let outcome;
  try {
    outcome = await execStream(request.kubeConfig, {
      namespace: request.namespace,
      pod: request.pod,
      container: HELPER_CONTAINER,
      command,
      stdin: Readable.from([Buffer.from(JSON.stringify(request.credentials))]),
      stdout,
      signal: request.signal,
    });
  } catch (error) {
    if (error instanceof ExecStreamCutError) throw new CopyStageError(`the mover's connection was cut: ${error.message}`, { cause: error, retryable: !request.signal?.aborted });
    const typed = toKubernetesError(error, { verb: 'create', resource: 'pods/exec', namespace: request.namespace, name: request.pod });
    throw new CopyStageError(typed.message, { cause: typed });
  }
  const line = stdout.text.trim().split('\n').at(-1) ?? '';
  let result: MoverResult | undefined;
  try {
    result = line.startsWith('{') ? (JSON.parse(line) as MoverResult) : undefined;
  } catch {
    result = undefined;
  }
  const none = { count: 0, sample: [] };
  if (!result) {
    // Its snapshot may be saved; another attempt reads nothing again (the parent then is that snapshot).
    throw new CopyStageError(describeExecFailure('the mover in its pod', { ...outcome, exitCode: outcome.exitCode }), { retryable: outcome.exitCode === 0 });
  }
  const unreadable = result.unreadable ?? none;
  if (!result.ok && unreadable.count === 0) throw new CopyStageError(`the mover failed: ${result.message}`);
  const exchanged = stdout.text.length + outcome.stderr.length;
  return {
    tar: { bytes: exchanged, entries: result.entries ?? 0, regularFiles: result.files ?? 0, directories: 0, contentBytes: result.bytesRead ?? 0, complete: true },
    imageSha256: null,
    bytes: 0,
    sha256: '',
    unreadable,
    vanished: result.vanished ?? none,
    changed: none,
    notes: [],
    ...(result.ok ? { moved: result } : {}),
  };
}

export interface MoverRestoreRequest {
  kubeConfig: KubeConfig;
  namespace: string;
  pod: string;
  snapshotId: string;
  mode: 'empty-only' | 'overwrite';
  credentials: MoverCredentials;
  signal?: AbortSignal | undefined;
}

/** Runs `mover restore` in the mover pod: the snapshot written into the claim straight from the repository. */
export async function runMoverRestore(request: MoverRestoreRequest): Promise<MoverRestoreResult> {
  const stdout = new TailBuffer();
  stdout.on('error', () => {});
  const command = [MOVER_EXECUTABLE, 'mover', 'restore', '--credentials-stdin', '--snapshot', request.snapshotId, '--mode', request.mode];
  const outcome = await execStream(request.kubeConfig, {
    namespace: request.namespace,
    pod: request.pod,
    container: HELPER_CONTAINER,
    command,
    stdin: Readable.from([Buffer.from(JSON.stringify(request.credentials))]),
    stdout,
    signal: request.signal,
  }).catch((error: unknown) => {
    throw toKubernetesError(error, { verb: 'create', resource: 'pods/exec', namespace: request.namespace, name: request.pod });
  });
  const line = stdout.text.trim().split('\n').at(-1) ?? '';
  try {
    if (line.startsWith('{')) return JSON.parse(line) as MoverRestoreResult;
  } catch {
    // reported below
  }
  return { ok: false, message: describeExecFailure('the mover in its pod', outcome) };
}
