/**
 * The catalog's one file, never changed in place: a fold writes a new version to a temp file beside
 * it, makes it durable and renames it over the file, so a reader (this plugin or the sqlite3 CLI)
 * opens either the old or the new file, never a mix, and keeps reading the version it opened. A
 * writer killed at any moment leaves the previous file intact and at most a temp file, which the next
 * writer removes.
 */
import { constants } from 'node:fs';
import { copyFile, open, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { CatalogError } from '../errors.ts';

/** Where the SQLite header keeps the file change counter, the page count, and the copy of the counter that vouches for the page count. */
const CHANGE_COUNTER_OFFSET = 24;
const PAGE_COUNT_OFFSET = 28;
const VERSION_VALID_FOR_OFFSET = 92;
export const HEADER_BYTES = 100;

export function movedAsideHint(file: string): string {
  return `move it aside (mv ${file} ${file}.broken) and a new, empty catalog is created on the next run`;
}

/** SQLite's words for a file that is not (or no longer) a sound database, as a CatalogError; anything else as it is. */
export function asDamaged(file: string, error: unknown): unknown {
  const message = error instanceof Error ? error.message : '';
  if (!/database disk image is malformed|file is not a database/.test(message)) return error;
  return new CatalogError(`the catalog ${file} is damaged: ${message}`, { hint: movedAsideHint(file), cause: error });
}

export function cannotRead(file: string, error: unknown): CatalogError {
  return new CatalogError(`cannot read the catalog ${file}: ${(error as Error).message}`, { hint: movedAsideHint(file), cause: error });
}

/** `<file>.<pid>.<random>.tmp`: what removeOrphanedTempFiles recognises. */
export function tempPathFor(file: string): string {
  // node:crypto is loaded on use: at the top it cost every command that reads the catalog ~7 ms.
  return `${file}.${process.pid}.${process.getBuiltinModule('node:crypto').randomBytes(6).toString('hex')}.tmp`;
}

/** Makes a rename or a new file in the directory of `file` durable. */
export async function syncDirectory(file: string): Promise<void> {
  const directory = await open(path.dirname(file), 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

const SQLITE_MAGIC = 'SQLite format 3\0';
const USER_VERSION_OFFSET = 60;

/**
 * `PRAGMA user_version` as SQLite keeps it, in the header (big-endian at offset 60), for a file of
 * `fileBytes` whose header is SQLite's and vouches for exactly that size (its page count, valid for
 * its change counter, times its page size); otherwise undefined, and only SQLite can say more.
 */
export function userVersionOf(header: Uint8Array, fileBytes: number): number | undefined {
  if (header.byteLength < HEADER_BYTES || Buffer.from(header.buffer, header.byteOffset, SQLITE_MAGIC.length).toString('latin1') !== SQLITE_MAGIC) return undefined;
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  const pageSize = view.getUint16(16) === 1 ? 65536 : view.getUint16(16);
  const pageCountValid = view.getUint32(92) === view.getUint32(CHANGE_COUNTER_OFFSET);
  if (!pageCountValid || view.getUint32(28) * pageSize !== fileBytes) return undefined;
  return view.getUint32(USER_VERSION_OFFSET);
}

/** The change counter in a SQLite header. */
export function changeCounterOf(header: Uint8Array): number {
  return header.byteLength >= CHANGE_COUNTER_OFFSET + 4 ? new DataView(header.buffer, header.byteOffset, header.byteLength).getUint32(CHANGE_COUNTER_OFFSET) : 0;
}

/**
 * Advances the change counter, as SQLite itself does on every commit, with the version-valid-for copy
 * and the page count, which keeps the header's page count trusted.
 */
function stampHeader(header: Uint8Array, changeCounter: number, bytes: number): void {
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  const pageSize = view.getUint16(16) === 1 ? 65536 : view.getUint16(16);
  view.setUint32(CHANGE_COUNTER_OFFSET, changeCounter);
  view.setUint32(VERSION_VALID_FOR_OFFSET, changeCounter);
  if (pageSize > 0) view.setUint32(PAGE_COUNT_OFFSET, Math.floor(bytes / pageSize));
}

/**
 * Writes `bytes` (a whole SQLite database) to a temp file beside `file`, with `changeCounter` in its
 * header, makes it durable, and renames it over `file`.
 */
export async function replaceFile(file: string, bytes: Uint8Array, changeCounter: number): Promise<void> {
  if (bytes.byteLength >= HEADER_BYTES) stampHeader(bytes, changeCounter, bytes.byteLength);
  await writeAndRename(file, async (temp) => {
    const handle = await open(temp, 'wx');
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
  });
}

/**
 * A new version of `file` made of its current bytes with `pages` (page number to bytes, `pageSize`
 * each) written over them, `bytes` long, `changeCounter` in its header; made durable and renamed over
 * `file` like replaceFile. The copy is a clone where the file system can make one (btrfs, XFS, APFS),
 * and otherwise a copy in the kernel: the bytes never pass through the catalog's memory.
 */
export async function replaceWithPages(file: string, pages: ReadonlyMap<number, Uint8Array>, pageSize: number, bytes: number, changeCounter: number): Promise<void> {
  await writeAndRename(file, async (temp) => {
    await copyFile(file, temp, constants.COPYFILE_FICLONE);
    const handle = await open(temp, 'r+');
    try {
      const numbers = [...pages.keys()].sort((a, b) => a - b);
      for (const page of numbers) {
        const position = page * pageSize;
        const length = Math.min(pageSize, bytes - position);
        if (length <= 0) continue;
        const data = pages.get(page)!;
        if (page === 0) stampHeader(data, changeCounter, bytes);
        await handle.write(data, 0, length, position);
      }
      if (!pages.has(0)) {
        const header = new Uint8Array(HEADER_BYTES);
        await handle.read(header, 0, HEADER_BYTES, 0);
        stampHeader(header, changeCounter, bytes);
        await handle.write(header, 0, HEADER_BYTES, 0);
      }
      await handle.truncate(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
  });
}

async function writeAndRename(file: string, write: (temp: string) => Promise<void>): Promise<void> {
  const temp = tempPathFor(file);
  try {
    await write(temp);
    await rename(temp, file);
    // The rename itself is only durable once the directory is.
    await syncDirectory(file);
  } catch (error) {
    await rm(temp, { force: true });
    throw new CatalogError(`cannot write the catalog ${file}: ${(error as Error).message}`, { cause: error });
  }
}

/** `<file>.<pid>.<random>.tmp`, as tempPathFor names them. */
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
