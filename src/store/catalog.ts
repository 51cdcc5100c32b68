/**
 * The local catalog: one SQLite file, one row per backup attempt (table `backups`) and per restore
 * attempt (`restores`), readable with the stock sqlite3 CLI.
 *
 * sql.js holds a database in memory, and writing the whole file on every save costs time in
 * proportion to the catalog (74 MiB at 100,000 rows). So the file is shared between processes like
 * this, with every cost bounded by what an operation touches, not by the catalog's size:
 *   - the file is opened page by page (lazy-file.ts): a command reads the pages its queries need;
 *   - a save takes an exclusive lock file (file-lock.ts), applies its changes over the file and the
 *     journal as they are (which checks them: ids unique, rows there to update), and appends the SQL
 *     that made them to the journal (journal.ts), durably;
 *   - a fold writes the file anew with the journal's changes in it (a copy with the changed pages
 *     written over) and renames it over the file, then removes the journal (catalog-file.ts). The
 *     file records the last record it holds, so a crash between the two loses nothing and applies
 *     nothing twice. Catalogs under 1 MiB fold on every save, which costs about what the append
 *     does, so sqlite3 sees every row at once; larger ones when the journal reaches 1/256 of the
 *     file or 256 KiB, which keeps the folds' share of each save about constant, and when rows are
 *     forgotten (FoldPolicy). Until then sqlite3 sees the file as of the last fold;
 *   - reads take no lock: they replay the journal over the file they opened, and start again if a
 *     fold replaced the file meanwhile;
 *   - writes that arrive while a save is under way are applied together, in the next single save.
 */
import type { BindParams, Database, SqlValue } from 'sql.js';
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CatalogError, NotFoundError } from '../errors.ts';
import {
  asDamaged,
  cannotRead,
  changeCounterOf,
  HEADER_BYTES,
  movedAsideHint,
  orphanedTempFiles,
  removeOrphanedTempFiles,
  replaceFile,
  replaceWithPages,
  userVersionOf,
} from './catalog-file.ts';
import { acquireLock, releaseLock } from './file-lock.ts';
import { appendRecord, encodeRecord, journalBytes, journalPath, readJournal, removeJournal, type Journal, type JournalRecord, type Statement } from './journal.ts';
import { openPaged, pagesInUse, type PagedFile } from './lazy-file.ts';
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
import { checkKnownVersion, compactIfMostlyFree, LATEST_SCHEMA_VERSION, readUserVersion, upgradeSchema } from './schema.ts';
import { sqlEngine } from './sql-engine.ts';

export type { BackupFilter, BackupRecord, BackupStatus, RestoreFilter, RestoreMode, RestoreRecord, RestoreStatus } from './rows.ts';
export { LATEST_SCHEMA_VERSION } from './schema.ts';

/** Like git: shorter prefixes would match too often to be worth accepting. */
const MIN_ID_PREFIX = 4;
const DEFAULT_LOCK_TIMEOUT_MS = 30_000;
/**
 * When a save folds. A fold rewrites the file, a cost in proportion to its size: folding when the
 * journal reaches a fraction of the file keeps the folds' share of each save constant (past 64 MiB
 * the journal's own bound comes first: a fold about every 250 saves). Folding a file under a
 * megabyte costs about what an append does, both mostly the wait for the disk: such a file folds on
 * every save, and sqlite3 sees every row at once.
 */
export interface FoldPolicy {
  /** Files smaller than this fold on every save. */
  belowBytes: number;
  /** Larger ones fold when the journal reaches this fraction of the file. */
  journalFraction: number;
}

const DEFAULT_FOLD_POLICY: FoldPolicy = { belowBytes: 1024 * 1024, journalFraction: 1 / 256 };
/**
 * Every command replays the journal (200 backups' records, two saves each, took 20-60 ms at 100,000
 * rows): beyond this it is folded whatever the file's size.
 */
const MAX_JOURNAL_BYTES = 256 * 1024;
/** Reads that found a fold under way start again; past this they read under the lock. */
const UNLOCKED_READ_ATTEMPTS = 4;

export interface CatalogOptions {
  lockTimeoutMs?: number;
  /** When saves fold; with zeros, only past the journal's bound. */
  foldPolicy?: FoldPolicy;
}

/** The catalog as one operation sees it: the file, opened page by page, with the journal replayed over it. */
interface View {
  db: Database;
  /** Undefined while there is no file, or an empty one: the database is then in memory only. */
  paged: PagedFile | undefined;
  fd: number | undefined;
  fileBytes: number;
  changeCounter: number;
  /** From the file's table catalog_journal; undefined before schema version 8. */
  fileId: string | undefined;
  foldedSeq: number;
  /** The journal of this file, as read; undefined when there is none (or it is another file's). */
  journal: Journal | undefined;
  /** The sequence number of the last change in the view. */
  lastSeq: number;
  /** Whether the file's schema was older: the view holds the upgrade, which a save folds in. */
  upgraded: boolean;
}

