/**
 * Exec over the WebSocket API, wrapped in one promise that truly ends. The socket is opened as
 * client-node's Exec opens it (the same channel protocols, URL and query, and the kubeconfig's TLS,
 * credentials, impersonation and proxy through applyToHTTPSOptions), but here: Exec lives in the
 * client's generated API, which a backup otherwise never needs (in the single executable, a backup
 * that loaded it peaked 23 MiB higher). Every frame goes into the stdout stream, which pauses
 * the socket while the consumer falls behind; stdout ends when the status frame arrives, so a
 * connection that drops without one is detected here and reported.
 */
import type { KubeConfig, V1Status } from '@kubernetes/client-node';
import type https from 'node:https';
import querystring from 'node:querystring';
import { Writable, type Readable } from 'node:stream';
import WebSocket from 'ws';
import { corePath } from './json-get.ts';

export interface ExecRequest {
  namespace: string;
  pod: string;
  container: string;
  command: string[];
  /** Receives the command's stdout, paced: the socket is paused while it is over its high-water mark. */
  stdout?: Writable | undefined;
  /** Fed to the command's stdin, paced by the socket's send buffer; its end closes stdin. */
  stdin?: Readable | undefined;
  /** Sees every stderr chunk, for a caller that must read all of it (the outcome keeps only the tail). */
  onStderr?: ((chunk: Buffer) => void) | undefined;
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

/** The exec stream broke after it was established: output may be missing. Worth a retry. */
export class ExecStreamCutError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ExecStreamCutError';
  }
}

const STDERR_LIMIT = 16 * 1024;
/** How much may wait in the socket's send buffer before stdin pauses. */
const STDIN_BUFFER_LIMIT = 1024 * 1024;
const STDIN_STREAM = 0;
const STDOUT_STREAM = 1;
const STDERR_STREAM = 2;
const STATUS_STREAM = 3;
const CLOSE_STREAM = 255;
/** The channel protocols client-node offers, newest first (stdin's end needs v5: pumpStdin). */
const CHANNEL_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'];

export function exitCodeOf(status: V1Status | undefined): number | undefined {
  if (!status) return undefined;
  if (status.status === 'Success') return 0;
  const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
  return cause?.message !== undefined ? Number(cause.message) : undefined;
}

/** One line on why a command run over exec did not succeed: exit code, status message, stderr. */
export function describeExecFailure(name: string, outcome: ExecOutcome): string {
  const exit = outcome.exitCode !== undefined ? ` (exit code ${outcome.exitCode})` : '';
  const detail = outcome.status?.message ?? `the exec connection closed before ${name} finished`;
  return `${name} failed${exit}: ${detail}${outcome.stderr ? `; stderr: ${outcome.stderr}` : ''}`;
}

/**
 * Forwards frames to the real destination and pauses the WebSocket while the destination is full,
 * which is the backpressure client-node does not apply.
 */
class PacedWritable extends Writable {
  socket: WebSocket | undefined;
  private readonly destination: Writable;
  private waitingForDrain = false;

  constructor(destination: Writable) {
    super();
    this.destination = destination;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    // A consumer that failed has already ended the exchange; what still arrives has nowhere to go.
    if (this.destination.destroyed) return callback();
    // Frames already received keep arriving for a moment after pause(): wait for one drain only.
    if (!this.destination.write(chunk) && !this.waitingForDrain) {
      this.waitingForDrain = true;
      this.socket?.pause();
      this.destination.once('drain', () => {
        this.waitingForDrain = false;
        this.socket?.resume();
      });
    }
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.destination.end();
    callback();
  }
}

/**
 * Sends stdin frames, waiting whenever the socket's send buffer is over its limit (client-node's own
 * stdin handling sends without limit), then closes stdin with the v5 protocol's close frame so the
 * command sees end-of-file while the connection stays open for its status.
 */
async function pumpStdin(socket: WebSocket, source: Readable): Promise<void> {
  if (socket.protocol !== 'v5.channel.k8s.io') {
    throw new Error(`the API server cannot close an exec's stdin (it offered ${socket.protocol || 'no'} protocol, v5.channel.k8s.io is needed: Kubernetes 1.30 or newer)`);
  }
  const send = (frame: Buffer) =>
    new Promise<void>((resolve, reject) => socket.send(frame, (error?: Error) => (error ? reject(error) : resolve())));
  for await (const chunk of source as AsyncIterable<Buffer | string>) {
    const frame = Buffer.concat([Buffer.from([STDIN_STREAM]), Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk)]);
    if (socket.bufferedAmount > STDIN_BUFFER_LIMIT) await send(frame);
    else void send(frame).catch(() => {}); // a send error also closes the socket, which settles the exec
  }
  await send(Buffer.from([CLOSE_STREAM, STDIN_STREAM]));
}

