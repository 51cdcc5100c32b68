/**
 * The local catalog: one SQLite file, one row per backup attempt (table `backups`) and per restore
 * attempt (`restores`), readable with the stock sqlite3 CLI.
 *
 * sql.js holds a database in memory, so the file is shared between processes like this: a save takes
 * an exclusive lock file (file-lock.ts), makes sure it has the file's latest version, applies its
 * changes and replaces the file atomically (catalog-file.ts). Reads take no lock. Since a save writes
 * the whole file, saves are made few and the file is read rarely:
 *   - the image of the file is kept between operations and read again only when another process has
 *     replaced the file since (or after a few idle seconds, to give the memory back);
 *   - writes that arrive while a save is under way are applied together, in the next single save;
 *   - the newest-first list and id prefixes are served by indexes, not by reading every row.
 */
import initSqlJs, { type Database, type SqlJsStatic, type SqlValue } from 'sql.js';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { CatalogError, NotFoundError } from '../errors.ts';
import { asDamaged, currentVersion, orphanedTempFiles, readCatalogFile, removeOrphanedTempFiles, replaceFile, sameVersion, type FileVersion } from './catalog-file.ts';
import { acquireLock, releaseLock } from './file-lock.ts';
import {
  BACKUPS,
  firstRecord,
  insertRecord,
  RESTORES,
  selectRecords,
  toSqlValue,
  updateRecord,
  type BackupFilter,
  type BackupRecord,
  type BackupStatus,
  type RestoreFilter,
  type RestoreRecord,
  type Table,
} from './rows.ts';
import { compactIfMostlyFree, readUserVersion, upgradeSchema } from './schema.ts';
import { loadSqlWasm } from './sql-wasm.ts';

export type { BackupFilter, BackupRecord, BackupStatus, RestoreFilter, RestoreMode, RestoreRecord, RestoreStatus } from './rows.ts';
export { LATEST_SCHEMA_VERSION } from './schema.ts';

/** Like git: shorter prefixes would match too often to be worth accepting. */
const MIN_ID_PREFIX = 4;
const DEFAULT_LOCK_TIMEOUT_MS = 30_000;
/**
 * How long the file's image is kept after the last operation: a small backup records its outcome
 * seconds after its start, while a long copy should not hold a large catalog in memory throughout.
 */
const KEEP_IMAGE_MS = 10_000;

let sqlJsReady: Promise<SqlJsStatic> | undefined;

function sqlJs(): Promise<SqlJsStatic> {
  // Emscripten hands wasmBinary to WebAssembly.instantiate, which takes any byte view; its type says ArrayBuffer.
  sqlJsReady ??= initSqlJs({ wasmBinary: loadSqlWasm() as unknown as ArrayBuffer });
  return sqlJsReady;
}

/** The file in memory, at the latest schema version. */
interface Image {
  db: Database;
  /** The version of the file it was read from or last saved as; undefined while there is no file. */
  version: FileVersion | undefined;
}