/** A fold replaced the file while a view was being opened without the lock. */
class FoldedMeanwhile extends Error {}

interface PendingWrite {
  change: (db: Database) => void;
  resolve: () => void;
  reject: (error: unknown) => void;
  /** Fold once the change is in: forgetting rows is the moment to give their pages back. */
  fold: boolean;
}

export class Catalog {
  readonly file: string;
  private readonly lockPath: string;
  private readonly lockTimeoutMs: number;
  private readonly foldPolicy: FoldPolicy;
  private readonly pending: PendingWrite[] = [];
  /** Settles when every write made so far is saved (or has failed). */
  private saving: Promise<void> | undefined;

  private constructor(file: string, options: CatalogOptions) {
    this.file = file;
    this.lockPath = `${file}.lock`;
    this.lockTimeoutMs = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
    this.foldPolicy = options.foldPolicy ?? DEFAULT_FOLD_POLICY;
  }

  /** Opens the catalog at `file`, creating it (and its directory) or upgrading its schema as needed. */
  static async open(file: string, options: CatalogOptions = {}): Promise<Catalog> {
    const catalog = new Catalog(path.resolve(file), options);
    try {
      await mkdir(path.dirname(catalog.file), { recursive: true });
    } catch (error) {
      throw new CatalogError(`cannot create the catalog's directory ${path.dirname(catalog.file)}: ${(error as Error).message}`, { cause: error });
    }
    // The header and page 1 only, which also tells a damaged or foreign file at once.
    const version = await catalog.fileSchemaVersion();
    // Saving writes a new or upgraded file (or says why not), and removes temp files left by a writer that was killed.
    if (version !== LATEST_SCHEMA_VERSION || (await orphanedTempFiles(catalog.file)).length > 0) await catalog.write(() => {});
    return catalog;
  }

