/**
 * A data mover: the copy runs in the cluster, in a pod on the claim's node that runs the plugin's own
 * image, reads the claim in place and writes straight into the repository (`kubectl-nkvm mover
 * backup`, src/cli/commands/mover.ts). The API server carries only the request and the result: the
 * pod waits (`mover wait`), and `mover backup` runs in it over exec with the repository's password
 * and S3 credentials on its stdin, its one-line JSON result on stdout, as the helper's tar runs today.
 */
import { Readable } from 'node:stream';
import type { KubeConfig } from '@kubernetes/client-node';
import { describeExecFailure, execStream, ExecStreamCutError, TailBuffer, type ExecOutcome } from '../kube/exec.ts';
import { toKubernetesError } from '../kube/errors.ts';
import type { MoverCredentials, MoverProgressLine, MoverRestoreResult, MoverResult } from '../cli/commands/mover.ts';
import { CopyStageError, type CopyResult } from './copy.ts';
import { MOVER_HEARTBEAT_SECONDS } from './defaults.ts';
import { HELPER_CONTAINER } from './helper-pod.ts';

/** The plugin's executable in its image (scripts/image/build.ts). */
const MOVER_EXECUTABLE = '/usr/local/bin/kubectl-nkvm';

/** The mover pod's own process: it waits for the exec, its deadline ending it if the plugin never does. */
export function moverWaitCommand(deadlineSeconds: number): string[] {
  return [MOVER_EXECUTABLE, 'mover', 'wait', '--seconds', String(deadlineSeconds)];
}

/** What a run's data movers are given. */
export interface MoverOptions {
  image: string;
  credentials: MoverCredentials;
  /** Why movers are used: "--mover pod", or auto's reason. */
  reason: string;
  /** --mover auto: where the image cannot be pulled or the pod cannot reach the repository, copy (or restore) over exec instead. */
  fallback: boolean;
  /** A mover that says nothing this long has lost its node (defaults.ts). */
  silenceLimitMs: number;
}

export interface MoverRequest {
  kubeConfig: KubeConfig;
  namespace: string;
  pod: string;
  /** The snapshot's path, `/data/<pvc>`; its host is the namespace. */
  path: string;
  credentials: MoverCredentials;
  allowPartial: boolean;
  silenceLimitMs: number;
  signal?: AbortSignal | undefined;
  /** Told the bytes the mover has gone through, as its progress lines arrive. */
  onBytes?: ((bytes: number) => void) | undefined;
}

/** Calls `onLine` with each whole line of a stream's chunks. */
export function lineSplitter(onLine: (line: string) => void): (chunk: Buffer) => void {
  let partial = '';
  return (chunk) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop()!;
    for (const line of lines) onLine(line);
  };
}

