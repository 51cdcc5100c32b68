/**
 * BackupManager: one claim in, one result out. backupOne() never throws for a per-claim failure; it
 * records the attempt in the catalog (a "running" row first, then its outcome), creates the helper
 * pod, runs the copy stage, publishes the artifact, and always deletes the helper pod and any
 * partial file, on success, failure, timeout and interruption.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ErrorCode } from '../errors.ts';
import type { KubeClient } from '../kube/client.ts';
import type { Catalog, BackupRecord } from '../store/catalog.ts';
import { pluginVersion } from '../version.ts';
import { artifactPath, commitArtifact, newBackupId, partialPath, type Compression } from './artifacts.ts';
import { copyClaimData, CopyStageError } from './copy.ts';
import { discoverClaim, type DiscoveredClaim } from './discovery.ts';
import { fromPluginError, StageFailure } from './stage-failure.ts';
import { createHelperPod, deleteHelperPod, helperPodManifest, waitForHelperPod, type HelperPodOptions } from './helper-pod.ts';

export type BackupStage = 'discovery' | 'helper-pod' | 'copy' | 'finalize' | 'done';
export type BackupOutcome = 'succeeded' | 'failed' | 'interrupted';

export interface BackupArtifact {
  path: string;
  compression: Compression;
  /** Size of the artifact file. */
  bytes: number;
  sha256: string;
  /** Size of the uncompressed tar stream. */
  tarBytes: number;
  /** Entries in the archive (files, directories, links), as `tar -t` lists them. */
  entries: number;
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
  errorCode?: ErrorCode | 'CopyStageError' | 'HelperPodError' | 'InternalError' | undefined;
  artifact?: BackupArtifact | undefined;
  pv: string | null;
  storageClass: string | null;
  capacity: string | null;
  node: string | null;
  helperPod: string | null;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  context: string;
  credentialSource: string;
}

export interface BackupTarget {
  namespace: string;
  pvc: string;
  /** Already discovered (backup --all): saves a lookup. */
  claim?: DiscoveredClaim | undefined;
}

export type BackupProgressListener = (target: BackupTarget, event: { stage: BackupStage; tarBytes?: number }) => void;

export interface BackupOptions {
  outputDir: string;
  compression: Compression;
  helper: Omit<HelperPodOptions, 'runId'>;
  podReadyTimeoutMs: number;
  signal?: AbortSignal | undefined;
  onProgress?: BackupProgressListener | undefined;
}

type BackupErrorCode = NonNullable<BackupResult['errorCode']>;
type BackupFailure = StageFailure<BackupStage, BackupErrorCode>;

function stageFailure(stage: BackupStage, error: unknown): BackupFailure {
  if (error instanceof StageFailure) return error as BackupFailure;
  if (error instanceof CopyStageError) return new StageFailure('copy', `copy stage failed: ${error.message}`, 'CopyStageError');
  const typed = fromPluginError(stage, error);
  if (typed) return typed as BackupFailure;
  const message = error instanceof Error ? error.message : String(error);
  return new StageFailure(stage, stage === 'helper-pod' ? `helper pod failed: ${message}` : message, stage === 'helper-pod' ? 'HelperPodError' : 'InternalError');
}

export class BackupManager {
  readonly runId = newBackupId();
  private readonly client: KubeClient;
  private readonly catalog: Catalog;
  private readonly options: BackupOptions;

  constructor(client: KubeClient, catalog: Catalog, options: BackupOptions) {
    this.client = client;
    this.catalog = catalog;
    this.options = options;
  }

