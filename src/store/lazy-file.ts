/**
 * A catalog file opened in sql.js without reading it whole: SQLite reads only the pages a query needs
 * from the file, and the pages it writes stay in memory, where a fold finds them to write out. A list
 * or a lookup in a million-row catalog reads a few dozen pages instead of 740 MiB.
 *
 * sql.js keeps its database as a file of Emscripten's in-memory file system, which it does not
 * expose. What it does with that file's storage is small and fixed (sql.js 1.16, pinned): a new
 * Database stores the bytes it is given as `bytes.slice()`; reads copy `storage.subarray(start, end)`;
 * writes call `storage.set(bytes, offset)` after making sure `storage.length` covers them. So the
 * bytes handed to sql.js here are a stand-in whose slice() is a PagedFile: it answers subarray() from
 * the pages written so far or else from the file, keeps what set() writes, and claims a length no
 * write reaches, so the file system never copies it into an array of its own. (Truncating the file,
 * which only VACUUM does, does copy it: callers check `pagesInUse()` before trusting `writtenPages`.)
 */
import type { Database, SqlJsStatic } from 'sql.js';
import { readSync } from 'node:fs';

/** SQLite's header: the page size (1 stands for 65536). */
const PAGE_SIZE_OFFSET = 16;

export class PagedFile {
  /** Pages written since the file was opened, by page number (0-based), whole. */
  readonly writtenPages = new Map<number, Uint8Array>();
  /** Whether sql.js took this as its storage (a change in sql.js could stop it). */
  adopted = false;
  /** The size of the file with its writes. */
  size: number;
  readonly pageSize: number;
  private readonly fd: number;
  private readonly fileSize: number;

  constructor(fd: number, fileSize: number, header: Uint8Array) {
    this.fd = fd;
    this.fileSize = fileSize;
    this.size = fileSize;
    const raw = header.byteLength >= PAGE_SIZE_OFFSET + 2 ? (header[PAGE_SIZE_OFFSET]! << 8) | header[PAGE_SIZE_OFFSET + 1]! : 0;
    // Any size works as the unit of what is kept; SQLite's own keeps a fold's writes page-aligned.
    this.pageSize = raw === 1 ? 65536 : raw >= 512 ? raw : 4096;
  }

  /** What the in-memory file system takes for the storage's capacity: more than any write needs. */
  get length(): number {
    return Number.MAX_SAFE_INTEGER;
  }

  subarray(start: number, end: number): Uint8Array {
    const bytes = new Uint8Array(Math.max(0, end - start));
    const fromFile = Math.min(end, this.fileSize) - start;
    let read = 0;
    while (read < fromFile) {
      const count = readSync(this.fd, bytes, read, fromFile - read, start + read);
      if (count === 0) break; // the file is shorter than it was: SQLite sees zeros and calls it damaged
      read += count;
    }
    for (let page = Math.floor(start / this.pageSize); page * this.pageSize < end; page++) {
      const written = this.writtenPages.get(page);
      if (!written) continue;
      const pageStart = page * this.pageSize;
      const from = Math.max(start, pageStart);
      const to = Math.min(end, pageStart + this.pageSize);
      bytes.set(written.subarray(from - pageStart, to - pageStart), from - start);
    }
    return bytes;
  }

  set(source: Uint8Array, offset: number): void {
    const end = offset + source.byteLength;
    for (let page = Math.floor(offset / this.pageSize); page * this.pageSize < end; page++) {
      const pageStart = page * this.pageSize;
      let written = this.writtenPages.get(page);
      if (!written) {
        // A partial write keeps the rest of the page as it was.
        const whole = offset <= pageStart && end >= pageStart + this.pageSize;
        written = whole ? new Uint8Array(this.pageSize) : this.subarray(pageStart, pageStart + this.pageSize);
        this.writtenPages.set(page, written);
      }
      const from = Math.max(offset, pageStart);
      const to = Math.min(end, pageStart + this.pageSize);
      written.set(source.subarray(from - offset, to - offset), from - pageStart);
    }
    this.size = Math.max(this.size, end);
  }
}

/**
 * Opens the file behind `fd` (`size` bytes, at least SQLite's 100-byte header, which `header` holds)
 * as a sql.js database that reads pages as it needs them.
 */
export function openPaged(SQL: SqlJsStatic, fd: number, size: number, header: Uint8Array): { db: Database; file: PagedFile } {
  const file = new PagedFile(fd, size, header);
  const adopt = () => {
    file.adopted = true;
    return file;
  };
  const standIn = { length: size, subarray: (start: number, end: number) => file.subarray(start, end), slice: adopt };
  const db = new SQL.Database(standIn as unknown as Uint8Array);
  if (!file.adopted) {
    db.close();
    throw new Error('sql.js no longer stores a database the way lazy-file.ts expects: the catalog cannot be opened page by page');
  }
  return { db, file };
}

/** Whether SQLite's idea of the file's size is still the PagedFile's (it is not after a truncation). */
export function pagesInUse(db: Database, file: PagedFile): boolean {
  const pragma = (name: string) => Number(db.exec(`PRAGMA ${name}`)[0]?.values[0]?.[0] ?? 0);
  return pragma('page_count') * pragma('page_size') === file.size;
}
