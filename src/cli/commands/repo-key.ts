/**
 * `kubectl nkvm repo key list|add|remove|passwd`: the repository's passwords, as `restic key` manages
 * them. Every key file holds the same master key under another password, so adding or removing one
 * never touches the data. Locks as restic v0.19.1 takes them: list and add beside other users
 * (shared), remove and passwd alone (exclusive).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { nkvmHome } from '../local-paths.ts';
import { NotFoundError, RepositoryError, UsageError } from '../../errors.ts';
import type { KeyFile, ListedKey } from '../../repository/key.ts';
import { parseTime } from '../../repository/time.ts';
import type { GlobalOptions } from '../global-options.ts';
import { asList, renderTable, toJson, writeResult, writeWarning } from '../output.ts';
import {
  createKeyFile,
  openRepository,
  readPasswordFile,
  saveRepository,
  savedRepositoryFile,
  toRepositoryError,
  withRepositoryOptions,
  type OpenedRepository,
  type RepositoryFlags,
} from '../repository-options.ts';

/** One row of `key list`, with restic's JSON names (`restic key list --json`). */
export interface KeyRow {
  current: boolean;
  id: string;
  userName: string;
  hostName: string;
  /** As the key file records it (RFC 3339). */
  created: string;
}

/** Key files as rows, oldest first; unreadable ones are left out (restic warns and skips them too). */
export function keyRows(keys: ListedKey[], currentId: string): KeyRow[] {
  const rows = keys
    .filter((key): key is { id: string; file: KeyFile } => 'file' in key)
    .map((key) => ({ current: key.id === currentId, id: key.id, userName: String(key.file.username ?? ''), hostName: String(key.file.hostname ?? ''), created: String(key.file.created ?? '') }));
  const time = (row: KeyRow) => {
    try {
      return parseTime(row.created);
    } catch {
      return 0n;
    }
  };
  return rows.sort((a, b) => (time(a) < time(b) ? -1 : time(a) > time(b) ? 1 : a.id.localeCompare(b.id)));
}

