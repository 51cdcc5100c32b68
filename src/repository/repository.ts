/**
 * A restic repository (format version 2) over a backend: init and open with a password, blobs saved
 * deduplicated into packs (data and tree blobs in separate packs, zstd-compressed, ~16 MiB each),
 * index files, snapshots, and reading all of it back.
 *
 * Order of writes, as restic's: packs first, then the index files that list them, then the snapshot
 * that refers to the trees. A backup interrupted at any point leaves only packs that nothing refers
 * to yet (which `restic check` accepts and `restic prune` removes), never a snapshot whose blobs are
 * missing.
 */
import { BackendNotFoundError, type Backend } from './backends/backend.ts';
import { encodeConfig, newConfig, parseConfig, type RepositoryConfig } from './config.ts';
import { decrypt, encrypt, OVERHEAD, randomMasterKey, sha256, sha256Pieces, type MasterKey } from './crypto.ts';
import { encodeIndexFiles, Index, MAX_BLOBS_PER_INDEX_FILE } from './index.ts';
import { addKey, DEFAULT_KDF, openWithPassword, type KdfParams, type KeyOwner } from './key.ts';
import { decodeHeader, headerRange, PackWriter, type BlobType, type FinishedPack, type PackedBlob } from './pack.ts';
import { decodeSnapshot, encodeSnapshot, snapshotTimeNs, type Snapshot, type SnapshotWithId } from './snapshot.ts';
import { decodeTree, type Node } from './tree.ts';
import { NodesByName, treeNodesOf, type TreeNodes } from './tree-nodes.ts';
import { BlobCompressor, compress, decompress, joinedBlob, wholeBlob, type BlobSource } from './compression.ts';
import { addGarbage } from '../young-garbage.ts';
import { MainThreadLoad, Sealer, SEAL_ON_WORKER_AT, sealingWorkerHelps } from './sealer.ts';
import type { SealedBlob } from './seal.ts';

/** What saving a blob allocates besides its bytes (hash, nonce, MAC, index entry): ~16 KiB a small file. */
const BLOB_GARBAGE = 16 * 1024;

/** Packs written at once while the next one fills: each holds a pack's buffer (PACK_SIZE), or its file, until it is written. */
const PACK_WRITES_UNDER_WAY = 1;

/** A tree of this share of a pack or more is written in its pack at once. */
const LARGE_TREE_SHARE = 8;

/** restic's default pack size. */
export const PACK_SIZE = 16 * 1024 * 1024;

export class RepositoryExistsError extends Error {
  constructor(location: string) {
    super(`repository ${location} already exists (it has a config file)`);
    this.name = 'RepositoryExistsError';
  }
}

export class NoRepositoryError extends Error {
  constructor(location: string) {
    super(`there is no repository at ${location} (no config file)`);
    this.name = 'NoRepositoryError';
  }
}

/** A blob's plaintext does not hash to its ID, or the index and the pack disagree. */
export class BlobCorruptedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BlobCorruptedError';
  }
}

export interface RepositoryOptions {
  /** Compress blobs and unpacked files (version 2 only); restic's --compression auto is the default. */
  compression?: boolean;
  packSize?: number;
  /**
   * Seal large chunks on a worker thread, beside the chunking; by default once the main thread is
   * saturated with a CPU idle beside it (MainThreadLoad), where the process may use a second CPU.
   */
  sealingWorker?: boolean;
}

/** A finished pack on its way to the backend: its buffer is the writer's again once it is written. */
interface PackWrite {
  pack: FinishedPack;
  buffer: Buffer | undefined;
  packer: PackWriter;
  /** The write under way, if one is: it never rejects, it sets `failure`. */
  attempt?: Promise<void> | undefined;
  failure?: unknown;
}

export interface SaveStats {
  dataBlobs: number;
  treeBlobs: number;
  /** Plaintext bytes of new blobs. */
  dataAdded: number;
  /** Bytes of new blobs as stored (compressed, encrypted). */
  dataAddedPacked: number;
}

/**
 * A blob's plaintext from its bytes in a pack: decrypted (UnauthenticatedError when the MAC fails),
 * decompressed when the index gives an uncompressed length, and checked against its ID.
 */
