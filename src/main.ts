/**
 * Entry point: parse argv, run one command, and turn whatever it ended with into an exit code.
 * This is the only place that chooses exit codes and prints errors.
 */
import yargs from 'yargs';
import { ExitCode, isNkvmError, UsageError } from './errors.ts';
import { artifactsCommand } from './cli/commands/artifacts.ts';
import { backupCommand } from './cli/commands/backup.ts';
import { diagnoseCommand } from './cli/commands/diagnose.ts';
import { discoverCommand } from './cli/commands/discover.ts';
import { restoreCommand } from './cli/commands/restore.ts';
import { verifyCommand } from './cli/commands/verify.ts';
import { versionCommand } from './cli/commands/version.ts';
import { installInterruptHandlers, interruptExitCode } from './cli/interrupt.ts';
import { withGlobalOptions, type GlobalOptions } from './cli/global-options.ts';
import { configureColor, installPipeHandling, writeError } from './cli/output.ts';
import { pluginVersion } from './version.ts';

const EPILOGUE = `Exit codes:
  0  success            1  one or more operations failed   2  usage error
  3  authentication     4  permission (RBAC)               5  refused by admission (Pod Security, quota, webhook)
  130/143  interrupted (Ctrl-C / SIGTERM)

Credentials are taken like kubectl's: --kubeconfig, then a remote kubeconfig mounted at
/etc/nkvm/remote/config ($NKVM_REMOTE_KUBECONFIG), then $KUBECONFIG or ~/.kube/config, then the
in-cluster ServiceAccount.`;

export async function main(argv: string[]): Promise<number> {
  installPipeHandling();
  installInterruptHandlers();
  const debug = argv.includes('--debug');
  configureColor({ noColorFlag: argv.includes('--no-color'), env: process.env, isTTY: Boolean(process.stderr.isTTY) });
  const cli = withGlobalOptions(yargs(argv))
    .scriptName('kubectl nkvm')
    .usage('$0 <command> [flags]\n\nBack up the data in PersistentVolumeClaims into local, catalogued artifacts.')
    .command([discoverCommand, backupCommand, restoreCommand, verifyCommand, artifactsCommand, diagnoseCommand, versionCommand] as never[])
    .demandCommand(1, 'Name a command: discover, backup, restore, verify, artifacts, diagnose or version.')
    .strict()
    .recommendCommands()
    .version(false)
    .help()
    .alias('help', 'h')
    .epilogue(EPILOGUE)
    .wrap(Math.min(110, process.stdout.columns || 100))
    // Throwing is what stops yargs: a fail handler that returns lets it run the command anyway.
    .fail((message, error) => {
      if (error) throw error;
      throw new UsageError(message, 'run `kubectl nkvm COMMAND --help` for usage and examples');
    });
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