/** restic's "2006-01-02 15:04:05" in this machine's zone; the recorded text when it is not a time. */
export function localTime(created: string): string {
  let ms: number;
  try {
    ms = Number(parseTime(created) / 1_000_000n);
  } catch {
    return created || '-';
  }
  const d = new Date(ms);
  const pad = (value: number, width = 2) => String(value).padStart(width, '0');
  return `${pad(d.getFullYear(), 4)}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function renderKeys(rows: KeyRow[], format: 'table' | 'json' | 'name'): string {
  // A List like every other list this plugin prints; the items carry restic's `key list --json` fields.
  if (format === 'json') return toJson(asList(rows));
  if (format === 'name') return rows.map((row) => `${row.id}\n`).join('');
  // The current key marked as kubectl marks the current context (`kubectl config get-contexts`).
  return renderTable(['current', 'id', 'user', 'host', 'created'], rows.map((row) => [row.current ? '*' : '', row.id.slice(0, 8), row.userName || '-', row.hostName || '-', localTime(row.created)]));
}

/** A key ID or prefix as typed: hex, compared in lower case as restic writes IDs. */
export function parseKeyPrefix(text: string): string {
  const prefix = text.trim().toLowerCase();
  if (!/^[0-9a-f]{1,64}$/.test(prefix)) throw new UsageError(`"${text}" is not a key ID: a key ID is hexadecimal (up to 64 digits)`, 'see the IDs with `kubectl nkvm repo key list`');
  return prefix;
}

interface NewKeyFlags {
  newPasswordFile: string | undefined;
  user: string | undefined;
  host: string | undefined;
}

function withNewKeyOptions<T>(argv: Argv<T>): Argv<T & NewKeyFlags> {
  const withFlags = argv
    .option('new-password-file', { type: 'string', description: "File holding the new key's password (default: a random one, generated into a new key file under $NKVM_HOME)" })
    // restic's flag, also kubectl's (hidden) kubeconfig user: no repo key command talks to Kubernetes.
    .option('user', { type: 'string', description: 'User name the new key records (default: yours)' })
    .option('host', { type: 'string', description: "Host name the new key records (default: this machine's)" }) as unknown as Argv<T & NewKeyFlags>;
  // yargs keeps a hidden flag hidden when a command defines it again; here it is this command's own.
  // (Completion's recorder has no hiddenOptions: nothing to do there.)
  const hidden = (withFlags as unknown as { getOptions?(): { hiddenOptions?: unknown } }).getOptions?.()?.hiddenOptions;
  if (Array.isArray(hidden) && hidden.includes('user')) hidden.splice(hidden.indexOf('user'), 1);
  return withFlags;
}

/** The new key's password: read before the repository is opened, so a bad file changes nothing. */
function givenNewPassword(flags: NewKeyFlags): { password: string; file: string } | undefined {
  if (flags.newPasswordFile === undefined) return undefined;
  if (!flags.newPasswordFile) throw new UsageError('--new-password-file needs a file name');
  return { password: readPasswordFile(flags.newPasswordFile, '--new-password-file'), file: path.resolve(flags.newPasswordFile) };
}

/**
 * A new password in a new key file (0600, never overwriting one), as `repo init` makes it; named
 * after the key once its ID is known, so `key list` and the file name agree.
 */
export class GeneratedKeyFile {
  readonly password: string;
  file: string;
  private constructor(file: string, password: string) {
    this.file = file;
    this.password = password;
  }

  static create(): GeneratedKeyFile {
    const file = path.join(nkvmHome(), `repository.key.new-${process.pid}`);
    return new GeneratedKeyFile(file, createKeyFile(file));
  }

  /** A hard link, not a rename: a rename would replace a key file that has the name already. */
  nameAfter(id: string): void {
    for (const name of [`repository-${id.slice(0, 8)}.key`, `repository-${id}.key`]) {
      const final = path.join(nkvmHome(), name);
      try {
        fs.linkSync(this.file, final);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw error;
      }
      fs.rmSync(this.file);
      this.file = final;
      return;
    }
    throw new Error(`${path.join(nkvmHome(), `repository-${id}.key`)} exists already`);
  }

  discard(): void {
    fs.rmSync(this.file, { force: true });
  }
}

function generatedWarning(file: string): string {
  return `the new key's password was generated into ${file} (readable only by you). Keep a copy of it somewhere safe: it is the only copy.`;
}

/** Adds a key with the given or a generated password; a generated file is removed again if the key is not written. */
async function addNewKey(opened: OpenedRepository, given: { password: string; file: string } | undefined, flags: NewKeyFlags): Promise<{ id: string; file: string; generated: boolean }> {
  const { calibratedKdf } = await import('../../repository/key.ts');
  const generated = given ? undefined : GeneratedKeyFile.create();
  const password = given?.password ?? generated!.password;
  let id: string;
  try {
    id = await opened.repository.addKey(password, await calibratedKdf(), { username: flags.user, hostname: flags.host });
  } catch (error) {
    generated?.discard();
    throw error;
  }
  if (generated) {
    try {
      generated.nameAfter(id);
    } catch (error) {
      writeWarning(`cannot rename ${generated.file}: ${(error as Error).message}; the new key's password is in it`);
    }
  }
  return { id, file: generated?.file ?? given!.file, generated: Boolean(generated) };
}

async function keyIds(opened: OpenedRepository): Promise<string[]> {
  const ids: string[] = [];
  for await (const info of opened.repository.backend.list('keys')) ids.push(info.name);
  return ids;
}

/** Runs `fn` on the opened repository, closing it (and its lock) after; the repository's errors become the plugin's. */
async function withOpened<T>(opened: OpenedRepository, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw toRepositoryError(error, opened.location);
  } finally {
    await opened.close();
  }
}

interface ListArgs extends GlobalOptions, RepositoryFlags {
  output: 'table' | 'json' | 'name';
}

