/**
 * Exec over the WebSocket API, wrapped in one promise that truly ends. client-node's Exec writes
 * every frame into the stdout stream without looking at write()'s return value, so the stream here
 * pauses the socket itself when the consumer falls behind; and it only ends stdout when the status
 * frame arrives, so a connection that drops without one is detected here and reported.
 */
import { Exec, type KubeConfig, type V1Status } from '@kubernetes/client-node';
import { Writable } from 'node:stream';

type WebSocket = Awaited<ReturnType<Exec['exec']>>;

export interface ExecRequest {
  namespace: string;
  pod: string;
  container: string;
  command: string[];
  /** Receives the command's stdout, paced: the socket is paused while it is over its high-water mark. */
  stdout: Writable;
  signal?: AbortSignal | undefined;
}

export interface ExecOutcome {
  /** The status frame, or undefined when the connection closed without one. */
  status: V1Status | undefined;
  /** The command's exit code when the status carries it (0 on Success). */
  exitCode: number | undefined;
  /** The tail of the command's stderr (at most 16 KiB). */
  stderr: string;
}

const STDERR_LIMIT = 16 * 1024;

export function exitCodeOf(status: V1Status | undefined): number | undefined {
  if (!status) return undefined;
  if (status.status === 'Success') return 0;
  const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
  return cause?.message !== undefined ? Number(cause.message) : undefined;
}

/**
 * Forwards frames to the real destination and pauses the WebSocket while the destination is full,
 * which is the backpressure client-node does not apply.
 */
class PacedWritable extends Writable {
  socket: WebSocket | undefined;
  private readonly destination: Writable;

  constructor(destination: Writable) {
    super();
    this.destination = destination;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    // A consumer that failed has already ended the exchange; what still arrives has nowhere to go.
    if (this.destination.destroyed) return callback();
    if (!this.destination.write(chunk)) {
      this.socket?.pause();
      this.destination.once('drain', () => this.socket?.resume());
    }
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.destination.end();
    callback();
  }
}

class TailBuffer extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.text = (this.text + chunk.toString('utf8')).slice(-STDERR_LIMIT);
    callback();
  }
}

export async function execStream(kubeConfig: KubeConfig, request: ExecRequest): Promise<ExecOutcome> {
  const stdout = new PacedWritable(request.stdout);
  const stderr = new TailBuffer();
  let status: V1Status | undefined;
  const socket = await new Exec(kubeConfig).exec(
    request.namespace,
    request.pod,
    request.container,
    request.command,
    stdout,
    stderr,
    null,
    false,
    (received) => {
      status = received;
    },
  );
  stdout.socket = socket;

  return new Promise<ExecOutcome>((resolve, reject) => {
    const onAbort = () => socket.terminate();
    request.signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('error', (error: Error) => {
      request.signal?.removeEventListener('abort', onAbort);
      request.stdout.destroy(error);
      reject(error);
    });
    socket.on('close', () => {
      request.signal?.removeEventListener('abort', onAbort);
      if (!status) {
        // No status frame: the stream was cut. Fail the consumer rather than let it see a clean end.
        const reason = request.signal?.aborted ? 'interrupted' : 'the exec connection closed before the command finished';
        request.stdout.destroy(new Error(reason));
      } else if (!stdout.writableEnded) {
        stdout.end();
      }
      resolve({ status, exitCode: exitCodeOf(status), stderr: stderr.text.trim() });
    });
  });
}
