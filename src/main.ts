/**
 * Entry point: parse argv, run one command, and turn whatever it ended with into an exit code.
 * This is the only place that chooses exit codes and prints errors.
 */
import yargs, { type Argv } from 'yargs';
import { ExitCode, isNkvmError, UsageError } from './errors.ts';
import { commandName, COMMANDS, type AnyCommandModule } from './cli/commands/index.ts';
import { chosenCommand, completionRequest, firstWord } from './cli/invocation.ts';
import { installInterruptHandlers, interruptExitCode } from './cli/interrupt.ts';
import { withGlobalOptions } from './cli/global-options.ts';
import { configureColor, installPipeHandling, writeError } from './cli/output.ts';
import { describeUnknownArguments } from './cli/unknown-flags.ts';
import { notANumber } from './cli/flags.ts';
import { helpWidth } from './cli/fast-paths.ts';
import { pluginVersion } from './version.ts';
import { opensCatalog } from './cli/head-starts.ts';

const EPILOGUE = `Exit codes:
  0  success            1  one or more operations failed   2  usage error
  3  authentication     4  permission (RBAC)               5  refused by admission (Pod Security, quota, webhook)
  6  API server unreachable (refused, DNS, no route, timeout)
  10 no repository      11 repository locked               12 wrong repository password
  130/143  interrupted (Ctrl-C / SIGTERM)

Use "kubectl nkvm options" for a list of global command-line options (applies to all commands).

Credentials are taken like kubectl's: --kubeconfig, then a remote kubeconfig mounted at
/etc/nkvm/remote/config ($NKVM_REMOTE_KUBECONFIG), then $KUBECONFIG or ~/.kube/config, then the
in-cluster ServiceAccount.`;

const COMMAND_NAMES = COMMANDS.map(commandName);

/** What yargs says of the options it knows (getOptions is public in yargs 17-18, missing from its types). */
interface YargsOptions {
  key: Record<string, unknown>;
  alias: Record<string, string[]>;
  string: string[];
  boolean: string[];
  number: string[];
}

const optionsOf = (cli: Argv<unknown>) => (cli as unknown as { getOptions(): YargsOptions }).getOptions();

/**
 * The command modules to give yargs: the one this run names, loaded; every other one as its entry
 * alone (listed in help, never run). A completion request walks them all, so it loads them all.
 */
async function commandModules(argv: string[], cli: Argv<unknown>, loadAll: boolean): Promise<AnyCommandModule[]> {
  const options = optionsOf(cli);
  const withValues = (names: string[]) => new Set(names.flatMap((name) => [name, ...(options.alias[name] ?? [])]));
  const chosen = loadAll ? undefined : chosenCommand(argv, { withValue: withValues(options.string), boolean: withValues(options.boolean) });
  if (opensCatalog(chosen)) void import('./store/sql-engine.ts').then((engine) => engine.compileSqlEngineAhead());
  const notLoaded = (name: string) => () => {
    throw new Error(`command ${name} ran without its module: the arguments were read as naming ${chosen ?? 'no command'}`);
  };
  return Promise.all(
    COMMANDS.map((entry) =>
      loadAll || commandName(entry) === chosen ? entry.load() : { command: entry.command, describe: entry.describe, handler: notLoaded(commandName(entry)) },
    ),
  );
}

export async function main(argv: string[]): Promise<number> {
  installPipeHandling();
  installInterruptHandlers();
  const debug = argv.includes('--debug');
  configureColor({ noColorFlag: argv.includes('--no-color'), env: process.env, isTTY: Boolean(process.stderr.isTTY) });
  // A repeatable flag takes one value a time, as kubectl's do (--toleration a --toleration b CLAIM);
  // yargs' default would take every word up to the next flag, the claim's name included.
  const globals = withGlobalOptions(yargs(argv).parserConfiguration({ 'greedy-arrays': false }));
  // TAB in a shell: `__complete WORD...`, or a run under the name kubectl_complete-nkvm (kubectl 1.26+).
  const completion = completionRequest(argv);
  const cli = globals
    .scriptName('kubectl nkvm')
    .usage('$0 <command> [flags]\n\nBack up the data in PersistentVolumeClaims into local, catalogued artifacts.')
    .command((await commandModules(argv, globals, completion !== undefined)) as never[])
    .demandCommand(1, `Name a command: ${COMMAND_NAMES.join(', ')}.`)
    .strict()
    .recommendCommands()
    .version(false)
    .help()
    .alias('help', 'h')
    .epilogue(EPILOGUE)
    // Before the command's own checks, which would see NaN: the words given, quoted.
    .middleware((parsed) => {
      const options = optionsOf(cli);
      const wrong = notANumber(argv, parsed, options.number, options.alias);
      if (wrong) throw new UsageError(`${wrong.flag} takes a number, not ${JSON.stringify(wrong.given)}`, `e.g. ${wrong.flag} 3`);
    }, true)
    .wrap(helpWidth(process.stdout.columns))
    // Throwing is what stops yargs: a fail handler that returns lets it run the command anyway.
    .fail((message, error) => {
      if (error) throw error;
      const help = 'run `kubectl nkvm COMMAND --help` for usage and examples';
      const suggested = /^Did you mean (\S+)\?$/.exec(message);
      if (suggested) throw new UsageError(`unknown command "${argv[0]}" for "kubectl nkvm"`, `did you mean ${suggested[1]}?`);
      const first = firstWord(argv);
      if (first && !COMMAND_NAMES.includes(first) && message === `Unknown argument: ${first}`) {
        throw new UsageError(`unknown command "${first}" for "kubectl nkvm"`, `the commands are ${COMMAND_NAMES.join(', ')}`);
      }
      // Once a command is chosen, the instance's options are that command's and the global ones.
      const options = optionsOf(cli);
      const known = [...Object.keys(options.key), ...Object.values(options.alias).flat()].map((name) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`));
      const unknown = describeUnknownArguments(message, argv, [...new Set(known)]);
      if (unknown) throw new UsageError(unknown.message, unknown.hint ?? help);
      throw new UsageError(message, help);
    });
  if (completion) return (await import('./cli/completion/protocol.ts')).runCompletion(completion, cli);
  if (argv.length === 0) {
    cli.showHelp('log'); // like kubectl: no arguments is a request for help
    return ExitCode.ok;
  }
  try {
    await cli.parseAsync();
    return interruptExitCode() ?? (process.exitCode === undefined ? ExitCode.ok : Number(process.exitCode));
  } catch (error) {
    if (isNkvmError(error)) {
      // The code in brackets is stable, for scripts and searching; the message is for people.
      writeError(`[${error.code}] ${error.message}`, error.hint);
      if (debug && error.cause) process.stderr.write(`${String((error.cause as Error).stack ?? error.cause)}\n`);
      return interruptExitCode() ?? error.exitCode;
    }
    writeError(`internal error: ${(error as Error)?.message ?? String(error)}`, `this is a bug in kubectl-nkvm ${pluginVersion}; rerun with --debug and report it with the output`);
    if (debug) process.stderr.write(`${(error as Error)?.stack ?? ''}\n`);
    return ExitCode.failed;
  }
}

// A command has awaited all its work when main() ends: exit once what it wrote is flushed (a pipe
// may be written asynchronously), without waiting for Node to tear the heap down (1-3 ms).
main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
});
