/**
 * Exec with an acknowledgement: a command whose output matters runs in a wrapper that stays alive
 * until this client confirms it received everything.
 *
 * Why: the exec stream does not promise its tail. When the remote command exits while the client
 * still has output in flight (it was slow, or paused for backpressure), the API server can send the
 * Success status and close with megabytes never sent (kubernetes/kubernetes#124571,
 * kubernetes/kubectl#1361). Measured here: three 1 GiB backups in one process lost the tail in 10
 * of 21 copies. A remote process that outlives the drain loses nothing.
 *
 * The protocol, per exec:
 *   1. The wrapper runs the command (stdin from /dev/null, or the request's input: exactly its
 *      length, read by head), then writes a trailer on stdout:
 *      `<token> <exit code>\n`, the token random per exec, so no data can be taken for it.
 *   2. The client strips the trailer from the stream. Having it means every byte before it arrived
 *      (one stdout channel, in order) and tells the command's own exit status.
 *   3. The client then writes `ack` on stdin; the wrapper exits with the command's status.
 *      Every other outcome ends the wait at once too: a failing consumer or a cut stream closes the
 *      connection, which closes stdin. An ack that never arrives ends the wait after
 *      `ackTimeoutSeconds` (exit 125 with a message), so nothing hangs on either side.
 */
