/**
 * The catalog's one file, only ever replaced whole: a save writes a temp file beside it, makes it
 * durable and renames it over the file, so a reader (this plugin or the sqlite3 CLI) opens either the
 * old or the new file, never a mix. A writer killed at any moment leaves the previous file intact and
 * at most a temp file, which the next writer removes.
 */
import { open, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { CatalogError } from '../errors.ts';

/**
 * One version of the file. Saves never change a file in place, so a version the catalog has read is
 * still the file as long as these are unchanged; the change counter tells a new file apart from an
 * older one whose inode number it reuses, even with the same size and modification time.
 */
export interface FileVersion {
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  /** The SQLite header's file change counter, which every save advances (replaceFile). */
  changeCounter: number;
}

/** Where the SQLite header keeps the file change counter, and the copy of it that vouches for the page count at offset 28. */
const CHANGE_COUNTER_OFFSET = 24;
const VERSION_VALID_FOR_OFFSET = 92;
const HEADER_BYTES = 100;

export function movedAsideHint(file: string): string {
  return `move it aside (mv ${file} ${file}.broken) and a new, empty catalog is created on the next run`;
}

/** SQLite's words for a file that is not (or no longer) a sound database, as a CatalogError; anything else as it is. */
export function asDamaged(file: string, error: unknown): unknown {
  const message = error instanceof Error ? error.message : '';
  if (!/database disk image is malformed|file is not a database/.test(message)) return error;
  return new CatalogError(`the catalog ${file} is damaged: ${message}`, { hint: movedAsideHint(file), cause: error });
}

export function sameVersion(a: FileVersion | undefined, b: FileVersion | undefined): boolean {
  if (!a || !b) return a === b;
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.changeCounter === b.changeCounter;
}

/** The file's version now (its header only is read), or undefined when there is no file (yet). */
export async function currentVersion(file: string): Promise<FileVersion | undefined> {
  const handle = await openForReading(file);
  if (!handle) return undefined;
  try {
    const header = Buffer.alloc(HEADER_BYTES);
    const { bytesRead } = await handle.read(header, 0, HEADER_BYTES, 0);
    return versionOf(handle, header.subarray(0, bytesRead));
  } catch (error) {
    throw cannotRead(file, error);
  } finally {
    await handle.close();
  }
}

/** The file's bytes and their version, or undefined when there is no file (yet). */
export async function readCatalogFile(file: string): Promise<{ bytes: Buffer; version: FileVersion } | undefined> {
  const handle = await openForReading(file);
  if (!handle) return undefined;
  try {
    const bytes = await handle.readFile();
    return { bytes, version: await versionOf(handle, bytes) };
  } catch (error) {
    throw cannotRead(file, error);
  } finally {
    await handle.close();
  }
}

async function openForReading(file: string): Promise<FileHandle | undefined> {
  try {
    return await open(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw cannotRead(file, error);
  }
}

function cannotRead(file: string, error: unknown): CatalogError {
  return new CatalogError(`cannot read the catalog ${file}: ${(error as Error).message}`, { hint: movedAsideHint(file), cause: error });
}

async function versionOf(handle: FileHandle, header: Uint8Array): Promise<FileVersion> {
  const stats = await handle.stat({ bigint: true });
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  const changeCounter = header.byteLength >= CHANGE_COUNTER_OFFSET + 4 ? view.getUint32(CHANGE_COUNTER_OFFSET) : 0;
  return { dev: stats.dev, ino: stats.ino, size: stats.size, mtimeNs: stats.mtimeNs, changeCounter };
}

/**
 * Writes `bytes` (a whole SQLite database) to a temp file beside `file`, with `changeCounter` in its
 * header, makes it durable, and renames it over `file`. sql.js leaves the counter as it found it, so
 * this is where it advances, as SQLite itself advances it on every commit; the version-valid-for copy
 * is set with it, which keeps the header's page count (correct in what sql.js exports) trusted.
 */
export async function replaceFile(file: string, bytes: Uint8Array, changeCounter: number): Promise<FileVersion> {
  if (bytes.byteLength >= HEADER_BYTES) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    view.setUint32(CHANGE_COUNTER_OFFSET, changeCounter);
    view.setUint32(VERSION_VALID_FOR_OFFSET, changeCounter);
  }
  const temp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    let version: FileVersion;
    const handle = await open(temp, 'wx');
    try {
      await handle.writeFile(bytes);
      await handle.sync();
      version = await versionOf(handle, bytes);
    } finally {
      await handle.close();
    }
    await rename(temp, file);
    // The rename itself is only durable once the directory is.
    const directory = await open(path.dirname(file), 'r');
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
    return version;
  } catch (error) {
    await rm(temp, { force: true });
    throw new CatalogError(`cannot write the catalog ${file}: ${(error as Error).message}`, { cause: error });
  }
}

/** `<file>.<pid>.<random>.tmp`, as replaceFile names them. */
export async function orphanedTempFiles(file: string): Promise<string[]> {
  const prefix = `${path.basename(file)}.`;
  const entries = await readdir(path.dirname(file));
  return entries
    .filter((name) => name.startsWith(prefix) && /^\d+\.[0-9a-f]+\.tmp$/.test(name.slice(prefix.length)))
    .map((name) => path.join(path.dirname(file), name));
}

/**
 * Temp files exist only while their writer holds the lock, so any found by the lock's holder belong to
 * a writer that was killed.
 */
export async function removeOrphanedTempFiles(file: string): Promise<void> {
  for (const temp of await orphanedTempFiles(file)) await rm(temp, { force: true });
}