function abortReason(signal: AbortSignal): string {
  return signal.reason instanceof Error ? signal.reason.message : 'interrupted';
}

/** Keeps the last `limit` characters of a command's output as text. */
export class TailBuffer extends Writable {
  text = '';
  private readonly limit: number;
  private readonly onChunk: ((chunk: Buffer) => void) | undefined;
  constructor(limit = STDERR_LIMIT, onChunk?: (chunk: Buffer) => void) {
    super();
    this.limit = limit;
    this.onChunk = onChunk;
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.onChunk?.(chunk);
    this.text = (this.text + chunk.toString('utf8')).slice(-this.limit);
    callback();
  }
}

/**
 * The exec's socket, open: frames of stdout and stderr go to their streams, the status frame ends
 * both and closes the socket. A failure before it opens (refused upgrade, unreachable server) is thrown.
 */
async function openExec(kubeConfig: KubeConfig, request: ExecRequest, stdout: Writable | null, stderr: Writable, onStatus: (status: V1Status) => void): Promise<WebSocket> {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('No cluster is defined.');
  const query = querystring.stringify({ stdout: stdout !== null, stderr: true, stdin: request.stdin !== undefined, tty: false, command: request.command, container: request.container });
  const url = `${cluster.server.replace(/^http/, 'ws')}${corePath('pods', request.namespace, request.pod)}/exec?${query}`;
  const options: https.RequestOptions = {};
  await kubeConfig.applyToHTTPSOptions(options);
  const socket = new WebSocket(url, CHANNEL_PROTOCOLS, options as WebSocket.ClientOptions);
  socket.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary || data.length < 2) return;
    const payload = data.subarray(1);
    switch (data[0]) {
      case STDOUT_STREAM:
        stdout?.write(payload);
        break;
      case STDERR_STREAM:
        stderr.write(payload);
        break;
      case STATUS_STREAM:
        stdout?.end();
        stderr.end();
        try {
          onStatus(JSON.parse(payload.toString('utf8')) as V1Status);
        } catch {
          // Not a status: the connection then ends without one, which execStream reports as cut.
        }
        socket.close();
        break;
    }
  });
  // Before it opens, an error is the connection's failure; after, execStream hears of it (and of the close that follows).
  await new Promise<void>((resolve, reject) => {
    socket.on('error', reject);
    socket.once('open', () => resolve());
  });
  return socket;
}

export async function execStream(kubeConfig: KubeConfig, request: ExecRequest): Promise<ExecOutcome> {
  if (request.signal?.aborted) throw new ExecStreamCutError(abortReason(request.signal));
  const stdout = request.stdout ? new PacedWritable(request.stdout) : null;
  const stderr = new TailBuffer(STDERR_LIMIT, request.onStderr);
  let status: V1Status | undefined;
  const socket = await openExec(kubeConfig, request, stdout, stderr, (received) => {
    status = received;
  });
  if (stdout) stdout.socket = socket;
  let socketClosed = false;
  const stdinDone = request.stdin
    ? pumpStdin(socket, request.stdin).catch((error: Error) => {
        // Input stopped by our own destroy() below, once the socket closed, says nothing new.
        if (socketClosed) return;
        // The command must not see a clean end-of-file for input that was cut short.
        socket.terminate();
        throw error;
      })
    : Promise.resolve();
  stdinDone.catch(() => {}); // observed below, after the socket settles

  const settled = new Promise<ExecOutcome>((resolve, reject) => {
    const onAbort = () => socket.terminate();
    request.signal?.addEventListener('abort', onAbort, { once: true });
    // Aborted while the connection was being made: the event has fired already.
    if (request.signal?.aborted) onAbort();
    socket.on('error', (error: Error) => {
      request.signal?.removeEventListener('abort', onAbort);
      request.stdout?.destroy(error);
      reject(new ExecStreamCutError(`the exec connection failed: ${error.message}`, { cause: error }));
    });
    socket.on('close', () => {
      request.signal?.removeEventListener('abort', onAbort);
      if (!status) {
        // No status frame: the stream was cut. Fail the consumer rather than let it see a clean end.
        const reason = request.signal?.aborted ? abortReason(request.signal) : 'the exec connection closed before the command finished';
        request.stdout?.destroy(new Error(reason));
      } else if (stdout && !stdout.writableEnded) {
        stdout.end();
      }
      resolve({ status, exitCode: exitCodeOf(status), stderr: stderr.text.trim() });
    });
  });
  const outcome = await settled;
  socketClosed = true;
  // The command may end before it read everything (tar failing early): stop feeding it.
  request.stdin?.destroy();
  const stdinError = await stdinDone.then(() => undefined, (error: Error) => error);
  // Without a status, why the input broke is the better explanation.
  if (stdinError && !outcome.status) throw stdinError;
  return outcome;
}
