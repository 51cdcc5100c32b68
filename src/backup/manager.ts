/**
 * BackupManager: one claim in, one result out. backupOne() never throws for a per-claim failure; it
 * records the attempt in the catalog (a "running" row first, then its outcome), creates the helper
 * pod, runs the copy stage, publishes the artifact, and always deletes the helper pod and any
 * partial file, on success, failure, timeout and interruption.
 */
import fs from 'node:fs';
import path from 'node:path';
import { stoppedOutcome, type ErrorCode } from '../errors.ts';
import type { KubeClient } from '../kube/client.ts';
import { untilGone } from '../kube/wait.ts';
import type { Catalog, BackupRecord } from '../store/catalog.ts';
import { pluginVersion } from '../version.ts';
import { artifactPath, commitArtifact, newBackupId, partialPath, type Compression } from './artifacts.ts';
import { copyClaimData, CopyStageError, measureClaimBytes, measureDeviceBytes, type CopyResult, type RepositoryCopy } from './copy.ts';
import { DEFAULT_ACK_TIMEOUT_SECONDS, DEFAULT_COPY_RETRIES } from './defaults.ts';
import type { CopyFault } from './faults.ts';
import { claimKey, discoverClaim, discoverClaims, PersistentVolumes, type DiscoveredClaim } from './discovery.ts';
import { fromPluginError, messageWithHint, StageFailure } from './stage-failure.ts';
import { DATA_MOUNT_PATH, deleteHelperPod, placementFor, PlacementError, readPod, startHelperPod, waitForHelperPod, type HelperPodOptions } from './helper-pod.ts';
import { describeIdentity, initialIdentity } from './helper-identity.ts';
import { SharedHelpers, type ShareCandidate } from './shared-helpers.ts';
import { describeChanged, describeUnreadable, describeVanished, type PathSummary } from './copy-stderr.ts';
import { saveArchiveSnapshot } from '../repository/archiver.ts';
import { findParentSnapshot, PARENT_READ_AHEAD_BYTES, parentTreesAtPath, type ParentTrees, type ReadAheadBudget } from '../repository/incremental.ts';
import type { SnapshotWithId } from '../repository/snapshot.ts';
import { moverUnusable, moverWaitCommand, runMoverBackup, type MoverOptions } from './mover.ts';
import { describeHook, podsForHooks, runHook } from './hooks.ts';
import { NodeSlots } from './node-slots.ts';
import { hookFor, type HookFlags, type HookRecord, type HookSpec } from './hook-spec.ts';
import type { Repository } from '../repository/repository.ts';
import { removeLocksOfHost } from '../repository/lock.ts';
import { SnapshotFactsReader, VolumeSnapshots } from './volume-snapshot.ts';
import { chooseSnapshotSource, type BackupSource, type SnapshotMode } from './snapshot-choice.ts';
import type { Transfer } from './transfer.ts';

export type BackupStage = 'discovery' | 'pre-hook' | 'snapshot' | 'helper-pod' | 'copy' | 'finalize' | 'done';
export type BackupOutcome = 'succeeded' | 'failed' | 'interrupted';

export interface BackupArtifact {
  path: string;
  compression: Compression;
  /** Size of the artifact file. */
  bytes: number;
  sha256: string;
  /** Size of the uncompressed tar stream (of the raw image, for a Block claim). */
  tarBytes: number;
  /** Entries in the archive (files, directories, links), as `tar -t` lists them; 0 for an image. */
  entries: number;
  /** A Block claim's image: the sha256 of the raw device bytes. */
  imageSha256?: string | undefined;
}

/** A backup into a repository: its snapshot, and what the backup moved and added. */
export interface BackupSnapshot {
  /** The repository, as the user named it. */
  repository: string;
  id: string;
  /** The snapshot's path in the repository, `/data/<pvc>`; its host is the namespace. */
  path: string;
  /** The snapshot this one was compared with: what it did not read again. */
  parent?: string | undefined;
  files: number;
  /** Files new since the parent, changed since it (both read), and unmodified (not read: taken from the parent). */
  filesNew: number;
  filesChanged: number;
  filesUnmodified: number;
  /** Bytes of file contents read from the claim. */
  bytesRead: number;
  /** Bytes that crossed the API server: the tar, and the listing an incremental copy made first. */
  bytesSent: number;
  /** Bytes the repository grew by (new blobs, compressed and encrypted). */
  bytesAdded: number;
  /** A Block claim's device image (the snapshot's one file): the sha256 of its bytes. */
  imageSha256?: string | undefined;
  /** The data mover pod that read the claim in place and wrote the snapshot (no data crossed the API server). */
  mover?: string | undefined;
  /** The mover process's peak resident set in its pod, in bytes (what its memory limit must allow). */
  moverPeakRssBytes?: number | undefined;
}

export interface BackupResult {
  id: string;
  namespace: string;
  pvc: string;
  status: BackupOutcome;
  /** The stage reached: where it failed, or 'done'. */
  stage: BackupStage;
  message: string;
  /** The typed error behind a failure, for scripts: KubernetesDiscoveryError, CopyStageError, ... */
  errorCode?: ErrorCode | 'CopyStageError' | 'UnreadableFilesError' | 'HelperPodError' | 'HookFailedError' | 'SnapshotError' | 'InternalError' | undefined;
  /** What the helper read: a VolumeSnapshot of the claim (through a temporary claim) or the live claim, and why. */
  source?: BackupSource | undefined;
  /** Into a repository: whether a data mover pod wrote it from the cluster or the data came over exec, and why. */
  transfer?: Transfer | undefined;
  /** The hooks run in the pods that mount the claim, in order: pre-hooks before the copy, post-hooks after it. */
  hooks?: HookRecord[] | undefined;
  artifact?: BackupArtifact | undefined;
  /** Into a repository: the snapshot, instead of an artifact. */
  snapshot?: BackupSnapshot | undefined;
  /** Filesystem (a tar of the files) or Block (an image of the device); null if discovery failed. */
  volumeMode: string | null;
  /** Who the helper ran as: "root", or the user and groups and where they came from. */
  runAs: string | null;
  /** Where the helper was placed, and why. */
  placement: string | null;
  /** Paths left out because the helper could not read them (a partial backup, or why it failed). */
  unreadable?: PathSummary | undefined;
  /** Paths that vanished while the backup ran (renamed or deleted by an application): not in the backup. */
  vanished?: PathSummary | undefined;
  /** Files that changed while the backup ran: archived as tar read them. */
  changed?: PathSummary | undefined;
  pv: string | null;
  storageClass: string | null;
  capacity: string | null;
  node: string | null;
  helperPod: string | null;
  /** Copy attempts made: 1, or more when a cut copy was retried. 0 if the copy stage was not reached. */
  attempts: number;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  /** When the copy (with its hooks) began and ended on its node: what --max-per-node bounds. */
  copyStartedAt?: string | undefined;
  copyFinishedAt?: string | undefined;
  context: string;
  credentialSource: string;
}