const listCommand: CommandModule<GlobalOptions, ListArgs> = {
  command: 'list',
  describe: "List the repository's keys (passwords): ID, user, host, created, and which one opened it",
  builder: (argv) =>
    withRepositoryOptions(argv)
      .option('output', { alias: 'o', choices: ['table', 'json', 'name'] as const, default: 'table' as const, description: 'Output format (json: full IDs, restic\'s field names; name: full IDs)' })
      .example('kubectl nkvm repo key list', 'The keys; * marks the one your password opened')
      .example('kubectl nkvm repo key list -o json', 'For scripts, with full IDs') as unknown as Argv<ListArgs>,
  handler: async (args) => {
    const opened = await openRepository(args, { lock: 'shared', loadIndex: false });
    await withOpened(opened, async () => {
      const { listKeys } = await import('../../repository/key.ts');
      const keys = await listKeys(opened.repository.backend);
      for (const key of keys) if ('error' in key) writeWarning(`key ${key.id.slice(0, 8)} is not readable: ${key.error.message}`);
      writeResult(renderKeys(keyRows(keys, opened.repository.keyId), args.output));
    });
  },
};

interface AddArgs extends GlobalOptions, RepositoryFlags, NewKeyFlags {
  output: 'text' | 'json';
}

const addCommand: CommandModule<GlobalOptions, AddArgs> = {
  command: 'add',
  describe: 'Add a key: another password that opens the repository (the same data, the same master key)',
  builder: (argv) =>
    withNewKeyOptions(withRepositoryOptions(argv))
      .option('output', { alias: 'o', choices: ['text', 'json'] as const, default: 'text' as const, description: 'Output format' })
      .example('kubectl nkvm repo key add --new-password-file ~/.nkvm-laptop', 'A password of your own for another machine')
      .example('kubectl nkvm repo key add', 'A random password, generated into a new key file under $NKVM_HOME')
      .example('kubectl nkvm repo key add --new-password-file pw --user ci --host runner', 'A key that says whose it is') as unknown as Argv<AddArgs>,
  handler: async (args) => {
    const given = givenNewPassword(args);
    const opened = await openRepository(args, { lock: 'shared', loadIndex: false });
    const added = await withOpened(opened, () => addNewKey(opened, given, args));
    if (args.output === 'json') writeResult(toJson({ repository: opened.location, id: added.id, passwordFile: added.file, generated: added.generated }));
    else writeResult(`added key ${added.id.slice(0, 8)} to ${opened.location}\n`);
    if (added.generated) writeWarning(generatedWarning(added.file));
  },
};

interface RemoveArgs extends GlobalOptions, RepositoryFlags {
  id: string;
}

const removeCommand: CommandModule<GlobalOptions, RemoveArgs> = {
  command: 'remove <id>',
  describe: 'Remove a key (by ID or a unique prefix); never the one that opened the repository',
  builder: (argv) =>
    withRepositoryOptions(argv)
      .positional('id', { type: 'string', demandOption: true, description: 'Key ID, or a unique prefix of it (see `repo key list`)' })
      .example('kubectl nkvm repo key remove 5c657874', 'Remove a key; your own password must open another one') as unknown as Argv<RemoveArgs>,
  handler: async (args) => {
    const prefix = parseKeyPrefix(String(args.id));
    const opened = await openRepository(args, { lock: 'exclusive', loadIndex: false });
    const removed = await withOpened(opened, async () => {
      const { AmbiguousKeyPrefixError, KeyNotFoundError, removeKey, resolveKeyPrefix } = await import('../../repository/key.ts');
      let id: string;
      try {
        id = resolveKeyPrefix(await keyIds(opened), prefix);
      } catch (error) {
        if (error instanceof KeyNotFoundError) throw new NotFoundError(`${error.message} in repository ${opened.location}`, 'see the IDs with `kubectl nkvm repo key list`');
        if (error instanceof AmbiguousKeyPrefixError) throw new RepositoryError(error.message, { hint: 'give more characters of the ID' });
        throw error;
      }
      if (id === opened.repository.keyId) {
        throw new RepositoryError(`refusing to remove key ${id.slice(0, 8)}: it is the key your password opened the repository with`, {
          hint: 'open the repository with another key\'s password (--password-file) to remove this one, or replace its password with `kubectl nkvm repo key passwd`',
        });
      }
      await removeKey(opened.repository.backend, id, opened.repository.keyId);
      return id;
    });
    writeResult(`removed key ${removed.slice(0, 8)} from ${opened.location}\n`);
  },
};

