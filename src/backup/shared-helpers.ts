/**
 * Helper pods shared by the claims of one run. Every helper pod costs the cluster its creation,
 * scheduling, sandbox, start, readiness probes and deletion: on the 2-core test machine, eight
 * claims backed up four at a time kept the API server, kubelet and container runtime busy for 2.5
 * CPU-seconds more than four `kubectl exec` pipelines into running pods. Claims of one namespace
 * that must be read on the same node (pods there hold them), or that no pod holds and whose volumes
 * have the same node affinity, can be mounted by one pod: it mounts each read-only at /data/<pvc>,
 * their copies exec into it side by side, and it goes once the last of them is done. A snapshot's
 * temporary claim, a Block device and a data mover keep a helper of their own: they are made or run
 * per claim.
 */
import type { V1VolumeNodeAffinity } from '@kubernetes/client-node';
import type { KubeClient } from '../kube/client.ts';
import { KubernetesAdmissionError } from '../errors.ts';
import { claimKey as keyOf, type DiscoveredClaim } from './discovery.ts';
import { createHelperPod, deleteHelperPod, sharedHelperPodManifest, sharedMountPath, waitForHelperPod, type HelperPodOptions } from './helper-pod.ts';
import { isRoot, type HelperIdentity } from './helper-identity.ts';

/** A claim's place in a shared helper, once it runs. */
export interface SharedMount {
  pod: string;
  mountPath: string;
  identity: HelperIdentity;
  node: string | null;
}

/**
 * A claim that may share, where its helper must run, and as whom: on the node of a pod that holds
 * it, or, held by none, where its volume's node affinity allows (claims whose volumes have the same
 * affinity, none included, can be mounted on any node that one of them can).
 */
export type ShareCandidate = { claim: DiscoveredClaim; identity: HelperIdentity } & ({ node: string } | { volumeAffinity: V1VolumeNodeAffinity | null });

interface Group {
  claims: DiscoveredClaim[];
  /** Undefined: wherever the scheduler finds the volumes' affinity met. */
  node: string | undefined;
  identity: HelperIdentity;
  /** Created on the first acquire; undefined once refused by admission (its claims start their own). */
  running?: Promise<{ name: string; node: string | null } | undefined>;
  /** Members not yet released: the pod goes when this reaches 0. */
  left: number;
  deleted?: Promise<void>;
}

const claimKey = (claim: DiscoveredClaim) => keyOf(claim.namespace, claim.name);

/**
 * A shared helper's deadline (activeDeadlineSeconds, the net for a process that dies): each claim
 * keeps the whole of --helper-deadline, and the claims copy `copiesAtOnce` at a time, so the pod
 * may live that many rounds of it.
 */
export function sharedHelperDeadline(perClaimSeconds: number, claims: number, copiesAtOnce: number): number {
  return perClaimSeconds * Math.ceil(claims / Math.max(1, copiesAtOnce));
}

export class SharedHelpers {
  private readonly byClaim = new Map<string, Group>();
  private readonly client: KubeClient;
  private readonly helper: HelperPodOptions;
  private readonly podReadyTimeoutMs: number;
  private readonly signal: AbortSignal | undefined;
  /** The run's namespaces known to refuse a root helper (helper-pod.ts startHelperPod). */
  private readonly restricted: Set<string>;
  private copiesAtOnce = 1;

  constructor(client: KubeClient, options: { helper: HelperPodOptions; podReadyTimeoutMs: number; signal?: AbortSignal | undefined; restricted: Set<string> }) {
    this.client = client;
    this.helper = options.helper;
    this.podReadyTimeoutMs = options.podReadyTimeoutMs;
    this.signal = options.signal;
    this.restricted = options.restricted;
  }

  /**
   * Groups the candidates by namespace, placement and identity; a group of one keeps a helper of its
   * own. The run copies `copiesAtOnce` claims at a time (--parallel).
   */
  plan(candidates: ShareCandidate[], copiesAtOnce: number): void {
    this.copiesAtOnce = copiesAtOnce;
    const groups = new Map<string, Group>();
    for (const candidate of candidates) {
      const { claim, identity } = candidate;
      const node = 'node' in candidate ? candidate.node : undefined;
      const key = JSON.stringify([claim.namespace, node ?? null, 'volumeAffinity' in candidate ? candidate.volumeAffinity : null, identity]);
      const group = groups.get(key) ?? { claims: [], node, identity, left: 0 };
      groups.set(key, group);
      group.claims.push(claim);
      group.left += 1;
    }
    for (const group of groups.values()) {
      if (group.claims.length < 2) continue;
      for (const claim of group.claims) this.byClaim.set(claimKey(claim), group);
    }
  }

  shares(claim: DiscoveredClaim): boolean {
    return this.byClaim.has(claimKey(claim));
  }

  /**
   * The claim's mount in its group's helper, which the first caller creates and every caller waits
   * for. Undefined when admission refused the shared pod (Pod Security, a quota, a webhook): the
   * claim then starts a helper of its own, which knows how to answer each refusal.
   */
  async acquire(claim: DiscoveredClaim): Promise<SharedMount | undefined> {
    const group = this.byClaim.get(claimKey(claim))!;
    group.running ??= this.start(group);
    const running = await group.running;
    if (!running) return undefined;
    return { pod: running.name, mountPath: sharedMountPath(claim.name), identity: group.identity, node: running.node };
  }

  /** The claim is done with its group's helper (or never used it): the last one deletes the pod. */
  async release(claim: DiscoveredClaim): Promise<void> {
    const group = this.byClaim.get(claimKey(claim));
    if (!group) return;
    this.byClaim.delete(claimKey(claim));
    group.left -= 1;
    if (group.left === 0) await this.remove(group);
  }

  /** Removes every shared helper still there: claims of an interrupted run that never started release nothing. */
  async close(): Promise<void> {
    const groups = new Set(this.byClaim.values());
    this.byClaim.clear();
    await Promise.all([...groups].map((group) => this.remove(group).catch(() => {})));
  }

  private async start(group: Group): Promise<{ name: string; node: string | null } | undefined> {
    const namespace = group.claims[0]!.namespace;
    let name: string;
    try {
      const deadlineSeconds = sharedHelperDeadline(this.helper.deadlineSeconds, group.claims.length, this.copiesAtOnce);
      name = await createHelperPod(this.client, sharedHelperPodManifest(group.claims, group.node, { ...this.helper, deadlineSeconds }, group.identity));
    } catch (error) {
      if (!(error instanceof KubernetesAdmissionError)) throw error;
      if (error.admission === 'PodSecurity' && isRoot(group.identity)) this.restricted.add(namespace);
      return undefined;
    }
    const pod = await waitForHelperPod(this.client, namespace, name, this.podReadyTimeoutMs, this.signal).catch(async (error: unknown) => {
      // Its members fail with this: the pod need not wait for the last of them to go.
      await deleteHelperPod(this.client, namespace, name).catch(() => {});
      throw error;
    });
    return { name, node: pod.spec?.nodeName ?? null };
  }

  private remove(group: Group): Promise<void> {
    group.deleted ??= (async () => {
      const running = await group.running?.catch(() => undefined);
      const namespace = group.claims[0]!.namespace;
      if (running) {
        await deleteHelperPod(this.client, namespace, running.name).catch((error: Error) => {
          throw new Error(`shared helper pod ${namespace}/${running.name} could not be deleted (${error.message})`);
        });
      }
    })();
    return group.deleted;
  }
}
