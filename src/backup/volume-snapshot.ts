/**
 * Backing up from a CSI VolumeSnapshot instead of the live claim: the snapshot is cut in a moment
 * (the application paused by its hooks only for that), a temporary claim is made from it, and the
 * helper reads that claim, on any node, while the application runs on. The choice of source is
 * pure (snapshot-choice.ts) so it is tested without a cluster.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CustomObjectsApi, type V1PersistentVolumeClaim, type V1StorageClass } from '@kubernetes/client-node';
import type { KubeClient } from '../kube/client.ts';
import { untilGone } from '../kube/wait.ts';
import { claimKey, type DiscoveredClaim, type PersistentVolumes } from './discovery.ts';
import { HELPER_COMPONENT_LABEL, labelValue } from './helper-pod.ts';
import type { BackupSource, SnapshotClassInfo, SnapshotFacts } from './snapshot-choice.ts';

const GROUP = 'snapshot.storage.k8s.io';
const VERSION = 'v1';
/** The annotation that marks a driver's default VolumeSnapshotClass, as the snapshot-controller reads it. */
const DEFAULT_CLASS_ANNOTATION = 'snapshot.storage.kubernetes.io/is-default-class';
/** What the temporary claims and snapshots carry, so that a leftover one is recognisable and findable. */
export const SNAPSHOT_COMPONENT = 'backup-snapshot';

function statusOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.includes('API status 403') ? 'API status 403 (Forbidden)' : message;
}

/** Reads the facts chooseSnapshotSource needs; the class list once per run (a backup of many claims asks once). */
export class SnapshotFactsReader {
  private readonly client: KubeClient;
  private classes: Promise<SnapshotFacts['classes']> | undefined;
  /** Read once a claim: a run plans its shared helpers with them before each claim's backup chooses its source. */
  private readonly facts = new Map<string, Promise<SnapshotFacts>>();
  private readonly volumes: PersistentVolumes;

  constructor(client: KubeClient, volumes: PersistentVolumes) {
    this.client = client;
    this.volumes = volumes;
  }

  read(claim: DiscoveredClaim): Promise<SnapshotFacts> {
    const key = claimKey(claim.namespace, claim.name);
    let facts = this.facts.get(key);
    if (!facts) {
      facts = Promise.all([this.driverOf(claim), (this.classes ??= this.listClasses())]).then(([driver, classes]) => ({ driver, classes }));
      this.facts.set(key, facts);
    }
    return facts;
  }

  /** The volume's own CSI driver (a static PV may have no class); the class's provisioner where the volume cannot be read. */
  private async driverOf(claim: DiscoveredClaim): Promise<SnapshotFacts['driver']> {
    const client = this.client;
    // Without permission to read PersistentVolumes (cluster-scoped), the StorageClass tells the driver too.
    const volume = claim.volume ? await this.volumes.get(claim.volume) : undefined;
    if (volume) return volume.spec?.csi?.driver ?? null;
    if (!claim.storageClass) return { unknown: `its PersistentVolume ${claim.volume ?? ''} could not be read to find its CSI driver, and it has no StorageClass` };
    try {
      const storageClass = (await client.getJson({ verb: 'get', resource: 'storageclasses', name: claim.storageClass }, `/apis/storage.k8s.io/v1/storageclasses/${encodeURIComponent(claim.storageClass)}`)) as V1StorageClass;
      return storageClass.provisioner;
    } catch (error) {
      return { unknown: `neither its PersistentVolume nor its StorageClass ${claim.storageClass} could be read to find its CSI driver (${statusOf(error)})` };
    }
  }

  private async listClasses(): Promise<SnapshotFacts['classes']> {
    try {
      const list = (await this.client.getJson({ verb: 'list', resource: 'volumesnapshotclasses' }, `/apis/${GROUP}/${VERSION}/volumesnapshotclasses`)) as { items?: { metadata?: { name?: string; annotations?: Record<string, string> }; driver?: string }[] };
      return (list.items ?? []).map((item) => ({
        name: item.metadata?.name ?? '',
        driver: item.driver ?? '',
        isDefault: item.metadata?.annotations?.[DEFAULT_CLASS_ANNOTATION] === 'true',
      }));
    } catch (error) {
      if ((error as { code?: string }).code === 'NotFoundError') return { unknown: `the cluster serves no VolumeSnapshot API (${GROUP}/${VERSION})` };
      return { unknown: `the VolumeSnapshotClasses could not be listed (${statusOf(error)})` };
    }
  }
}

/** Names of the temporary objects: the claim's name, cut to fit, and the run's id. */
function temporaryName(claim: string, runId: string): string {
  const prefix = `nkvm-snap-${claim}`.slice(0, 50).replace(/[^a-z0-9-]/g, '-').replace(/-+$/, '');
  return `${prefix}-${runId.toLowerCase().replace(/[^a-z0-9]/g, '').slice(-12)}`;
}

function labels(claim: DiscoveredClaim, runId: string): Record<string, string> {
  return {
    [HELPER_COMPONENT_LABEL]: SNAPSHOT_COMPONENT,
    'app.kubernetes.io/name': 'kubectl-nkvm',
    'app.kubernetes.io/managed-by': 'kubectl-nkvm',
    'nkvm.dev/pvc': labelValue(claim.name),
    'nkvm.dev/run': labelValue(runId),
  };
}

interface VolumeSnapshotObject {
  metadata?: { name?: string; deletionTimestamp?: string };
  status?: {
    boundVolumeSnapshotContentName?: string;
    creationTime?: string;
    readyToUse?: boolean;
    restoreSize?: string;
    error?: { message?: string; time?: string };
  };
}

/** The VolumeSnapshot API of one cluster, for the objects a snapshot backup makes and removes. */
export class VolumeSnapshots {
  private readonly client: KubeClient;
  private customObjects: CustomObjectsApi | undefined;

