/**
 * A repository in a local directory, with restic's default layout. Whole files are written as restic
 * writes them: to a temporary name in the target directory, fsynced, renamed into place, and the
 * directory fsynced, so a file is there complete or not at all, even after a crash. Files are
 * read-only (0400) once written, like restic's; locks stay writable (0600) as restic refreshes them.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { BackendError, BackendNotFoundError, repositoryPath, type Backend, type FileInfo, type FileType } from './backend.ts';

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
    const dir = path.dirname(target);
    const temporary = path.join(dir, `.${path.basename(target)}-tmp-${crypto.randomBytes(8).toString('hex')}`);
    try {
      if (type !== 'locks') {
        const existing = await fs.stat(target).catch((error: unknown) => (isNotFound(error) ? undefined : Promise.reject(error)));
        if (existing) throw new BackendError(`${repositoryPath(type, name)} already exists in repository ${this.location}`);
      }
      if (type === 'data') await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      const handle = await fs.open(temporary, 'wx', 0o600);
      try {
        await handle.writeFile(data);
        await handle.sync();
      } finally {
        await handle.close();
      }
      if (type !== 'locks') await fs.chmod(temporary, 0o400);
      await fs.rename(temporary, target);
      await syncDirectory(dir);
    } catch (error) {
      await fs.rm(temporary, { force: true }).catch(() => undefined);
      if (error instanceof BackendError) throw error;
      throw new BackendError(`cannot write ${repositoryPath(type, name)} in repository ${this.location}: ${(error as Error).message}`, { cause: error });
    }
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
