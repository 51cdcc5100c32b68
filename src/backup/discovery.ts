/**
 * Discovery: every PersistentVolumeClaim in scope, joined with the pods that mount it and their
 * nodes. The join is pure (claimsWithPods) so it is tested without a cluster.
 */
import type { V1PersistentVolume, V1PersistentVolumeClaim, V1PersistentVolumeClaimList, V1Pod, V1PodList } from '@kubernetes/client-node';
import type { KubeClient } from '../kube/client.ts';
import { corePath } from '../kube/json-get.ts';

/** The identity a pod's container runs with, as its spec sets it (container settings over the pod's). */
export interface PodIdentity {
  runAsUser?: number | undefined;
  runAsGroup?: number | undefined;
  fsGroup?: number | undefined;
  supplementalGroups?: number[] | undefined;
}

export interface ClaimPod {
  name: string;
  node: string | null;
  phase: string;
  /** The identity of the (first) container that mounts the claim. */
  identity: PodIdentity;
}

export interface DiscoveredClaim {
  namespace: string;
  name: string;
  phase: string;
  /** Provisioned capacity, or the requested size while the claim is unbound. */
  capacity: string | null;
  storageClass: string | null;
  accessModes: string[];
  volumeMode: string;
  volume: string | null;
  pods: ClaimPod[];
}

export interface DiscoveryScope {
  /** Ignored when allNamespaces is set. */
  namespace: string;
  allNamespaces: boolean;
  labelSelector?: string | undefined;
}

/** Pods that have finished no longer hold the claim. */
function holdsClaims(pod: V1Pod): boolean {
  return pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed';
}

/** The identity of the first container that mounts `volumeName` (any container when none names it). */
export function identityOf(pod: V1Pod, volumeName: string): PodIdentity {
  const podContext = pod.spec?.securityContext;
  const containers = pod.spec?.containers ?? [];
  const container =
    containers.find((c) => (c.volumeMounts ?? []).some((m) => m.name === volumeName) || (c.volumeDevices ?? []).some((d) => d.name === volumeName)) ?? containers[0];
  const own = container?.securityContext;
  const identity: PodIdentity = {
    runAsUser: own?.runAsUser ?? podContext?.runAsUser,
    runAsGroup: own?.runAsGroup ?? podContext?.runAsGroup,
    fsGroup: podContext?.fsGroup,
    supplementalGroups: podContext?.supplementalGroups?.length ? podContext.supplementalGroups : undefined,
  };
  return Object.fromEntries(Object.entries(identity).filter(([, value]) => value !== undefined)) as PodIdentity;
}

/** A claim's name with its namespace: how claims of several namespaces are told apart in a map. */
export function claimKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export function claimsWithPods(claims: V1PersistentVolumeClaim[], pods: V1Pod[]): DiscoveredClaim[] {
  const podsByClaim = new Map<string, ClaimPod[]>();
  for (const pod of pods.filter(holdsClaims)) {
    const namespace = pod.metadata?.namespace ?? '';
    for (const volume of pod.spec?.volumes ?? []) {
      const claimName = volume.persistentVolumeClaim?.claimName;
      if (!claimName) continue;
      const key = claimKey(namespace, claimName);
      const list = podsByClaim.get(key) ?? [];
      list.push({
        name: pod.metadata?.name ?? '',
        node: pod.spec?.nodeName ?? null,
        phase: pod.status?.phase ?? 'Unknown',
        identity: identityOf(pod, volume.name),
      });
      podsByClaim.set(key, list);
    }
  }
  return claims
    .map((claim): DiscoveredClaim => {
      const namespace = claim.metadata?.namespace ?? '';
      const name = claim.metadata?.name ?? '';
      return {
        namespace,
        name,
        phase: claim.status?.phase ?? 'Unknown',
        capacity: claim.status?.capacity?.storage ?? claim.spec?.resources?.requests?.storage ?? null,
        storageClass: claim.spec?.storageClassName ?? null,
        accessModes: claim.status?.accessModes ?? claim.spec?.accessModes ?? [],
        volumeMode: claim.spec?.volumeMode ?? 'Filesystem',
        volume: claim.spec?.volumeName || null,
        pods: (podsByClaim.get(claimKey(namespace, name)) ?? []).sort((a, b) => a.name.localeCompare(b.name)),
      };
    })
    .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
}

// The lists are read as the API's JSON (KubeClient.getJson: no generated client to load), which is
// what these types describe, but for their timestamps: strings here, and none is read.
export async function discoverClaims(client: KubeClient, scope: DiscoveryScope): Promise<DiscoveredClaim[]> {
  const namespace = scope.allNamespaces ? undefined : scope.namespace;
  const pods = listPodsMeanwhile(client, namespace);
  const claims = await listClaims(client, namespace, scope.labelSelector);
  return claimsWithPods(claims, (await pods).items);
}

/** The claims of one namespace, or (undefined) of all, without their pods. */
export async function listClaims(client: KubeClient, namespace: string | undefined, labelSelector?: string): Promise<V1PersistentVolumeClaim[]> {
  const list = (await client.getJson({ verb: 'list', resource: 'persistentvolumeclaims', namespace }, corePath('persistentvolumeclaims', namespace), { labelSelector })) as V1PersistentVolumeClaimList;
  return list.items;
}

/** One named claim with its pods; a missing claim is a NotFoundError from the boundary. */
export async function discoverClaim(client: KubeClient, namespace: string, name: string): Promise<DiscoveredClaim> {
  const pods = listPodsMeanwhile(client, namespace);
  const claim = (await client.getJson({ verb: 'get', resource: 'persistentvolumeclaims', namespace, name }, corePath('persistentvolumeclaims', namespace, name))) as V1PersistentVolumeClaim;
  return claimsWithPods([claim], (await pods).items)[0]!;
}

/**
 * The claims' PersistentVolumes, each read once a run (a snapshot's choice and a shared helper's plan
 * both ask). Cluster-scoped: where the user may not read them, undefined, and callers do without.
 */
export class PersistentVolumes {
  private readonly client: KubeClient;
  private readonly read = new Map<string, Promise<V1PersistentVolume | undefined>>();

  constructor(client: KubeClient) {
    this.client = client;
  }

  get(name: string): Promise<V1PersistentVolume | undefined> {
    let volume = this.read.get(name);
    if (!volume) {
      volume = (this.client.getJson({ verb: 'get', resource: 'persistentvolumes', name }, corePath('persistentvolumes', undefined, name)) as Promise<V1PersistentVolume>).catch(() => undefined);
      this.read.set(name, volume);
    }
    return volume;
  }
}

/**
 * The pods, asked for while the claims are (one round trip, not two: on a distant API server that
 * is most of discover's time). Awaited after the claims, so a failure to read those is the one told.
 */
function listPodsMeanwhile(client: KubeClient, namespace: string | undefined): Promise<V1PodList> {
  const pods = client.getJson({ verb: 'list', resource: 'pods', namespace }, corePath('pods', namespace)) as Promise<V1PodList>;
  pods.catch(() => {}); // not unhandled while the claims' request fails first
  return pods;
}
