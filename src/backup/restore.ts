/**
 * Restore: a catalogued artifact back into a claim, exactly as it was backed up, or a precise reason
 * why not. Stages:
 *   verify      read the whole artifact first: its sha256 must match the catalog, the tar stream
 *               must be complete, and every entry must be safe to extract (ArchiveSafety) — so a
 *               damaged or crafted artifact is refused before anything is written;
 *   target      find (or --create) the claim; refuse one that a running pod holds ReadWriteOnce,
 *               unless --pin-to-node;
 *   helper-pod  a helper mounting the claim read-write;
 *   prepare     refuse a non-empty claim, or with --mode overwrite empty it;
 *   write       the artifact, decompressed, into `tar -x` over exec stdin, with backpressure;
 *   finalize    what busybox tar does not restore: symlink owners and times, and directory times
 *               (set deepest first, after every file is in place).
 * A Block claim's image is written to the device instead (never into a smaller one, never over a
 * device's contents without --mode overwrite unless the claim was just created) and read back: its
 * sha256 must be the image's. A helper that runs as the workload's user (a "restricted" namespace)
 * cannot give files their owners: the result says so.
 * The helper pod is deleted whatever happens; every restore, dry runs too, is a catalog row.
 */
import fs from 'node:fs';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { isNkvmError, NotFoundError, stoppedOutcome, UsageError, type ErrorCode } from '../errors.ts';
import type { KubeClient } from '../kube/client.ts';
import { execWithAck } from '../kube/acked-exec.ts';
import { describeExecFailure, execStream, TailBuffer, type ExecOutcome } from '../kube/exec.ts';
import { DEFAULT_ACK_TIMEOUT_SECONDS } from './defaults.ts';
import { toKubernetesError } from '../kube/errors.ts';
import type { BackupRecord, Catalog, RestoreMode, RestoreRecord } from '../store/catalog.ts';
import { pluginVersion } from '../version.ts';
import { ArchiveSafety, UnsafeArchiveError } from './archive-safety.ts';
import { compressionOf, scanArtifact } from './archive.ts';
import { decompressor, newBackupId } from './artifacts.ts';
import { measureDeviceBytes } from './copy.ts';
import { Digest } from './digest.ts';
import { discoverClaim, type DiscoveredClaim } from './discovery.ts';
import { fromPluginError, StageFailure } from './stage-failure.ts';
import { corePath } from '../kube/json-get.ts';
import { DATA_DEVICE_PATH, DATA_MOUNT_PATH, deleteHelperPod, HELPER_CONTAINER, labelValue, startHelperPod, waitForHelperPod, type HelperPodOptions } from './helper-pod.ts';
import { describeIdentity, isNobodyFallback, isRoot, rootOwnerIdentity, type HelperIdentity } from './helper-identity.ts';
import { TarStreamCheck, type TarEntry } from './tar-stream.ts';
import { fileContent, imageNode, restoreTar } from '../repository/restorer.ts';
import { MoverUnreachableError, moverUnusable, moverWaitCommand, runMoverRestore, type MoverOptions } from './mover.ts';
import type { Transfer } from './transfer.ts';
import type { Repository } from '../repository/repository.ts';
import type { SnapshotWithId } from '../repository/snapshot.ts';
import type { Node } from '../repository/tree.ts';
import { countingGarbage } from '../young-garbage.ts';

export type RestoreStage = 'verify' | 'target' | 'helper-pod' | 'prepare' | 'write' | 'finalize' | 'done';

/** A snapshot in a repository to restore instead of an artifact file. */
export interface SnapshotSource {
  repository: Repository;
  snapshot: SnapshotWithId;
  location: string;
}

export interface RestoreRequest {
  /** The catalogued backup; for a snapshot no backup of this catalog wrote, snapshotBackupRecord() stands in. */
  backup: BackupRecord;
  /** Restore this snapshot (the backup's, or one another writer made) rather than the backup's artifact. */
  snapshot?: SnapshotSource | undefined;
  namespace: string;
  pvc: string;
  mode: RestoreMode;
  dryRun: boolean;
  /** Restore even into a ReadWriteOnce claim a running pod holds, on that pod's node. */
  pinToNode: boolean;
  /** Create the claim when it does not exist. */
  create?: { storageClass?: string | undefined; size?: string | undefined } | undefined;
}

/** What the first pass learned of an artifact. */
/** What is known of a snapshot a mover restores before it does: nothing read yet (its result fills the record in). */
const MOVED: ArtifactContents = { imageSha256: null, entries: 0, tarBytes: 0, regularFiles: 0, contentBytes: 0, metadata: [] };

