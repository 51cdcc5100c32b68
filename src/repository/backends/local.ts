/**
 * A repository in a local directory, with restic's default layout. Whole files are written as restic
 * writes them: to a temporary name in the target directory, fsynced, renamed into place, and the
 * directory fsynced, so a file is there complete or not at all, even after a crash. Files are
 * read-only (0400) once written, like restic's; locks stay writable (0600) as restic refreshes them.
 */
import crypto from 'node:crypto';
import { close, fsync, open, read, write } from 'node:fs';
import fs from 'node:fs/promises';
import { promisify } from 'node:util';
import path from 'node:path';
import { BackendError, BackendNotFoundError, repositoryPath, type Backend, type FileInfo, type FileType, type SpoolFile } from './backend.ts';

const DIRECTORIES: FileType[] = ['keys', 'locks', 'snapshots', 'index', 'data'];

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException)?.code === 'ENOENT';
}

export class LocalBackend implements Backend {
  readonly location: string;
  private readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.location = root;
  }

  private filePath(type: FileType, name: string): string {
    if (type !== 'config' && !/^[0-9a-f]{64}$/.test(name) && !(type === 'keys' && /^[0-9A-Za-z._-]+$/.test(name))) {
      throw new BackendError(`invalid ${type} file name ${JSON.stringify(name)} in repository ${this.location}`);
    }
    return path.join(this.root, repositoryPath(type, name));
  }

  async exists(): Promise<boolean> {
    try {
      await fs.stat(path.join(this.root, 'config'));
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw new BackendError(`cannot read repository ${this.location}: ${(error as Error).message}`, { cause: error });
    }
  }

  async create(): Promise<void> {
    try {
      await fs.mkdir(this.root, { recursive: true, mode: 0o700 });
      for (const dir of DIRECTORIES) await fs.mkdir(path.join(this.root, dir), { recursive: true, mode: 0o700 });
      for (let i = 0; i < 256; i++) await fs.mkdir(path.join(this.root, 'data', i.toString(16).padStart(2, '0')), { recursive: true, mode: 0o700 });
      await syncDirectory(this.root);
    } catch (error) {
      throw new BackendError(`cannot create repository directories in ${this.location}: ${(error as Error).message}`, { cause: error });
    }
  }

  async write(type: FileType, name: string, data: Uint8Array): Promise<void> {
    const target = this.filePath(type, name);
    const temporary = path.join(path.dirname(target), `.${path.basename(target)}-tmp-${randomSuffix()}`);
    try {
      await this.refuseExisting(type, name, target);
      const handle = await fs.open(temporary, 'wx', 0o600);
      try {
        await handle.writeFile(data);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await this.moveIntoPlace(temporary, type, target);
    } catch (error) {
      await fs.rm(temporary, { force: true }).catch(() => undefined);
      throw this.writeError(type, name, error);
    }
  }

  /**
   * A pack built in data/ itself, beside the directories it goes into once named: the same file
   * system, so a rename puts it in place. restic lists data/ by its subdirectories and passes over
   * plain files there, as this backend's list() does.
   */
  async spool(): Promise<SpoolFile> {
    const temporary = path.join(this.root, 'data', `.pack-${randomSuffix()}-tmp`);
    try {
      return new LocalSpoolFile(await promisify(open)(temporary, 'wx+', 0o600), temporary, this);
    } catch (error) {
      throw new BackendError(`cannot create a pack file in repository ${this.location}: ${(error as Error).message}`, { cause: error });
    }
  }

  /** Puts a complete, fsynced file written at `temporary` (same file system) in place as data/<name>. */
  async commitSpool(temporary: string, name: string): Promise<void> {
    const target = this.filePath('data', name);
    try {
      await this.refuseExisting('data', name, target);
      await this.moveIntoPlace(temporary, 'data', target);
    } catch (error) {
      throw this.writeError('data', name, error);
    }
  }

  /** restic never overwrites a file but a lock. */
  private async refuseExisting(type: FileType, name: string, target: string): Promise<void> {
    if (type !== 'locks') {
      const existing = await fs.stat(target).catch((error: unknown) => (isNotFound(error) ? undefined : Promise.reject(error)));
      if (existing) throw new BackendError(`${repositoryPath(type, name)} already exists in repository ${this.location}`);
    }
    if (type === 'data') await fs.mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
  }

  private async moveIntoPlace(temporary: string, type: FileType, target: string): Promise<void> {
    if (type !== 'locks') await fs.chmod(temporary, 0o400);
    await fs.rename(temporary, target);
    await syncDirectory(path.dirname(target));
  }

  writeError(type: FileType, name: string, error: unknown): BackendError {
    if (error instanceof BackendError) return error;
    return new BackendError(`cannot write ${repositoryPath(type, name)} in repository ${this.location}: ${(error as Error).message}`, { cause: error });
  }

  async read(type: FileType, name: string, range?: { offset: number; length: number }): Promise<Buffer> {
    const file = this.filePath(type, name);
    try {
      if (!range) return await fs.readFile(file);
      const handle = await fs.open(file, 'r');
      try {
        const buffer = Buffer.alloc(range.length);
        let filled = 0;
        while (filled < range.length) {
          const { bytesRead } = await handle.read(buffer, filled, range.length - filled, range.offset + filled);
          if (bytesRead === 0) break;
          filled += bytesRead;
        }
        if (filled < range.length) throw new BackendError(`${repositoryPath(type, name)} in repository ${this.location} is shorter than expected (${range.offset + filled} < ${range.offset + range.length} bytes)`);
        return buffer;
      } finally {
        await handle.close();
      }
    } catch (error) {
      if (isNotFound(error)) throw new BackendNotFoundError(this.location, type, name);
      if (error instanceof BackendError) throw error;
      throw new BackendError(`cannot read ${repositoryPath(type, name)} in repository ${this.location}: ${(error as Error).message}`, { cause: error });
    }
  }

  async stat(type: FileType, name: string): Promise<FileInfo> {
    try {
      const stat = await fs.stat(this.filePath(type, name));
      return { name, size: stat.size };
    } catch (error) {
      if (isNotFound(error)) throw new BackendNotFoundError(this.location, type, name);
      throw new BackendError(`cannot stat ${repositoryPath(type, name)} in repository ${this.location}: ${(error as Error).message}`, { cause: error });
    }
  }

  async *list(type: FileType): AsyncIterable<FileInfo> {
    if (type === 'config') {
      if (await this.exists()) yield await this.stat('config', 'config');
      return;
    }
    const dirs =
      type === 'data'
        ? (await readdirOrEmpty(path.join(this.root, 'data'))).filter((d) => /^[0-9a-f]{2}$/.test(d)).map((d) => path.join(this.root, 'data', d))
        : [path.join(this.root, type)];
    for (const dir of dirs) {
      for (const name of await readdirOrEmpty(dir)) {
        if (name.startsWith('.')) continue; // temporary files of writes in progress
        try {
          const stat = await fs.stat(path.join(dir, name));
          if (stat.isFile()) yield { name, size: stat.size };
        } catch (error) {
          if (!isNotFound(error)) throw new BackendError(`cannot list ${type} in repository ${this.location}: ${(error as Error).message}`, { cause: error });
        }
      }
    }
  }

  async remove(type: FileType, name: string): Promise<void> {
    const file = this.filePath(type, name);
    try {
      await fs.rm(file, { force: true });
      await syncDirectory(path.dirname(file));
    } catch (error) {
      throw new BackendError(`cannot remove ${repositoryPath(type, name)} in repository ${this.location}: ${(error as Error).message}`, { cause: error });
    }
  }
}