  constructor(client: KubeClient) {
    this.client = client;
  }

  /** Made on first use: a backup that cuts no snapshot never loads the client's generated API. */
  private get api(): CustomObjectsApi {
    return (this.customObjects ??= this.client.credentials.kubeConfig.makeApiClient(CustomObjectsApi));
  }

  /** Asks for a snapshot of the claim; returns its name at once (the CSI driver cuts it in the background). */
  async create(claim: DiscoveredClaim, snapshotClass: string, runId: string): Promise<string> {
    const name = temporaryName(claim.name, runId);
    const body = {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'VolumeSnapshot',
      metadata: { name, namespace: claim.namespace, labels: labels(claim, runId), annotations: { 'nkvm.dev/pvc': claim.name } },
      spec: { volumeSnapshotClassName: snapshotClass, source: { persistentVolumeClaimName: claim.name } },
    };
    await this.client.call({ verb: 'create', resource: 'volumesnapshots', namespace: claim.namespace, name }, () =>
      this.api.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: claim.namespace, plural: 'volumesnapshots', body }),
    );
    return name;
  }

  private async read(namespace: string, name: string): Promise<VolumeSnapshotObject> {
    return (await this.client.call({ verb: 'get', resource: 'volumesnapshots', namespace, name }, () =>
      this.api.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: 'volumesnapshots', name }),
    )) as VolumeSnapshotObject;
  }

  /**
   * Waits until the snapshot is `taken` (the driver has cut it: its creationTime is set; what a
   * paused application waits for) or `ready` (it can be restored from). A snapshot error fails at once.
   */
  async waitFor(namespace: string, name: string, until: 'taken' | 'ready', timeoutMs: number, signal?: AbortSignal): Promise<VolumeSnapshotObject> {
    const deadline = Date.now() + timeoutMs;
    for (const started = Date.now(); ; ) {
      if (signal?.aborted) throw new Error('interrupted');
      const snapshot = await this.read(namespace, name);
      const status = snapshot.status ?? {};
      if (status.readyToUse || (until === 'taken' && status.creationTime)) return snapshot;
      if (status.error?.message) throw new Error(`VolumeSnapshot ${namespace}/${name} failed: ${status.error.message}`);
      if (Date.now() >= deadline) {
        throw new Error(`VolumeSnapshot ${namespace}/${name} not ${until === 'ready' ? 'ready to use' : 'taken'} after ${Math.round(timeoutMs / 1000)}s (--snapshot-timeout)`);
      }
      await sleep(Date.now() - started < 10_000 ? 200 : 1000, undefined, { signal });
    }
  }

  /** A claim like the source (class, mode, access, size at least the snapshot's), filled from the snapshot. */
  async createClaim(claim: DiscoveredClaim, snapshot: string, restoreSize: string | undefined, runId: string): Promise<string> {
    const name = temporaryName(claim.name, runId);
    const body: V1PersistentVolumeClaim = {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name, namespace: claim.namespace, labels: labels(claim, runId), annotations: { 'nkvm.dev/pvc': claim.name, 'nkvm.dev/volume-snapshot': snapshot } },
      spec: {
        ...(claim.storageClass ? { storageClassName: claim.storageClass } : {}),
        volumeMode: claim.volumeMode,
        // Only the helper mounts it: one node is enough, and any node will do.
        accessModes: ['ReadWriteOnce'],
        resources: { requests: { storage: claim.capacity ?? restoreSize ?? '1Gi' } },
        dataSource: { apiGroup: GROUP, kind: 'VolumeSnapshot', name: snapshot },
      },
    };
    await this.client.call({ verb: 'create', resource: 'persistentvolumeclaims', namespace: claim.namespace, name }, () =>
      this.client.core.createNamespacedPersistentVolumeClaim({ namespace: claim.namespace, body }),
    );
    return name;
  }

  /**
   * Deletes the temporary claim (once its helper is gone) and, unless kept, the snapshot, and waits
   * until both are gone: the user is told if one outlives the wait. Objects already gone are fine.
   */
  async remove(namespace: string, objects: { claim?: string | undefined; snapshot?: string | undefined; keepSnapshot: boolean }, timeoutMs = 60_000): Promise<string | undefined> {
    const { claim, snapshot, keepSnapshot } = objects;
    const ignoreMissing = (error: unknown) => {
      if ((error as { code?: string }).code !== 'NotFoundError') throw error;
    };
    if (claim) {
      await this.client
        .call({ verb: 'delete', resource: 'persistentvolumeclaims', namespace, name: claim }, () => this.client.core.deleteNamespacedPersistentVolumeClaim({ namespace, name: claim }))
        .catch(ignoreMissing);
    }
    const deleteSnapshot = snapshot && !keepSnapshot;
    if (deleteSnapshot) {
      await this.client
        .call({ verb: 'delete', resource: 'volumesnapshots', namespace, name: snapshot }, () =>
          this.api.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: 'volumesnapshots', name: snapshot }),
        )
        .catch(ignoreMissing);
    }
    const left = await untilGone(
      [
        ...(claim ? [{ name: `claim ${namespace}/${claim}`, read: () => this.client.call({ verb: 'get', resource: 'persistentvolumeclaims', namespace, name: claim }, () => this.client.core.readNamespacedPersistentVolumeClaim({ namespace, name: claim })) }] : []),
        ...(deleteSnapshot ? [{ name: `VolumeSnapshot ${namespace}/${snapshot}`, read: () => this.read(namespace, snapshot) }] : []),
      ],
      timeoutMs,
      500,
    );
    return left.length ? `${left.join(' and ')} still being removed after ${Math.round(timeoutMs / 1000)}s` : undefined;
  }
}