export interface BackupTarget {
  namespace: string;
  pvc: string;
  /** Already discovered (backup --all): saves a lookup. */
  claim?: DiscoveredClaim | undefined;
}

export interface BackupProgressEvent {
  stage: BackupStage;
  /** Tar bytes received so far in this copy attempt. */
  tarBytes?: number;
  /** The copy attempt (1-based) during the copy stage. */
  attempt?: number;
  /** The claim's data as measured in the helper (disk usage): approximate, and may come late. */
  totalBytes?: number;
}

export type BackupProgressListener = (target: BackupTarget, event: BackupProgressEvent) => void;

export interface BackupOptions {
  outputDir: string;
  /**
   * Back up into this repository as snapshots (a Block claim's device image as one file).
   * `lockConfirmed`: the lock's second look, still going on while helpers start; no copy writes
   * before it resolves, and every copy fails if it finds another process's lock.
   */
  repository?: { repository: Repository; location: string; lockConfirmed?: Promise<void> } | undefined;
  /**
   * Filesystem claims into the repository through data movers: pods of this image on the claims'
   * nodes read them in place and write straight into the repository (mover.ts).
   */
  mover?: MoverOptions | undefined;
  /** Why the copies go over exec when there is no mover (--mover exec, a directory repository, ...). */
  execReason?: string | undefined;
  /** At most this many copies at once on one node (--max-per-node); unbounded when absent. */
  maxPerNode?: number | undefined;
  /** --snapshot and its options: read a CSI VolumeSnapshot of the claim instead of the live claim. */
  snapshot?: SnapshotOptions | undefined;
  /** --pre-hook, --post-hook and their options (pods' Velero annotations apply where these are absent). */
  hooks?: HookFlags | undefined;
  compression: Compression;
  helper: Omit<HelperPodOptions, 'runId'>;
  podReadyTimeoutMs: number;
  /** Keep a backup that lacks files the helper could not read (it fails otherwise). */
  allowPartial?: boolean | undefined;
  /** How many times a cut or truncated copy is tried again, in the same helper pod (default 2). */
  retries?: number | undefined;
  /** How long a helper keeps tar's output available for this client's acknowledgement (default 300). */
  ackTimeoutSeconds?: number | undefined;
  /** A fault to inject, for tests only (faults.ts). */
  fault?: CopyFault | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: BackupProgressListener | undefined;
  /** Called with each claim's result as soon as it is known. */
  onResult?: ((result: BackupResult) => void) | undefined;
}

export interface SnapshotOptions {
  mode: SnapshotMode;
  /** --snapshot-class: this VolumeSnapshotClass, else the driver's default. */
  snapshotClass?: string | undefined;
  /** --keep-snapshot: leave the VolumeSnapshot in place (the temporary claim is always removed). */
  keep: boolean;
  /** How long the driver may take to cut the snapshot and make it ready (--snapshot-timeout). */
  timeoutMs: number;
}

type BackupErrorCode = NonNullable<BackupResult['errorCode']>;

/** A backup between start() and complete(): its row, its helper pod once running, or why it failed. */
interface InFlight {
  target: BackupTarget;
  started: Date;
  record: BackupRecord;
  progress: (event: BackupProgressEvent) => void;
  stage: BackupStage;
  placement: string | null;
  /** The claim as discovered: its pods are where hooks run. */
  claim?: DiscoveredClaim;
  /** Live or snapshot; with a snapshot, the objects made for it (removed in complete()). */
  source?: BackupSource;
  /** Hooks already run: around a snapshot they run in start(), right before and after it is cut. */
  hooks: HookRecord[];
  hooksDone: boolean;
  /** The claim the helper mounts: the claim, or the one made from its snapshot. */
  readClaim?: DiscoveredClaim;
  /** Where the helper mounts it: /data, or /data/<pvc> in a helper shared with other claims of the run. */
  mountPath: string;
  /** The helper is shared (shared-helpers.ts): released, not deleted, when this claim is done. */
  sharedHelper: boolean;
  transfer?: Transfer;
  /** Into a repository over exec: the parent snapshot, its trees read ahead while the helper starts. */
  previous?: Promise<PreviousBackup>;
  failure?: BackupFailure;
}
type BackupFailure = StageFailure<BackupStage, BackupErrorCode>;

/** restic's parent of a claim's backup, and its trees at the snapshot's path that the listing is compared with. */
interface PreviousBackup {
  parent: SnapshotWithId | undefined;
  trees: ParentTrees | undefined;
}

/** One claim's copy stage: into `partial`, from the helper `pod`; a device of `deviceBytes` for a Block claim. */
interface CopyJob {
  target: BackupTarget;
  pod: string;
  mountPath: string;
  /** The artifact's partial file; null when the copy goes into the repository. */
  partial: string | null;
  /** Into a repository instead of a file. */
  repository: RepositoryCopy | undefined;
  record: BackupRecord;
  progress: (event: BackupProgressEvent) => void;
  deviceBytes: number | undefined;
}