export function unsealBlob(key: MasterKey, type: BlobType, id: string, sealed: Buffer, uncompressedLength?: number): Buffer {
  const stored = decrypt(key, sealed, `${type} blob ${id}`);
  let plaintext: Buffer;
  try {
    plaintext = uncompressedLength ? decompress(stored, uncompressedLength) : stored;
  } catch (error) {
    throw new BlobCorruptedError(`${type} blob ${id} does not decompress: ${(error as Error).message}`);
  }
  if (uncompressedLength && plaintext.length !== uncompressedLength) throw new BlobCorruptedError(`${type} blob ${id}: ${plaintext.length} bytes, the index says ${uncompressedLength}`);
  if (sha256(plaintext).toString('hex') !== id) throw new BlobCorruptedError(`${type} blob ${id} does not hash to its ID`);
  return plaintext;
}

export class Repository {
  readonly backend: Backend;
  readonly config: RepositoryConfig;
  readonly key: MasterKey;
  readonly keyId: string;
  readonly index = new Index();
  /** Loading, when opened with `loadIndex: 'meanwhile'` and indexLoaded() has not yet been awaited. */
  private indexLoading: Promise<void> | undefined;
  readonly stats: SaveStats = { dataBlobs: 0, treeBlobs: 0, dataAdded: 0, dataAddedPacked: 0 };
  private readonly compression: boolean;
  private readonly packSize: number;
  private readonly packers: Record<BlobType, PackWriter>;
  /** Blobs in a packer not yet written: where to find their bytes. */
  private readonly pending: Record<BlobType, Map<string, number>> = { data: new Map(), tree: new Map() };
  /** Packs finished and not yet written (being written, failed, or waiting), and their blobs by ID. */
  private readonly packWrites = new Set<PackWrite>();
  private readonly writing: Record<BlobType, Map<string, { write: PackWrite; blob: PackedBlob }>> = { data: new Map(), tree: new Map() };
  /** Packs written whose index file is not yet written. */
  private unindexed: { id: string; blobs: PackedBlob[] }[] = [];
  private unindexedBlobs = 0;
  /** The blob being added: one at a time, as a pack's buffer is reused once it is written. */
  private adding: Promise<unknown> = Promise.resolve();
  private readonly compressor = new BlobCompressor();
  /** Whether large chunks are sealed on a worker thread (started on first use); undefined until decided, unless the options say. */
  private sealingWorker: boolean | undefined;
  /** Measured from the first large chunk on: opening the repository (scrypt) keeps the thread busy too. */
  private load: MainThreadLoad | undefined;
  private sealer: Sealer | undefined;
  /** IDs of the chunks on the sealing worker, not yet in a pack. */
  private readonly onWorker = new Set<string>();

  private constructor(backend: Backend, config: RepositoryConfig, key: MasterKey, keyId: string, options: RepositoryOptions) {
    this.backend = backend;
    this.config = config;
    this.key = key;
    this.keyId = keyId;
    this.compression = config.version >= 2 && options.compression !== false;
    this.packSize = options.packSize ?? PACK_SIZE;
    this.sealingWorker = options.sealingWorker;
    // Tree packs are few and may be large (a directory of 100,000 files: 11 MiB): no buffer is kept for the next.
    const spool = backend.spool && (() => backend.spool!());
    this.packers = { data: new PackWriter(this.packSize, { spool }), tree: new PackWriter(this.packSize, { keepsSpare: false, spool }) };
  }

  /** Creates a new repository: layout, key file, config. Refuses a location that already has a config. */
  static async init(backend: Backend, password: string, options: RepositoryOptions & { polynomial?: bigint; kdf?: KdfParams } = {}): Promise<Repository> {
    if (await backend.exists()) throw new RepositoryExistsError(backend.location);
    await backend.create();
    const master = randomMasterKey();
    const config = newConfig(options.polynomial);
    const keyId = await addKey(backend, master, password, options.kdf ?? DEFAULT_KDF);
    await backend.write('config', 'config', encrypt(master, encodeConfig(config)));
    return new Repository(backend, config, master, keyId, options);
  }

