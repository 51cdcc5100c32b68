/**
 * The catalog database's layout: its tables and indexes (migrations, counted by `PRAGMA
 * user_version`), its page size, and when it is compacted.
 */
import type { Database } from 'sql.js';
import { CatalogError } from '../errors.ts';
import { pluginVersion } from '../version.ts';
import { movedAsideHint } from './catalog-file.ts';

/** Schema changes, applied in order; a file's `PRAGMA user_version` counts those it has. Append only. */
export const MIGRATIONS: readonly string[] = [
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
  // Newest first is how backups are listed: with this index a page of them is read, not the whole table sorted.
  `CREATE INDEX backups_by_start ON backups (started_at, id);`,
  `ALTER TABLE backups ADD COLUMN vanished INTEGER;
   ALTER TABLE backups ADD COLUMN changed INTEGER;`,
  `ALTER TABLE backups ADD COLUMN repository TEXT;
   ALTER TABLE backups ADD COLUMN snapshot_id TEXT;
   ALTER TABLE backups ADD COLUMN files_new INTEGER;
   ALTER TABLE backups ADD COLUMN bytes_added INTEGER;`,
  // Saves append to a journal beside the file (journal.ts): which file a journal belongs to, and the
  // last of its records the file holds. Older versions, which would read the file without the
  // journal, refuse a file at this version.
  `CREATE TABLE catalog_journal (file_id TEXT NOT NULL, folded_seq INTEGER NOT NULL);
   INSERT INTO catalog_journal VALUES (lower(hex(randomblob(16))), 0);`,
  // What an incremental backup into a repository read and moved (backups before this: null).
  `ALTER TABLE backups ADD COLUMN files_changed INTEGER;
   ALTER TABLE backups ADD COLUMN files_unmodified INTEGER;
   ALTER TABLE backups ADD COLUMN bytes_read INTEGER;
   ALTER TABLE backups ADD COLUMN bytes_sent INTEGER;`,
  // The hooks a backup ran, as JSON: command, pod, container, exit code, duration, error (null: none ran).
  `ALTER TABLE backups ADD COLUMN hooks TEXT;`,
  // What a backup read, as JSON: the live claim or a VolumeSnapshot of it, and why (null: before this).
  `ALTER TABLE backups ADD COLUMN source TEXT;`,
];

export const LATEST_SCHEMA_VERSION = MIGRATIONS.length;

/**
 * A backup row takes 600 to 700 bytes: with 4 KiB pages (SQLite's default) about a tenth of the table
 * is left unused at the ends of pages, with 8 KiB pages a fiftieth. Set when a file is created or
 * compacted.
 */
const PAGE_SIZE = 8192;

export function readUserVersion(db: Database, file: string): number {
  try {
    return Number(db.exec('PRAGMA user_version')[0]?.values[0]?.[0] ?? 0);
  } catch (error) {
    throw new CatalogError(`the catalog ${file} is not a readable SQLite database: ${(error as Error).message}`, {
      hint: movedAsideHint(file),
      cause: error,
    });
  }
}

/** Throws for a file from a newer kubectl-nkvm, which this one must not read or write. */
export function checkKnownVersion(version: number, file: string): void {
  if (version > LATEST_SCHEMA_VERSION) {
    throw new CatalogError(
      `the catalog ${file} has schema version ${version}, newer than kubectl-nkvm ${pluginVersion} understands (${LATEST_SCHEMA_VERSION})`,
      { hint: 'upgrade kubectl-nkvm' },
    );
  }
}

/** Applies the missing migrations in one transaction; true when there were any. */
export function upgradeSchema(db: Database, file: string): boolean {
  const version = readUserVersion(db, file);
  checkKnownVersion(version, file);
  if (version === LATEST_SCHEMA_VERSION) return false;
  // Takes effect only while the database has no page yet, that is, for a new file.
  db.exec(`PRAGMA page_size = ${PAGE_SIZE}`);
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

/**
 * Forgotten rows leave free pages, which every fold still copies: once they are a quarter of the
 * file, the database is rebuilt without them (VACUUM, outside any transaction). True when it was.
 */
export function compactIfMostlyFree(db: Database): boolean {
  const pragma = (name: string) => Number(db.exec(`PRAGMA ${name}`)[0]?.values[0]?.[0] ?? 0);
  if (pragma('freelist_count') * 4 <= pragma('page_count')) return false;
  db.exec(`PRAGMA page_size = ${PAGE_SIZE}; VACUUM`);
  return true;
}