/** The catalog's columns of a snapshot. */
function snapshotColumns(snapshot: BackupSnapshot): Partial<BackupRecord> {
  const { repository, id: snapshotId, filesNew, filesChanged, filesUnmodified, bytesRead, bytesSent, bytesAdded } = snapshot;
  return { repository, snapshotId, filesNew, filesChanged, filesUnmodified, bytesRead, bytesSent, bytesAdded };
}

function stageFailure(stage: BackupStage, error: unknown): BackupFailure {
  if (error instanceof StageFailure) return error as BackupFailure;
  if (error instanceof CopyStageError) return new StageFailure('copy', `copy stage failed: ${error.message}`, 'CopyStageError');
  const typed = fromPluginError(stage, error);
  if (typed) return typed as BackupFailure;
  const message = error instanceof Error ? error.message : String(error);
  if (stage === 'snapshot') return new StageFailure(stage, `snapshot failed: ${message}`, 'SnapshotError');
  return new StageFailure(stage, stage === 'helper-pod' ? `helper pod failed: ${message}` : message, stage === 'helper-pod' ? 'HelperPodError' : 'InternalError');
}

export class BackupManager {
  readonly runId = newBackupId();
  private readonly client: KubeClient;
  private readonly catalog: Catalog;
  private readonly options: BackupOptions;
  /** Namespaces where Pod Security refused a root helper during this run (helper-pod.ts). */
  private readonly restrictedNamespaces = new Set<string>();
  private repositoryQueue: Promise<unknown> = Promise.resolve();
  private readonly nodeSlots: NodeSlots | undefined;
  private readonly volumes: PersistentVolumes;
  private readonly snapshotFacts: SnapshotFactsReader;
  /** Set once --mover auto has found movers unusable in this run (the image, the repository's reach): the reason. */
  private moverUnusable: string | undefined;
  private readonly volumeSnapshots: VolumeSnapshots;
  /** What the claims of this run may read ahead of their walks, together (ParentTrees). */
  private readonly readAheadBudget: ReadAheadBudget = { left: PARENT_READ_AHEAD_BYTES };
  private readonly sharedHelpers: SharedHelpers;

  constructor(client: KubeClient, catalog: Catalog, options: BackupOptions) {
    this.client = client;
    this.catalog = catalog;
    this.options = options;
    this.nodeSlots = options.maxPerNode ? new NodeSlots(options.maxPerNode) : undefined;
    this.volumes = new PersistentVolumes(client);
    this.snapshotFacts = new SnapshotFactsReader(client, this.volumes);
    this.volumeSnapshots = new VolumeSnapshots(client);
    this.sharedHelpers = new SharedHelpers(client, {
      helper: { ...options.helper, runId: this.runId },
      podReadyTimeoutMs: options.podReadyTimeoutMs,
      signal: options.signal,
      restricted: this.restrictedNamespaces,
    });
  }

  async backupOne(target: BackupTarget): Promise<BackupResult> {
    return this.complete(await this.start(target));
  }

  /**
   * Everything before the copy: the catalog row, discovery and a running helper pod. Never throws:
   * a failure is carried to complete(), which also cleans up. backupMany runs this ahead of the copies.
   */
  private async start(target: BackupTarget): Promise<InFlight> {
    const started = new Date();
    const { credentials } = this.client;
    const progress = (event: BackupProgressEvent) => this.options.onProgress?.(target, event);
    const record: BackupRecord = {
      id: newBackupId(),
      context: credentials.context,
      cluster: credentials.server,
      credentialSource: credentials.source,
      namespace: target.namespace,
      pvc: target.pvc,
      pv: null,
      storageClass: null,
      capacity: null,
      node: null,
      helperPod: null,
      startedAt: started.toISOString(),
      finishedAt: null,
      status: 'running',
      failedStage: null,
      message: null,
      artifactPath: null,
      compression: this.options.compression,
      bytes: null,
      tarBytes: null,
      fileCount: null,
      sha256: null,
      attempts: 0,
      volumeMode: null,
      runAs: null,
      unreadable: null,
      vanished: null,
      changed: null,
      contentSha256: null,
      repository: null,
      snapshotId: null,
      filesNew: null,
      filesChanged: null,
      filesUnmodified: null,
      bytesRead: null,
      bytesSent: null,
      hooks: null,
      source: null,
      bytesAdded: null,
      pluginVersion,
      prunedAt: null,
    };
    await this.catalog.insertBackup(record);
    const flight: InFlight = { target, started, record, progress, stage: 'discovery', placement: null, hooks: [], hooksDone: false, mountPath: DATA_MOUNT_PATH, sharedHelper: false };
    try {
      progress({ stage: 'discovery' });
      const claim = target.claim ?? (await discoverClaim(this.client, target.namespace, target.pvc));
      flight.claim = claim;
      Object.assign(record, { pv: claim.volume, storageClass: claim.storageClass, capacity: claim.capacity, volumeMode: claim.volumeMode });
      if (claim.phase !== 'Bound') {
        throw new StageFailure('discovery', `claim ${target.namespace}/${target.pvc} is ${claim.phase}, not Bound: it has no volume to read`, 'NotFoundError');
      }

      const readClaim = await this.chooseSource(flight, claim);

      flight.stage = 'helper-pod';
      progress({ stage: 'helper-pod' });
      flight.placement = readClaim === claim ? placementFor(claim).reason : `anywhere the scheduler chooses: it reads claim ${readClaim.name}, made from the snapshot`;
      flight.readClaim = readClaim;
      flight.transfer = this.transferFor(claim);
      if (flight.transfer?.mode === 'exec') flight.previous = this.readPrevious(target);
      try {
        await this.startHelper(flight);
      } catch (error) {
        // --mover auto: an image that cannot be pulled here leaves the copy to exec, for the rest of the run too.
        const why = flight.transfer?.mode === 'pod' && this.options.mover?.fallback ? moverUnusable(error, this.options.mover.image) : undefined;
        if (!why) throw error;
        await this.fallBackToExec(flight, why);
      }
    } catch (error) {
      flight.failure = stageFailure(flight.stage, error);
    }
    return flight;
  }