  /**
   * Opens with a password (WrongPasswordError when no key file opens), then reads and checks the
   * config and loads the index. `loadIndex: false` leaves the index empty, for a check that reads
   * the index files itself and must carry on past a damaged one; `'meanwhile'` loads it while the
   * caller does other things (a backup starts its helper pod), until indexLoaded().
   */
  static async open(backend: Backend, password: string, options: RepositoryOptions & { loadIndex?: boolean | 'meanwhile' } = {}): Promise<Repository> {
    if (!(await backend.exists())) throw new NoRepositoryError(backend.location);
    const key = await openWithPassword(backend, password);
    const config = parseConfig(decrypt(key.master, await backend.read('config', 'config'), 'config'), backend.location);
    const repository = new Repository(backend, config, key.master, key.id, options);
    if (options.loadIndex === 'meanwhile') {
      repository.indexLoading = repository.loadIndex();
      repository.indexLoading.catch(() => {}); // told by indexLoaded()
    } else if (options.loadIndex !== false) await repository.loadIndex();
    return repository;
  }

  /** The index opened with `loadIndex: 'meanwhile'`, loaded: blobs can be looked up. */
  async indexLoaded(): Promise<void> {
    await this.indexLoading;
    this.indexLoading = undefined;
  }

  /** Adds a key file that opens this repository with another password. */
  addKey(password: string, kdf: KdfParams = DEFAULT_KDF, owner: KeyOwner = {}): Promise<string> {
    return addKey(this.backend, this.key, password, kdf, owner);
  }

  private async loadIndex(): Promise<void> {
    for await (const file of this.backend.list('index')) this.index.addFile(await this.loadUnpacked('index', file.name));
    this.index.compact();
  }

  /** An index, snapshot or lock file's plaintext: decrypted, decompressed when it starts with version byte 2. */
  async loadUnpacked(type: 'index' | 'snapshots' | 'locks', id: string): Promise<Buffer> {
    const raw = await this.backend.read(type, id);
    if (sha256(raw).toString('hex') !== id) throw new BlobCorruptedError(`${type}/${id} does not hash to its name: the file is damaged`);
    const plaintext = decrypt(this.key, raw, `${type}/${id}`);
    if (this.config.version < 2 || plaintext.length === 0 || plaintext[0] === 0x7b || plaintext[0] === 0x5b) return plaintext;
    if (plaintext[0] !== 2) throw new Error(`${type}/${id}: unsupported encoding version ${plaintext[0]}`);
    return decompress(plaintext.subarray(1));
  }

  /** Stores an index, snapshot or lock file; its name is the SHA-256 of what is stored. */
  async saveUnpacked(type: 'index' | 'snapshots' | 'locks', plaintext: Buffer): Promise<string> {
    const body = this.compression ? Buffer.concat([Buffer.from([2]), compress(plaintext)]) : plaintext;
    const sealed = encrypt(this.key, body);
    const id = sha256(sealed).toString('hex');
    await this.backend.write(type, id, sealed);
    return id;
  }

  /** The index, to look a blob up in: one still loading would say "not there" of what the repository has. */
  private get loadedIndex(): Index {
    if (this.indexLoading) throw new Error('the repository\'s index is still loading: await indexLoaded() first');
    return this.index;
  }

  hasBlob(type: BlobType, id: string): boolean {
    return this.loadedIndex.has(type, id) || this.pending[type].has(id) || this.writing[type].has(id);
  }

  /**
   * Saves a blob unless the repository has it; returns its ID and whether it was new. A blob in
   * pieces (a large directory's tree) is hashed and compressed piece by piece, never joined unless
   * it is stored uncompressed.
   */
  saveBlob(type: BlobType, plaintext: Buffer | BlobSource): Promise<{ id: string; added: boolean }> {
    const source = Buffer.isBuffer(plaintext) ? wholeBlob(plaintext) : plaintext;
    // Every blob's plaintext stands for as many bytes of input and ciphertext soon garbage.
    addGarbage(source.length + BLOB_GARBAGE);
    return this.serially(async () => {
      const id = (source.whole ? sha256(source.whole) : sha256Pieces(source.pieces())).toString('hex');
      if (this.hasBlob(type, id)) return { id, added: false };
      const compressed = this.compression ? this.compressor.compress(source) : undefined;
      const stored = compressed ?? joinedBlob(source);
      const uncompressedLength = compressed ? source.length : undefined;
      const blob = await this.addToPack(type, id, stored.length + OVERHEAD, (packer) => packer.seal(this.key, type, id, stored, uncompressedLength));
      this.count(type, source.length, blob);
      return { id, added: true };
    });
  }

