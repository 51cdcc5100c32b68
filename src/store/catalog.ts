/**
 * The local catalog: one SQLite file, one row per backup attempt (table `backups`) and per restore
 * attempt (`restores`), readable with the stock sqlite3 CLI.
 *
 * sql.js holds a database in memory, so the file is shared between processes like this: a write takes
 * an exclusive lock file, re-reads the file (keeping what other processes wrote since), applies its
 * change and replaces the file atomically (temp file, fsync, rename, fsync of the directory). Reads
 * take no lock: the file is only ever replaced whole, so they see either the old or the new one. A
 * writer killed at any moment leaves the previous file intact; the next writer breaks the lock it left
 * (its pid is gone) and removes its temp file.
 */
import initSqlJs, { type Database, type SqlJsStatic, type SqlValue } from 'sql.js';
import { closeSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { link, mkdir, open, readdir, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { randomBytes, randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CatalogError, NotFoundError } from '../errors.ts';
import { pluginVersion } from '../version.ts';
import { loadSqlWasm } from './sql-wasm.ts';

export type BackupStatus = 'running' | 'succeeded' | 'failed' | 'interrupted' | 'pruned';

export interface BackupRecord {
  id: string;
  context: string | null;
  /** The API server URL. */
  cluster: string | null;
  credentialSource: string | null;
  namespace: string;
  pvc: string;
  pv: string | null;
  storageClass: string | null;
  capacity: string | null;
  node: string | null;
  helperPod: string | null;
  /** ISO-8601 UTC, as `Date.prototype.toISOString()` writes it (so text order is time order). */
  startedAt: string;
  finishedAt: string | null;
  status: BackupStatus;
  /** When the artifact was deleted; the row keeps its artifactPath for the record. */
  prunedAt: string | null;
  failedStage: string | null;
  message: string | null;
  artifactPath: string | null;
  compression: string | null;
  /** Size of the artifact on disk. */
  bytes: number | null;
  /** Size of the uncompressed tar stream. */
  tarBytes: number | null;
  fileCount: number | null;
  sha256: string | null;
  /** Copy attempts: more than 1 when a cut copy was retried (0 for rows before schema 3). */
  attempts: number;
  /** Filesystem or Block (null before schema 4). A Block backup's artifact is a compressed raw image. */
  volumeMode: string | null;
  /** Who the helper ran as: "root", or the user and groups and where they came from (null before schema 4). */
  runAs: string | null;
  /** Paths the helper could not read, left out of a partial backup (--allow-partial). */
  unreadable: number | null;
  /** sha256 of the uncompressed content: the raw device image of a Block backup. */
  contentSha256: string | null;
  pluginVersion: string;
}

export interface BackupFilter {
  namespace?: string;
  pvc?: string;
  status?: BackupStatus;
  limit?: number;
}

export type RestoreStatus = 'running' | 'succeeded' | 'failed' | 'interrupted';
export type RestoreMode = 'empty-only' | 'overwrite';

/** One restore attempt (dry runs too) of a backup into a claim. */
export interface RestoreRecord {
  id: string;
  backupId: string;
  context: string | null;
  /** The API server URL. */
  cluster: string | null;
  namespace: string;
  /** The target claim. */
  pvc: string;
  /** Whether the restore created the claim. */
  createdClaim: boolean;
  mode: RestoreMode;
  dryRun: boolean;
  node: string | null;
  helperPod: string | null;
  /** ISO-8601 UTC, as for backups. */
  startedAt: string;
  finishedAt: string | null;
  status: RestoreStatus;
  failedStage: string | null;
  message: string | null;
  /** Bytes of the tar stream (or the raw image) written into the claim. */
  bytes: number | null;
  entries: number | null;
  /** Who the helper ran as (null before schema 4). */
  runAs: string | null;
  pluginVersion: string;
}

export interface RestoreFilter {
  namespace?: string;
  pvc?: string;
  backupId?: string;
  limit?: number;
}

/** Schema changes, applied in order; a file's `PRAGMA user_version` counts those it has. Append only. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE backups (
     id TEXT PRIMARY KEY,
     context TEXT,
     cluster TEXT,
     credential_source TEXT,
     namespace TEXT NOT NULL,
     pvc TEXT NOT NULL,
     pv TEXT,
     storage_class TEXT,
     capacity TEXT,
     node TEXT,
     helper_pod TEXT,
     started_at TEXT NOT NULL,
     finished_at TEXT,
     status TEXT NOT NULL,
     failed_stage TEXT,
     message TEXT,
     artifact_path TEXT,
     compression TEXT,
     bytes INTEGER,
     tar_bytes INTEGER,
     file_count INTEGER,
     sha256 TEXT,
     plugin_version TEXT NOT NULL
   );
   CREATE INDEX backups_by_pvc ON backups (namespace, pvc, started_at);`,
  `ALTER TABLE backups ADD COLUMN pruned_at TEXT;
   CREATE TABLE restores (
     id TEXT PRIMARY KEY,
     backup_id TEXT NOT NULL,
     context TEXT,
     cluster TEXT,
     namespace TEXT NOT NULL,
     pvc TEXT NOT NULL,
     created_claim INTEGER NOT NULL,
     mode TEXT NOT NULL,
     dry_run INTEGER NOT NULL,
     node TEXT,
     helper_pod TEXT,
     started_at TEXT NOT NULL,
     finished_at TEXT,
     status TEXT NOT NULL,
     failed_stage TEXT,
     message TEXT,
     bytes INTEGER,
     entries INTEGER,
     plugin_version TEXT NOT NULL
   );
   CREATE INDEX restores_by_pvc ON restores (namespace, pvc, started_at);`,
  `ALTER TABLE backups ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;`,
  `ALTER TABLE backups ADD COLUMN volume_mode TEXT;
   ALTER TABLE backups ADD COLUMN run_as TEXT;
   ALTER TABLE backups ADD COLUMN unreadable INTEGER;
   ALTER TABLE backups ADD COLUMN content_sha256 TEXT;
   ALTER TABLE restores ADD COLUMN run_as TEXT;`,
];

export const LATEST_SCHEMA_VERSION = MIGRATIONS.length;

/** How one table's rows map to records: camelCase fields, snake_case columns. */
interface Table<R extends { id: string }> {
  name: string;
  /** What a row is called in messages. */
  noun: string;
  columns: { readonly [F in keyof R]-?: string };
  /** Fields stored as INTEGER 0/1 (SQLite has no boolean type). */
  booleans: readonly (keyof R)[];
}

const BACKUPS: Table<BackupRecord> = {
  name: 'backups',
  noun: 'backup',
  columns: {
    id: 'id',
    context: 'context',
    cluster: 'cluster',
    credentialSource: 'credential_source',
    namespace: 'namespace',
    pvc: 'pvc',
    pv: 'pv',
    storageClass: 'storage_class',
    capacity: 'capacity',
    node: 'node',
    helperPod: 'helper_pod',
    startedAt: 'started_at',
    finishedAt: 'finished_at',
    status: 'status',
    prunedAt: 'pruned_at',
    failedStage: 'failed_stage',
    message: 'message',
    artifactPath: 'artifact_path',
    compression: 'compression',
    bytes: 'bytes',
    tarBytes: 'tar_bytes',
    fileCount: 'file_count',
    sha256: 'sha256',
    attempts: 'attempts',
    volumeMode: 'volume_mode',
    runAs: 'run_as',
    unreadable: 'unreadable',
    contentSha256: 'content_sha256',
    pluginVersion: 'plugin_version',
  },
  booleans: [],
};

const RESTORES: Table<RestoreRecord> = {
  name: 'restores',
  noun: 'restore',
  columns: {
    id: 'id',
    backupId: 'backup_id',
    context: 'context',
    cluster: 'cluster',
    namespace: 'namespace',
    pvc: 'pvc',
    createdClaim: 'created_claim',
    mode: 'mode',
    dryRun: 'dry_run',
    node: 'node',
    helperPod: 'helper_pod',
    startedAt: 'started_at',
    finishedAt: 'finished_at',
    status: 'status',
    failedStage: 'failed_stage',
    message: 'message',
    bytes: 'bytes',
    entries: 'entries',
    runAs: 'run_as',
    pluginVersion: 'plugin_version',
  },
  booleans: ['createdClaim', 'dryRun'],
};

function fieldsOf<R extends { id: string }>(table: Table<R>): (keyof R)[] {
  return Object.keys(table.columns) as (keyof R)[];
}

/** Like git: shorter prefixes would match too often to be worth accepting. */
const MIN_ID_PREFIX = 4;
const DEFAULT_LOCK_TIMEOUT_MS = 30_000;

let sqlJsReady: Promise<SqlJsStatic> | undefined;

function sqlJs(): Promise<SqlJsStatic> {
  // Emscripten hands wasmBinary to WebAssembly.instantiate, which takes any byte view; its type says ArrayBuffer.
  sqlJsReady ??= initSqlJs({ wasmBinary: loadSqlWasm() as unknown as ArrayBuffer });
  return sqlJsReady;
}

export class Catalog {
  readonly file: string;
  private readonly lockPath: string;
  private readonly lockTimeoutMs: number;

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
    const { db, upgraded } = await catalog.load();
    try {
      checkIntegrity(db, catalog.file);
    } finally {
      db.close();
    }
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
      const exact = selectRows(db, BACKUPS, 'WHERE id = ?', [idOrPrefix])[0];
      if (exact) return exact;
      if (idOrPrefix.length < MIN_ID_PREFIX) {
        throw new NotFoundError(`no backup with id "${idOrPrefix}" in the catalog ${this.file}`, `an id prefix needs at least ${MIN_ID_PREFIX} characters`);
      }
      // substr, not LIKE: ids may contain % or _, and LIKE ignores case.
      const matches = selectRows(db, BACKUPS, 'WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id', [idOrPrefix]);
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
        // Throwing here discards the in-memory copy: the file is never replaced.
        if (db.getRowsModified() === 0) throw this.unknownId(BACKUPS, id);
      }
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
    const db = new (await sqlJs()).Database(await readCatalogFile(this.file));
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
    return this.read((db) => selectRows(db, table, 'WHERE id = ?', [id])[0]);
  }

  private async insert<R extends { id: string }>(table: Table<R>, record: R): Promise<void> {
    const fields = fieldsOf(table);
    const columns = fields.map((field) => table.columns[field]);
    await this.write((db) => {
      db.run(
        `INSERT INTO ${table.name} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`,
        fields.map((field) => toSqlValue(record[field])),
      );
    });
  }

  private async update<R extends { id: string }>(table: Table<R>, id: string, changes: Partial<Omit<R, 'id'>>): Promise<void> {
    const values = changes as Partial<R>;
    const fields = fieldsOf(table).filter((field) => field !== 'id' && values[field] !== undefined);
    if (fields.length === 0) {
      if (!(await this.get(table, id))) throw this.unknownId(table, id);
      return;
    }
    await this.write((db) => {
      db.run(
        `UPDATE ${table.name} SET ${fields.map((field) => `${table.columns[field]} = ?`).join(', ')} WHERE id = ?`,
        [...fields.map((field) => toSqlValue(values[field])), id],
      );
      if (db.getRowsModified() === 0) throw this.unknownId(table, id);
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
    return this.read((db) => selectRows(db, table, clause, params));
  }

  /** A fresh in-memory copy of the file (empty when there is none), at the latest schema version. */
  private async load(): Promise<{ db: Database; upgraded: boolean }> {
    const db = new (await sqlJs()).Database(await readCatalogFile(this.file));
    try {
      return { db, upgraded: upgradeSchema(db, this.file) };
    } catch (error) {
      db.close();
      throw error;
    }
  }

  private async read<T>(query: (db: Database) => T): Promise<T> {
    const { db } = await this.load();
    try {
      return query(db);
    } finally {
      db.close();
    }
  }

  /** Lock, re-read, change, replace the file atomically, unlock. */
  private async write(change: (db: Database) => void): Promise<void> {
    await sqlJs(); // compile the WASM before taking the lock, not while holding it
    const lock = await acquireLock(this.lockPath, this.lockTimeoutMs);
    try {
      await removeOrphanedTempFiles(this.file);
      const { db } = await this.load();
      try {
        change(db);
        // export() closes and reopens sql.js's connection, freeing every statement: keep none across it.
        await replaceFile(this.file, db.export());
      } finally {
        db.close();
      }
    } finally {
      await releaseLock(lock);
    }
  }
}

function toSqlValue(value: unknown): SqlValue {
  if (typeof value === 'boolean') return value ? 1 : 0;
  return (value ?? null) as SqlValue;
}

function selectRows<R extends { id: string }>(db: Database, table: Table<R>, clause: string, params: SqlValue[]): R[] {
  const fields = fieldsOf(table);
  const statement = db.prepare(`SELECT * FROM ${table.name} ${clause}`, params);
  try {
    const records: R[] = [];
    while (statement.step()) {
      const row = statement.getAsObject();
      const record = Object.fromEntries(fields.map((field) => [field, row[table.columns[field]] ?? null])) as Record<keyof R, unknown>;
      for (const field of table.booleans) record[field] = record[field] === 1;
      records.push(record as R);
    }
    return records;
  } finally {
    statement.free();
  }
}

// ---- the file and its schema

function movedAsideHint(file: string): string {
  return `move it aside (mv ${file} ${file}.broken) and a new, empty catalog is created on the next run`;
}

/** The file's bytes, or undefined when it does not exist (yet). */
async function readCatalogFile(file: string): Promise<Uint8Array | undefined> {
  try {
    return await readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CatalogError(`cannot read the catalog ${file}: ${(error as Error).message}`, { hint: movedAsideHint(file), cause: error });
  }
}

function readUserVersion(db: Database, file: string): number {
  try {
    return Number(db.exec('PRAGMA user_version')[0]?.values[0]?.[0] ?? 0);
  } catch (error) {
    throw new CatalogError(`the catalog ${file} is not a readable SQLite database: ${(error as Error).message}`, {
      hint: movedAsideHint(file),
      cause: error,
    });
  }
}

/** Applies the missing migrations in one transaction; true when there were any. */
function upgradeSchema(db: Database, file: string): boolean {
  const version = readUserVersion(db, file);
  if (version > LATEST_SCHEMA_VERSION) {
    throw new CatalogError(
      `the catalog ${file} has schema version ${version}, newer than kubectl-nkvm ${pluginVersion} understands (${LATEST_SCHEMA_VERSION})`,
      { hint: 'upgrade kubectl-nkvm' },
    );
  }
  if (version === LATEST_SCHEMA_VERSION) return false;
  db.exec('BEGIN');
  try {
    MIGRATIONS.slice(version).forEach((migration, index) => {
      db.exec(migration);
      db.exec(`PRAGMA user_version = ${version + index + 1}`);
    });
    db.exec('COMMIT');
  } catch (error) {
    db.exec('ROLLBACK');
    throw new CatalogError(`cannot upgrade the catalog ${file} from schema version ${version}: ${(error as Error).message}`, {
      hint: movedAsideHint(file),
      cause: error,
    });
  }
  return true;
}

function checkIntegrity(db: Database, file: string): void {
  let result: string;
  try {
    result = db.exec('PRAGMA quick_check').flatMap((rows) => rows.values.map((row) => String(row[0]))).join('; ');
  } catch (error) {
    result = (error as Error).message;
  }
  if (result !== 'ok') throw new CatalogError(`the catalog ${file} is damaged: ${result}`, { hint: movedAsideHint(file) });
}

/** Writes `bytes` to a temp file beside `file`, makes it durable, and renames it over `file`. */
async function replaceFile(file: string, bytes: Uint8Array): Promise<void> {
  const temp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const handle = await open(temp, 'wx');
    try {
      await handle.writeFile(bytes);
      await handle.sync();
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
  } catch (error) {
    await rm(temp, { force: true });
    throw new CatalogError(`cannot write the catalog ${file}: ${(error as Error).message}`, { cause: error });
  }
}

/** `<file>.<pid>.<random>.tmp`, as replaceFile names them. */
async function orphanedTempFiles(file: string): Promise<string[]> {
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
async function removeOrphanedTempFiles(file: string): Promise<void> {
  for (const temp of await orphanedTempFiles(file)) await rm(temp, { force: true });
}

// ---- the lock file

interface LockHolder {
  pid: number;
  hostname: string;
  since: string;
  /** Tells this acquisition apart from any other, even by the same process. */
  token: string;
}

interface HeldLock {
  path: string;
  content: string;
}

interface ObservedLock {
  content: string;
  /** Undefined while the holder has created the file but not yet written it, or if it died in between. */
  holder: LockHolder | undefined;
  inode: number;
  ageMs: number;
}

/** A holder writes the file right after creating it; one still empty after this long was left by a crash. */
const INCOMPLETE_LOCK_GRACE_MS = 5_000;
const MAX_BACKOFF_MS = 250;

async function acquireLock(lockPath: string, timeoutMs: number): Promise<HeldLock> {
  const holder: LockHolder = { pid: process.pid, hostname: os.hostname(), since: new Date().toISOString(), token: randomUUID() };
  const content = `${JSON.stringify(holder)}\n`;
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    if (tryCreateLock(lockPath, content)) return { path: lockPath, content };
    const observed = await inspectLock(lockPath);
    if (!observed) continue; // released since we tried
    if (isStale(observed)) {
      await breakStaleLock(lockPath, observed);
      continue;
    }
    const remainingMs = deadline - Date.now();
    if (remainingMs <= 0) throw lockTimeout(lockPath, timeoutMs, observed.holder);
    // Exponential backoff with jitter, so waiting writers do not retry in lockstep.
    const backoffMs = Math.min(MAX_BACKOFF_MS, 5 * 2 ** attempt) * (0.5 + Math.random());
    await sleep(Math.min(backoffMs, remainingMs));
  }
}

/** Synchronous from create to write, so the file is empty only if the process dies in between. */
function tryCreateLock(lockPath: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(lockPath, 'wx');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new CatalogError(`cannot create the catalog lock ${lockPath}: ${(error as Error).message}`, { cause: error });
  }
  try {
    writeSync(fd, content);
  } catch (error) {
    unlinkSync(lockPath);
    throw new CatalogError(`cannot write the catalog lock ${lockPath}: ${(error as Error).message}`, { cause: error });
  } finally {
    closeSync(fd);
  }
  return true;
}

async function inspectLock(lockPath: string): Promise<ObservedLock | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(lockPath, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CatalogError(`cannot read the catalog lock ${lockPath}: ${(error as Error).message}`, { cause: error });
  }
  try {
    const stats = await handle.stat();
    const content = await handle.readFile('utf8');
    return { content, holder: parseHolder(content), inode: stats.ino, ageMs: Date.now() - stats.mtimeMs };
  } finally {
    await handle.close();
  }
}

