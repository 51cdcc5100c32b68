/**
 * Which repository a command uses and how it is unlocked, found where a restic user looks:
 *   location: --repo, then RESTIC_REPOSITORY, then the one `repo init` saved ($NKVM_HOME/repository.json)
 *   password: --password-file, RESTIC_PASSWORD_FILE, RESTIC_PASSWORD_COMMAND, RESTIC_PASSWORD, then the
 *             key file `repo init` saved with the location
 * The saved file never holds a password: only where the repository and its key file are.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { MoverCredentials } from './commands/mover.ts';
import { DEFAULT_MOVER_SILENCE_SECONDS } from '../backup/defaults.ts';
import type { MoverOptions } from '../backup/mover.ts';
import type { MoverMode } from '../backup/transfer.ts';
import { positiveIntegerFromEnv } from './flags.ts';
import type { Argv } from 'yargs';
import { nkvmHome } from './local-paths.ts';
import {
  NkvmError,
  NoRepositoryError as NoRepositoryUserError,
  RepositoryError,
  RepositoryLockedError as RepositoryLockedUserError,
  UsageError,
  WrongPasswordError as WrongPasswordUserError,
  isNkvmError,
} from '../errors.ts';
import { BackendError } from '../repository/backends/backend.ts';
import type { RepositoryLock } from '../repository/lock.ts';
import type { Repository } from '../repository/repository.ts';

export interface RepositoryFlags {
  repo: string | undefined;
  passwordFile: string | undefined;
  cacert: string | undefined;
}

export function withRepositoryOptions<T>(argv: Argv<T>): Argv<T & RepositoryFlags> {
  return argv
    .option('repo', { alias: 'r', type: 'string', description: 'Repository: a directory, or s3:https://HOST/BUCKET/PREFIX (default: $RESTIC_REPOSITORY, then the one `repo init` saved)' })
    .option('password-file', { type: 'string', description: "File holding the repository's password (default: $RESTIC_PASSWORD_FILE, $RESTIC_PASSWORD_COMMAND, $RESTIC_PASSWORD, then the key file `repo init` made)" })
    .option('cacert', { type: 'string', description: 'PEM file of CA certificates to trust for an https S3 endpoint' }) as unknown as Argv<T & RepositoryFlags>;
}

/** What `repo init` remembers, so later commands use the repository without flags. */
export interface SavedRepository {
  repository: string;
  /** The key file or password file the repository was made with, if it came from a file. */
  passwordFile?: string;
  cacert?: string;
}

export function savedRepositoryFile(): string {
  return path.join(nkvmHome(), 'repository.json');
}

export function defaultRepositoryPath(): string {
  return path.join(nkvmHome(), 'repository');
}

export function defaultKeyFile(): string {
  return path.join(nkvmHome(), 'repository.key');
}

export function readSavedRepository(): SavedRepository | undefined {
  const file = savedRepositoryFile();
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
  }
  try {
    const saved = JSON.parse(text) as SavedRepository;
    if (typeof saved.repository !== 'string') throw new Error('no "repository"');
    return saved;
  } catch (error) {
    throw new UsageError(`${file} is not what \`kubectl nkvm repo init\` writes: ${(error as Error).message}`, 'run `kubectl nkvm repo init` again, or remove the file');
  }
}

/** Written whole, then renamed: a crash leaves the old file or the new one. */
export function saveRepository(saved: SavedRepository): void {
  const file = savedRepositoryFile();
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const temporary = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(temporary, `${JSON.stringify(saved, null, 2)}\n`, { mode: 0o600 });
  fs.renameSync(temporary, file);
}

export interface RepositoryChoice {
  location: string;
  /** Where the location came from, for messages: --repo, RESTIC_REPOSITORY, or the saved file. */
  source: string;
  saved: SavedRepository | undefined;
}