  /** Pod or exec, and why (a Block claim's device is read over exec; auto may have given up on movers). */
  private transferFor(claim: DiscoveredClaim): Transfer | undefined {
    if (!this.options.repository) return undefined;
    const mover = this.options.mover;
    if (!mover) return { mode: 'exec', reason: this.options.execReason ?? '--mover exec' };
    if (claim.volumeMode === 'Block') return { mode: 'exec', reason: 'a Block claim\'s device image is read over exec' };
    if (this.moverUnusable) return { mode: 'exec', reason: this.moverUnusable };
    return { mode: 'pod', reason: mover.reason };
  }

  /** The helper pod (a mover pod when the transfer is one) for the claim it reads, running; a shared one where planned. */
  private async startHelper(flight: InFlight): Promise<void> {
    const { record, target } = flight;
    if (flight.readClaim === flight.claim && flight.transfer?.mode !== 'pod' && this.sharedHelpers.shares(flight.claim!)) {
      const mount = await this.sharedHelpers.acquire(flight.claim!);
      if (mount) {
        Object.assign(flight, { mountPath: mount.mountPath, sharedHelper: true });
        Object.assign(record, { helperPod: mount.pod, runAs: describeIdentity(mount.identity), node: mount.node });
        return;
      }
    }
    const mover = flight.transfer?.mode === 'pod' ? this.options.mover : undefined;
    const moverPod = mover ? { image: mover.image, command: moverWaitCommand(this.options.helper.deadlineSeconds) } : {};
    const helper = await startHelperPod(this.client, flight.readClaim!, { ...this.options.helper, ...moverPod, runId: this.runId }, 'backup', this.restrictedNamespaces);
    record.helperPod = helper.name;
    record.runAs = describeIdentity(helper.identity);
    const running = await waitForHelperPod(this.client, target.namespace, record.helperPod, this.options.podReadyTimeoutMs, this.options.signal);
    record.node = running.spec?.nodeName ?? null;
  }

  /** --mover auto gives up on movers for this run: the mover pod goes, an exec helper takes its place. */
  private async fallBackToExec(flight: InFlight, why: string): Promise<void> {
    this.moverUnusable = `${why}: copied over exec instead (--mover auto)`;
    flight.transfer = { mode: 'exec', reason: this.moverUnusable };
    if (flight.record.helperPod) await deleteHelperPod(this.client, flight.target.namespace, flight.record.helperPod);
    flight.record.helperPod = null;
    await this.startHelper(flight);
  }

  /**
   * The claim the helper reads: the claim itself, or a temporary one made from a VolumeSnapshot of it.
   * Around the snapshot the pods' hooks run, the post-hooks as soon as it is cut (also when it fails
   * or the run is interrupted), so the application is paused for the snapshot only.
   */
  private async chooseSource(flight: InFlight, claim: DiscoveredClaim): Promise<DiscoveredClaim> {
    const options = this.options.snapshot ?? { mode: 'never', keep: false, timeoutMs: 0 };
    const facts = options.mode === 'never' ? { driver: null, classes: [] } : await this.snapshotFacts.read(claim);
    const choice = chooseSnapshotSource(facts, options.mode, options.snapshotClass);
    if (!choice.use) {
      flight.source = { kind: 'live', reason: choice.reason };
      if (choice.refused) throw new StageFailure('snapshot', `no snapshot: ${choice.reason}`, 'SnapshotError');
      return claim;
    }
    const source: BackupSource = { kind: 'snapshot', reason: choice.reason, snapshotClass: choice.snapshotClass, kept: options.keep };
    flight.source = source;
    const { namespace } = claim;
    const signal = this.options.signal;
    const postHooks: { pod: string; spec: HookSpec }[] = [];
    flight.hooksDone = true;
    try {
      flight.stage = 'pre-hook';
      await this.runPreHooks(flight, flight.hooks, postHooks);
      flight.stage = 'snapshot';
      flight.progress({ stage: 'snapshot' });
      source.volumeSnapshot = await this.volumeSnapshots.create(claim, choice.snapshotClass, this.runId);
      await this.volumeSnapshots.waitFor(namespace, source.volumeSnapshot, 'taken', options.timeoutMs, signal);
    } finally {
      // Not on the run's signal: after Ctrl-C too, a frozen application is thawed (each within its timeout).
      for (const { pod, spec } of postHooks) flight.hooks.push(await runHook(this.client, namespace, pod, spec));
    }
    const ready = await this.volumeSnapshots.waitFor(namespace, source.volumeSnapshot, 'ready', options.timeoutMs, signal);
    source.claim = await this.volumeSnapshots.createClaim(claim, source.volumeSnapshot, ready.status?.restoreSize, this.runId);
    // The workload's identity still applies (restricted namespaces), its node does not: nothing holds the new claim.
    return {
      ...claim,
      name: source.claim,
      phase: 'Pending',
      volume: null,
      accessModes: ['ReadWriteOnce'],
      pods: claim.pods.map((pod) => ({ ...pod, node: null })),
    };
  }