interface ArtifactContents {
  /** A Block claim's device image: the sha256 of its raw bytes. */
  imageSha256: string | null;
  entries: number;
  tarBytes: number;
  regularFiles: number;
  contentBytes: number;
  /** Symlinks and directories, whose owners and times are set after extraction. */
  metadata: TarEntry[];
}

export interface RestoreOptions {
  helper: Omit<HelperPodOptions, 'runId'>;
  podReadyTimeoutMs: number;
  signal?: AbortSignal | undefined;
  /** A snapshot of a directory restored by a data mover: a pod of this image writes it in place, from the repository. */
  mover?: MoverOptions | undefined;
  /** Without a mover: why a snapshot goes over exec. */
  execReason?: string | undefined;
}

export interface RestoreResult {
  id: string;
  backupId: string;
  namespace: string;
  pvc: string;
  status: 'succeeded' | 'failed' | 'interrupted';
  stage: RestoreStage;
  message: string;
  errorCode?: ErrorCode | 'UnsafeArchiveError' | 'RestoreError' | undefined;
  mode: RestoreMode;
  dryRun: boolean;
  createdClaim: boolean;
  entries: number | null;
  tarBytes: number | null;
  node: string | null;
  helperPod: string | null;
  /** Who the helper ran as: "root", or the workload's user in a "restricted" namespace. */
  runAs: string | null;
  /** A snapshot restored: whether a data mover pod wrote it from the repository or the data came over exec, and why. */
  transfer?: Transfer | undefined;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
}

type RestoreErrorCode = NonNullable<RestoreResult['errorCode']>;

/** A restore stage's failure; RestoreError unless a more precise code applies. */
class RestoreFailure extends StageFailure<RestoreStage, RestoreErrorCode> {
  constructor(stage: RestoreStage, message: string, errorCode: RestoreErrorCode = 'RestoreError') {
    super(stage, message, errorCode);
  }
}

function asFailure(stage: RestoreStage, error: unknown): RestoreFailure {
  if (error instanceof RestoreFailure) return error;
  if (error instanceof UnsafeArchiveError) return new RestoreFailure('verify', `unsafe artifact, nothing was written: ${error.message}`, 'UnsafeArchiveError');
  const typed = fromPluginError(stage, error);
  if (typed) return new RestoreFailure(stage, typed.message, typed.errorCode as RestoreErrorCode);
  return new RestoreFailure(stage, error instanceof Error ? error.message : String(error));
}

/** A shell word for any bytes: $'...' with every byte that is not plain printable ASCII in octal. */
export function shellQuoteBytes(bytes: Buffer): string {
  let quoted = "$'";
  for (const byte of bytes) {
    const plain = byte >= 0x20 && byte < 0x7f && byte !== 0x27 && byte !== 0x5c;
    quoted += plain ? String.fromCharCode(byte) : `\\${byte.toString(8).padStart(3, '0')}`;
  }
  return `${quoted}'`;
}

function depth(name: Buffer): number {
  return name.toString('latin1').split('/').filter((part) => part !== '' && part !== '.').length;
}

/**
 * The script run after extraction (busybox ash, from /data): symlinks get their owners (as root) and
 * times (busybox tar sets neither), then directories their times, deepest first, because creating
 * their contents moved them.
 */
export function metadataFixupScript(entries: TarEntry[], options: { owners: boolean } = { owners: true }): string {
  const lines = [`cd ${DATA_MOUNT_PATH} || exit 1`];
  for (const entry of entries.filter((e) => e.type === 'symlink')) {
    const name = shellQuoteBytes(entry.name);
    // Only root may give an entry away; a helper running as the workload's user leaves owners be.
    if (options.owners) lines.push(`chown -h ${entry.uid}:${entry.gid} -- ${name} || exit 1`);
    lines.push(`touch -h -d @${entry.mtime} -- ${name} || exit 1`);
  }
  const directories = entries.filter((e) => e.type === 'directory').sort((a, b) => depth(b.name) - depth(a.name));
  for (const entry of directories) lines.push(`touch -d @${entry.mtime} -- ${shellQuoteBytes(entry.name)} || exit 1`);
  return `${lines.join('\n')}\n`;
}

/**
 * Runs a command in the helper: its stdout is returned, a non-zero exit is an error. Without stdin
 * it runs acknowledged (acked-exec.ts), since its output decides what happens next; with stdin the
 * command reads to end-of-input and only its exit status matters.
 */