/** The repository the flags and the environment name; undefined when none is configured anywhere. */
export function chooseRepository(flags: RepositoryFlags, env: NodeJS.ProcessEnv = process.env): RepositoryChoice | undefined {
  const saved = readSavedRepository();
  if (flags.repo) return { location: flags.repo, source: '--repo', saved: saved?.repository === flags.repo ? saved : undefined };
  if (env.RESTIC_REPOSITORY) return { location: env.RESTIC_REPOSITORY, source: 'RESTIC_REPOSITORY', saved: saved?.repository === env.RESTIC_REPOSITORY ? saved : undefined };
  if (saved) return { location: saved.repository, source: savedRepositoryFile(), saved };
  return undefined;
}

export function readPasswordFile(file: string, what: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read the password file ${file} (${what}): ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const password = text.trim();
  if (!password) throw new UsageError(`the password file ${file} (${what}) is empty`);
  return password;
}

/** The password, from the first source that has one (restic's order); undefined when there is none. */
export function findPassword(flags: RepositoryFlags, saved: SavedRepository | undefined, env: NodeJS.ProcessEnv = process.env): { password: string; source: string; file?: string } | undefined {
  if (flags.passwordFile) return { password: readPasswordFile(flags.passwordFile, '--password-file'), source: '--password-file', file: path.resolve(flags.passwordFile) };
  if (env.RESTIC_PASSWORD_FILE) return { password: readPasswordFile(env.RESTIC_PASSWORD_FILE, 'RESTIC_PASSWORD_FILE'), source: 'RESTIC_PASSWORD_FILE', file: path.resolve(env.RESTIC_PASSWORD_FILE) };
  if (env.RESTIC_PASSWORD_COMMAND) {
    let output: string;
    try {
      output = execFileSync('sh', ['-c', env.RESTIC_PASSWORD_COMMAND], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 60_000 });
    } catch (error) {
      throw new UsageError(`RESTIC_PASSWORD_COMMAND failed: ${(error as Error).message.split('\n')[0]}`);
    }
    const password = output.trim();
    if (!password) throw new UsageError('RESTIC_PASSWORD_COMMAND printed no password');
    return { password, source: 'RESTIC_PASSWORD_COMMAND' };
  }
  if (env.RESTIC_PASSWORD) return { password: env.RESTIC_PASSWORD, source: 'RESTIC_PASSWORD' };
  if (saved?.passwordFile) return { password: readPasswordFile(saved.passwordFile, `the key file \`repo init\` made`), source: saved.passwordFile, file: saved.passwordFile };
  return undefined;
}

/** A new random password in a new file only its owner reads: what `repo init` makes when given none. */
export function createKeyFile(file: string): string {
  const password = randomBytes(32).toString('base64url');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  try {
    fs.writeFileSync(file, `${password}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new UsageError(`a key file already exists at ${file}; it is never overwritten`, `use it with --password-file ${file}, or move it away first`);
    }
    throw new UsageError(`cannot write the key file ${file}: ${(error as Error).message}`);
  }
  return password;
}

/** The repository's errors as the plugin's typed errors, with their exit codes and hints. */
export function toRepositoryError(error: unknown, location: string): NkvmError {
  if (isNkvmError(error)) return error;
  const name = (error as Error)?.name;
  const message = (error as Error)?.message ?? String(error);
  if (name === 'WrongPasswordError') {
    return new WrongPasswordUserError(message, { hint: 'check --password-file, RESTIC_PASSWORD_FILE, RESTIC_PASSWORD_COMMAND or RESTIC_PASSWORD; nothing was written', cause: error });
  }
  if (name === 'RepositoryLockedError') return new RepositoryLockedUserError(message, { hint: (error as { hint?: string }).hint, cause: error });
  if (name === 'NoRepositoryError') return new NoRepositoryUserError(message, { hint: `create it with \`kubectl nkvm repo init ${location}\``, cause: error });
  if (error instanceof BackendError) return new RepositoryError(message, { cause: error });
  return new RepositoryError(`repository ${location}: ${message}`, { cause: error });
}

export interface OpenedRepository {
  repository: Repository;
  location: string;
  choice: RepositoryChoice;
  /** The password that opened it, and where it came from. */
  password: { password: string; source: string; file?: string };
  /** The lock held when one was asked for: its signal aborts if it is lost. */
  lock?: RepositoryLock;
  close(): Promise<void>;
}

