/**
 * The helper pod: a short-lived pod that mounts one claim so tar can run in it over exec: read-only
 * for a backup, read-write for a restore. It runs with no ServiceAccount token, a read-only root file
 * system, a deadline after which the kubelet stops it even if nobody deletes it, modest resources
 * (a quota that demands limits admits it), and all capabilities dropped but the few its job needs
 * as root: DAC_OVERRIDE to read (and write) files of every owner and mode, and for a restore CHOWN,
 * FOWNER and FSETID to give entries back their owners, modes and times. As any other user
 * (helper-identity.ts) it has no capability at all and passes Pod Security "restricted".
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { CoreV1Event, CoreV1EventList, V1Container, V1Pod, V1PodSecurityContext, V1Toleration, V1Volume } from '@kubernetes/client-node';
import type { KubeClient } from '../kube/client.ts';
import { execStream } from '../kube/exec.ts';
import { corePath } from '../kube/json-get.ts';
import { KubernetesAdmissionError } from '../errors.ts';
import type { DiscoveredClaim } from './discovery.ts';
import { initialIdentity, isRoot, ROOT_IDENTITY, workloadIdentity, type HelperIdentity, type RunAsFlags } from './helper-identity.ts';

export const HELPER_COMPONENT_LABEL = 'app.kubernetes.io/component';
export const HELPER_COMPONENT = 'backup-helper';
export const HELPER_CONTAINER = 'helper';
export const DATA_MOUNT_PATH = '/data';
/** Where a Block claim's device appears in the helper. */
export const DATA_DEVICE_PATH = '/dev/nkvm-data';

export type HelperPurpose = 'backup' | 'restore';

const CAPABILITIES: Record<HelperPurpose, string[]> = {
  backup: ['DAC_OVERRIDE'],
  restore: ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID'],
};

export interface HelperPodOptions {
  image: string;
  /** Identifies one plugin invocation; all its helper pods carry it as a label. */
  runId: string;
  /** Upper bound on the pod's life, enforced by the kubelet (activeDeadlineSeconds). */
  deadlineSeconds: number;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> } | undefined;
  tolerations?: V1Toleration[] | undefined;
  nodeSelector?: Record<string, string> | undefined;
  imagePullSecrets?: string[] | undefined;
  /** --run-as-user, --run-as-group, --fs-group. */
  runAs?: RunAsFlags | undefined;
  /** An identity the caller settled on (a restore: the owner of the claim's root), used as it is. */
  identity?: HelperIdentity | undefined;
  /** The container's command in place of `sleep` (a data mover's `mover wait`), and an emptyDir at /tmp for it to write in. */
  command?: string[] | undefined;
}

/** Enough for tar and sh; a ResourceQuota on limits admits a pod only when it names them. */
export const DEFAULT_HELPER_RESOURCES = {
  requests: { cpu: '100m', memory: '64Mi' },
  limits: { cpu: '1', memory: '512Mi' },
} as const;

/**
 * glibc's malloc in a data mover (its exec inherits the container's environment). With an arena per
 * thread, and a mmap threshold that rises to 32 MiB once a large buffer is freed, a backup of a
 * million files held 390 MiB resident for 250 MiB in use; two arenas and a fixed threshold (large
 * buffers mapped, and unmapped when freed) kept it at 280.
 */
export const MOVER_MALLOC_ENV = [
  { name: 'MALLOC_ARENA_MAX', value: '2' },
  { name: 'MALLOC_MMAP_THRESHOLD_', value: '131072' },
];

/** Label values are at most 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric. */
export function labelValue(text: string): string {
  const cleaned = text.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 63);
  return cleaned.replace(/^[^A-Za-z0-9]+/, '').replace(/[^A-Za-z0-9]+$/, '');
}

/** Where the helper goes, and why: the result reports both. */
export interface Placement {
  /** The node the helper must run on; undefined: wherever the scheduler can mount the volume. */
  node: string | undefined;
  reason: string;
}

/** The claim cannot be mounted by a helper at all while it is in use. */
export class PlacementError extends Error {}