  /**
   * Starts saving a large data chunk, for the caller to go on chunking meanwhile: it is hashed here
   * and, when new, compressed and encrypted on the sealing worker. The chunk may be reused as soon
   * as this returns. Chunks are stored in the order they were given, as saveBlob's are. Undefined
   * for a chunk to save with saveBlob instead: a small one, or no worker.
   */
  saveChunkOnWorker(chunk: Buffer): Promise<{ id: string; added: boolean }> | undefined {
    if (chunk.length < SEAL_ON_WORKER_AT || !this.sealsOnWorker()) return undefined;
    this.sealer ??= new Sealer(this.key, this.compression);
    if (!this.sealer.available) return undefined;
    const id = sha256(chunk).toString('hex');
    // Known, or on its way: nothing to seal (an unchanged file read again costs its hashing only).
    if (this.hasBlob('data', id) || this.onWorker.has(id)) return this.serially(async () => ({ id, added: false }));
    let sealing: Promise<SealedBlob>;
    try {
      sealing = this.sealer.seal(chunk);
    } catch {
      return undefined; // no worker could be made: saveBlob seals it here
    }
    this.onWorker.add(id);
    sealing.catch(() => undefined); // its failure is the saving's, in order, below
    const length = chunk.length;
    addGarbage(2 * length + BLOB_GARBAGE);
    return this.serially(async () => {
      try {
        const { sealed, uncompressedLength } = await sealing;
        const blob = await this.addToPack('data', id, sealed.length, (packer) => packer.add('data', id, sealed, uncompressedLength));
        this.count('data', length, blob);
        return { id, added: true };
      } finally {
        this.onWorker.delete(id);
      }
    });
  }

  /** Whether the worker is wanted: once it would help (MainThreadLoad), for the rest of this repository's work. */
  private sealsOnWorker(): boolean {
    if (this.sealingWorker === undefined && (this.load ??= new MainThreadLoad()).workerWouldHelp()) this.sealingWorker = sealingWorkerHelps();
    return this.sealingWorker === true;
  }

  /**
   * Waits until nothing is under way (blobs being saved, packs being written), whatever each comes
   * to. An archive that fails calls it before it rejects, so that its caller, which then lets go of
   * the lock, never has a pack landing behind it.
   */
  async settle(): Promise<void> {
    await this.adding;
    await Promise.all(this.writesUnderWay());
  }

  /**
   * Stops the sealing worker, if it started (a process exits without it), and removes the files of
   * packs not written (a backup that failed or stopped: nothing refers to them).
   */
  async close(): Promise<void> {
    await this.sealer?.close();
    this.sealer = undefined;
    await this.settle().catch(() => undefined);
    for (const packer of Object.values(this.packers)) await packer.discard();
    for (const write of this.packWrites) await write.pack.spool?.discard();
  }

  private count(type: BlobType, plaintextLength: number, blob: PackedBlob): void {
    if (type === 'data') this.stats.dataBlobs += 1;
    else this.stats.treeBlobs += 1;
    this.stats.dataAdded += plaintextLength;
    this.stats.dataAddedPacked += blob.length;
  }

  /**
   * Stores a blob the repository already has, in a new pack (prune's repacking: the old pack goes
   * later). Compressed whenever the repository compresses, as restic stores every blob, so a tree
   * pack repacked for holding uncompressed blobs is not repacked again on the next prune.
   */
  copyBlob(type: BlobType, id: string, plaintext: Buffer): Promise<void> {
    return this.serially(async () => {
      if (this.pending[type].has(id)) return;
      const compressed = this.compression && plaintext.length > 0;
      const stored = compressed ? compress(plaintext) : plaintext;
      await this.addToPack(type, id, stored.length + OVERHEAD, (packer) => packer.seal(this.key, type, id, stored, compressed ? plaintext.length : undefined));
    });
  }

