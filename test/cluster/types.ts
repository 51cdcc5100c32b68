/** What every cluster provider hands a test: a fresh, disposable cluster, of one node unless a suite asks kind for workers. */
export interface TestCluster {
  /** Unique per cluster: nkvm-it-<uuid>. */
  name: string;
  provider: 'local' | 'kind';
  kubeconfigPath: string;
  /** Directory holding this cluster's files (certs, kubeconfigs, logs); removed by dispose(). */
  dir: string;
  /** Image names as the cluster knows them (the helper image, one without sh and tar for failure tests). */
  images: { helper: string; helperWithoutShell: string };
  /** The StorageClass whose claims bind to volumes this cluster provides. */
  storageClass: string;
  /**
   * A StorageClass of raw block volumes (volumeMode: Block, ReadWriteOnce, bound at once), where the
   * provider has one: local offers nkvm-block-pv-0..2 and 4..6 of 64Mi and nkvm-block-pv-3 of 32Mi; kind none.
   */
  blockStorageClass?: string;
  /**
   * Installs what VolumeSnapshots need (test/cluster/csi-snapshots.ts): a CSI driver with snapshots
   * behind the StorageClass nkvm-csi and the VolumeSnapshotClass nkvm-csi-snapclass. Not part of
   * every cluster's start, for its time; suites that take snapshots call it first. Idempotent.
   */
  enableSnapshots(): Promise<void>;
  /** Makes the images of an archive (OCI layout or docker-archive, every platform in it) available to the node. */
  loadImageArchive(archive: string): Promise<void>;
  /** Runs kubectl against this cluster as its admin; rejects on a non-zero exit with stderr. */
  kubectl(args: string[], options?: { input?: string; timeoutMs?: number }): Promise<string>;
  /** Text to print when a test fails: component logs, for the provider's part. */
  logs(): Promise<string>;
  /** Stops everything the cluster started and removes its files. Safe to call twice. */
  dispose(): Promise<void>;
}

export class ClusterStartError extends Error {
  readonly logs: string;
  constructor(message: string, logs: string) {
    super(`${message}\n\n--- cluster logs ---\n${logs}`);
    this.logs = logs;
    this.name = 'ClusterStartError';
  }
}