/**
 * A ReadWriteOnce volume is mounted on one node at a time: while a pod holds it (running, or
 * scheduled and still starting), the helper must go to that pod's node. A ReadWriteOncePod volume
 * admits no second pod at all. Pods that have ended hold nothing (discovery leaves them out).
 */
export function placementFor(claim: DiscoveredClaim): Placement {
  const holders = claim.pods.filter((pod) => pod.node).sort((a, b) => Number(b.phase === 'Running') - Number(a.phase === 'Running'));
  const mode = claim.accessModes.includes('ReadWriteOncePod') ? 'ReadWriteOncePod' : claim.accessModes.includes('ReadWriteOnce') ? 'ReadWriteOnce' : claim.accessModes[0];
  if (mode === 'ReadWriteOncePod' && holders.length) {
    throw new PlacementError(
      `claim ${claim.namespace}/${claim.name} is ReadWriteOncePod and pod ${holders[0]!.name} (${holders[0]!.phase}) holds it: no second pod may mount it. Stop that pod (e.g. scale its workload to 0) to back it up`,
    );
  }
  if (mode === 'ReadWriteOnce' && holders.length) {
    const holder = holders[0]!;
    return { node: holder.node!, reason: `on node ${holder.node}, where pod ${holder.name} (${holder.phase}) holds the ReadWriteOnce claim` };
  }
  if (holders.length) {
    const nodes = [...new Set(holders.map((pod) => pod.node))].join(', ');
    return { node: undefined, reason: `anywhere the scheduler chooses: the ${mode ?? 'shared'} claim is mounted by ${holders.length} pod(s) on ${nodes}` };
  }
  return { node: undefined, reason: 'anywhere the scheduler chooses: no pod holds the claim' };
}

function podSecurityContext(identity: HelperIdentity): V1PodSecurityContext {
  const seccompProfile = { type: 'RuntimeDefault' };
  if (isRoot(identity)) return { runAsUser: 0, runAsGroup: identity.gid ?? 0, ...(identity.fsGroup !== undefined ? { fsGroup: identity.fsGroup } : {}), seccompProfile };
  return {
    runAsNonRoot: true,
    runAsUser: identity.uid,
    ...(identity.gid !== undefined ? { runAsGroup: identity.gid } : {}),
    // Only when the root directory's group differs: no recursive walk on every helper start.
    ...(identity.fsGroup !== undefined ? { fsGroup: identity.fsGroup, fsGroupChangePolicy: 'OnRootMismatch' } : {}),
    ...(identity.supplementalGroups?.length ? { supplementalGroups: identity.supplementalGroups } : {}),
    seccompProfile,
  };
}

export function helperPodManifest(claim: DiscoveredClaim, options: HelperPodOptions, purpose: HelperPurpose = 'backup', identity: HelperIdentity = ROOT_IDENTITY): V1Pod {
  const readOnly = purpose === 'backup';
  const scratch = Boolean(options.command);
  return buildHelperPod({
    namespace: claim.namespace,
    namePrefix: `nkvm-${purpose}-${claim.name}`,
    node: placementFor(claim).node,
    claims: [claim.name],
    purpose,
    identity,
    options,
    volumes: [
      { name: 'data', persistentVolumeClaim: { claimName: claim.name, readOnly } },
      ...(scratch ? [{ name: 'scratch', emptyDir: { sizeLimit: '16Mi' } }] : []),
    ],
    mounts:
      claim.volumeMode === 'Block'
        ? { volumeDevices: [{ name: 'data', devicePath: DATA_DEVICE_PATH }] }
        : { volumeMounts: [{ name: 'data', mountPath: DATA_MOUNT_PATH, readOnly }, ...(scratch ? [{ name: 'scratch', mountPath: '/tmp' }] : [])] },
  });
}

/** Where a helper shared by several claims mounts each one: /data/<pvc> (a claim's name is a DNS subdomain, safe in sh). */
export function sharedMountPath(pvc: string): string {
  return `${DATA_MOUNT_PATH}/${pvc}`;
}

