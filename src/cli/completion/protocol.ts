/**
 * Cobra's completion protocol, which kubectl (1.26+) speaks with plugins: when the user presses TAB
 * after `kubectl nkvm `, kubectl runs `kubectl_complete-nkvm ARG... WORD` (WORD is the word under
 * the cursor, '' for a new one) and reads one candidate a line (`value<TAB>description`), then a
 * last line `:<directive>`. A non-zero exit makes kubectl ignore the answer, and what goes to stderr
 * reaches the user's terminal, so completion always exits 0 and writes nothing there.
 *
 * The plugin answers when asked as `kubectl-nkvm __complete ARG... WORD` (what the scripts of
 * `kubectl nkvm completion SHELL` and the shipped kubectl_complete-nkvm script ask), or when it is run
 * under the name kubectl_complete-nkvm (a link to it).
 */
import { complete, type CompletionResult, type CompletionSources } from './engine.ts';
import { clusterSources } from './sources.ts';
import { commandsOfYargs, commandTree } from './spec.ts';
import type { CompletionRequest } from '../invocation.ts';

export { COMPLETE_EXECUTABLE } from '../invocation.ts';

/** The answer as cobra's scripts and kubectl read it. */
export function formatCompletions(result: CompletionResult, descriptions: boolean): string {
  const lines = result.candidates.map(({ value, description }) => (descriptions && description ? `${value}\t${description}` : value));
  return `${[...lines, `:${result.directive}`].join('\n')}\n`;
}

/**
 * Answers a completion request for the CLI built in main.ts (its commands are read from the yargs
 * instance) and returns the exit code, 0. The process is ended shortly after the answer is written:
 * a request to an unreachable server may hold a socket open long after its timeout.
 */
export async function runCompletion(request: CompletionRequest, cli: unknown, sources: CompletionSources = clusterSources()): Promise<number> {
  const debug = process.env.NKVM_COMPLETION_DEBUG === '1';
  const stderrWrite = process.stderr.write.bind(process.stderr);
  // Libraries' warnings would land on the user's command line: stderr stays quiet unless debugging.
  if (!debug) process.stderr.write = (() => true) as typeof process.stderr.write;
  // A library's stray rejection must not turn the answer into a crash (kubectl ignores a failed run).
  process.on('unhandledRejection', (error) => {
    if (debug) stderrWrite(`kubectl-nkvm completion: ${(error as Error)?.message ?? String(error)}\n`);
  });
  const root = commandTree(commandsOfYargs(cli));
  const result = await complete(root, request.words, sources, {
    onError: (error) => {
      if (debug) stderrWrite(`kubectl-nkvm completion: ${(error as Error)?.message ?? String(error)}\n`);
    },
  });
  await new Promise<void>((resolve) => {
    process.stdout.write(formatCompletions(result, request.descriptions), () => resolve());
  });
  setTimeout(() => process.exit(0), 50).unref();
  return 0;
}