  /** Runs `add` after the blobs being added before it. */
  private serially<T>(add: () => Promise<T>): Promise<T> {
    const done = this.adding.then(add);
    this.adding = done.catch(() => undefined);
    return done;
  }

  /**
   * Puts a blob of `sealedLength` bytes into its type's pack: the pack is written first when the
   * blob would not fit, and once full, or at once after a large tree (a directory of thousands of
   * files, some 5 MB for 100,000): gathering three of them held 16 MiB, twice once written while the
   * next filled.
   */
  private async addToPack(type: BlobType, id: string, sealedLength: number, put: (packer: PackWriter) => Promise<PackedBlob>): Promise<PackedBlob> {
    if (!this.packers[type].fits(sealedLength)) await this.writePack(type);
    const packer = this.packers[type];
    this.pending[type].set(id, packer.count);
    const blob = await put(packer);
    if (packer.length >= this.packSize || (type === 'tree' && sealedLength >= this.packSize / LARGE_TREE_SHARE)) await this.writePack(type);
    return blob;
  }

  /**
   * Finishes the pack and starts writing it: the next pack fills while it is written (a local
   * pack's write and fsync took a third of a backup's time when awaited). At most
   * PACK_WRITES_UNDER_WAY at once. A pack stays in `packWrites` until it is written, its blobs
   * known and readable from its bytes: a write that fails is tried again by the next writePack,
   * which then throws if it fails again, and by every flush(), which throws while any pack is not
   * written. So no snapshot can refer to a blob of a pack that is not there.
   */
  private async writePack(type: BlobType): Promise<void> {
    const packer = this.packers[type];
    if (packer.count === 0) return;
    const pack = await packer.finish(this.key);
    const write: PackWrite = { pack, buffer: packer.handOver(), packer };
    for (const blob of pack.blobs) this.writing[type].set(blob.id, { write, blob });
    this.pending[type].clear();
    this.packWrites.add(write);
    if ([...this.packWrites].some((other) => other.failure !== undefined)) return this.writeAll();
    for (let underWay = this.writesUnderWay(); underWay.length >= PACK_WRITES_UNDER_WAY; underWay = this.writesUnderWay()) await Promise.race(underWay);
    this.startWrite(write);
    if (this.unindexedBlobs >= MAX_BLOBS_PER_INDEX_FILE) await this.writeIndex();
  }

  /** Starts a pack's write; once written, its blobs are in the index and its buffer goes back to its writer. */
  private startWrite(write: PackWrite): void {
    write.failure = undefined;
    const { id, bytes, spool } = write.pack;
    write.attempt = (spool ? spool.commit(id) : this.backend.write('data', id, bytes!)).then(
      () => {
        this.packWrites.delete(write);
        this.index.addPack(write.pack.id, write.pack.blobs);
        for (const blob of write.pack.blobs) this.writing[blob.type].delete(blob.id);
        write.packer.recycle(write.buffer);
        this.unindexed.push({ id: write.pack.id, blobs: write.pack.blobs });
        this.unindexedBlobs += write.pack.blobs.length;
      },
      (error: unknown) => {
        write.failure = error;
      },
    ).finally(() => {
      write.attempt = undefined;
    });
  }

  private writesUnderWay(): Promise<void>[] {
    return [...this.packWrites].flatMap((write) => (write.attempt ? [write.attempt] : []));
  }

  /** Starts every pack write not under way (not started, or failed) and waits for all; throws the first failure. */
  private async writeAll(): Promise<void> {
    for (const write of this.packWrites) if (!write.attempt) this.startWrite(write);
    await Promise.all([...this.packWrites].map((write) => write.attempt));
    const failed = [...this.packWrites].find((write) => write.failure !== undefined);
    if (failed) throw failed.failure;
  }

  /** An index file for each MAX_BLOBS_PER_INDEX_FILE blobs of the packs written (not those being written). */
  private async writeIndex(): Promise<void> {
    const packs = this.unindexed;
    this.unindexed = [];
    this.unindexedBlobs = 0;
    for (const file of encodeIndexFiles(packs)) await this.saveUnpacked('index', file);
  }