  /** The copy, then, whatever happened: the helper pod deleted, the partial file removed, the row's outcome. */
  private async complete(flight: InFlight): Promise<BackupResult> {
    const { target, started, record, progress } = flight;
    const { id } = record;
    const { credentials } = this.client;
    const signal = this.options.signal;
    let helperPod = record.helperPod;
    let { stage, failure } = flight;
    let partial: string | null = null;
    let artifact: BackupArtifact | undefined;
    let snapshot: BackupSnapshot | undefined;
    let cleanupProblem: string | undefined;
    let retriedBecause: string[] = [];
    let unreadable: PathSummary | undefined;
    /** What the helper could not read, in words: the failure's reason, or a kept partial backup's note. */
    let unreadableText: string | undefined;
    let vanished: PathSummary | undefined;
    let changed: PathSummary | undefined;
    /** What a successful backup should still tell: paths that vanished or changed, a device that shrank. */
    let copyNotes: string[] = [];
    const hooks: HookRecord[] = flight.hooks;
    /** Post-hooks owed: every pod with one, known before any pre-hook runs, run whatever happens next. */
    const postHooks: { pod: string; spec: HookSpec }[] = [];
    let freeSlot = () => {};
    let copyStartedAt: string | undefined;
    let copyFinishedAt: string | undefined;
    try {
      if (failure) throw failure;
      if (this.nodeSlots && record.node) freeSlot = await this.nodeSlots.acquire(record.node);
      copyStartedAt = new Date().toISOString();
      if (!flight.hooksDone) {
        stage = 'pre-hook';
        await this.runPreHooks(flight, hooks, postHooks);
      }
      stage = 'copy';
      const image = record.volumeMode === 'Block';
      const repository = this.options.repository;
      const finalPath = artifactPath(this.options.outputDir, target.namespace, target.pvc, started, id, this.options.compression, image ? 'image' : 'tar');
      if (!repository) {
        fs.mkdirSync(path.dirname(finalPath), { recursive: true });
        partial = partialPath(finalPath);
      }
      let parent: SnapshotWithId | undefined;
      const deviceBytes = image ? await measureDeviceBytes(this.client.credentials.kubeConfig, target.namespace, helperPod!, signal) : undefined;
      // One copy at a time goes into the repository: its packers are shared by every archive.
      const job: CopyJob = { target, pod: helperPod!, mountPath: flight.mountPath, partial, repository: repository && { repository: repository.repository, path: `/data/${target.pvc}` }, record, progress, deviceBytes };
      const mover = flight.transfer?.mode === 'pod' ? this.options.mover : undefined;
      if (repository) await this.lockConfirmed();
      const copyOverExec = () =>
        repository
          ? this.repositoryTurn(async () => {
              // Read while the helper started (after a mover gave up, only now).
              const previous = await (flight.previous ??= this.readPrevious(target));
              parent = previous.parent;
              job.repository!.parent = previous.trees;
              return this.copyWithRetries(job);
            })
          : this.copyWithRetries(job);
      const copied = mover
        ? await this.moveInCluster({
            kubeConfig: this.client.credentials.kubeConfig,
            namespace: target.namespace,
            pod: helperPod!,
            path: `/data/${target.pvc}`,
            credentials: mover.credentials,
            allowPartial: this.options.allowPartial ?? false,
            silenceLimitMs: mover.silenceLimitMs,
            signal,
            onBytes: (tarBytes) => progress({ stage: 'copy', tarBytes, attempt: 1 }),
          }, record).catch(async (error: unknown) => {
            // --mover auto: a repository out of the cluster's reach is still in this machine's.
            const why = mover.fallback ? moverUnusable(error, mover.image) : undefined;
            if (!why) throw error;
            await this.fallBackToExec(flight, why);
            helperPod = record.helperPod;
            job.pod = helperPod!;
            return copyOverExec();
          })
        : await copyOverExec();
      retriedBecause = copied.retriedBecause;
      // Not failures: a path that no longer exists cannot be backed up, and a change is kept as read.
      if (copied.vanished.count > 0) vanished = copied.vanished;
      if (copied.changed.count > 0) changed = copied.changed;
      record.vanished = copied.vanished.count;
      record.changed = copied.changed.count;
      copyNotes = [...(vanished ? [describeVanished(vanished)] : []), ...(changed ? [describeChanged(changed)] : []), ...copied.notes];
      if (copied.unreadable.count > 0) {
        unreadable = copied.unreadable;
        record.unreadable = unreadable.count;
        unreadableText = describeUnreadable(unreadable, record.runAs ?? 'the helper');
        if (!this.options.allowPartial) {
          throw new StageFailure(
            'copy',
            `copy stage failed: ${unreadableText}; nothing was kept. Pass --allow-partial to keep such a backup, or --run-as-user/--run-as-group/--fs-group to read as a user who may`,
            'UnreadableFilesError',
          );
        }
      }

      stage = 'finalize';
      if (repository && copied.moved) {
        // The mover saved the snapshot in the cluster, last, after its packs and index.
        const moved = copied.moved;
        snapshot = {
          repository: repository.location,
          id: moved.snapshotId!,
          path: `/data/${target.pvc}`,
          ...(moved.parent ? { parent: moved.parent } : {}),
          files: moved.files ?? 0,
          filesNew: moved.filesNew ?? 0,
          filesChanged: moved.filesChanged ?? 0,
          filesUnmodified: moved.filesUnmodified ?? 0,
          bytesRead: moved.bytesRead ?? 0,
          bytesSent: copied.tar.bytes,
          bytesAdded: moved.bytesAdded ?? 0,
          mover: helperPod!,
          ...(moved.peakRssBytes ? { moverPeakRssBytes: moved.peakRssBytes } : {}),
        };
        Object.assign(record, snapshotColumns(snapshot), { tarBytes: copied.tar.bytes, fileCount: moved.entries ?? null });
      } else if (repository && copied.stored) {
        // Last, as restic does: the snapshot that refers to the packs and index the copy wrote.
        const snapshotPath = job.repository!.path;
        const saved = await saveArchiveSnapshot(repository.repository, copied.stored, {
          path: snapshotPath,
          hostname: target.namespace,
          programVersion: `kubectl-nkvm ${pluginVersion}`,
          ...(parent ? { parent: parent.id } : {}),
        });
        const changes = copied.stored.changes;
        snapshot = {
          repository: repository.location,
          id: saved.snapshotId,
          path: snapshotPath,
          ...(parent ? { parent: parent.id } : {}),
          files: saved.files,
          filesNew: changes?.filesNew ?? saved.files,
          filesChanged: changes?.filesChanged ?? 0,
          filesUnmodified: changes?.filesUnmodified ?? 0,
          bytesRead: copied.stored.read ?? saved.bytes,
          bytesSent: copied.tar.bytes + (copied.listingBytes ?? 0),
          bytesAdded: copied.stored.added.dataAddedPacked,
          ...(copied.imageSha256 ? { imageSha256: copied.imageSha256 } : {}),
        };
        Object.assign(record, snapshotColumns(snapshot), {
          tarBytes: copied.tar.bytes,
          fileCount: copied.stored.entries ?? copied.tar.entries,
          // A device image's hash, which restore and verify check the snapshot's file against.
          contentSha256: copied.imageSha256,
        });
      } else {
        commitArtifact(partial!, finalPath);
        partial = null;
        artifact = {
          path: finalPath,
          compression: this.options.compression,
          bytes: copied.bytes,
          sha256: copied.sha256,
          tarBytes: copied.tar.bytes,
          entries: copied.tar.entries,
          ...(copied.imageSha256 ? { imageSha256: copied.imageSha256 } : {}),
        };
      }
      stage = 'done';
    } catch (error) {
      failure = stageFailure(stage, error);
    } finally {
      // Not on the run's signal: after Ctrl-C too, a frozen application is thawed (each within its timeout).
      for (const { pod, spec } of postHooks) hooks.push(await runHook(this.client, target.namespace, pod, spec));
      if (copyStartedAt) copyFinishedAt = new Date().toISOString();
      freeSlot();
      if (partial) fs.rmSync(partial, { force: true });
      // What was read ahead for this claim and not taken goes, and with it its share of the run's budget.
      void flight.previous?.then((previous) => previous.trees?.dropReadAhead(), () => {});
      if (flight.claim && this.sharedHelpers.shares(flight.claim)) {
        await this.sharedHelpers.release(flight.claim).catch((error: Error) => {
          cleanupProblem = `${error.message}; its activeDeadlineSeconds will stop it`;
        });
      }
      if (helperPod && !flight.sharedHelper) {
        const deleted = await deleteHelperPod(this.client, target.namespace, helperPod).then(
          () => true,
          (error: Error) => {
            // The pod's deadline still ends it: report this, but it does not undo a good artifact.
            cleanupProblem = `helper pod ${target.namespace}/${helperPod} could not be deleted (${error.message}); its activeDeadlineSeconds will stop it`;
            return false;
          },
        );
        // A mover that did not finish may have left its lock in the repository: once its pod is gone, remove it.
        if (deleted && failure && flight.transfer?.mode === 'pod' && this.options.repository) {
          await this.removeMoverLocks(target.namespace, helperPod).catch((error: Error) => {
            cleanupProblem = [cleanupProblem, `the lock of mover ${helperPod} could not be removed (${error.message}): \`kubectl nkvm repo unlock\` removes it once stale`].filter(Boolean).join('; ');
          });
        }
      }
      const source = flight.source;
      if (source?.volumeSnapshot || source?.claim) {
        const left = await this.volumeSnapshots
          .remove(target.namespace, { claim: source.claim, snapshot: source.volumeSnapshot, keepSnapshot: source.kept ?? false })
          .catch((error: Error) => `the snapshot's objects could not be removed (${error.message}): delete claim ${source.claim ?? '-'} and VolumeSnapshot ${source.volumeSnapshot ?? '-'} in ${target.namespace}`);
        if (left) cleanupProblem = [cleanupProblem, left].filter(Boolean).join('; ');
      }
    }

    const finished = new Date();
    const stopped = failure ? stoppedOutcome(signal, failure.stage) : undefined;
    const status: BackupOutcome = failure ? (stopped?.status ?? 'failed') : 'succeeded';
    const retried = retriedBecause.length ? ` (${record.attempts} attempts; ${retriedBecause.join('; ')})` : '';
    const failedPostHooks = hooks.filter((hook) => hook.phase === 'post' && !hook.ok).map(describeHook);
    const keptSnapshot = flight.source?.kept && flight.source.volumeSnapshot ? [`VolumeSnapshot ${target.namespace}/${flight.source.volumeSnapshot} kept (--keep-snapshot)`] : [];
    // Movers were asked for but this copy went over exec: say why.
    const transferNote = flight.transfer?.mode === 'exec' && this.options.mover ? [flight.transfer.reason] : [];
    const notes = [...(unreadableText ? [`partial: ${unreadableText}`] : []), ...copyNotes, ...failedPostHooks, ...keptSnapshot, ...transferNote];
    const partialNote = notes.length && !failure ? ` (${notes.join('; ')})` : '';
    const destination = snapshot ? `snapshot ${snapshot.id.slice(0, 8)} in ${snapshot.repository}${snapshot.mover ? ` by data mover ${snapshot.mover}` : ''}` : artifact?.path;
    const outcome = failure ? (stopped?.message ?? failure.message) : `backed up to ${destination}${partialNote}${retried}`;
    const message = [outcome, ...(failure ? keptSnapshot : []), ...(cleanupProblem ? [cleanupProblem] : [])].join('; ');
    await this.catalog.updateBackup(id, {
      pv: record.pv,
      storageClass: record.storageClass,
      capacity: record.capacity,
      node: record.node,
      helperPod: record.helperPod,
      attempts: record.attempts,
      volumeMode: record.volumeMode,
      runAs: record.runAs,
      unreadable: record.unreadable,
      vanished: record.vanished,
      changed: record.changed,
      contentSha256: artifact?.imageSha256 ?? record.contentSha256,
      finishedAt: finished.toISOString(),
      status,
      failedStage: failure ? failure.stage : null,
      message,
      artifactPath: artifact?.path ?? null,
      // A snapshot's compression is the repository's: the artifact's setting does not apply.
      compression: snapshot ? null : record.compression,
      bytes: artifact?.bytes ?? null,
      tarBytes: artifact?.tarBytes ?? record.tarBytes,
      fileCount: artifact?.entries ?? record.fileCount,
      sha256: artifact?.sha256 ?? null,
      repository: record.repository,
      snapshotId: record.snapshotId,
      filesNew: record.filesNew,
      filesChanged: record.filesChanged,
      filesUnmodified: record.filesUnmodified,
      bytesRead: record.bytesRead,
      bytesSent: record.bytesSent,
      bytesAdded: record.bytesAdded,
      hooks: hooks.length ? JSON.stringify(hooks) : null,
      source: flight.source ? JSON.stringify(flight.source) : null,
    });
    const result: BackupResult = {
      id,
      namespace: target.namespace,
      pvc: target.pvc,
      status,
      stage: failure ? failure.stage : 'done',
      message,
      ...(failure ? { errorCode: failure.errorCode } : {}),
      ...(flight.source ? { source: flight.source } : {}),
      ...(flight.transfer ? { transfer: flight.transfer } : {}),
      ...(artifact ? { artifact } : {}),
      ...(snapshot ? { snapshot } : {}),
      volumeMode: record.volumeMode,
      runAs: record.runAs,
      placement: flight.placement,
      ...(unreadable ? { unreadable } : {}),
      ...(vanished ? { vanished } : {}),
      ...(changed ? { changed } : {}),
      ...(hooks.length ? { hooks } : {}),
      pv: record.pv,
      storageClass: record.storageClass,
      capacity: record.capacity,
      node: record.node,
      helperPod: record.helperPod,
      attempts: record.attempts,
      startedAt: record.startedAt,
      finishedAt: finished.toISOString(),
      durationMs: finished.getTime() - started.getTime(),
      ...(copyStartedAt ? { copyStartedAt, copyFinishedAt } : {}),
      context: credentials.context,
      credentialSource: credentials.source,
    };
    this.options.onResult?.(result);
    return result;
  }

