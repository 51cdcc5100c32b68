/**
 * `kubectl nkvm repo init [LOCATION]`: creates a repository in restic's format, in a directory or an
 * S3 bucket, and remembers it, so backups go into it from then on. With no password given, a random
 * one is written to a key file only its owner reads, and the user is told once where it is.
 */
import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { RepositoryError, UsageError } from '../../errors.ts';
import type { GlobalOptions } from '../global-options.ts';
import { toJson, writeResult, writeWarning } from '../output.ts';
import {
  createKeyFile,
  defaultKeyFile,
  defaultRepositoryPath,
  findPassword,
  readSavedRepository,
  openRepository,
  saveRepository,
  toRepositoryError,
  withRepositoryOptions,
  type RepositoryFlags,
} from '../repository-options.ts';
import { keyCommand } from './repo-key.ts';
import { listing } from './index.ts';

interface InitArgs extends GlobalOptions, RepositoryFlags {
  location: string | undefined;
  output: 'text' | 'json';
}

const initCommand: CommandModule<GlobalOptions, InitArgs> = {
  command: 'init [location]',
  describe: "Create a repository (restic's format) and back up into it from then on",
  builder: (argv) =>
    withRepositoryOptions(argv)
      .positional('location', { type: 'string', description: 'A directory, or s3:https://HOST/BUCKET/PREFIX (default: --repo, $RESTIC_REPOSITORY, then $NKVM_HOME/repository)' })
      .option('output', { alias: 'o', choices: ['text', 'json'] as const, default: 'text' as const, description: 'Output format' })
      .example('kubectl nkvm repo init', 'A repository under $NKVM_HOME, with a generated key file')
      .example('RESTIC_PASSWORD_FILE=~/.nkvm-pass kubectl nkvm repo init /backups/nkvm', 'A directory, with your own password')
      .example('AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... kubectl nkvm repo init s3:https://s3.example.com/backups/shop', 'An S3 bucket') as unknown as Argv<InitArgs>,
  handler: async (args) => {
    if (args.location && args.repo && args.location !== args.repo) throw new UsageError('name the repository once: as the argument or with --repo, not both');
    const location = args.location ?? args.repo ?? process.env.RESTIC_REPOSITORY ?? defaultRepositoryPath();
    const previous = readSavedRepository();
    const { openBackend } = await import('../../repository/backends/open.ts');
    const backend = openBackend(location, { caCertFile: args.cacert });
    try {
      if (await backend.exists()) {
        throw new RepositoryError(`a repository already exists at ${location}; nothing was changed`, { hint: `use it with --repo ${location}, or name another location` });
      }
    } catch (error) {
      await backend.close?.();
      throw toRepositoryError(error, location);
    }
    const given = findPassword(args, undefined);
    let password = given?.password;
    let keyFile = given?.file;
    let generated = false;
    if (!password) {
      keyFile = defaultKeyFile();
      password = createKeyFile(keyFile);
      generated = true;
    }
    let id: string;
    try {
      const { Repository } = await import('../../repository/repository.ts');
      const repository = await Repository.init(backend, password);
      id = repository.config.id;
    } catch (error) {
      throw toRepositoryError(error, location);
    } finally {
      await backend.close?.();
    }
    // Remembered without the password itself: where the repository and its key file are.
    saveRepository({ repository: location, ...(keyFile ? { passwordFile: keyFile } : {}), ...(args.cacert ? { cacert: path.resolve(args.cacert) } : {}) });
    if (args.output === 'json') {
      writeResult(toJson({ repository: location, id, keyFile: generated ? keyFile : null, passwordSource: given?.source ?? 'generated key file' }));
    } else {
      writeResult(`created repository ${id.slice(0, 10)} at ${location}\n`);
    }
    if (generated) {
      writeWarning(`the repository's password was generated into ${keyFile} (readable only by you). Keep a copy of it somewhere safe: without it, nobody can read these backups, and it cannot be recovered.`);
    }
    if (previous && previous.repository !== location) writeWarning(`backups now go into ${location}, no longer into ${previous.repository}`);
  },
};

interface UnlockArgs extends GlobalOptions, RepositoryFlags {
  removeAll: boolean;
}

const unlockCommand: CommandModule<GlobalOptions, UnlockArgs> = {
  command: 'unlock',
  describe: "Remove stale locks (restic's rules: over 30 minutes old, or of a process gone on this host)",
  builder: (argv) =>
    withRepositoryOptions(argv)
      .option('remove-all', { type: 'boolean', default: false, description: 'Remove every lock, fresh ones too (only when no other process uses the repository)' })
      .example('kubectl nkvm repo unlock', 'After a backup that was killed') as unknown as Argv<UnlockArgs>,
  handler: async (args) => {
    const opened = await openRepository(args);
    try {
      const { removeStaleLocks } = await import('../../repository/lock.ts');
      const result = await removeStaleLocks(opened.repository, { all: args.removeAll });
      const removed = result.removed.length + result.unreadable.length;
      writeResult(`removed ${removed} lock${removed === 1 ? '' : 's'} from ${opened.location}${result.kept.length ? `; kept ${result.kept.length} that ${result.kept.length === 1 ? 'is' : 'are'} not stale` : ''}\n`);
    } catch (error) {
      throw toRepositoryError(error, opened.location);
    } finally {
      await opened.close();
    }
  },
};

export const repoCommand: CommandModule<GlobalOptions, GlobalOptions> = {
  ...listing('repo'),
  builder: (argv) => argv.command([initCommand, unlockCommand, keyCommand] as never[]).demandCommand(1, 'Name a repo command: init, unlock or key.'),
  handler: () => {},
};
