/**
 * Entry point: parse argv, run one command, and turn whatever it ended with into an exit code.
 * This is the only place that chooses exit codes and prints errors.
 */
import yargs, { type CommandModule } from 'yargs';
import { ExitCode, isNkvmError, UsageError } from './errors.ts';
import { artifactsCommand } from './cli/commands/artifacts.ts';
import { backupCommand } from './cli/commands/backup.ts';
import { completionCommand, completionRequest, runCompletion } from './cli/commands/completion.ts';
import { diagnoseCommand } from './cli/commands/diagnose.ts';
import { discoverCommand } from './cli/commands/discover.ts';
import { restoreCommand } from './cli/commands/restore.ts';
import { verifyCommand } from './cli/commands/verify.ts';
import { versionCommand } from './cli/commands/version.ts';
import { optionsCommand } from './cli/commands/options.ts';
import { installCommand } from './cli/commands/install.ts';
import { uninstallCommand } from './cli/commands/uninstall.ts';
import { statusCommand } from './cli/commands/status.ts';
import { repoCommand } from './cli/commands/repo.ts';
import { snapshotsCommand } from './cli/commands/snapshots.ts';
import { forgetCommand } from './cli/commands/forget.ts';
import { pruneCommand } from './cli/commands/prune.ts';
import { moverCommand } from './cli/commands/mover.ts';
import { installInterruptHandlers, interruptExitCode } from './cli/interrupt.ts';
import { withGlobalOptions, type GlobalOptions } from './cli/global-options.ts';
import { configureColor, installPipeHandling, writeError } from './cli/output.ts';
import { describeUnknownArguments } from './cli/unknown-flags.ts';
import { helpWidth } from './cli/fast-paths.ts';
import { pluginVersion } from './version.ts';

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

const COMMANDS: CommandModule<GlobalOptions, never>[] = [
  discoverCommand,
  backupCommand,
  restoreCommand,
  verifyCommand,
  artifactsCommand,
  repoCommand,
  snapshotsCommand,
  forgetCommand,
  pruneCommand,
  moverCommand,
  diagnoseCommand,
  versionCommand,
  installCommand,
  uninstallCommand,
  statusCommand,
  optionsCommand,
  completionCommand,
] as unknown as CommandModule<GlobalOptions, never>[];

export async function main(argv: string[]): Promise<number> {
  installPipeHandling();
  installInterruptHandlers();
  const debug = argv.includes('--debug');
  configureColor({ noColorFlag: argv.includes('--no-color'), env: process.env, isTTY: Boolean(process.stderr.isTTY) });
  const cli = withGlobalOptions(yargs(argv))
    .scriptName('kubectl nkvm')
    .usage('$0 <command> [flags]\n\nBack up the data in PersistentVolumeClaims into local, catalogued artifacts.')
    .command(COMMANDS as never[])
    .demandCommand(1, `Name a command: ${COMMANDS.map((command) => String(command.command).split(' ')[0]).join(', ')}.`)
    .strict()
    .recommendCommands()
    .version(false)
    .help()
    .alias('help', 'h')
    .epilogue(EPILOGUE)
    .wrap(helpWidth(process.stdout.columns))
    // Throwing is what stops yargs: a fail handler that returns lets it run the command anyway.
    .fail((message, error) => {
      if (error) throw error;
      const help = 'run `kubectl nkvm COMMAND --help` for usage and examples';
      const suggested = /^Did you mean (\S+)\?$/.exec(message);
      if (suggested) throw new UsageError(`unknown command "${argv[0]}" for "kubectl nkvm"`, `did you mean ${suggested[1]}?`);
      const first = argv.find((word) => !word.startsWith('-'));
      if (first && !COMMANDS.some((command) => String(command.command).split(' ')[0] === first) && message === `Unknown argument: ${first}`) {
        throw new UsageError(`unknown command "${first}" for "kubectl nkvm"`, `the commands are ${COMMANDS.map((command) => String(command.command).split(' ')[0]).join(', ')}`);
      }
      // Once a command is chosen, the instance's options are that command's and the global ones.
      const options = (cli as unknown as { getOptions(): { key: Record<string, unknown>; alias: Record<string, string[]> } }).getOptions();
      const known = [...Object.keys(options.key), ...Object.values(options.alias).flat()].map((name) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`));
      const unknown = describeUnknownArguments(message, argv, [...new Set(known)]);
      if (unknown) throw new UsageError(unknown.message, unknown.hint ?? help);
      throw new UsageError(message, help);
    });
  // TAB in a shell: `__complete WORD...`, or a run under the name kubectl_complete-nkvm (kubectl 1.26+).
  const completion = completionRequest(argv);
  if (completion) return runCompletion(completion, cli);
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

// Set exitCode rather than calling process.exit(), so piped output is flushed first.
main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