import { randomBytes } from 'node:crypto';
import { PassThrough, Transform, Writable, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { KubeConfig } from '@kubernetes/client-node';
import { execStream, ExecStreamCutError, type ExecOutcome, type ExecRequest } from './exec.ts';

/** busybox ash and POSIX sh alike. Arguments: token, ack timeout in seconds, the command. */
const WRAPPER = [
  't=$1 w=$2 n=$3; shift 3',
  // Exactly n bytes of input, when there are any: the acknowledgement follows them on stdin.
  'if [ "$n" -gt 0 ]; then head -c "$n" | "$@"; s=$?; else "$@" </dev/null; s=$?; fi',
  'printf "%s %s\\n" "$t" "$s"',
  'read -r -t "$w" reply',
  '[ "$reply" = ack ] && exit "$s"',
  'echo "no acknowledgement from kubectl-nkvm within ${w}s after the command ended (exit code $s)" >&2',
  'exit 125',
].join('\n');

/** The wrapper's own exit code when the acknowledgement did not come in time. */
export const ACK_TIMEOUT_EXIT_CODE = 125;
/** How long the client waits for the exec's status once it has the trailer and has acknowledged. */
const STATUS_AFTER_ACK_MS = 10_000;

export function ackedCommand(command: string[], token: string, ackTimeoutSeconds: number, inputBytes = 0): string[] {
  return ['sh', '-c', WRAPPER, 'nkvm-ack', token, String(ackTimeoutSeconds), String(inputBytes), ...command];
}

/**
 * Output is passed on in blocks of this size: exec frames are mostly 4 KiB or less, each a trip down
 * the pipeline. 1 GiB uncompressed, through the single executable, two runs each: blocks of 1 MiB
 * peaked at 152-160 MiB RSS, 256 KiB at 134-145 MiB (gzip: 167-173 against 150-159), in the same
 * time and CPU; each block is a fresh allocation, and glibc keeps more of the larger ones.
 */
const OUTPUT_BLOCK_BYTES = 256 * 1024;

/**
 * Passes a stream through, minus its trailer `<token> <exit code>\n`, which it emits as 'trailer'
 * with the exit code. The bytes are gathered into blocks of up to OUTPUT_BLOCK_BYTES first: a 1 GiB
 * copy arrives as about 110,000 frames, and every stage after this one then sees 4,096 chunks instead. The
 * trailer comes last, so the last few bytes of a block are held back until more arrive. Ending
 * without a trailer is an error: the consumer must never see a cut stream end cleanly.
 */
export class TrailerSplitter extends Transform {
  private readonly token: Buffer;
  /** Longest trailer: token, space, up to 3 digits, newline. */
  private readonly holdBack: number;
  private readonly blockBytes: number;
  private block: Buffer;
  private filled = 0;
  /** Set once the trailer was read: the command's exit code. */
  exitCode: number | undefined;
  /** Bytes passed on (the trailer excluded). */
  bytes = 0;

  constructor(token: string, options: { blockBytes?: number; highWaterMark?: number } = {}) {
    // One block waiting for the consumer: four held 6-9 MiB more at a 1 GiB backup's peak, in the same time.
    super({ readableHighWaterMark: options.highWaterMark ?? OUTPUT_BLOCK_BYTES });
    this.token = Buffer.from(token);
    this.holdBack = this.token.length + 5;
    this.blockBytes = Math.max(options.blockBytes ?? OUTPUT_BLOCK_BYTES, this.holdBack + 1);
    this.block = Buffer.allocUnsafe(this.blockBytes);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.exitCode !== undefined) return callback(new Error('output continued after the end-of-output trailer'));
    for (let offset = 0; offset < chunk.length; ) {
      const copied = chunk.copy(this.block, this.filled, offset);
      offset += copied;
      this.filled += copied;
      if (this.filled === this.blockBytes) this.passOn(this.filled - this.holdBack);
    }
    const tailStart = Math.max(0, this.filled - this.holdBack);
    const at = this.block.subarray(tailStart, this.filled).indexOf(this.token);
    if (at !== -1) {
      const match = /^ (\d{1,3})\n$/.exec(this.block.toString('latin1', tailStart + at + this.token.length, this.filled));
      if (match) {
        this.filled = tailStart + at;
        this.passOn(this.filled);
        this.exitCode = Number(match[1]);
        this.emit('trailer', this.exitCode);
      }
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (this.exitCode !== undefined) return callback();
    callback(new ExecStreamCutError(`the output stream was cut after ${this.bytes + this.filled} bytes, before the command's end-of-output trailer`));
  }

  /** Pushes the block's first `length` bytes; what follows them starts the next block. */
  private passOn(length: number): void {
    if (length <= 0) return;
    const block = this.block;
    this.block = Buffer.allocUnsafe(this.blockBytes);
    block.copy(this.block, 0, length, this.filled);
    this.filled -= length;
    this.bytes += length;
    this.push(block.subarray(0, length));
  }
}

export interface AckedExecRequest extends Omit<ExecRequest, 'stdin' | 'stdout'> {
  stdout: Writable;
  /** How long the wrapper waits for the acknowledgement once the command ended. */
  ackTimeoutSeconds: number;
  /**
   * Called when the trailer arrives, before the acknowledgement; returning false withholds it. Tests
   * use it to hold the command alive, or to cut the connection as if just before the trailer.
   */
  beforeAck?: ((control: { cut(): void }) => boolean | Promise<boolean>) | undefined;
  /** What the command reads on stdin: `bytes` long exactly (the wrapper passes on that many and no more). */
  input?: { stream: Readable; bytes: number } | undefined;
}

export interface AckedExecOutcome extends ExecOutcome {
  /** The command's exit code, from the trailer; undefined when the trailer never arrived. */
  commandExitCode: number | undefined;
  /** Stdout bytes received, the trailer excluded. */
  bytes: number;
}

export async function execWithAck(kubeConfig: KubeConfig, request: AckedExecRequest): Promise<AckedExecOutcome> {
  const token = `nkvm-end-${randomBytes(16).toString('hex')}`;
  const splitter = new TrailerSplitter(token);
  const ack = new PassThrough();
  if (request.input) request.input.stream.pipe(ack, { end: false });
  const cut = new AbortController();
  const signal = request.signal ? AbortSignal.any([request.signal, cut.signal]) : cut.signal;
  const delivered = pipeline(splitter, request.stdout);
  delivered.catch(() => {}); // the consumer's failure surfaces through its own pipeline

  let statusDeadline: NodeJS.Timeout | undefined;
  splitter.once('trailer', () => {
    void (async () => {
      // A test's cut plays a connection lost just before the trailer: what was received is all there is.
      const cutBeforeTrailer = () => {
        splitter.exitCode = undefined;
        cut.abort(new ExecStreamCutError('the connection was lost just before the end-of-output trailer'));
      };
      const proceed = request.beforeAck ? await request.beforeAck({ cut: cutBeforeTrailer }) : true;
      if (!proceed || cut.signal.aborted) return;
      ack.end('ack\n');
      // Everything has arrived; the status is a formality that must not keep us waiting.
      statusDeadline = setTimeout(() => cut.abort(new Error('no exec status after the acknowledgement')), STATUS_AFTER_ACK_MS);
    })();
  });

  // Between the exec and the splitter: once the trailer is in, a connection that breaks has lost
  // nothing, so its error must not reach the consumer as a cut stream.
  const intake = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (splitter.destroyed) return callback();
      if (splitter.write(chunk)) callback();
      else splitter.once('drain', () => callback());
    },
    final(callback) {
      splitter.end();
      callback();
    },
    destroy(error, callback) {
      if (error && splitter.exitCode === undefined) splitter.destroy(error instanceof ExecStreamCutError ? error : new ExecStreamCutError(`the exec stream was cut: ${error.message}`));
      else if (!splitter.writableEnded) splitter.end();
      callback(null);
    },
  });

  let outcome: ExecOutcome;
  try {
    outcome = await execStream(kubeConfig, {
      namespace: request.namespace,
      pod: request.pod,
      container: request.container,
      command: ackedCommand(request.command, token, request.ackTimeoutSeconds, request.input?.bytes),
      stdout: intake,
      stdin: ack,
      onStderr: request.onStderr,
      signal,
    });
  } catch (error) {
    // Once the trailer is in, a connection that breaks has lost nothing.
    if (splitter.exitCode === undefined) throw error;
    outcome = { status: undefined, exitCode: undefined, stderr: '' };
  } finally {
    clearTimeout(statusDeadline);
  }
  return { ...outcome, commandExitCode: splitter.exitCode, bytes: splitter.bytes };
}
