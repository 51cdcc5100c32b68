/**
 * Every command of the CLI: its usage and one line, which the command list, `--help` and "did you
 * mean" show, and its module, imported only when the command runs (or is completed). Evaluating
 * every command's module at start, and what each imports (compressors, crypto, child processes,
 * the repository), would cost every command, `artifacts list` included.
 */
import type { CommandModule } from 'yargs';
import type { GlobalOptions } from '../global-options.ts';

export type AnyCommandModule = CommandModule<GlobalOptions, any>;

export interface CommandEntry {
  /** As yargs reads it: the name, then the positionals. */
  command: string;
  /** The line in the command list; false hides the command. */
  describe: string | false;
  load(): Promise<AnyCommandModule>;
}

export const COMMANDS: readonly CommandEntry[] = [
  { command: 'discover', describe: 'List PersistentVolumeClaims with their size, class, phase, volume, and the pods and nodes using them', load: async () => (await import('./discover.ts')).discoverCommand },
  { command: 'backup [pvc..]', describe: 'Back up claims into the repository (or compressed tar artifacts), each recorded in the catalog', load: async () => (await import('./backup.ts')).backupCommand },
  { command: 'restore <id>', describe: 'Restore a backup into a claim, exactly as it was backed up (owners, modes, links, times)', load: async () => (await import('./restore.ts')).restoreCommand },
  { command: 'verify [id]', describe: 'Check that artifacts are intact: present, with the recorded size, sha256 and entries, and a complete tar stream', load: async () => (await import('./verify.ts')).verifyCommand },
  { command: 'artifacts', describe: 'Inspect the backups recorded in the catalog, and prune old ones', load: async () => (await import('./artifacts.ts')).artifactsCommand },
  { command: 'repo', describe: "Manage the repository backups go into (restic's format)", load: async () => (await import('./repo.ts')).repoCommand },
  { command: 'snapshots', describe: 'List the snapshots in the repository, oldest first (any writer: this plugin, restic, k8up)', load: async () => (await import('./snapshots.ts')).snapshotsCommand },
  { command: 'forget', describe: "Remove the repository's snapshots a retention policy does not keep (restic's policy, exactly)", load: async () => (await import('./forget.ts')).forgetCommand },
  { command: 'prune', describe: 'Remove the data no snapshot uses any more from the repository (restic prune)', load: async () => (await import('./prune.ts')).pruneCommand },
  // Hidden: the plugin runs it in its mover pods.
  { command: 'mover <command>', describe: false, load: async () => (await import('./mover.ts')).moverCommand },
  { command: 'diagnose [pvc]', describe: 'Show which credentials are used and from where, the server version, and whether every permission the plugin needs is granted', load: async () => (await import('./diagnose.ts')).diagnoseCommand },
  { command: 'version', describe: 'Print the plugin version and the version of the cluster it reaches', load: async () => (await import('./version.ts')).versionCommand },
  { command: 'install [-- BACKUP-ARGS...]', describe: 'Schedule backups inside the cluster: a ServiceAccount with just the permissions they need, a claim for the catalog and artifacts, and a CronJob', load: async () => (await import('./install.ts')).installCommand },
  { command: 'uninstall', describe: 'Remove the scheduled backups install created (the store claim stays unless --purge)', load: async () => (await import('./uninstall.ts')).uninstallCommand },
  { command: 'status', describe: 'Show the in-cluster schedule (kubectl nkvm install): when it runs, when it last ran, and its last results', load: async () => (await import('./status.ts')).statusCommand },
  { command: 'options', describe: 'Print the list of flags inherited by all commands (kubectl connection flags)', load: async () => (await import('./options.ts')).optionsCommand },
  { command: 'completion <shell>', describe: 'Print a shell completion script (bash, zsh, fish or powershell)', load: async () => (await import('./completion.ts')).completionCommand },
];

export function commandName(entry: Pick<CommandEntry, 'command'>): string {
  return entry.command.split(' ')[0]!;
}

/** What a command module says of itself in the list: its entry's usage and line, so they are written once. */
export function listing(name: string): Pick<CommandEntry, 'command' | 'describe'> {
  const entry = COMMANDS.find((candidate) => commandName(candidate) === name);
  if (!entry) throw new Error(`no command ${name} in COMMANDS`);
  return { command: entry.command, describe: entry.describe };
}