  async backupOne(target: BackupTarget): Promise<BackupResult> {
    const started = new Date();
    const id = newBackupId();
    const { credentials } = this.client;
    const signal = this.options.signal;
    const progress = (stage: BackupStage, tarBytes?: number) => this.options.onProgress?.(target, { stage, ...(tarBytes !== undefined ? { tarBytes } : {}) });
    const record: BackupRecord = {
      id,
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
      pluginVersion,
      prunedAt: null,
    };
    await this.catalog.insertBackup(record);

    let stage: BackupStage = 'discovery';
    let helperPod: string | null = null;
    let partial: string | null = null;
    let artifact: BackupArtifact | undefined;
    let failure: BackupFailure | undefined;
    let cleanupProblem: string | undefined;
    try {
      progress('discovery');
      const claim = target.claim ?? (await discoverClaim(this.client, target.namespace, target.pvc));
      Object.assign(record, { pv: claim.volume, storageClass: claim.storageClass, capacity: claim.capacity });
      if (claim.phase !== 'Bound') {
        throw new StageFailure('discovery', `claim ${target.namespace}/${target.pvc} is ${claim.phase}, not Bound: it has no volume to read`, 'NotFoundError');
      }
      if (claim.volumeMode === 'Block') {
        throw new StageFailure('discovery', `claim ${target.namespace}/${target.pvc} is a raw block volume; only file-system volumes can be backed up`, 'UsageError');
      }

      stage = 'helper-pod';
      progress('helper-pod');
      const manifest = helperPodManifest(claim, { ...this.options.helper, runId: this.runId });
      helperPod = await createHelperPod(this.client, manifest);
      record.helperPod = helperPod;
      const running = await waitForHelperPod(this.client, target.namespace, helperPod, this.options.podReadyTimeoutMs, signal);
      record.node = running.spec?.nodeName ?? null;

      stage = 'copy';
      progress('copy', 0);
      const finalPath = artifactPath(this.options.outputDir, target.namespace, target.pvc, started, id, this.options.compression);
      fs.mkdirSync(path.dirname(finalPath), { recursive: true });
      partial = partialPath(finalPath);
      const copied = await copyClaimData({
        kubeConfig: this.client.credentials.kubeConfig,
        namespace: target.namespace,
        pod: helperPod,
        compression: this.options.compression,
        partialPath: partial,
        signal,
        onBytes: (bytes) => progress('copy', bytes),
      });

      stage = 'finalize';
      commitArtifact(partial, finalPath);
      partial = null;
      artifact = {
        path: finalPath,
        compression: this.options.compression,
        bytes: copied.bytes,
        sha256: copied.sha256,
        tarBytes: copied.tar.bytes,
        entries: copied.tar.entries,
      };
      stage = 'done';
    } catch (error) {
      failure = stageFailure(stage, error);
    } finally {
      if (partial) fs.rmSync(partial, { force: true });
      if (helperPod) {
        await deleteHelperPod(this.client, target.namespace, helperPod).catch((error: Error) => {
          // The pod's deadline still ends it: report this, but it does not undo a good artifact.
          cleanupProblem = `helper pod ${target.namespace}/${helperPod} could not be deleted (${error.message}); its activeDeadlineSeconds will stop it`;
        });
      }
    }

    const finished = new Date();
    const status: BackupOutcome = failure ? (signal?.aborted ? 'interrupted' : 'failed') : 'succeeded';
    const outcome = failure ? (signal?.aborted ? `interrupted during the ${failure.stage} stage` : failure.message) : `backed up to ${artifact!.path}`;
    const message = cleanupProblem ? `${outcome}; ${cleanupProblem}` : outcome;
    await this.catalog.updateBackup(id, {
      pv: record.pv,
      storageClass: record.storageClass,
      capacity: record.capacity,
      node: record.node,
      helperPod: record.helperPod,
      finishedAt: finished.toISOString(),
      status,
      failedStage: failure ? failure.stage : null,
      message,
      artifactPath: artifact?.path ?? null,
      bytes: artifact?.bytes ?? null,
      tarBytes: artifact?.tarBytes ?? null,
      fileCount: artifact?.entries ?? null,
      sha256: artifact?.sha256 ?? null,
    });
    return {
      id,
      namespace: target.namespace,
      pvc: target.pvc,
      status,
      stage: failure ? failure.stage : 'done',
      message,
      ...(failure ? { errorCode: failure.errorCode } : {}),
      ...(artifact ? { artifact } : {}),
      pv: record.pv,
      storageClass: record.storageClass,
      capacity: record.capacity,
      node: record.node,
      helperPod: record.helperPod,
      startedAt: record.startedAt,
      finishedAt: finished.toISOString(),
      durationMs: finished.getTime() - started.getTime(),
      context: credentials.context,
      credentialSource: credentials.source,
    };
  }

  /**
   * Backs up every target, at most `parallel` at a time; results in the order of the targets. Once
   * interrupted, no further target is started (and none gets a result).
   */
  async backupMany(targets: BackupTarget[], parallel: number): Promise<BackupResult[]> {
    const results: (BackupResult | undefined)[] = new Array(targets.length);
    let next = 0;
    const worker = async () => {
      while (next < targets.length && !this.options.signal?.aborted) {
        const index = next++;
        results[index] = await this.backupOne(targets[index]!);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, targets.length)) }, worker));
    return results.filter((result): result is BackupResult => result !== undefined);
  }
}