  /**
   * The pre-hook of every running pod that mounts the claim, right before the copy. Each pod's
   * post-hook is owed from then on, whatever happens. A failing pre-hook with on-error fail stops the
   * backup before anything is copied.
   */
  private async runPreHooks(flight: InFlight, hooks: HookRecord[], postHooks: { pod: string; spec: HookSpec }[]): Promise<void> {
    const claim = flight.claim;
    if (!claim?.pods.length) return;
    const pods = await podsForHooks(this.client, claim.namespace, claim.pods.map((pod) => pod.name));
    const flags = this.options.hooks ?? {};
    for (const pod of pods) {
      const post = hookFor(pod, 'post', flags);
      if (post) postHooks.push({ pod: pod.metadata!.name!, spec: post });
    }
    for (const pod of pods) {
      const pre = hookFor(pod, 'pre', flags);
      if (!pre) continue;
      flight.progress({ stage: 'pre-hook' });
      const ran = await runHook(this.client, claim.namespace, pod.metadata!.name!, pre, this.options.signal);
      hooks.push(ran);
      if (!ran.ok && pre.onError === 'fail') {
        throw new StageFailure('pre-hook', `pre-hook failed, nothing was copied: ${describeHook(ran)}`, 'HookFailedError');
      }
    }
  }

