/**
 * What the catalog records, and how a record maps to a row and back: camelCase fields, snake_case
 * columns, booleans as INTEGER 0/1 (SQLite has no boolean type), absent values as NULL.
 */
import type { Database, SqlValue } from 'sql.js';

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
  /** Paths that vanished while the backup ran (null before schema 6). */
  vanished: number | null;
  /** Files that changed while the backup ran, archived as read (null before schema 6). */
  changed: number | null;
  /** The repository a snapshot went into, as the user named it (null for an artifact; before schema 7). */
  repository: string | null;
  snapshotId: string | null;
  /** Files new since the parent snapshot (a first backup: all of them). */
  filesNew: number | null;
  /** Files changed since the parent (read again) and unmodified (taken from it, not read); null before schema 9. */
  filesChanged: number | null;
  filesUnmodified: number | null;
  /** Content bytes read from the claim, and bytes that crossed the API server (listing and tar); null before schema 9. */
  bytesRead: number | null;
  bytesSent: number | null;
  /** The hooks the backup ran, as JSON (backup/hooks.ts HookRecord[]); null when none ran or before schema 10. */
  hooks: string | null;
  /** What the backup read, as JSON (backup/volume-snapshot.ts BackupSource): live or a VolumeSnapshot, and why; null before schema 11. */
  source: string | null;
  /** Bytes the repository grew by: new blobs, compressed and encrypted. */
  bytesAdded: number | null;
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

/** How one table's rows map to records. */
export interface Table<R extends { id: string }> {
  name: string;
  /** What a row is called in messages. */
  noun: string;
  columns: { readonly [F in keyof R]-?: string };
  /** Fields stored as INTEGER 0/1. */
  booleans: readonly (keyof R)[];
}

export const BACKUPS: Table<BackupRecord> = {
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
    vanished: 'vanished',
    changed: 'changed',
    repository: 'repository',
    snapshotId: 'snapshot_id',
    filesNew: 'files_new',
    filesChanged: 'files_changed',
    filesUnmodified: 'files_unmodified',
    bytesRead: 'bytes_read',
    bytesSent: 'bytes_sent',
    hooks: 'hooks',
    source: 'source',
    bytesAdded: 'bytes_added',
    contentSha256: 'content_sha256',
    pluginVersion: 'plugin_version',
  },
  booleans: [],
};

export const RESTORES: Table<RestoreRecord> = {
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

export function toSqlValue(value: unknown): SqlValue {
  if (typeof value === 'boolean') return value ? 1 : 0;
  return (value ?? null) as SqlValue;
}

/**
 * The records of the rows `clause` (WHERE, ORDER BY, LIMIT) selects, in its order, one at a time: a
 * caller that stops early reads no further rows.
 */
export function* selectRecords<R extends { id: string }>(db: Database, table: Table<R>, clause: string, params: SqlValue[]): Generator<R> {
  const fields = fieldsOf(table);
  const statement = db.prepare(`SELECT ${fields.map((field) => table.columns[field]).join(', ')} FROM ${table.name} ${clause}`, params);
  try {
    while (statement.step()) {
      const values = statement.get();
      const record = Object.fromEntries(fields.map((field, index) => [field, values[index] ?? null])) as Record<keyof R, unknown>;
      for (const field of table.booleans) record[field] = record[field] === 1;
      yield record as R;
    }
  } finally {
    statement.free();
  }
}

export function firstRecord<R extends { id: string }>(db: Database, table: Table<R>, clause: string, params: SqlValue[]): R | undefined {
  for (const record of selectRecords(db, table, clause, params)) return record; // returning frees the statement
  return undefined;
}

export function insertRecord<R extends { id: string }>(db: Database, table: Table<R>, record: R): void {
  const fields = fieldsOf(table);
  const columns = fields.map((field) => table.columns[field]);
  db.run(
    `INSERT INTO ${table.name} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`,
    fields.map((field) => toSqlValue(record[field])),
  );
}

/** Sets the fields `changes` gives a value (undefined leaves a field as it is); false when no row has the id. */
export function updateRecord<R extends { id: string }>(db: Database, table: Table<R>, id: string, changes: Partial<Omit<R, 'id'>>): boolean {
  const values = changes as Partial<R>;
  const fields = fieldsOf(table).filter((field) => field !== 'id' && values[field] !== undefined);
  if (fields.length === 0) return firstRecord(db, table, 'WHERE id = ?', [id]) !== undefined;
  db.run(
    `UPDATE ${table.name} SET ${fields.map((field) => `${table.columns[field]} = ?`).join(', ')} WHERE id = ?`,
    [...fields.map((field) => toSqlValue(values[field])), id],
  );
  return db.getRowsModified() > 0;
}
