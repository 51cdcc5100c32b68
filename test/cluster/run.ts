/** Runs a command for the cluster providers: its stdout, or an error naming the command with its stderr. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface RunOptions {
  input?: string;
  /** Two minutes unless given. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

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