  /** Waits until the mover pod is gone (no process of it can write any more), then removes the locks it held. */
  private async removeMoverLocks(namespace: string, pod: string): Promise<void> {
    const left = await untilGone([{ name: `pod ${namespace}/${pod}`, read: () => readPod(this.client, namespace, pod) }], 60_000, 250);
    if (left.length) throw new Error(`${left[0]} still exists after 60s`);
    await removeLocksOfHost(this.options.repository!.repository, pod);
  }

  /** A data mover's copy: one attempt (a mover's failure is its own; a retry would read only what it missed). */
  private async moveInCluster(request: Parameters<typeof runMoverBackup>[0], record: BackupRecord): Promise<CopyResult & { retriedBecause: string[] }> {
    record.attempts += 1;
    request.onBytes?.(0);
    return { ...(await runMoverBackup(request)), retriedBecause: [] };
  }

  /**
   * restic's parent (the latest snapshot of the same claim: host = namespace, same path) and its trees
   * at that path, the first levels read ahead. Ahead of this run's repository turn: no other copy of
   * the run writes a snapshot of the same claim.
   */
  private readPrevious(target: BackupTarget): Promise<PreviousBackup> {
    const { repository } = this.options.repository!;
    const path = `/data/${target.pvc}`;
    const previous = (async () => {
      await repository.indexLoaded();
      const parent = await findParentSnapshot(repository, target.namespace, path);
      const trees = parent && (await parentTreesAtPath(repository, parent.tree, path));
      void trees?.readAhead(this.readAheadBudget);
      return { parent, trees };
    })();
    previous.catch(() => {}); // told where it is awaited, in the copy; a claim that fails before its copy never awaits it
    return previous;
  }

  /** The repository's lock, confirmed; a lock another process took meanwhile is this copy's failure. */
  private async lockConfirmed(): Promise<void> {
    try {
      await this.options.repository!.lockConfirmed;
    } catch (error) {
      throw new StageFailure('copy', messageWithHint(error as Error & { hint?: string }), 'RepositoryLockedError');
    }
  }

  /** Runs `work` after every earlier repository copy of this run has ended. */
  private repositoryTurn<T>(work: () => Promise<T>): Promise<T> {
    const turn = this.repositoryQueue.then(work);
    this.repositoryQueue = turn.catch(() => {});
    return turn;
  }

  /**
   * The copy stage, tried again in the same helper pod while it fails with a cut or truncated stream,
   * up to --retries times. The partial file is started afresh each time; the attempts are counted
   * in the record and the message of a success that needed them says why.
   */
  private async copyWithRetries(job: CopyJob): Promise<CopyResult & { retriedBecause: string[] }> {
    const { target, pod, mountPath, progress, deviceBytes } = job;
    // Measured alongside the copy, not before it: on a million files the walk takes a while.
    const copyEnded = new AbortController();
    const signal = this.options.signal ? AbortSignal.any([this.options.signal, copyEnded.signal]) : copyEnded.signal;
    const measuring = deviceBytes !== undefined
      ? Promise.resolve(progress({ stage: 'copy', totalBytes: deviceBytes }))
      : job.repository
      ? undefined // an incremental copy knows what it will read once it has listed the claim
      : this.options.onProgress
      ? measureClaimBytes(this.client.credentials.kubeConfig, target.namespace, pod, mountPath, signal)
          .then((totalBytes) => progress({ stage: 'copy', totalBytes }))
          .catch(() => {}) // progress is a nicety: a failed measurement shows no total
      : undefined;
    try {
      return await this.copyAttempts(job);
    } finally {
      copyEnded.abort();
      await measuring;
    }
  }

