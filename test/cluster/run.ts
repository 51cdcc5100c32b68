/** Commands and waits for the cluster providers. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface RunOptions {
  input?: string;
  /** Two minutes unless given. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Runs a command: its stdout, or an error naming the command with its stderr. */
export async function run(command: string, args: string[], options: RunOptions = {}): Promise<string> {
  const child = execFileAsync(command, args, { maxBuffer: 256 * 1024 * 1024, timeout: options.timeoutMs ?? 120_000, env: options.env ?? process.env });
  if (options.input !== undefined) child.child.stdin!.end(options.input);
  try {
    return (await child).stdout;
  } catch (error) {
    const { stderr, stdout } = error as { stderr?: string; stdout?: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${(error as Error).message.split('\n')[0]}\n${stderr ?? ''}${stdout ?? ''}`.trim());
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns true; a check that throws counts as not yet, and its last error is reported. */
export async function waitFor(description: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error;
    }
    await sleep(250);
  }
  throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${description}${lastError ? `: ${(lastError as Error).message}` : ''}`);
}