async function runInHelper(client: KubeClient, namespace: string, pod: string, command: string[], options: { stdin?: Readable; signal?: AbortSignal | undefined } = {}): Promise<string> {
  const sink = new TailBuffer(64 * 1024);
  // A cut connection also errors the sink; the exec outcome below already reports it.
  sink.on('error', () => {});
  const exec = { namespace, pod, container: HELPER_CONTAINER, command, stdout: sink, signal: options.signal };
  let outcome: ExecOutcome;
  let cut = false;
  try {
    if (options.stdin) {
      outcome = await execStream(client.credentials.kubeConfig, { ...exec, stdin: options.stdin });
    } else {
      const acked = await execWithAck(client.credentials.kubeConfig, { ...exec, ackTimeoutSeconds: DEFAULT_ACK_TIMEOUT_SECONDS });
      outcome = { ...acked, exitCode: acked.commandExitCode ?? acked.exitCode };
      if (acked.commandExitCode === undefined && !acked.status) cut = true;
    }
  } catch (error) {
    throw toKubernetesError(error, { verb: 'create', resource: 'pods/exec', namespace, name: pod });
  }
  if (cut) throw new Error(`${command[0]} in the helper pod: the exec stream was cut before the command's output ended`);
  if (outcome.exitCode !== 0) throw new Error(describeExecFailure(command[0]!, outcome));
  return sink.text;
}

const FIRST_ENTRY = `find ${DATA_MOUNT_PATH} -mindepth 1 -maxdepth 1 ! -name lost+found | head -n 1`;
/**
 * Judged by its result, not by find's status: an entry that vanishes while it is removed (a pod
 * pinned beside the restore still writing) is as good as removed, and anything left is named.
 */
const EMPTY_CLAIM = `find ${DATA_MOUNT_PATH} -mindepth 1 -maxdepth 1 ! -name lost+found -exec rm -rf -- {} + 2>/dev/null; left=$(${FIRST_ENTRY}); [ -z "$left" ] || { echo "still there after emptying the claim: $left" >&2; exit 1; }`;
/** Regular files (hard links once, as tar stores them) and their bytes, as `<files> <bytes>`. */
const COUNT_FILES = `cd ${DATA_MOUNT_PATH} && find . -type f -exec stat -c '%i %s' -- {} + | awk '!seen[$1]++ { n++; s += $2 } END { printf "%.0f %.0f\\n", n, s }'`;

/**
 * The first pass's tar checker: every entry must be safe to extract (ArchiveSafety throws at the
 * first that is not), and the directories' and symlinks' metadata is kept for the finalize stage.
 */
function restorableEntries(): { checker: TarStreamCheck; metadata: TarEntry[] } {
  const safety = new ArchiveSafety();
  const metadata: TarEntry[] = [];
  const checker = new TarStreamCheck({
    onEntry: (entry) => {
      safety.check(entry);
      if (entry.type === 'symlink' || entry.type === 'directory') metadata.push(entry);
    },
  });
  return { checker, metadata };
}

export class RestoreManager {
  readonly runId = newBackupId();
  private readonly client: KubeClient;
  private readonly catalog: Catalog;
  private readonly options: RestoreOptions;
  /** Namespaces where Pod Security refused a root helper (helper-pod.ts). */
  private readonly restrictedNamespaces = new Set<string>();

  constructor(client: KubeClient, catalog: Catalog, options: RestoreOptions) {
    this.client = client;
    this.catalog = catalog;
    this.options = options;
  }