  /**
   * Writes the journal's changes into the file and removes the journal: what a quiet moment is for.
   * Saves fold by themselves when the journal grows past its bound.
   */
  fold(): Promise<void> {
    return this.write(() => {}, true);
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
   * the history worth keeping, and the file gives the rest back (this save folds, and compacts).
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
    }, true);
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
    return (await this.fileSchemaVersion()) ?? 0;
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

  /**
   * The file's `PRAGMA user_version`, from its header (no SQLite needed: what a command that only
   * reads pays at start); from its first page through SQLite when the header is not SQLite's, which
   * then says what is wrong. Undefined when there is no file (or an empty one).
   */
  private async fileSchemaVersion(): Promise<number | undefined> {
    const opened = this.openFile();
    if (!opened) return undefined;
    const fromHeader = userVersionOf(opened.header, opened.bytes);
    if (fromHeader !== undefined) {
      closeSync(opened.fd);
      return fromHeader;
    }
    const SQL = await sqlEngine();
    const { db } = openPaged(SQL, opened.fd, opened.bytes, opened.header);
    try {
      return readUserVersion(db, this.file);
    } finally {
      db.close();
      closeSync(opened.fd);
    }
  }

  private openFile(): OpenedFile | undefined {
    let fd: number;
    try {
      fd = openSync(this.file, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw cannotRead(this.file, error);
    }
    try {
      const stats = fstatSync(fd, { bigint: true });
      if (stats.size > 0n) {
        const header = new Uint8Array(HEADER_BYTES);
        readSync(fd, header, 0, HEADER_BYTES, 0);
        return { fd, bytes: Number(stats.size), header, dev: stats.dev, ino: stats.ino };
      }
    } catch (error) {
      closeSync(fd);
      throw cannotRead(this.file, error);
    }
    closeSync(fd); // an empty file is a new database, as sqlite3 sees it
    return undefined;
  }

  /** Whether the path still names the file a view opened (a fold renames a new one over it). */
  private stillTheFile(opened: OpenedFile | undefined): boolean {
    try {
      const stats = statSync(this.file, { bigint: true });
      return opened ? stats.dev === opened.dev && stats.ino === opened.ino : stats.size === 0n;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return !opened;
      throw cannotRead(this.file, error);
    }
  }

  /**
   * The file, page by page, with the journal's records that follow its last fold replayed over it and
   * brought to the latest schema, all in memory. Without the lock, a fold may replace the file and
   * remove the journal between the two reads: FoldedMeanwhile then, and the caller starts again.
   */
  private async openView(locked: boolean): Promise<View> {
    const SQL = await sqlEngine();
    const opened = this.openFile();
    let db: Database;
    let paged: PagedFile | undefined;
    if (opened) ({ db, file: paged } = openPaged(SQL, opened.fd, opened.bytes, opened.header));
    else db = new SQL.Database();
    const view: View = {
      db, paged, fd: opened?.fd, fileBytes: opened?.bytes ?? 0, changeCounter: opened ? changeCounterOf(opened.header) : 0,
      fileId: undefined, foldedSeq: 0, journal: undefined, lastSeq: 0, upgraded: false,
    };
    try {
      const version = readUserVersion(db, this.file);
      checkKnownVersion(version, this.file);
      // Replayed and new changes stay in memory until a fold, however many: never spilled into the file's pages mid-transaction.
      db.exec('PRAGMA journal_mode = MEMORY; PRAGMA cache_spill = OFF; PRAGMA cache_size = -65536');
      if (version >= JOURNAL_SCHEMA_VERSION) {
        const row = db.exec('SELECT file_id, folded_seq FROM catalog_journal')[0]?.values[0];
        view.fileId = String(row?.[0] ?? '');
        view.foldedSeq = Number(row?.[1] ?? 0);
      }
      view.lastSeq = view.foldedSeq;
      const journal = view.fileId ? await readJournal(journalPath(this.file)) : undefined;
      if (!locked && !this.stillTheFile(opened)) throw new FoldedMeanwhile();
      if (journal && journal.fileId === view.fileId) {
        view.journal = journal;
        const records = journal.records.filter((record) => record.seq > view.foldedSeq);
        if (journal.baseSeq > view.foldedSeq || records.some((record, index) => record.seq !== view.foldedSeq + 1 + index)) {
          if (!locked) throw new FoldedMeanwhile();
          throw new CatalogError(
            `the catalog journal ${journalPath(this.file)} does not follow the catalog ${this.file}: it begins after change ${journal.baseSeq}, the file holds changes up to ${view.foldedSeq}`,
            { hint: `if the file was replaced by an older copy, move the journal aside (mv ${journalPath(this.file)} ${journalPath(this.file)}.broken): the catalog then holds what the file does` },
          );
        }
        this.replay(db, records);
        view.lastSeq = view.foldedSeq + records.length;
      }
      view.upgraded = upgradeSchema(db, this.file);
      return view;
    } catch (error) {
      closeView(view);
      throw error instanceof FoldedMeanwhile ? error : asDamaged(this.file, error);
    }
  }

  private replay(db: Database, records: readonly JournalRecord[]): void {
    if (records.length === 0) return;
    // The same few statements recur in every record: each is compiled once.
    const prepared = new Map<string, ReturnType<Database['prepare']>>();
    db.exec('BEGIN');
    try {
      for (const record of records) {
        try {
          for (const [method, sql, params] of record.statements) {
            if (method === 'exec' || !params) {
              db.exec(sql, params ?? undefined);
              continue;
            }
            let statement = prepared.get(sql);
            if (!statement) prepared.set(sql, (statement = db.prepare(sql)));
            statement.run(params);
          }
        } catch (error) {
          throw new CatalogError(`cannot apply change ${record.seq} of the catalog journal ${journalPath(this.file)} to ${this.file}: ${(error as Error).message}`, {
            hint: movedAsideHint(this.file),
            cause: error,
          });
        }
      }
    } finally {
      for (const statement of prepared.values()) statement.free();
    }
    db.exec('COMMIT');
  }

  /** Waits for the saves under way, so a process reads its own writes and never a change not saved yet. */
  private async read<T>(query: (db: Database) => T): Promise<T> {
    while (this.saving) await this.saving;
    for (let attempt = 1; ; attempt++) {
      let view: View;
      try {
        view = await this.openView(false);
      } catch (error) {
        if (!(error instanceof FoldedMeanwhile)) throw error;
        if (attempt >= UNLOCKED_READ_ATTEMPTS) return this.readLocked(query);
        await sleep(attempt * 10);
        continue;
      }
      return this.queryView(view, query);
    }
  }

  /** Runs a query on an open view and closes it; a SQLite error there means the file is damaged. */
  private queryView<T>(view: View, query: (db: Database) => T): T {
    try {
      return query(view.db);
    } catch (error) {
      throw asDamaged(this.file, error);
    } finally {
      closeView(view);
    }
  }

  /** For a reader that kept meeting folds: with the lock, none can happen. */
  private async readLocked<T>(query: (db: Database) => T): Promise<T> {
    const lock = await acquireLock(this.lockPath, this.lockTimeoutMs);
    try {
      return this.queryView(await this.openView(true), query);
    } finally {
      await releaseLock(lock);
    }
  }

  /** Resolves once the change is durable; a change that throws is undone and rejects with its error. */
  private write(change: (db: Database) => void, fold = false): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ change, resolve, reject, fold });
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
   * Lock, the file and journal as they are, each change in a savepoint of its own, one journal record
   * (or a fold) for the changes that succeeded, unlock; then each write is settled. Never throws.
   */
  private async save(writes: PendingWrite[]): Promise<void> {
    const failures = new Map<PendingWrite, unknown>();
    try {
      await sqlEngine(); // compile the WASM before taking the lock, not while holding it
      const lock = await acquireLock(this.lockPath, this.lockTimeoutMs);
      try {
        await removeOrphanedTempFiles(this.file);
        const view = await this.openView(true);
        try {
          const { db } = view;
          const statements: Statement[] = [];
          db.exec('BEGIN');
          for (const write of writes) {
            const made: Statement[] = [];
            db.exec('SAVEPOINT change');
            try {
              write.change(recording(db, made));
              db.exec('RELEASE change');
              statements.push(...made);
            } catch (error) {
              db.exec('ROLLBACK TO change; RELEASE change');
              failures.set(write, asDamaged(this.file, error));
            }
          }
          db.exec('COMMIT');
          await this.persist(view, statements, writes.some((write) => write.fold && !failures.has(write)));
        } finally {
          closeView(view);
        }
      } finally {
        await releaseLock(lock);
      }
    } catch (error) {
      for (const write of writes) if (!failures.has(write)) failures.set(write, asDamaged(this.file, error));
    }
    for (const write of writes) {
      if (failures.has(write)) write.reject(failures.get(write));
      else write.resolve();
    }
  }

  /** Makes the view's new changes durable: a journal record, or a fold when it is time for one. */
  private async persist(view: View, statements: Statement[], foldRequested: boolean): Promise<void> {
    const { db, paged } = view;
    const seq = view.lastSeq + (statements.length > 0 ? 1 : 0);
    if (!paged) {
      if (statements.length === 0 && !view.upgraded) return;
      // No file yet: a new, small one, whole.
      db.run('UPDATE catalog_journal SET folded_seq = ?', [seq]);
      await replaceFile(this.file, db.export(), 1);
      await removeJournal(this.file); // another file's, if any
      return;
    }
    if (seq === view.foldedSeq && !view.upgraded) {
      // Nothing the file lacks; a journal holding only folded changes (a fold was cut short) can go.
      if (foldRequested && view.journal) await removeJournal(this.file);
      return;
    }
    if (statements.length === 0 && !view.upgraded && !foldRequested) return;
    const record = statements.length > 0 ? encodeRecord({ seq, statements }) : undefined;
    const journalAfter = journalBytes(view.journal, record?.length ?? 0);
    const { belowBytes, journalFraction } = this.foldPolicy;
    const fold =
      foldRequested || view.upgraded || view.fileBytes < belowBytes || journalAfter >= MAX_JOURNAL_BYTES || (journalFraction > 0 && journalAfter >= view.fileBytes * journalFraction);
    if (!fold && record) {
      await appendRecord(this.file, view.journal, view.fileId!, view.foldedSeq, record);
      return;
    }
    // The file records the last change it holds: the journal's records up to it are skipped from now on,
    // so a crash before the journal is removed applies nothing twice.
    db.run('UPDATE catalog_journal SET folded_seq = ?', [seq]);
    // That commit wrote at least a page: if none reached the PagedFile, sql.js writes elsewhere now, and
    // the pages at hand are not the database.
    if (paged.writtenPages.size === 0) throw new CatalogError(`cannot fold the catalog ${this.file}: sql.js did not write through the paged file`);
    const changeCounter = (view.changeCounter + 1) >>> 0;
    if (compactIfMostlyFree(db) || !pagesInUse(db, paged)) await replaceFile(this.file, db.export(), changeCounter);
    else await replaceWithPages(this.file, paged.writtenPages, paged.pageSize, paged.size, changeCounter);
    await removeJournal(this.file);
  }
}

interface OpenedFile {
  fd: number;
  bytes: number;
  header: Uint8Array;
  dev: bigint;
  ino: bigint;
}

/** The schema version that has the table catalog_journal. */
const JOURNAL_SCHEMA_VERSION = 8;

function closeView(view: View): void {
  view.db.close();
  if (view.fd !== undefined) closeSync(view.fd);
}

/** The database as a change sees it, noting each statement the change runs, for the journal. */
function recording(db: Database, statements: Statement[]): Database {
  return new Proxy(db, {
    get(target, key) {
      if (key === 'run' || key === 'exec') {
        return (sql: string, params?: BindParams) => {
          const result = key === 'run' ? target.run(sql, params) : target.exec(sql, params);
          statements.push([key, sql, journaled(params)]);
          return result;
        };
      }
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** Parameters as the journal's JSON keeps them, exactly: text, finite numbers, null. */
function journaled(params: BindParams | undefined): BindParams | null {
  if (params === undefined || params === null) return null;
  for (const value of Object.values(params)) {
    if (value === null || typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value))) continue;
    throw new CatalogError(`the catalog journal cannot hold the parameter ${String(value)}`);
  }
  return params;
}