type PasswdArgs = AddArgs;

const passwdCommand: CommandModule<GlobalOptions, PasswdArgs> = {
  command: 'passwd',
  describe: 'Change the password: add a key with the new one, then remove the key the current one opened',
  builder: (argv) =>
    withNewKeyOptions(withRepositoryOptions(argv))
      .option('output', { alias: 'o', choices: ['text', 'json'] as const, default: 'text' as const, description: 'Output format' })
      .example('kubectl nkvm repo key passwd --new-password-file ~/.nkvm-new', 'From now on the password in ~/.nkvm-new')
      .example('kubectl nkvm repo key passwd', 'A new random password, generated into a new key file under $NKVM_HOME') as unknown as Argv<PasswdArgs>,
  handler: async (args) => {
    const given = givenNewPassword(args);
    const opened = await openRepository(args, { lock: 'exclusive', loadIndex: false });
    const oldId = opened.repository.keyId;
    const added = await withOpened(opened, async () => {
      const result = await addNewKey(opened, given, args);
      const { removeKey } = await import('../../repository/key.ts');
      try {
        await removeKey(opened.repository.backend, oldId, result.id);
      } catch (error) {
        throw new RepositoryError(`added key ${result.id.slice(0, 8)} (password in ${result.file}), but removing the old key ${oldId.slice(0, 8)} failed: ${(error as Error).message}`, {
          hint: `both passwords open the repository; remove the old key with \`kubectl nkvm repo key remove ${oldId.slice(0, 8)} --password-file ${result.file}\``,
          cause: error,
        });
      }
      return result;
    });
    // Later commands that find the password in the saved key file must find the new one there.
    const saved = opened.choice.saved;
    let savedUpdated = false;
    if (saved?.passwordFile && sameText(() => readPasswordFile(saved.passwordFile!, 'saved'), opened.password.password)) {
      saveRepository({ ...saved, passwordFile: added.file });
      savedUpdated = true;
    }
    if (args.output === 'json') {
      writeResult(toJson({ repository: opened.location, id: added.id, removed: oldId, passwordFile: added.file, generated: added.generated, savedPasswordFile: savedUpdated ? added.file : null }));
    } else {
      writeResult(`changed the password of ${opened.location}: key ${added.id.slice(0, 8)} replaces key ${oldId.slice(0, 8)}\n`);
    }
    if (added.generated) writeWarning(generatedWarning(added.file));
    if (savedUpdated) writeWarning(`${savedRepositoryFile()} now names ${added.file} as the repository's key file; the old password in ${saved!.passwordFile} no longer opens it`);
  },
};

function sameText(read: () => string, text: string): boolean {
  try {
    return read() === text;
  } catch {
    return false;
  }
}

export const keyCommand: CommandModule<GlobalOptions, GlobalOptions> = {
  command: 'key',
  describe: "Manage the repository's keys (passwords), as `restic key`",
  builder: (argv) =>
    argv
      .command([listCommand, addCommand, removeCommand, passwdCommand] as never[])
      .demandCommand(1, 'Name a repo key command: list, add, remove or passwd.')
      .example('kubectl nkvm repo key list', "The repository's keys")
      .example('kubectl nkvm repo key passwd --new-password-file ~/.nkvm-new', 'Change the password'),
  handler: () => {},
};