  async restore(request: RestoreRequest): Promise<RestoreResult> {
    const started = new Date();
    const { backup, namespace, pvc } = request;
    const { credentials } = this.client;
    const record: RestoreRecord = {
      id: newBackupId(),
      backupId: backup.id,
      context: credentials.context,
      cluster: credentials.server,
      namespace,
      pvc,
      createdClaim: false,
      mode: request.mode,
      dryRun: request.dryRun,
      node: null,
      helperPod: null,
      startedAt: started.toISOString(),
      finishedAt: null,
      status: 'running',
      failedStage: null,
      message: null,
      bytes: null,
      entries: null,
      runAs: null,
      pluginVersion,
    };
    await this.catalog.insertRestore(record);

    const signal = this.options.signal;
    let stage: RestoreStage = 'verify';
    let failure: RestoreFailure | undefined;
    let message = '';
    let movedNote = '';
    /** Helper pods that could not be deleted: the message names them. */
    const leftBehind: string[] = [];
    let transfer: Transfer | undefined;
    try {
      // A snapshot whose path is one file is a device image: looked up once, for every pass below.
      const imageFile = request.snapshot ? await imageNode(request.snapshot.repository, request.snapshot.snapshot).catch(() => undefined) : undefined;
      // A dry run moves no data, so it chooses no way to move it.
      transfer = request.snapshot && !request.dryRun ? this.transferFor(imageFile) : undefined;
      // A mover reads and checks every blob as it writes it, in the cluster: the snapshot is not read here first.
      let fixups = transfer?.mode === 'pod' ? MOVED : request.snapshot ? await this.verifySnapshot(request.snapshot, backup, imageFile) : await this.verifyArtifact(backup);
      // A snapshot whose path is one file is a device image (ours, or `restic backup --stdin`): it goes into a Block claim.
      if (fixups.imageSha256 !== null && backup.volumeMode !== 'Block') request = { ...request, backup: { ...backup, volumeMode: 'Block' } };
      const source = request.snapshot ? `snapshot ${request.snapshot.snapshot.id.slice(0, 8)}` : `backup ${backup.id}`;
      Object.assign(record, { entries: fixups.entries, bytes: fixups.tarBytes });

      stage = 'target';
      const claim = await this.target(request, record);
      const image = fixups.imageSha256 !== null;
      const what = image ? `a ${fixups.tarBytes}-byte device image` : `${fixups.entries} entries (${fixups.tarBytes} bytes of tar)`;
      if (request.dryRun) {
        message = `dry run: would restore ${what} from ${source} into ${
          claim ? `${namespace}/${pvc}` : `a new claim ${namespace}/${pvc}`
        } (mode ${request.mode}); nothing was changed`;
      } else {
        stage = 'helper-pod';
        const target = claim ?? (await discoverClaim(this.client, namespace, pvc));
        const mover = transfer?.mode === 'pod' ? this.options.mover : undefined;
        if (mover) {
          try {
            movedNote = await this.inHelper(target, record, { image: mover.image, command: moverWaitCommand(this.options.helper.deadlineSeconds) }, leftBehind, async () => {
              stage = 'write';
              const moved = await runMoverRestore({
                kubeConfig: this.client.credentials.kubeConfig,
                namespace,
                pod: record.helperPod!,
                snapshotId: request.snapshot!.snapshot.id,
                mode: request.mode,
                credentials: mover.credentials,
                silenceLimitMs: mover.silenceLimitMs,
                signal,
              });
              if (!moved.ok) throw new RestoreFailure(/not empty/.test(moved.message) ? 'prepare' : 'write', `claim ${namespace}/${pvc}: ${moved.message}`);
              Object.assign(record, { entries: moved.entries ?? null, bytes: moved.bytes ?? null });
              return ` (in the cluster, by data mover ${record.helperPod}${moved.skipped?.count ? `; ${moved.skipped.count} fifos, devices or sockets left out: ${moved.skipped.sample.join(', ')}` : ''})`;
            });
          } catch (error) {
            // --mover auto: an image this cluster cannot pull, or a repository out of its reach, is still within this machine's.
            const why = mover.fallback ? moverUnusable(error, mover.image) : undefined;
            if (!why) throw error;
            transfer = { mode: 'exec', reason: `${why}: restored over exec instead (--mover auto)` };
            // Over exec the snapshot is checked whole before anything is written, as it always is.
            stage = 'verify';
            fixups = await this.verifySnapshot(request.snapshot!, backup, undefined);
            Object.assign(record, { entries: fixups.entries, bytes: fixups.tarBytes });
            stage = 'helper-pod';
          }
        }
        let owners = '';
        if (transfer?.mode !== 'pod') {
          const helper = await this.inHelper(target, record, {}, leftBehind, async (started) => {
            let helper = started;
            // As nobody (restricted, no pod names a user), the restore could not write into a claim
            // whose root another user owns: the helper is made again as that owner.
            const owner = !image && isNobodyFallback(helper.identity) ? await this.rootOwner(namespace, record.helperPod!) : undefined;
            if (owner && owner.uid !== 0 && owner.uid !== helper.identity.uid) {
              await deleteHelperPod(this.client, namespace, record.helperPod!);
              helper = await startHelperPod(this.client, target, { ...this.options.helper, runId: this.runId, identity: rootOwnerIdentity(owner.uid, owner.gid) }, 'restore', this.restrictedNamespaces);
              record.helperPod = helper.name;
              record.runAs = describeIdentity(helper.identity);
              const running = await waitForHelperPod(this.client, namespace, record.helperPod, this.options.podReadyTimeoutMs, signal);
              record.node = running.spec?.nodeName ?? null;
            }
            const pod = helper.name;
            if (image) {
              stage = 'prepare';
              await this.checkDevice(request, fixups, pod, record.createdClaim);
              stage = 'write';
              // cat, not busybox dd: over exec stdin, dd was seen to stop at a short read as if at the end.
              // A cut stream also ends cat's input early; the read-back below catches either.
              const intoDevice = ['sh', '-c', `cat > ${DATA_DEVICE_PATH} && sync`];
              if (request.snapshot) await this.writeSnapshot(request.snapshot, namespace, pod, intoDevice, imageFile);
              else await this.writeArtifact(backup, namespace, pod, intoDevice);
              await this.checkImage(fixups, namespace, pod);
            } else {
              stage = 'prepare';
              const firstEntry = (await runInHelper(this.client, namespace, pod, ['sh', '-c', FIRST_ENTRY], { signal })).trim();
              if (firstEntry && request.mode === 'empty-only') {
                throw new RestoreFailure(
                  'prepare',
                  `claim ${namespace}/${pvc} is not empty (it holds ${JSON.stringify(firstEntry.slice(DATA_MOUNT_PATH.length + 1))}, among others); nothing was changed. Pass --mode overwrite to replace its contents`,
                );
              }
              if (firstEntry) await runInHelper(this.client, namespace, pod, ['sh', '-c', EMPTY_CLAIM], { signal });

              stage = 'write';
              const extract = ['tar', '-x', '-f', '-', '-C', DATA_MOUNT_PATH, '--numeric-owner'];
              if (request.snapshot) await this.writeSnapshot(request.snapshot, namespace, pod, extract);
              else await this.writeArtifact(backup, namespace, pod, extract);
              await this.checkWritten(fixups, namespace, pod);

              stage = 'finalize';
              await runInHelper(this.client, namespace, pod, ['sh', '-s'], { stdin: Readable.from([metadataFixupScript(fixups.metadata, { owners: isRoot(helper.identity) })]), signal });
            }
            return helper;
          });
          owners = isRoot(helper.identity) || image ? '' : `; file owners could not be restored: the helper ran as ${record.runAs}, so the files belong to that user`;
        }
        // Movers were asked for but the data went over exec: say why.
        const overExec = transfer?.mode === 'exec' && this.options.mover ? ` (${transfer.reason})` : '';
        const cleanup = leftBehind.map((pod) => `; helper pod ${namespace}/${pod} could not be deleted, its activeDeadlineSeconds will stop it`).join('');
        message = transfer?.mode === 'pod'
          ? `restored ${record.entries ?? 0} entries from ${source} into ${namespace}/${pvc}${movedNote}${cleanup}`
          : image
          ? `restored the ${fixups.tarBytes}-byte device image of ${source} into ${namespace}/${pvc} (read back, sha256 matches)${overExec}${cleanup}`
          : `restored ${fixups.entries} entries from ${source} into ${namespace}/${pvc}${overExec}${owners}${cleanup}`;
      }
      stage = 'done';
    } catch (error) {
      failure = asFailure(stage, error);
      // A mover that could not reach the repository wrote nothing.
      if ((failure.stage === 'write' || failure.stage === 'finalize') && !(error instanceof MoverUnreachableError)) {
        failure = new RestoreFailure(failure.stage, `${failure.message}; the claim may hold a partial restore`, failure.errorCode);
      }
    }

    const finished = new Date();
    const stopped = failure ? stoppedOutcome(this.options.signal, failure.stage) : undefined;
    const status = failure ? (stopped?.status ?? 'failed') : 'succeeded';
    const finalMessage = failure ? (stopped?.message ?? failure.message) : message;
    await this.catalog.updateRestore(record.id, {
      createdClaim: record.createdClaim,
      node: record.node,
      helperPod: record.helperPod,
      finishedAt: finished.toISOString(),
      status,
      failedStage: failure?.stage ?? null,
      message: finalMessage,
      bytes: record.bytes,
      entries: record.entries,
      runAs: record.runAs,
    });
    return {
      id: record.id,
      backupId: backup.id,
      namespace,
      pvc,
      status,
      stage: failure?.stage ?? 'done',
      message: finalMessage,
      ...(failure ? { errorCode: failure.errorCode } : {}),
      mode: request.mode,
      dryRun: request.dryRun,
      createdClaim: record.createdClaim,
      entries: record.entries,
      tarBytes: record.bytes,
      node: record.node,
      helperPod: record.helperPod,
      runAs: record.runAs,
      ...(transfer ? { transfer } : {}),
      startedAt: record.startedAt,
      finishedAt: finished.toISOString(),
      durationMs: finished.getTime() - started.getTime(),
    };
  }