/**
 * Opens the configured repository with its password; typed errors for every way that fails. With
 * `lock`, holds restic's lock of that kind (refreshed while it runs) until close(): beside a shared
 * one, a `restic prune` waits instead of deleting packs this run is writing or reading.
 */
export async function openRepository(
  flags: RepositoryFlags,
  options: {
    lock?: 'shared' | 'exclusive';
    /** The lock's wait and second look go on after this returns (LockOptions.confirmLater): await `lock.confirmed` before writing. */
    confirmLockLater?: boolean;
    /** The lock's wait before its second look (restic's 200 ms unless a test lengthens it). */
    lockWaitMs?: number | undefined;
    choice?: RepositoryChoice | undefined;
    loadIndex?: boolean | 'meanwhile';
    /** Create it first where there is none, with the password given (k8up's first run). */
    initIfMissing?: boolean;
  } = {},
): Promise<OpenedRepository> {
  const choice = 'choice' in options ? options.choice : chooseRepository(flags);
  if (!choice) {
    throw new NoRepositoryUserError('no repository is configured', { hint: 'create one with `kubectl nkvm repo init`, or name one with --repo or RESTIC_REPOSITORY' });
  }
  // Loaded on use: the S3 client and the format code stay out of every other command's start-up.
  const { openBackend } = await import('../repository/backends/open.ts');
  const backend = openBackend(choice.location, { caCertFile: flags.cacert ?? choice.saved?.cacert });
  const close = async () => backend.close?.();
  try {
    // A location with no repository says so before asking for a password it would not need.
    const exists = await backend.exists();
    if (!exists && !options.initIfMissing) throw Object.assign(new Error(`there is no repository at ${choice.location} (no config file; from ${choice.source})`), { name: 'NoRepositoryError' });
    const found = findPassword(flags, choice.saved);
    if (!found) {
      throw new UsageError(`no password for repository ${choice.location}`, 'give one with --password-file, RESTIC_PASSWORD_FILE, RESTIC_PASSWORD_COMMAND or RESTIC_PASSWORD');
    }
    const { Repository } = await import('../repository/repository.ts');
    const repository = exists ? await Repository.open(backend, found.password, { loadIndex: options.loadIndex ?? true }) : await Repository.init(backend, found.password);
    if (!options.lock) return { repository, location: choice.location, choice, password: found, close };
    const { acquireLock } = await import('../repository/lock.ts');
    const lock = await acquireLock(repository, { exclusive: options.lock === 'exclusive', confirmLater: options.confirmLockLater, waitBeforeCheckMs: options.lockWaitMs });
    return {
      repository,
      location: choice.location,
      choice,
      password: found,
      lock,
      close: async () => {
        await lock.release().catch(() => {}); // a lock left behind goes stale; `repo unlock` removes it
        await close();
      },
    };
  } catch (error) {
    await close();
    throw toRepositoryError(error, choice.location);
  }
}

/**
 * What a command's data movers are given: the image, the repository's credentials, why movers are
 * used, and how long one may say nothing (NKVM_MOVER_SILENCE_SECONDS) before it counts as lost.
 */
export function moverOptions(repository: OpenedRepository, flags: RepositoryFlags & { moverImage: string; mover: MoverMode }, reason: string): MoverOptions {
  const silenceSeconds = positiveIntegerFromEnv('NKVM_MOVER_SILENCE_SECONDS') ?? DEFAULT_MOVER_SILENCE_SECONDS;
  return { image: flags.moverImage, credentials: moverCredentials(repository, flags), reason, fallback: flags.mover === 'auto', silenceLimitMs: silenceSeconds * 1000 };
}

/** What a data mover needs to open the repository from its pod: handed over on its exec's stdin, never stored in the cluster. */
function moverCredentials(repository: OpenedRepository, flags: RepositoryFlags): MoverCredentials {
  const env = Object.fromEntries(
    ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_DEFAULT_REGION', 'AWS_REGION'].flatMap((name) => (process.env[name] ? [[name, process.env[name]!]] : [])),
  );
  const cacert = flags.cacert ?? repository.choice.saved?.cacert;
  return { repository: repository.location, password: repository.password.password, env, ...(cacert ? { cacert: fs.readFileSync(cacert, 'utf8') } : {}) };
}
