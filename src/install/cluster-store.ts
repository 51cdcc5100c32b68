/**
 * Reading an install's store from outside the cluster: a read-only helper pod mounts the store claim
 * (the one the CronJob's pod uses), and its files come out over acknowledged exec: the catalog, to
 * be opened locally from a temporary copy, and artifacts, checked against their sha256 on the way.
 * The helper pod is removed whatever happens.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { NotFoundError } from '../errors.ts';
import type { KubeClient } from '../kube/client.ts';
import { execWithAck } from '../kube/acked-exec.ts';
import { describeExecFailure } from '../kube/exec.ts';
import { DEFAULT_ACK_TIMEOUT_SECONDS, DEFAULT_HELPER_IMAGE } from '../backup/defaults.ts';
import { discoverClaim } from '../backup/discovery.ts';
import { DATA_MOUNT_PATH, deleteHelperPod, HELPER_CONTAINER, startHelperPod, waitForHelperPod } from '../backup/helper-pod.ts';
import { Catalog } from '../store/catalog.ts';
import { journalPath } from '../store/journal.ts';
import { INSTALL_LABEL, INSTALL_NAMESPACE_LABEL, STORE_MOUNT } from './manifests.ts';

export interface InstallRef {
  namespace: string;
  name: string;
}

interface CronJobLike {
  metadata?: { name?: string };
  spec?: { jobTemplate?: { spec?: { template?: { spec?: { volumes?: { name: string; persistentVolumeClaim?: { claimName: string } }[] } } } } };
}

/** The install's CronJob, or a NotFoundError that says how to make one. */
export async function installCronJob(client: KubeClient, install: InstallRef): Promise<CronJobLike & Record<string, unknown>> {
  const selector = `${INSTALL_LABEL}=${install.name},${INSTALL_NAMESPACE_LABEL}=${install.namespace}`;
  const [cronJob] = await client.listLabelled('batch/v1', 'CronJob', selector);
  if (!cronJob) throw new NotFoundError(`no install named ${install.name} in namespace ${install.namespace}`, 'see `kubectl nkvm install --help`; -n names the install namespace');
  return cronJob as CronJobLike & Record<string, unknown>;
}

export class ClusterStore {
  private readonly client: KubeClient;
  readonly namespace: string;
  private readonly pod: string;
  private readonly workDir: string;

  private constructor(client: KubeClient, namespace: string, pod: string, workDir: string) {
    this.client = client;
    this.namespace = namespace;
    this.pod = pod;
    this.workDir = workDir;
  }

  /** Runs `use` with the install's store mounted in a helper pod; the pod and the local copies go afterwards. */
  static async with<T>(client: KubeClient, install: InstallRef, options: { podReadyTimeoutMs: number }, use: (store: ClusterStore) => Promise<T>): Promise<T> {
    const cronJob = await installCronJob(client, install);
    const claimName = cronJob.spec?.jobTemplate?.spec?.template?.spec?.volumes?.find((volume) => volume.name === 'store')?.persistentVolumeClaim?.claimName;
    if (!claimName) throw new NotFoundError(`the CronJob ${install.namespace}/${cronJob.metadata?.name} mounts no store claim`);
    const claim = await discoverClaim(client, install.namespace, claimName);
    const helper = await startHelperPod(client, claim, { image: DEFAULT_HELPER_IMAGE, runId: 'from-cluster', deadlineSeconds: 3600 }, 'backup', new Set());
    const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-from-cluster-'));
    try {
      await waitForHelperPod(client, install.namespace, helper.name, options.podReadyTimeoutMs);
      return await use(new ClusterStore(client, install.namespace, helper.name, workDir));
    } finally {
      fs.rmSync(workDir, { recursive: true, force: true });
      await deleteHelperPod(client, install.namespace, helper.name).catch(() => {});
    }
  }

  /** Where a path the job wrote (under /store) is in the helper (under /data). */
  private helperPath(storePath: string): string {
    const relative = path.posix.relative(STORE_MOUNT, storePath);
    if (relative.startsWith('..') || path.posix.isAbsolute(relative)) throw new NotFoundError(`${storePath} is not on the store (${STORE_MOUNT})`);
    return path.posix.join(DATA_MOUNT_PATH, relative);
  }

  /** Copies one file of the store into `sink`, all of it (acknowledged: the tail cannot be lost). */
  async copy(storePath: string, sink: Writable): Promise<void> {
    const outcome = await execWithAck(this.client.credentials.kubeConfig, {
      namespace: this.namespace,
      pod: this.pod,
      container: HELPER_CONTAINER,
      command: ['cat', this.helperPath(storePath)],
      stdout: sink,
      ackTimeoutSeconds: DEFAULT_ACK_TIMEOUT_SECONDS,
    });
    if (outcome.commandExitCode !== 0 && /No such file/.test(outcome.stderr)) throw new NotFoundError(`${storePath} is not in the store`);
    if (outcome.commandExitCode !== 0) throw new Error(describeExecFailure(`cat ${storePath} in the helper pod`, { ...outcome, exitCode: outcome.commandExitCode }));
  }

  /**
   * The in-cluster catalog, opened from a local copy (changes to it go nowhere); an empty one while
   * the job has never run, so a list is empty and a show finds nothing, as for a new local catalog.
   */
  async catalog(): Promise<Catalog> {
    const file = path.join(this.workDir, 'catalog.sqlite');
    // The journal first: a file copied after it is never older than the records it holds (the newest
    // rows of a large catalog are only there until a fold).
    for (const copied of [journalPath(file), file]) {
      const sink = fs.createWriteStream(copied);
      try {
        await this.copy(path.posix.join(STORE_MOUNT, path.basename(copied)), sink);
        await finished(sink);
      } catch (error) {
        sink.destroy();
        if (!(error instanceof NotFoundError)) throw error;
        fs.rmSync(copied, { force: true });
      }
    }
    return Catalog.open(file);
  }
}