  /** Pod or exec for a snapshot, and why (a device image goes over exec). */
  private transferFor(imageFile: Node | undefined): Transfer {
    const mover = this.options.mover;
    if (!mover) return { mode: 'exec', reason: this.options.execReason ?? '--mover exec' };
    if (imageFile) return { mode: 'exec', reason: 'a device image is written over exec' };
    return { mode: 'pod', reason: mover.reason };
  }

  /**
   * Runs `work` once a helper pod (a mover pod, given its image and command) mounting the claim runs.
   * The pod record.helperPod names when `work` ends is deleted whatever happens, or put in `leftBehind`.
   */
  private async inHelper<T>(
    claim: DiscoveredClaim,
    record: RestoreRecord,
    moverPod: { image?: string; command?: string[] },
    leftBehind: string[],
    work: (helper: { name: string; identity: HelperIdentity }) => Promise<T>,
  ): Promise<T> {
    const helper = await startHelperPod(this.client, claim, { ...this.options.helper, ...moverPod, runId: this.runId }, 'restore', this.restrictedNamespaces);
    record.helperPod = helper.name;
    record.runAs = describeIdentity(helper.identity);
    try {
      const running = await waitForHelperPod(this.client, claim.namespace, helper.name, this.options.podReadyTimeoutMs, this.options.signal);
      record.node = running.spec?.nodeName ?? null;
      return await work(helper);
    } finally {
      const pod = record.helperPod;
      await deleteHelperPod(this.client, claim.namespace, pod).catch(() => leftBehind.push(pod));
    }
  }