/**
 * One exec helper for several Filesystem claims of a namespace, on `node` where a pod holds them, or
 * where their volumes' node affinity puts it (shared-helpers.ts):
 * each read-only at sharedMountPath(), the pod's start and removal paid once for them all.
 */
export function sharedHelperPodManifest(claims: DiscoveredClaim[], node: string | undefined, options: HelperPodOptions, identity: HelperIdentity = ROOT_IDENTITY): V1Pod {
  return buildHelperPod({
    namespace: claims[0]!.namespace,
    namePrefix: 'nkvm-backup-shared',
    node,
    claims: claims.map((claim) => claim.name),
    purpose: 'backup',
    identity,
    options: { ...options, command: undefined },
    volumes: claims.map((claim, i) => ({ name: `data-${i}`, persistentVolumeClaim: { claimName: claim.name, readOnly: true } })),
    mounts: { volumeMounts: claims.map((claim, i) => ({ name: `data-${i}`, mountPath: sharedMountPath(claim.name), readOnly: true })) },
  });
}

interface HelperPodParts {
  namespace: string;
  namePrefix: string;
  node: string | undefined;
  /** The claims it mounts: the first labels the pod, all of them are in its annotation. */
  claims: string[];
  purpose: HelperPurpose;
  identity: HelperIdentity;
  options: HelperPodOptions;
  volumes: V1Volume[];
  mounts: Pick<V1Container, 'volumeMounts' | 'volumeDevices'>;
}

function buildHelperPod({ namespace, namePrefix, node, claims, purpose, identity, options, volumes, mounts }: HelperPodParts): V1Pod {
  const podPrefix = namePrefix.slice(0, 50).replace(/[^a-z0-9-]/g, '-').replace(/-+$/, '');
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: `${podPrefix}-`,
      namespace,
      labels: {
        [HELPER_COMPONENT_LABEL]: HELPER_COMPONENT,
        'app.kubernetes.io/name': 'kubectl-nkvm',
        'app.kubernetes.io/managed-by': 'kubectl-nkvm',
        'nkvm.dev/pvc': labelValue(claims[0]!),
        'nkvm.dev/run': labelValue(options.runId),
        'nkvm.dev/purpose': purpose,
      },
      annotations: { 'nkvm.dev/pvc': claims.join(',') },
    },
    spec: {
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 0,
      activeDeadlineSeconds: options.deadlineSeconds,
      ...(node
        ? {
            affinity: {
              nodeAffinity: {
                requiredDuringSchedulingIgnoredDuringExecution: {
                  nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] }],
                },
              },
            },
          }
        : {}),
      // Never a Windows node: the helper is a Linux image.
      nodeSelector: { 'kubernetes.io/os': 'linux', ...options.nodeSelector },
      ...(options.tolerations?.length ? { tolerations: options.tolerations } : {}),
      ...(options.imagePullSecrets?.length ? { imagePullSecrets: options.imagePullSecrets.map((name) => ({ name })) } : {}),
      securityContext: podSecurityContext(identity),
      containers: [
        {
          name: HELPER_CONTAINER,
          image: options.image,
          imagePullPolicy: 'IfNotPresent',
          // The pod only waits; tar runs over exec. Its deadline ends it if it is never deleted.
          command: options.command ?? ['sleep', String(options.deadlineSeconds)],
          securityContext: {
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ['ALL'], ...(isRoot(identity) ? { add: CAPABILITIES[purpose] } : {}) },
          },
          resources: options.resources ?? DEFAULT_HELPER_RESOURCES,
          ...(options.command ? { env: MOVER_MALLOC_ENV } : {}),
          ...mounts,
        },
      ],
      volumes,
    },
  };
}

/** Container states that will not fix themselves: fail now rather than at the timeout. */
const FATAL_WAITING_REASONS = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'CreateContainerError', 'CreateContainerConfigError', 'RunContainerError']);