function parseHolder(content: string): LockHolder | undefined {
  try {
    const parsed = JSON.parse(content) as Partial<LockHolder>;
    // pid 0 or below would address process groups, which always look alive.
    return Number.isInteger(parsed.pid) && parsed.pid! > 0 && typeof parsed.hostname === 'string' ? (parsed as LockHolder) : undefined;
  } catch {
    return undefined;
  }
}

/** Only a holder on this host can be known dead; a lock from another host is always respected. */
function isStale(observed: ObservedLock): boolean {
  if (!observed.holder) return observed.ageMs > INCOMPLETE_LOCK_GRACE_MS;
  return observed.holder.hostname === os.hostname() && !isProcessAlive(observed.holder.pid);
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // exists, but is not ours to signal
  }
}

/**
 * Moves the lock aside and checks that what moved is the stale lock we looked at. Another waiter may
 * have broken it first and a new holder taken the lock since; then that live lock is put back. (If yet
 * another process took the lock in that instant, the put-back fails and two writers overlap once: it
 * takes a crashed holder and three writers racing within microseconds.)
 */
async function breakStaleLock(lockPath: string, observed: ObservedLock): Promise<void> {
  const aside = `${lockPath}.${process.pid}.${randomBytes(6).toString('hex')}.stale`;
  try {
    await rename(lockPath, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new CatalogError(`cannot remove the stale catalog lock ${lockPath}: ${(error as Error).message}`, { cause: error });
  }
  try {
    const moved = await inspectLock(aside);
    if (moved && (moved.inode !== observed.inode || moved.content !== observed.content)) {
      await link(aside, lockPath).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
      });
    }
  } finally {
    await rm(aside, { force: true });
  }
}

/** Removes the lock only if it is still ours. */
async function releaseLock(lock: HeldLock): Promise<void> {
  const current = await inspectLock(lock.path);
  if (current?.content === lock.content) await rm(lock.path, { force: true });
}

function lockTimeout(lockPath: string, timeoutMs: number, holder: LockHolder | undefined): CatalogError {
  const waited = `timed out after ${timeoutMs / 1000}s waiting for the catalog lock ${lockPath}`;
  if (!holder) {
    return new CatalogError(`${waited}, held by a process that has not written its pid into it yet`, {
      hint: `if no kubectl-nkvm is running, remove ${lockPath}`,
    });
  }
  return new CatalogError(`${waited}, held by pid ${holder.pid} on ${holder.hostname} since ${holder.since}`, {
    hint: `another kubectl-nkvm is writing the catalog; if pid ${holder.pid} is not a kubectl-nkvm, remove ${lockPath}`,
  });
}