  /** The first pass: integrity and safety of the whole artifact, and the metadata to fix up later. */
  private async verifyArtifact(backup: BackupRecord): Promise<ArtifactContents> {
    if (backup.status !== 'succeeded' || !backup.artifactPath) {
      throw new RestoreFailure('verify', `backup ${backup.id} is ${backup.status}${backup.status === 'pruned' ? ' (its artifact was deleted)' : ''}: only a succeeded backup can be restored`);
    }
    if (!fs.existsSync(backup.artifactPath)) throw new RestoreFailure('verify', `the artifact of backup ${backup.id} is missing: ${backup.artifactPath}`);
    const { checker, metadata } = restorableEntries();
    let scan;
    try {
      scan = await scanArtifact(backup.artifactPath, checker, this.options.signal);
    } catch (error) {
      if (error instanceof UnsafeArchiveError) throw error;
      throw new RestoreFailure('verify', `the artifact ${backup.artifactPath} cannot be read: ${(error as Error).message}`);
    }
    if (backup.sha256 && scan.sha256 !== backup.sha256) {
      throw new RestoreFailure('verify', `the artifact ${backup.artifactPath} does not match the catalog (sha256 ${scan.sha256}, expected ${backup.sha256}); run \`kubectl nkvm verify ${backup.id}\``);
    }
    if (scan.imageSha256 !== null) {
      if (scan.tar.bytes !== backup.tarBytes || (backup.contentSha256 && scan.imageSha256 !== backup.contentSha256)) {
        throw new RestoreFailure('verify', `the device image in ${backup.artifactPath} is not the one the catalog records (${scan.tar.bytes} bytes, sha256 ${scan.imageSha256}); run \`kubectl nkvm verify ${backup.id}\``);
      }
      return { imageSha256: scan.imageSha256, entries: 0, tarBytes: scan.tar.bytes, regularFiles: 0, contentBytes: scan.tar.bytes, metadata: [] };
    }
    if (!scan.tar.complete) throw new RestoreFailure('verify', `the artifact ${backup.artifactPath} is truncated (no end-of-archive marker)`);
    return { imageSha256: null, entries: scan.tar.entries, tarBytes: scan.tar.bytes, regularFiles: scan.tar.regularFiles, contentBytes: scan.tar.contentBytes, metadata };
  }

  /**
   * The first pass over a snapshot: its whole tar, as the write will send it, read from the
   * repository (every blob decrypted, authenticated and hashed to its ID on the way), checked entry
   * by entry like an artifact's, its directories' and symlinks' metadata kept for the finalize stage.
   */
  private async verifySnapshot(source: SnapshotSource, backup: BackupRecord, image: Node | undefined): Promise<ArtifactContents> {
    if (image) {
      const digest = new Digest();
      try {
        await pipeline([fileContent(source.repository, image), countingGarbage(), digest, new Writable({ write: (_chunk, _encoding, done) => done() })], this.options.signal ? { signal: this.options.signal } : {});
      } catch (error) {
        throw new RestoreFailure('verify', `snapshot ${source.snapshot.id.slice(0, 8)} in ${source.location} cannot be read: ${(error as Error).message}`);
      }
      const sha256 = digest.hash.digest('hex');
      if (digest.bytes !== image.size || (backup.contentSha256 && sha256 !== backup.contentSha256)) {
        throw new RestoreFailure('verify', `the device image in snapshot ${source.snapshot.id.slice(0, 8)} is not the one the catalog records (${digest.bytes} bytes, sha256 ${sha256})`);
      }
      return { imageSha256: sha256, entries: 0, tarBytes: digest.bytes, regularFiles: 0, contentBytes: digest.bytes, metadata: [] };
    }
    const { checker, metadata } = restorableEntries();
    const sink = new PassThrough();
    sink.resume();
    try {
      await pipeline([restoreTar(source.repository, source.snapshot), countingGarbage(), checker, sink], this.options.signal ? { signal: this.options.signal } : {});
    } catch (error) {
      if (error instanceof UnsafeArchiveError) throw error;
      throw new RestoreFailure('verify', `snapshot ${source.snapshot.id.slice(0, 8)} in ${source.location} cannot be read: ${(error as Error).message}`);
    }
    const tar = checker.summary;
    return { imageSha256: null, entries: tar.entries, tarBytes: tar.bytes, regularFiles: tar.regularFiles, contentBytes: tar.contentBytes, metadata };
  }