  /** Writes the packs in progress, waits for every pack write, then writes the index files for every pack written since the last flush. */
  flush(): Promise<void> {
    return this.serially(async () => {
      await this.writePack('data');
      await this.writePack('tree');
      await this.writeAll();
      await this.writeIndex();
    });
  }

  /** A blob's plaintext, checked against its ID. */
  async loadBlob(type: BlobType, id: string): Promise<Buffer> {
    let sealed: Buffer;
    let uncompressedLength: number | undefined;
    const pendingAt = this.pending[type].get(id);
    if (pendingAt !== undefined) {
      sealed = await this.packers[type].blobBytes(pendingAt);
      uncompressedLength = this.packers[type].blobs[pendingAt]!.uncompressedLength;
    } else if (this.writing[type].has(id)) {
      // In a pack being written: its bytes are still here.
      const { write, blob } = this.writing[type].get(id)!;
      sealed = write.pack.bytes ? write.pack.bytes.subarray(blob.offset, blob.offset + blob.length) : await write.pack.spool!.read(blob.offset, blob.length);
      uncompressedLength = blob.uncompressedLength;
    } else {
      const entry = this.loadedIndex.get(type, id);
      if (!entry) throw new BackendNotFoundError(this.backend.location, 'data', `${type} blob ${id} (not in any index)`);
      sealed = await this.backend.read('data', entry.pack, { offset: entry.offset, length: entry.length });
      uncompressedLength = entry.uncompressedLength;
    }
    return unsealBlob(this.key, type, id, sealed, uncompressedLength);
  }

  async loadTree(id: string): Promise<Node[]> {
    return decodeTree(await this.loadBlob('tree', id));
  }

  /** A tree's nodes by name, each decoded when looked up: a directory of 100,000 files is not 100,000 objects. */
  async loadTreeByName(id: string): Promise<NodesByName> {
    return new NodesByName(await this.loadBlob('tree', id));
  }

  async saveTree(nodes: Node[] | TreeNodes): Promise<string> {
    return (await this.saveBlob('tree', treeNodesOf(nodes))).id;
  }

  /** Flushes packs and index, then writes the snapshot: nothing it refers to can be missing. */
  async saveSnapshot(snapshot: Snapshot): Promise<string> {
    await this.flush();
    return this.saveUnpacked('snapshots', encodeSnapshot(snapshot));
  }

  async loadSnapshot(id: string): Promise<SnapshotWithId> {
    return decodeSnapshot(id, await this.loadUnpacked('snapshots', id));
  }

  /** Every snapshot, oldest first. */
  async listSnapshots(): Promise<SnapshotWithId[]> {
    const snapshots: SnapshotWithId[] = [];
    for await (const file of this.backend.list('snapshots')) snapshots.push(await this.loadSnapshot(file.name));
    const times = new Map(snapshots.map((s) => [s, snapshotTimeNs(s)]));
    return snapshots.sort((a, b) => (times.get(a)! < times.get(b)! ? -1 : times.get(a)! > times.get(b)! ? 1 : 0));
  }

  /** A snapshot by its ID or a unique prefix of it. */
  async findSnapshot(prefix: string): Promise<SnapshotWithId> {
    const matches: string[] = [];
    for await (const file of this.backend.list('snapshots')) if (file.name.startsWith(prefix)) matches.push(file.name);
    if (matches.length === 0) throw new BackendNotFoundError(this.backend.location, 'snapshots', prefix);
    if (matches.length > 1) throw new Error(`snapshot ID prefix ${prefix} is ambiguous (${matches.length} snapshots)`);
    return this.loadSnapshot(matches[0]!);
  }

  /** The blobs a pack's own header lists (for checking a pack against the index). */
  async readPackHeader(packId: string): Promise<PackedBlob[]> {
    const { size } = await this.backend.stat('data', packId);
    const lastFour = await this.backend.read('data', packId, { offset: size - 4, length: 4 });
    const range = headerRange(packId, size, lastFour);
    return decodeHeader(this.key, packId, await this.backend.read('data', packId, range));
  }
}