/** Why a helper pod is not running yet, from its status: undefined while it may still start. */
export function helperPodFailure(pod: V1Pod): string | undefined {
  const phase = pod.status?.phase;
  if (phase === 'Failed' || phase === 'Succeeded') {
    return `helper pod ended (${phase})${pod.status?.message ? `: ${pod.status.message}` : ''}`;
  }
  for (const status of pod.status?.containerStatuses ?? []) {
    const waiting = status.state?.waiting;
    if (waiting?.reason && FATAL_WAITING_REASONS.has(waiting.reason)) {
      return `helper container cannot start (${waiting.reason})${waiting.message ? `: ${waiting.message}` : ''}`;
    }
    if (status.state?.terminated) return `helper container exited (${status.state.terminated.reason ?? 'terminated'})`;
  }
  return undefined;
}

export function isHelperPodReady(pod: V1Pod): boolean {
  return pod.status?.phase === 'Running' && (pod.status.containerStatuses ?? []).every((status) => status.ready);
}

/** What a pending pod is waiting for: its scheduling condition and the latest warning events. */
export function describePending(pod: V1Pod, events: CoreV1Event[]): string {
  const reasons: string[] = [];
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False') reasons.push(`not scheduled: ${scheduled.message ?? scheduled.reason ?? 'unknown'}`);
  const warnings = events
    .filter((event) => event.type === 'Warning')
    .sort((a, b) => String(a.lastTimestamp ?? a.eventTime ?? '').localeCompare(String(b.lastTimestamp ?? b.eventTime ?? '')))
    .slice(-2)
    .map((event) => `${event.reason}: ${event.message}`);
  reasons.push(...warnings);
  for (const status of pod.status?.containerStatuses ?? []) {
    if (status.state?.waiting?.reason) reasons.push(`container ${status.state.waiting.reason}`);
  }
  return reasons.length ? reasons.join('; ') : `phase ${pod.status?.phase ?? 'Pending'}`;
}

/** With dryRun, the API server runs admission (Pod Security, quotas, webhooks) and stores nothing. */
export async function createHelperPod(client: KubeClient, manifest: V1Pod, options: { dryRun?: boolean } = {}): Promise<string> {
  const namespace = manifest.metadata!.namespace!;
  const created = (await client.requestJson({ verb: 'create', resource: 'pods', namespace }, { method: 'POST', path: corePath('pods', namespace), query: { dryRun: options.dryRun ? 'All' : undefined }, body: manifest })) as V1Pod;
  return created.metadata!.name!;
}

/**
 * Creates the claim's helper pod as the identity initialIdentity() picks. When Pod Security refuses
 * the root helper (the namespace enforces "restricted", by label or by the cluster's defaults), it
 * is created again as the workload's user, and the namespace is remembered in `restricted` so the
 * run's next helpers there go straight to it. An identity the user chose is never second-guessed.
 */
export async function startHelperPod(
  client: KubeClient,
  claim: DiscoveredClaim,
  options: HelperPodOptions,
  purpose: HelperPurpose,
  restricted: Set<string>,
  create: { dryRun?: boolean } = {},
): Promise<{ name: string; identity: HelperIdentity }> {
  const runAs = options.runAs ?? {};
  const identity = options.identity ?? initialIdentity(claim, runAs, restricted.has(claim.namespace));
  try {
    return { name: await createHelperPod(client, helperPodManifest(claim, options, purpose, identity), create), identity };
  } catch (error) {
    const refusedAsRoot = error instanceof KubernetesAdmissionError && error.admission === 'PodSecurity' && isRoot(identity) && runAs.runAsUser === undefined && !options.identity;
    if (!refusedAsRoot) throw error;
    restricted.add(claim.namespace);
    const workload = workloadIdentity(claim, runAs);
    return { name: await createHelperPod(client, helperPodManifest(claim, options, purpose, workload), create), identity: workload };
  }
}

/**
 * Whether the helper's container answers an exec yet, asked every PROBE_INTERVAL_MS until stopped.
 * The kubelet reports a started container at its next status update, a few hundred milliseconds
 * after an exec into it already works (on the local cluster: exec from 540-610 ms after the pod's
 * creation, Ready read at ~950 ms), and every copy waits for it. An exit code means the container
 * runs, whatever it is; a refused upgrade ("container not found", "does not have a host assigned",
 * which also come as a status) means not yet.
 */