  /** The second pass: the snapshot's tar (or its device image `node`) again, straight from the repository into `command`'s stdin. */
  private async writeSnapshot(source: SnapshotSource, namespace: string, pod: string, command: string[], node?: Node): Promise<void> {
    const tarStream = new PassThrough();
    const reading = pipeline([node ? fileContent(source.repository, node) : restoreTar(source.repository, source.snapshot), countingGarbage(), tarStream]);
    reading.catch(() => {}); // its failure surfaces as the exec's
    try {
      await runInHelper(this.client, namespace, pod, command, { stdin: tarStream, signal: this.options.signal });
    } catch (error) {
      throw new RestoreFailure('write', `writing into the claim failed: ${(error as Error).message}`, isNkvmError(error) ? error.code : 'RestoreError');
    }
  }

  /** Who owns the claim's root directory (any user may stat the mount point). */
  private async rootOwner(namespace: string, pod: string): Promise<{ uid: number; gid: number } | undefined> {
    const printed = (await runInHelper(this.client, namespace, pod, ['stat', '-c', '%u %g', DATA_MOUNT_PATH], { signal: this.options.signal })).trim();
    const match = /^(\d+) (\d+)$/.exec(printed);
    return match ? { uid: Number(match[1]), gid: Number(match[2]) } : undefined;
  }

  /** The target claim, created with --create; undefined in a dry run that would create it. */
  private async target(request: RestoreRequest, record: RestoreRecord): Promise<DiscoveredClaim | undefined> {
    const { namespace, pvc } = request;
    let claim: DiscoveredClaim | undefined;
    try {
      claim = await discoverClaim(this.client, namespace, pvc);
    } catch (error) {
      if (!(isNkvmError(error) && error.code === 'NotFoundError')) throw error;
    }
    if (!claim) {
      if (!request.create) {
        throw new NotFoundError(`claim ${namespace}/${pvc} does not exist`, 'pass --create (with --storage-class and --size if needed) to create it');
      }
      if (request.dryRun) return undefined;
      await this.createClaim(request);
      record.createdClaim = true;
      return discoverClaim(this.client, namespace, pvc);
    }
    const wantsBlock = request.backup.volumeMode === 'Block';
    if ((claim.volumeMode === 'Block') !== wantsBlock) {
      throw new UsageError(
        wantsBlock
          ? `backup ${request.backup.id} is the image of a Block claim, and claim ${namespace}/${pvc} is a file system: restore it into a claim with volumeMode Block`
          : `claim ${namespace}/${pvc} is a raw block volume, and backup ${request.backup.id} holds files: restore it into a file-system claim`,
      );
    }
    const holder = claim.pods.find((pod) => pod.phase === 'Running');
    const exclusive = claim.accessModes.includes('ReadWriteOnce') || claim.accessModes.includes('ReadWriteOncePod');
    if (holder && exclusive && !request.pinToNode) {
      throw new RestoreFailure(
        'target',
        `claim ${namespace}/${pvc} is in use by pod ${holder.name} (Running on ${holder.node ?? 'an unknown node'}); restoring under a running workload can corrupt it. Stop the workload, or pass --pin-to-node to restore on that node anyway`,
      );
    }
    return claim;
  }