interface PendingWrite {
  change: (db: Database) => void;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export class Catalog {
  readonly file: string;
  private readonly lockPath: string;
  private readonly lockTimeoutMs: number;
  private image: Image | undefined;
  private dropImageTimer: NodeJS.Timeout | undefined;
  private readonly pending: PendingWrite[] = [];
  /** Settles when every write made so far is saved (or has failed). */
  private saving: Promise<void> | undefined;

  private constructor(file: string, lockTimeoutMs: number) {
    this.file = file;
    this.lockPath = `${file}.lock`;
    this.lockTimeoutMs = lockTimeoutMs;
  }

  /** Opens the catalog at `file`, creating it (and its directory) or upgrading its schema as needed. */
  static async open(file: string, options: { lockTimeoutMs?: number } = {}): Promise<Catalog> {
    const catalog = new Catalog(path.resolve(file), options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS);
    try {
      await mkdir(path.dirname(catalog.file), { recursive: true });
    } catch (error) {
      throw new CatalogError(`cannot create the catalog's directory ${path.dirname(catalog.file)}: ${(error as Error).message}`, { cause: error });
    }
    const { upgraded } = await catalog.load();
    catalog.dropImageLater();
    // Saving writes a new or upgraded file, and removes temp files left by a writer that was killed.
    if (upgraded || (await orphanedTempFiles(catalog.file)).length > 0) await catalog.write(() => {});
    return catalog;
  }

  insertBackup(record: BackupRecord): Promise<void> {
    return this.insert(BACKUPS, record);
  }

  /** Sets the given fields (an undefined value leaves a field as it is); NotFoundError for an unknown id. */
  updateBackup(id: string, changes: Partial<Omit<BackupRecord, 'id'>>): Promise<void> {
    return this.update(BACKUPS, id, changes);
  }

  getBackup(id: string): Promise<BackupRecord | undefined> {
    return this.get(BACKUPS, id);
  }

  /** Exact id, or a unique prefix of at least 4 characters (like git). */
  findBackup(idOrPrefix: string): Promise<BackupRecord> {
    return this.read((db) => {
      const exact = firstRecord(db, BACKUPS, 'WHERE id = ?', [idOrPrefix]);
      if (exact) return exact;
      if (idOrPrefix.length < MIN_ID_PREFIX) {
        throw new NotFoundError(`no backup with id "${idOrPrefix}" in the catalog ${this.file}`, `an id prefix needs at least ${MIN_ID_PREFIX} characters`);
      }
      // The ids a prefix starts follow it in id order: walk the primary key's index from it, stop at the first that differs.
      // startsWith, not LIKE: ids may contain % or _, and LIKE ignores case.
      const matches: BackupRecord[] = [];
      for (const record of selectRecords(db, BACKUPS, 'WHERE id >= ? ORDER BY id', [idOrPrefix])) {
        if (!record.id.startsWith(idOrPrefix)) break;
        matches.push(record);
      }
      if (matches.length === 1) return matches[0]!;
      if (matches.length === 0) throw new NotFoundError(`no backup with id or id prefix "${idOrPrefix}" in the catalog ${this.file}`);
      const shown = matches.slice(0, 5).map((match) => match.id).join(', ');
      throw new CatalogError(`the id prefix "${idOrPrefix}" matches ${matches.length} backups: ${shown}${matches.length > 5 ? ', ...' : ''}`, {
        hint: 'give more characters of the id',
      });
    });
  }

  /** Newest first. */
  listBackups(filter: BackupFilter = {}): Promise<BackupRecord[]> {
    return this.list(BACKUPS, filter, ['namespace', 'pvc', 'status']);
  }

  /**
   * Marks the backups pruned (their artifacts deleted) in one save: all of them, or, when any id is
   * unknown (NotFoundError), none.
   */
  async markPruned(ids: readonly string[], prunedAt: string): Promise<void> {
    if (ids.length === 0) return;
    const status: BackupStatus = 'pruned';
    await this.write((db) => {
      for (const id of ids) {
        db.run(`UPDATE backups SET status = ?, pruned_at = ? WHERE id = ?`, [status, prunedAt, id]);
        // Throwing undoes this write's changes: the file is not replaced for it.
        if (db.getRowsModified() === 0) throw this.unknownId(BACKUPS, id);
      }
    });
  }

  /**
   * Deletes the rows of backups that have no artifact any more (failed, interrupted or pruned), with
   * the rows of their restores, in one save: all of them, or none when an id is unknown (NotFoundError)
   * or its backup is running or still has its artifact (CatalogError). Retention: the catalog keeps
   * the history worth keeping, and every save writes only that.
   */
  async forgetBackups(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.write((db) => {
      for (const id of ids) {
        const backup = firstRecord(db, BACKUPS, 'WHERE id = ?', [id]);
        if (!backup) throw this.unknownId(BACKUPS, id);
        if (backup.status === 'running' || backup.status === 'succeeded') {
          throw new CatalogError(`backup ${id} is ${backup.status}: only the rows of backups without an artifact can be forgotten`, {
            hint: backup.status === 'running' ? 'wait for it to finish' : 'prune it first',
          });
        }
      }
      const list = JSON.stringify(ids);
      db.run('DELETE FROM restores WHERE backup_id IN (SELECT value FROM json_each(?))', [list]);
      db.run('DELETE FROM backups WHERE id IN (SELECT value FROM json_each(?))', [list]);
    });
  }

  insertRestore(record: RestoreRecord): Promise<void> {
    return this.insert(RESTORES, record);
  }

  /** Sets the given fields (an undefined value leaves a field as it is); NotFoundError for an unknown id. */
  updateRestore(id: string, changes: Partial<Omit<RestoreRecord, 'id'>>): Promise<void> {
    return this.update(RESTORES, id, changes);
  }

  getRestore(id: string): Promise<RestoreRecord | undefined> {
    return this.get(RESTORES, id);
  }

  /** Newest first. */
  listRestores(filter: RestoreFilter = {}): Promise<RestoreRecord[]> {
    return this.list(RESTORES, filter, ['namespace', 'pvc', 'backupId']);
  }

  /** The schema version of the file on disk. */
  async schemaVersion(): Promise<number> {
    const read = await readCatalogFile(this.file);
    const db = new (await sqlJs()).Database(read?.bytes);
    try {
      return readUserVersion(db, this.file);
    } finally {
      db.close();
    }
  }

  private unknownId<R extends { id: string }>(table: Table<R>, id: string): NotFoundError {
    return new NotFoundError(`no ${table.noun} with id "${id}" in the catalog ${this.file}`);
  }

  private get<R extends { id: string }>(table: Table<R>, id: string): Promise<R | undefined> {
    return this.read((db) => firstRecord(db, table, 'WHERE id = ?', [id]));
  }

  private insert<R extends { id: string }>(table: Table<R>, record: R): Promise<void> {
    return this.write((db) => insertRecord(db, table, record));
  }

  private async update<R extends { id: string }>(table: Table<R>, id: string, changes: Partial<Omit<R, 'id'>>): Promise<void> {
    // Nothing to set: only whether the row exists, which needs no save.
    if (Object.values(changes).every((value) => value === undefined)) {
      if (!(await this.get(table, id))) throw this.unknownId(table, id);
      return;
    }
    await this.write((db) => {
      if (!updateRecord(db, table, id, changes)) throw this.unknownId(table, id);
    });
  }

  /** Rows whose given fields equal the filter's values, newest first, at most `limit`. */
  private list<R extends { id: string; startedAt: string }, F extends keyof R>(
    table: Table<R>,
    filter: Partial<Pick<R, F>> & { limit?: number },
    filterable: readonly F[],
  ): Promise<R[]> {
    const conditions: string[] = [];
    const params: SqlValue[] = [];
    for (const field of filterable) {
      const value = filter[field];
      if (value === undefined) continue;
      conditions.push(`${table.columns[field]} = ?`);
      params.push(toSqlValue(value));
    }
    let clause = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
    clause += ` ORDER BY ${table.columns.startedAt} DESC, id DESC`;
    if (filter.limit !== undefined) {
      clause += ' LIMIT ?';
      params.push(filter.limit);
    }
    return this.read((db) => [...selectRecords(db, table, clause, params)]);
  }

  /** Reads the file (an empty database when there is none) and brings it to the latest schema, in memory. */
  private async load(): Promise<{ image: Image; upgraded: boolean }> {
    const read = await readCatalogFile(this.file);
    const db = new (await sqlJs()).Database(read?.bytes);
    let upgraded: boolean;
    try {
      upgraded = upgradeSchema(db, this.file);
    } catch (error) {
      db.close();
      throw asDamaged(this.file, error);
    }
    this.dropImage();
    this.image = { db, version: read?.version };
    return { image: this.image, upgraded };
  }

  /** The image of the file as it is now: the one kept if the file has not been replaced since, else read anew. */
  private async currentImage(): Promise<Image> {
    const version = await currentVersion(this.file);
    if (this.image && sameVersion(this.image.version, version)) return this.image;
    return (await this.load()).image;
  }

  private dropImage(): void {
    clearTimeout(this.dropImageTimer);
    this.image?.db.close();
    this.image = undefined;
  }

  private dropImageLater(): void {
    clearTimeout(this.dropImageTimer);
    // unref: a kept image never keeps the process alive.
    this.dropImageTimer = setTimeout(() => {
      if (!this.saving) this.dropImage();
    }, KEEP_IMAGE_MS).unref();
  }

  /** Waits for the saves under way, so a process reads its own writes and never a change not saved yet. */
  private async read<T>(query: (db: Database) => T): Promise<T> {
    let image: Image;
    do {
      await this.saving;
      image = await this.currentImage();
    } while (this.saving); // a save began while the file was checked: its changes may be in the image already
    try {
      return query(image.db);
    } catch (error) {
      throw asDamaged(this.file, error);
    } finally {
      this.dropImageLater();
    }
  }

  /** Resolves once the change is in the file; a change that throws is undone and rejects with its error. */
  private write(change: (db: Database) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ change, resolve, reject });
      this.saving ??= this.saveAllPending();
    });
  }

  /** Each round saves the writes made while the previous one was saving. */
  private async saveAllPending(): Promise<void> {
    try {
      while (this.pending.length > 0) await this.save(this.pending.splice(0));
    } finally {
      // In the same step as the last check of `pending` (and always after write() has set `saving`:
      // save() awaits before it returns), so no write is left waiting for a round that never comes.
      this.saving = undefined;
    }
  }

  /**
   * Lock, the file's latest version, each change in a savepoint of its own, one replacement of the
   * file if any change succeeded, unlock; then each write is settled. Never throws.
   */
  private async save(writes: PendingWrite[]): Promise<void> {
    const failures = new Map<PendingWrite, unknown>();
    try {
      await sqlJs(); // compile the WASM before taking the lock, not while holding it
      const lock = await acquireLock(this.lockPath, this.lockTimeoutMs);
      try {
        await removeOrphanedTempFiles(this.file);
        const image = await this.currentImage();
        const { db } = image;
        db.exec('BEGIN');
        for (const write of writes) {
          db.exec('SAVEPOINT change');
          try {
            write.change(db);
            db.exec('RELEASE change');
          } catch (error) {
            db.exec('ROLLBACK TO change; RELEASE change');
            failures.set(write, asDamaged(this.file, error));
          }
        }
        db.exec('COMMIT');
        if (failures.size < writes.length) {
          compactIfMostlyFree(db);
          image.version = await replaceFile(this.file, db.export(), ((image.version?.changeCounter ?? 0) + 1) >>> 0);
        }
      } finally {
        await releaseLock(lock);
      }
    } catch (error) {
      // The image may hold changes the file does not: read the file again next time.
      this.dropImage();
      for (const write of writes) if (!failures.has(write)) failures.set(write, asDamaged(this.file, error));
    }
    for (const write of writes) {
      if (failures.has(write)) write.reject(failures.get(write));
      else write.resolve();
    }
    this.dropImageLater();
  }
}