const PROBE_INTERVAL_MS = 100;
async function execProbe(client: KubeClient, namespace: string, pod: string, command: string[], stop: AbortSignal): Promise<boolean> {
  while (!stop.aborted) {
    const outcome = await execStream(client.credentials.kubeConfig, { namespace, pod, container: HELPER_CONTAINER, command, signal: stop }).catch(() => undefined);
    if (outcome?.exitCode !== undefined) return true;
    await sleep(PROBE_INTERVAL_MS, undefined, { signal: stop }).catch(() => {});
  }
  return false;
}

/**
 * A command that answers at once in the helper's container: `true` beside an exec helper's sleep,
 * and a data mover's own executable (moverWaitCommand: EXECUTABLE mover wait ...; its image has no
 * shell) for its client version.
 */
function probeCommand(pod: V1Pod): string[] | undefined {
  const command = pod.spec?.containers?.[0]?.command ?? [];
  if (command[0] === 'sleep') return ['true'];
  if (command[1] === 'mover' && command[2] === 'wait') return [command[0]!, 'version', '--client'];
  return undefined;
}

/**
 * Polls until the helper runs; throws with the reason as soon as it cannot, or at the timeout. It is
 * also taken as running once an exec of its probeCommand answers, before its status says so.
 */
export async function waitForHelperPod(client: KubeClient, namespace: string, name: string, timeoutMs: number, signal?: AbortSignal): Promise<V1Pod> {
  const deadline = Date.now() + timeoutMs;
  const stopProbe = new AbortController();
  let answered: Promise<boolean> | undefined;
  const read = () => readPod(client, namespace, name);
  try {
    // A helper usually runs within a second or two, and every moment counts for a small claim: look
    // often for the first seconds, then back off (an image pull can take minutes).
    for (const started = Date.now(); ; ) {
      const interval = Date.now() - started < 10_000 ? 150 : 1000;
      if (signal?.aborted) throw new Error('interrupted');
      const pod = await read();
      if (isHelperPodReady(pod)) return pod;
      const probe = answered ? undefined : probeCommand(pod);
      if (probe) answered = execProbe(client, namespace, name, probe, stopProbe.signal);
      const failure = helperPodFailure(pod);
      if (failure) throw new Error(failure);
      if (Date.now() >= deadline) {
        const events = await client
          .getJson({ verb: 'list', resource: 'events', namespace }, corePath('events', namespace), { fieldSelector: `involvedObject.name=${name}` })
          .then((list) => (list as CoreV1EventList).items)
          .catch(() => []);
        throw new Error(`helper pod ${name} not running after ${Math.round(timeoutMs / 1000)}s (--pod-ready-timeout): ${describePending(pod, events)}`);
      }
      const pause = sleep(interval, false, { signal }).catch(() => false); // Ctrl-C: the next turn says so
      if (await (answered ? Promise.race([pause, answered]) : pause)) return pod.spec?.nodeName ? pod : await read(); // its node, for the record
    }
  } finally {
    stopProbe.abort();
  }
}

/** A pod as the API server has it. */
export async function readPod(client: KubeClient, namespace: string, name: string): Promise<V1Pod> {
  return (await client.getJson({ verb: 'get', resource: 'pods', namespace, name }, corePath('pods', namespace, name))) as V1Pod;
}

/** Deletes at once (no grace: it only sleeps); a pod already gone is fine. */
export async function deleteHelperPod(client: KubeClient, namespace: string, name: string): Promise<void> {
  try {
    await client.requestJson({ verb: 'delete', resource: 'pods', namespace, name }, { method: 'DELETE', path: corePath('pods', namespace, name), query: { gracePeriodSeconds: '0' } });
  } catch (error) {
    if ((error as { code?: string }).code !== 'NotFoundError') throw error;
  }
}