/**
 * A pack being built in a local repository's data/ directory (LocalBackend.spool). Its descriptor is
 * a plain number, not a FileHandle: a FileHandle the garbage collector finds open ends the process,
 * and a repository that fails may let go of a spool without discarding it.
 */
class LocalSpoolFile implements SpoolFile {
  private readonly fd: number;
  private readonly temporary: string;
  private readonly backend: LocalBackend;
  private length = 0;
  private synced = false;
  /** The name it was committed under. */
  private committed: string | undefined;
  private readonly reading = new Set<Promise<Buffer>>();
  private closing: Promise<void> | undefined;

  constructor(fd: number, temporary: string, backend: LocalBackend) {
    this.fd = fd;
    this.temporary = temporary;
    this.backend = backend;
  }

  async append(data: Uint8Array): Promise<void> {
    try {
      for (let written = 0; written < data.length; ) {
        const bytesWritten = await writeAt(this.fd, data, written, data.length - written, this.length + written);
        written += bytesWritten;
      }
    } catch (error) {
      throw new BackendError(`cannot write a pack in repository ${this.backend.location}: ${(error as Error).message}`, { cause: error });
    }
    this.length += data.length;
  }

  read(offset: number, length: number): Promise<Buffer> {
    if (this.committed) return this.backend.read('data', this.committed, { offset, length });
    const reading = this.readHere(offset, length);
    // The descriptor is closed only once no read is on it: its number could be another file's after.
    this.reading.add(reading);
    const done = () => this.reading.delete(reading);
    reading.then(done, done);
    return reading;
  }

  private async readHere(offset: number, length: number): Promise<Buffer> {
    const buffer = Buffer.allocUnsafe(length);
    for (let filled = 0; filled < length; ) {
      const bytesRead = await readAt(this.fd, buffer, filled, length - filled, offset + filled);
      if (bytesRead === 0) throw new BackendError(`a pack being written in repository ${this.backend.location} is shorter than expected`);
      filled += bytesRead;
    }
    return buffer;
  }

  async commit(name: string): Promise<void> {
    if (this.committed) return;
    if (!this.synced) {
      try {
        await fsyncFd(this.fd);
      } catch (error) {
        throw this.backend.writeError('data', name, error);
      }
      this.synced = true;
    }
    await this.backend.commitSpool(this.temporary, name);
    this.committed = name;
    await this.closeFile();
  }

  /** Once: a descriptor closed twice could close another file's. */
  private closeFile(): Promise<void> {
    this.closing ??= Promise.allSettled(this.reading).then(() => closeFd(this.fd).catch(() => undefined));
    return this.closing;
  }

  async discard(): Promise<void> {
    if (this.committed) return;
    await this.closeFile();
    await fs.rm(this.temporary, { force: true }).catch(() => undefined);
  }
}

const writeAt = promisify((fd: number, data: Uint8Array, offset: number, length: number, position: number, done: (error: Error | null, written: number) => void) => write(fd, data, offset, length, position, done));
const fsyncFd = promisify(fsync);
const closeFd = promisify(close);
const readAt = promisify((fd: number, buffer: Buffer, offset: number, length: number, position: number, done: (error: Error | null, read: number) => void) => read(fd, buffer, offset, length, position, done));

function randomSuffix(): string {
  return crypto.randomBytes(8).toString('hex');
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await fs.readdir(dir);
  } catch (error) {
    if (isNotFound(error)) return [];
    throw error;
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } catch (error) {
    // Some file systems cannot fsync a directory (EINVAL); restic ignores that too.
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'ENOTSUP') throw error;
  } finally {
    await handle.close();
  }
}
