/**
 * Ctrl-C and SIGTERM: the first one aborts the work in flight, whose cleanup (deleting helper pods,
 * removing partial files, recording the outcome) still runs; a second one exits at once.
 *
 * An exception nothing caught (a bug, thrown from a callback) does the same: Node would otherwise
 * exit on the spot and leave the helper pods running. What threw may never call back, so the work
 * stops by the same abort, and the process exits after CRASH_CLEANUP_MS whatever is still pending.
 * The attempts it stopped are recorded as failed with the error (InternalErrorStop), not as interrupted.
 */
import { ExitCode, InternalErrorStop } from '../errors.ts';
import { pluginVersion } from '../version.ts';
import { writeError, writeWarning } from './output.ts';

const controller = new AbortController();
let received: NodeJS.Signals | 'crash' | undefined;

/** How long the cleanup after an uncaught exception may take: deleting a helper pod takes well under a second. */
const CRASH_CLEANUP_MS = 30_000;

export function installInterruptHandlers(): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (received) {
        process.exit(signal === 'SIGINT' ? ExitCode.interrupted : ExitCode.terminated);
      }
      received = signal;
      writeWarning(`${signal} received: stopping and cleaning up (helper pods, partial files); send it again to quit at once`);
      controller.abort(new Error(`interrupted by ${signal}`));
    });
  }
  process.on('uncaughtException', (error) => {
    const message = error?.message ?? String(error);
    writeError(`internal error: ${message}`, `this is a bug in kubectl-nkvm ${pluginVersion}; stopping and cleaning up (helper pods, partial files). Report it with this output`);
    if (error?.stack) process.stderr.write(`${error.stack}\n`);
    if (received) process.exit(ExitCode.failed);
    received = 'crash';
    controller.abort(new InternalErrorStop(`stopped by an internal error: ${message}`));
    setTimeout(() => process.exit(ExitCode.failed), CRASH_CLEANUP_MS).unref();
  });
}

export const interruptSignal: AbortSignal = controller.signal;

/** 130 after Ctrl-C, 143 after SIGTERM, 1 after an uncaught exception, undefined if none came. */
export function interruptExitCode(): number | undefined {
  if (!received) return undefined;
  if (received === 'crash') return ExitCode.failed;
  return received === 'SIGINT' ? ExitCode.interrupted : ExitCode.terminated;
}
