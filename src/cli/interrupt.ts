/**
 * Ctrl-C and SIGTERM: the first one aborts the work in flight, whose cleanup (deleting helper pods,
 * removing partial files, recording the outcome) still runs; a second one exits at once.
 */
import { ExitCode } from '../errors.ts';
import { writeWarning } from './output.ts';

const controller = new AbortController();
let received: NodeJS.Signals | undefined;

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
}

export const interruptSignal: AbortSignal = controller.signal;

/** 130 after Ctrl-C, 143 after SIGTERM, undefined if neither arrived. */
export function interruptExitCode(): number | undefined {
  if (!received) return undefined;
  return received === 'SIGINT' ? ExitCode.interrupted : ExitCode.terminated;
}
