/**
 * Where a repository's files live: a local directory or an S3 bucket. The repository code above it
 * knows only these operations and restic's file types; a backend knows nothing of the format.
 *
 * Layout, as restic's default layout for both local and S3 (doc/design.rst, "Repository Layout"):
 *   config                      the one config file
 *   keys/<id>, locks/<id>, snapshots/<id>, index/<id>
 *   data/<first two hex digits of id>/<id>
 */
export type FileType = 'config' | 'keys' | 'locks' | 'snapshots' | 'index' | 'data';

export interface FileInfo {
  /** The file's name: its ID in hex ("config" for the config file). */
  name: string;
  size: number;
}

export interface Backend {
  /** Where the repository is, as a user wrote it (a path, or s3:https://host/bucket/prefix). */
  readonly location: string;
  /** True when the repository's config file exists. */
  exists(): Promise<boolean>;
  /**
   * Stores a whole file. It appears under its name complete or not at all (temporary name, fsync,
   * rename, directory fsync for local; one PUT for S3). Writing a name that exists is an error for
   * every type but 'locks' (restic never overwrites).
   */
  write(type: FileType, name: string, data: Uint8Array): Promise<void>;
  /** Reads a whole file, or `length` bytes from `offset`. Missing: BackendNotFoundError. */
  read(type: FileType, name: string, range?: { offset: number; length: number }): Promise<Buffer>;
  stat(type: FileType, name: string): Promise<FileInfo>;
  /** Every file of a type (for 'data', across the 256 subdirectories), in no particular order. */
  list(type: FileType): AsyncIterable<FileInfo>;
  /** Removes a file; one already gone is fine. */
  remove(type: FileType, name: string): Promise<void>;
  /** Creates the layout (directories for local; nothing for S3 but a check the bucket answers). */
  create(): Promise<void>;
  /** Releases what the backend keeps open (S3's pooled connections); a local directory has nothing to close. */
  close?(): Promise<void>;
  /**
   * A data file to build piece by piece where it will live, named once complete: a local
   * repository's packs are never held whole in memory. Absent where a file must be sent whole (S3).
   */
  spool?(): Promise<SpoolFile>;
}

/** A data file being built (spool()): bytes appended in order, then committed under its name or discarded. */
export interface SpoolFile {
  /** Appends `data`, which the caller may reuse once this resolves. */
  append(data: Uint8Array): Promise<void>;
  /** `length` bytes from `offset` of what was appended (a blob read back before its pack is written). */
  read(offset: number, length: number): Promise<Buffer>;
  /** Makes the file data/<name>, as write() would: complete or not at all. May be tried again after a failure. */
  commit(name: string): Promise<void>;
  /** Removes the file, unless committed. */
  discard(): Promise<void>;
}

/** The file does not exist. */
export class BackendNotFoundError extends Error {
  readonly location: string;
  readonly type: FileType;
  readonly fileName: string;
  constructor(location: string, type: FileType, fileName: string) {
    super(`${type === 'config' ? 'config' : `${type}/${fileName}`} not found in repository ${location}`);
    this.name = 'BackendNotFoundError';
    this.location = location;
    this.type = type;
    this.fileName = fileName;
  }
}

/** A backend operation failed in a way the user must fix or wait out: it names the place and the cause. */
export class BackendError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BackendError';
  }
}

/** restic's path of a file inside the repository, the same for every backend. */
export function repositoryPath(type: FileType, name: string): string {
  if (type === 'config') return 'config';
  if (type === 'data') return `data/${name.slice(0, 2)}/${name}`;
  return `${type}/${name}`;
}