  private async copyAttempts({ target, pod, mountPath, partial, repository, record, progress, deviceBytes }: CopyJob): Promise<CopyResult & { retriedBecause: string[] }> {
    const retriedBecause: string[] = [];
    for (;;) {
      const attempt = (record.attempts += 1);
      progress({ stage: 'copy', tarBytes: 0, attempt });
      if (partial) fs.rmSync(partial, { force: true });
      try {
        const copied = await copyClaimData({
          kubeConfig: this.client.credentials.kubeConfig,
          namespace: target.namespace,
          pod,
          mountPath,
          compression: this.options.compression,
          partialPath: partial ?? '',
          repository,
          ackTimeoutSeconds: this.options.ackTimeoutSeconds ?? DEFAULT_ACK_TIMEOUT_SECONDS,
          fault: this.options.fault,
          attempt,
          deviceBytes,
          signal: this.options.signal,
          onBytes: (tarBytes) => progress({ stage: 'copy', tarBytes, attempt }),
          onTotalBytes: (totalBytes) => progress({ stage: 'copy', totalBytes }),
        });
        return { ...copied, retriedBecause };
      } catch (error) {
        const retry = error instanceof CopyStageError && error.retryable && attempt <= (this.options.retries ?? DEFAULT_COPY_RETRIES) && !this.options.signal?.aborted;
        if (!retry) {
          if (error instanceof CopyStageError && attempt > 1) throw new CopyStageError(`${error.message} (attempt ${attempt}; earlier: ${retriedBecause.join('; ')})`);
          throw error;
        }
        retriedBecause.push(`attempt ${attempt}: ${error.message}`);
      }
    }
  }

  /**
   * Backs up every target, at most `parallel` copies at a time; results in the order of the targets.
   * The next claims' helper pods are started while the current ones copy (up to `parallel` ahead),
   * so a helper's start-up is not paid between copies; but only once the first copies' helpers run:
   * pods starting together share the node's CPU, and eight at once delayed the first copy by 3 s
   * more than four did (8 claims, --parallel 4: 16.4 s, then 12.2 s). Once interrupted, no further
   * target is started (and none gets a result); those already started are finished as interrupted.
   * Claims held on one node share one helper pod there (shared-helpers.ts), removed once the last is done.
   */
  async backupMany(requested: BackupTarget[], parallel: number): Promise<BackupResult[]> {
    const targets = requested.length > 1 ? await this.planSharedHelpers(requested, parallel) : requested;
    try {
      return await this.backupEach(targets, parallel);
    } finally {
      await this.sharedHelpers.close();
    }
  }

  /**
   * Which claims share a helper (shared-helpers.ts). The claims not yet discovered are, one list a
   * namespace (a failure there is each claim's own to tell, when it is discovered alone); the
   * targets come back with them.
   */
  private async planSharedHelpers(requested: BackupTarget[], parallel: number): Promise<BackupTarget[]> {
    const found = new Map<string, DiscoveredClaim>();
    const namespaces = new Set(requested.filter((target) => !target.claim).map((target) => target.namespace));
    await Promise.all(
      [...namespaces].map(async (namespace) => {
        for (const claim of await discoverClaims(this.client, { namespace, allNamespaces: false }).catch(() => [])) found.set(claimKey(namespace, claim.name), claim);
      }),
    );
    const targets = requested.map((target) => ({ ...target, claim: target.claim ?? found.get(claimKey(target.namespace, target.pvc)) }));
    const candidates = await Promise.all(targets.map(({ claim }) => claim && this.shareCandidate(claim)));
    this.sharedHelpers.plan(candidates.filter((candidate) => candidate !== undefined), parallel);
    return targets;
  }

  /**
   * A claim read live over exec, where a shared helper can mount it: on the node of a pod that holds
   * it, or, held by none, wherever its volume's node affinity allows (read from its PersistentVolume).
   */
  private async shareCandidate(claim: DiscoveredClaim): Promise<ShareCandidate | undefined> {
    if (claim.phase !== 'Bound' || claim.volumeMode === 'Block' || this.transferFor(claim)?.mode === 'pod') return undefined;
    let node: string | undefined;
    try {
      node = placementFor(claim).node;
    } catch (error) {
      if (error instanceof PlacementError) return undefined;
      throw error;
    }
    const volume = node || !claim.volume ? undefined : await this.volumes.get(claim.volume);
    if (!node && !volume) return undefined;
    const snapshot = this.options.snapshot;
    if (snapshot && snapshot.mode !== 'never' && chooseSnapshotSource(await this.snapshotFacts.read(claim), snapshot.mode, snapshot.snapshotClass).use) return undefined;
    const identity = initialIdentity(claim, this.options.helper.runAs ?? {}, this.restrictedNamespaces.has(claim.namespace));
    return node ? { claim, node, identity } : { claim, volumeAffinity: volume!.spec?.nodeAffinity ?? null, identity };
  }

  private async backupEach(targets: BackupTarget[], parallel: number): Promise<BackupResult[]> {
    const width = Math.max(1, Math.min(parallel, targets.length));
    const started: Promise<InFlight>[] = [];
    const startNext = () => {
      if (started.length < targets.length && !this.options.signal?.aborted) started.push(this.start(targets[started.length]!));
    };
    for (let i = 0; i < width; i++) startNext(); // each copy's worker starts the next one once its helper runs
    const results: (BackupResult | undefined)[] = new Array(targets.length);
    let next = 0;
    const worker = async () => {
      while (next < started.length) {
        const index = next++;
        const flight = await started[index]!;
        startNext();
        results[index] = await this.complete(flight);
      }
    };
    await Promise.all(Array.from({ length: width }, worker));
    return results.filter((result): result is BackupResult => result !== undefined);
  }
}