  private async createClaim(request: RestoreRequest): Promise<void> {
    const size = request.create?.size ?? request.backup.capacity;
    if (!size) throw new UsageError('the backup records no capacity; pass --size for the new claim');
    const body: V1PersistentVolumeClaim = {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: request.pvc, namespace: request.namespace, labels: { 'app.kubernetes.io/managed-by': 'kubectl-nkvm', 'nkvm.dev/restored-from': labelValue(request.backup.id) } },
      spec: {
        accessModes: ['ReadWriteOnce'],
        ...(request.backup.volumeMode === 'Block' ? { volumeMode: 'Block' } : {}),
        resources: { requests: { storage: size } },
        ...(request.create?.storageClass ? { storageClassName: request.create.storageClass } : {}),
      },
    };
    await this.client.requestJson({ verb: 'create', resource: 'persistentvolumeclaims', namespace: request.namespace }, { method: 'POST', path: corePath('persistentvolumeclaims', request.namespace), body });
  }

  /**
   * tar's exit status says it read the archive to its end; this says the claim holds what the archive
   * does (regular files and their bytes), at the cost of one walk of the claim's metadata.
   */
  private async checkWritten(contents: ArtifactContents, namespace: string, pod: string): Promise<void> {
    const counted = (await runInHelper(this.client, namespace, pod, ['sh', '-c', COUNT_FILES], { signal: this.options.signal })).trim();
    const expected = `${contents.regularFiles} ${contents.contentBytes}`;
    if (counted !== expected) {
      throw new RestoreFailure('write', `the claim does not hold what the archive does after extraction: ${counted.replace(' ', ' files, ')} bytes, expected ${expected.replace(' ', ' files, ')} bytes`);
    }
  }

  /**
   * A device always holds something, so writing an image over one takes --mode overwrite unless the
   * restore just created the claim; and the device must be at least as big as the image.
   */
  private async checkDevice(request: RestoreRequest, contents: ArtifactContents, pod: string, created: boolean): Promise<void> {
    const { namespace, pvc } = request;
    const size = await measureDeviceBytes(this.client.credentials.kubeConfig, namespace, pod, this.options.signal);
    if (size < contents.tarBytes) {
      throw new RestoreFailure('prepare', `claim ${namespace}/${pvc} is a ${size}-byte device, smaller than the ${contents.tarBytes}-byte image; nothing was changed. Restore into a claim at least that big (or --create one)`);
    }
    if (!created && request.mode === 'empty-only') {
      throw new RestoreFailure('prepare', `claim ${namespace}/${pvc} is a Block device, whose contents would be overwritten; nothing was changed. Pass --mode overwrite to write the image over it`);
    }
  }

  /** Reads the image's length back from the device: its sha256 must be the image's. */
  private async checkImage(contents: ArtifactContents, namespace: string, pod: string): Promise<void> {
    const printed = await runInHelper(this.client, namespace, pod, ['sh', '-c', `head -c ${contents.tarBytes} ${DATA_DEVICE_PATH} | sha256sum`], { signal: this.options.signal });
    const sha256 = printed.trim().split(/\s+/)[0];
    if (sha256 !== contents.imageSha256) {
      throw new RestoreFailure('write', `the device does not read back as the image: sha256 ${sha256}, expected ${contents.imageSha256}`);
    }
  }

  /** The second pass: the artifact, decompressed, into `command`'s stdin, checked again against the catalog's sha256. */
  private async writeArtifact(backup: BackupRecord, namespace: string, pod: string, command: string[]): Promise<void> {
    const digest = new Digest();
    const decompress = decompressor(compressionOf(backup.artifactPath!));
    const tarStream = new PassThrough();
    // pipeline, not pipe(): a read or decompression error must reach the exec's stdin, not hang it.
    const reading = pipeline([fs.createReadStream(backup.artifactPath!), digest, ...(decompress ? [decompress] : []), countingGarbage(), tarStream]);
    reading.catch(() => {}); // its failure surfaces as the exec's
    try {
      await runInHelper(this.client, namespace, pod, command, { stdin: tarStream, signal: this.options.signal });
    } catch (error) {
      throw new RestoreFailure('write', `writing into the claim failed: ${(error as Error).message}`, isNkvmError(error) ? error.code : 'RestoreError');
    }
    const sha256 = digest.hash.digest('hex');
    if (backup.sha256 && sha256 !== backup.sha256) {
      throw new RestoreFailure('write', `the artifact changed while it was being restored (sha256 ${sha256}, expected ${backup.sha256})`);
    }
  }
}

/**
 * A snapshot no backup of this catalog wrote (restic, k8up, another machine), as the backup record a
 * restore refers to: its ID is the snapshot's; the claim's size is unknown (--create needs --size).
 */
export function snapshotBackupRecord(snapshot: SnapshotWithId, location: string): BackupRecord {
  const pvc = /^\/data\/([^/]+)$/.exec(snapshot.paths[0] ?? '')?.[1] ?? snapshot.paths.join(',');
  return {
    id: snapshot.id,
    context: null,
    cluster: null,
    credentialSource: null,
    namespace: snapshot.hostname ?? '',
    pvc,
    pv: null,
    storageClass: null,
    capacity: null,
    node: null,
    helperPod: null,
    startedAt: snapshot.time,
    finishedAt: snapshot.time,
    status: 'succeeded',
    prunedAt: null,
    failedStage: null,
    message: null,
    artifactPath: null,
    compression: null,
    bytes: null,
    tarBytes: null,
    fileCount: null,
    sha256: null,
    attempts: 0,
    volumeMode: 'Filesystem',
    runAs: null,
    unreadable: null,
    vanished: null,
    changed: null,
    repository: location,
    snapshotId: snapshot.id,
    filesNew: null,
    filesChanged: null,
    filesUnmodified: null,
    bytesRead: null,
    bytesSent: null,
    hooks: null,
    source: null,
    bytesAdded: null,
    contentSha256: null,
    pluginVersion: snapshot.program_version ?? '',
  };
}
