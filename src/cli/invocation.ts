/**
 * How the plugin was invoked, decided without loading the CLI: the single executable's front
 * (src/sea-front.ts) reads it before anything else is loaded.
 */
import path from 'node:path';

/** kubectl (1.26+) runs this name for `kubectl nkvm <TAB>`; under it, every run is a completion request. */
export const COMPLETE_EXECUTABLE = 'kubectl_complete-nkvm';

/** `invokedAs` is process.argv[1]: the script for `node FILE`, the executable's own name for a single executable. */
export function invokedForCompletion(invokedAs: string | undefined): boolean {
  return path.basename(invokedAs ?? '').replace(/\.(exe|cmd|bat)$/i, '') === COMPLETE_EXECUTABLE;
}

/** The hidden command cobra's scripts run for a completion (kubectl's own, or `kubectl nkvm completion SHELL`'s). */
export const COMPLETE_REQUEST = '__complete';
export const COMPLETE_REQUEST_NO_DESCRIPTIONS = '__completeNoDesc';

export interface CompletionRequest {
  /** The words after `kubectl nkvm`, the last one being the word to complete. */
  words: string[];
  descriptions: boolean;
}

/**
 * A completion request, if this run is one: `__complete ...`, or any run under the name
 * kubectl_complete-nkvm. `invokedAs` is process.argv[1]: the script's path for `node FILE`, and the
 * name the executable was started by for a Node.js single executable application (argv[0]).
 */
export function completionRequest(argv: readonly string[], invokedAs: string | undefined = process.argv[1]): CompletionRequest | undefined {
  const first = argv[0];
  if (first === COMPLETE_REQUEST || first === COMPLETE_REQUEST_NO_DESCRIPTIONS) {
    const words = argv.slice(1);
    return { words: words.length > 0 ? words : [''], descriptions: first === COMPLETE_REQUEST };
  }
  if (invokedForCompletion(invokedAs)) return { words: argv.length > 0 ? [...argv] : [''], descriptions: true };
  return undefined;
}

/**
 * The first word that is not a flag: the command a run names as far as the words alone tell, for
 * where yargs' flags are not known (the single executable's front) or are in doubt (an unknown
 * command). A flag's value before the command is taken for it; chosenCommand knows better.
 */
export function firstWord(argv: readonly string[]): string | undefined {
  return argv.find((word) => !word.startsWith('-'));
}

/**
 * The command a run names: its first word that is neither a flag nor a flag's value, read as yargs
 * reads it (main.ts's configuration): `withValue` flags (repeatable ones too) take the next word
 * unless written --flag=value or -fVALUE, `boolean` ones a next word "true" or "false". Undefined
 * when there is none (help, or nothing).
 */
export function chosenCommand(argv: readonly string[], flags: { withValue: ReadonlySet<string>; boolean: ReadonlySet<string> }): string | undefined {
  const { withValue, boolean } = flags;
  for (let index = 0; index < argv.length; index++) {
    const word = argv[index]!;
    if (word === '--') return argv[index + 1];
    if (!word.startsWith('-') || word === '-') return word;
    const name = word.replace(/^--?/, '');
    if (name.includes('=') || (word.startsWith('-') && !word.startsWith('--') && name.length > 1)) continue; // --flag=value, -nVALUE
    if (withValue.has(name)) {
      index++;
    } else if (boolean.has(name) && (argv[index + 1] === 'true' || argv[index + 1] === 'false')) {
      index++;
    }
  }
  return undefined;
}