/** The bytes of a mover's progress line, or undefined for any other line. */
export function progressBytes(line: string): number | undefined {
  if (!line.startsWith('{"progress"')) return undefined;
  try {
    const bytes = (JSON.parse(line) as Partial<MoverProgressLine>).progress?.bytes;
    return typeof bytes === 'number' ? bytes : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs a mover command in its pod with the credentials on stdin: its exec outcome and the JSON report
 * it printed last (undefined when none arrived). A failed or cut exec throws, as the exec does.
 */
async function execMover<T>(
  request: { kubeConfig: KubeConfig; namespace: string; pod: string; credentials: MoverCredentials; silenceLimitMs: number; signal?: AbortSignal | undefined; onBytes?: ((bytes: number) => void) | undefined },
  args: string[],
): Promise<{ outcome: ExecOutcome; report: T | undefined; stdoutBytes: number }> {
  const onBytes = request.onBytes;
  const lines = lineSplitter((line) => {
    const bytes = progressBytes(line);
    if (bytes !== undefined) onBytes?.(bytes);
  });
  const silence = new SilenceWatch(request.silenceLimitMs, `the mover in pod ${request.namespace}/${request.pod}`);
  let stdoutBytes = 0;
  const stdout = new TailBuffer(undefined, (chunk) => {
    silence.heard();
    stdoutBytes += chunk.length;
    lines(chunk);
  });
  // A cut exec destroys its stdout with the reason, which the outcome reports.
  stdout.on('error', () => {});
  let outcome: ExecOutcome;
  try {
    // The exec's connection is made through the mover's kubelet too: a dead node may never answer it.
    outcome = await Promise.race([
      execStream(request.kubeConfig, {
        namespace: request.namespace,
        pod: request.pod,
        container: HELPER_CONTAINER,
        command: [MOVER_EXECUTABLE, 'mover', ...args, '--credentials-stdin'],
        stdin: Readable.from([Buffer.from(JSON.stringify(request.credentials))]),
        stdout,
        onStderr: () => silence.heard(),
        signal: request.signal ? AbortSignal.any([request.signal, silence.signal]) : silence.signal,
      }),
      silence.lost,
    ]);
  } finally {
    silence.stop();
  }
  // The report is the last line; a mover that died printed progress last, or nothing.
  const line = stdout.text.trim().split('\n').at(-1) ?? '';
  if (progressBytes(line) !== undefined) return { outcome, report: undefined, stdoutBytes };
  try {
    return { outcome, report: line.startsWith('{') ? (JSON.parse(line) as T) : undefined, stdoutBytes };
  } catch {
    return { outcome, report: undefined, stdoutBytes };
  }
}

/** A mover that said nothing for the silence limit: its node is down, frozen or cut off from the API server. */
export class MoverSilentError extends CopyStageError {}

/**
 * Counts a mover lost when it says nothing (no progress, no heartbeat, no stderr) for `limitMs`:
 * `signal` then aborts its exec and `lost` rejects with MoverSilentError.
 */
export class SilenceWatch {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private readonly limitMs: number;
  private readonly who: string;
  readonly lost: Promise<never>;

  constructor(limitMs: number, who: string) {
    this.limitMs = limitMs;
    this.who = who;
    this.lost = new Promise<never>((_, reject) => {
      this.controller.signal.addEventListener('abort', () => reject(this.controller.signal.reason), { once: true });
    });
    this.lost.catch(() => {}); // observed by whoever races it; a watch stopped in time never rejects
    this.heard();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  heard(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      const seconds = Math.round(this.limitMs / 1000);
      this.controller.abort(new MoverSilentError(
        `${this.who} sent nothing for ${seconds}s (it reports at least every ${MOVER_HEARTBEAT_SECONDS}s): its node is down, frozen or cut off from the API server`,
        { retryable: false },
      ));
    }, this.limitMs);
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}

/** The repository is out of the mover pod's reach: nothing was read, and the exec path may take over. */
export class MoverUnreachableError extends CopyStageError {}

/** A mover pod whose image cannot be pulled: its reason, from the helper's start failure. */
function imagePullFailure(message: string): boolean {
  return /\b(ErrImagePull|ImagePullBackOff|InvalidImageName)\b/.test(message);
}

/**
 * --mover auto: why a mover cannot do the copy while exec can (its image cannot be pulled, or it
 * cannot reach the repository), or undefined for any other failure, which exec would not mend.
 */
export function moverUnusable(error: unknown, image: string): string | undefined {
  if (error instanceof MoverUnreachableError) return error.message;
  const message = error instanceof Error ? error.message : String(error);
  return imagePullFailure(message) ? `the mover image ${image} could not be pulled (${message})` : undefined;
}

/** Runs `mover backup` in the mover pod; its result as the copy stage's, the snapshot already saved (`moved`). */
export async function runMoverBackup(request: MoverRequest): Promise<CopyResult> {
  let ran: { outcome: ExecOutcome; report: MoverResult | undefined; stdoutBytes: number };
  try {
    ran = await execMover<MoverResult>(request, ['backup', '--path', request.path, '--host', request.namespace, ...(request.allowPartial ? ['--allow-partial'] : [])]);
  } catch (error) {
    if (error instanceof MoverSilentError) throw error;
    if (error instanceof ExecStreamCutError) throw new CopyStageError(`the mover's connection was cut: ${error.message}`, { cause: error, retryable: !request.signal?.aborted });
    const typed = toKubernetesError(error, { verb: 'create', resource: 'pods/exec', namespace: request.namespace, name: request.pod });
    throw new CopyStageError(typed.message, { cause: typed });
  }
  const { outcome, report: result } = ran;
  const none = { count: 0, sample: [] };
  if (!result) {
    // Its snapshot may be saved; another attempt reads nothing again (the parent then is that snapshot).
    throw new CopyStageError(describeExecFailure('the mover in its pod', { ...outcome, exitCode: outcome.exitCode }), { retryable: outcome.exitCode === 0 });
  }
  const unreadable = result.unreadable ?? none;
  if (!result.ok && result.unreachable) throw new MoverUnreachableError(`the mover could not reach the repository: ${result.message}`);
  if (!result.ok && unreadable.count === 0) throw new CopyStageError(`the mover failed: ${result.message}`);
  const exchanged = ran.stdoutBytes + outcome.stderr.length;
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
  silenceLimitMs: number;
  signal?: AbortSignal | undefined;
}

/**
 * Runs `mover restore` in the mover pod: the snapshot written into the claim straight from the
 * repository. A repository out of the pod's reach throws MoverUnreachableError (nothing was written).
 */
export async function runMoverRestore(request: MoverRestoreRequest): Promise<MoverRestoreResult> {
  const { outcome, report } = await execMover<MoverRestoreResult>(request, ['restore', '--snapshot', request.snapshotId, '--mode', request.mode]).catch((error: unknown) => {
    if (error instanceof MoverSilentError) throw error;
    throw toKubernetesError(error, { verb: 'create', resource: 'pods/exec', namespace: request.namespace, name: request.pod });
  });
  if (report && !report.ok && report.unreachable) throw new MoverUnreachableError(`the mover could not reach the repository: ${report.message}`);
  return report ?? { ok: false, message: describeExecFailure('the mover in its pod', outcome) };
}
