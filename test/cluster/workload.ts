/**
 * A PVC holding some files and a pod using it: the workload the demo and the suites back up.
 */
import type { TestCluster } from './types.ts';

export interface SeededWorkload {
  namespace: string;
  claim: string;
  pod: string;
}

/** The namespace and the claim. */
export function claimManifest(namespace: string, claim: string, storageClass: string): string {
  return `apiVersion: v1
kind: Namespace
metadata:
  name: ${namespace}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: ${claim}
  namespace: ${namespace}
spec:
  storageClassName: ${storageClass}
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
`;
}

/** A pod that mounts the claim at /data and sleeps. */
export function podManifest(namespace: string, claim: string, pod: string, image: string): string {
  return `apiVersion: v1
kind: Pod
metadata:
  name: ${pod}
  namespace: ${namespace}
  labels:
    app: ${pod}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: app
    image: ${image}
    command: [sleep, "86400"]
    volumeMounts:
    - name: data
      mountPath: /data
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: ${claim}
`;
}

/** Creates the namespace, claim and pod, waits until the pod runs, and writes `script` into /data. */
export async function seedWorkload(
  cluster: TestCluster,
  names: SeededWorkload,
  script = 'mkdir -p /data/reports && echo "hello from nkvm" > /data/hello.txt && head -c 1048576 /dev/urandom > /data/reports/random.bin',
  scriptTimeoutMs = 120_000,
): Promise<void> {
  // No waiting for the claim to bind: the default classes bind on first use (WaitForFirstConsumer),
  // once the scheduler has picked the pod's node.
  await cluster.kubectl(['apply', '-f', '-'], { input: claimManifest(names.namespace, names.claim, cluster.storageClass) });
  await waitForDefaultServiceAccount(cluster, names.namespace);
  await cluster.kubectl(['apply', '-f', '-'], { input: podManifest(names.namespace, names.claim, names.pod, cluster.images.helper) });
  await cluster.kubectl(['wait', '--for=condition=Ready', `pod/${names.pod}`, '-n', names.namespace, '--timeout=120s'], { timeoutMs: 130_000 });
  await cluster.kubectl(['exec', names.pod, '-n', names.namespace, '--', 'sh', '-c', script], { timeoutMs: scriptTimeoutMs });
}

/** A pod made in a new namespace before its controller has made `default` is refused. */
export async function waitForDefaultServiceAccount(cluster: TestCluster, namespace: string): Promise<void> {
  await cluster.kubectl(['wait', '--for=create', 'serviceaccount/default', '-n', namespace, '--timeout=60s'], { timeoutMs: 70_000 });
}

/**
 * Creates claims of the cluster's default class in an existing namespace and binds them with nothing
 * mounting them afterwards: a WaitForFirstConsumer class (local-path, KinD's and the local
 * cluster's) binds a claim only once a pod uses it, so a pod that mounts them all runs once.
 */
export async function createBoundClaims(cluster: TestCluster, namespace: string, claims: string[]): Promise<void> {
  const claimManifests = claims.map((claim) => claimManifest(namespace, claim, cluster.storageClass).split('---\n')[1]!);
  const binder = `nkvm-bind-${Math.random().toString(36).slice(2, 8)}`;
  const pod = `apiVersion: v1
kind: Pod
metadata: {name: ${binder}, namespace: ${namespace}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers: [{name: bind, image: ${cluster.images.helper}, command: ["true"], volumeMounts: [${claims.map((claim) => `{name: ${claim}, mountPath: /${claim}}`).join(', ')}]}]
  volumes: [${claims.map((claim) => `{name: ${claim}, persistentVolumeClaim: {claimName: ${claim}}}`).join(', ')}]
`;
  await cluster.kubectl(['apply', '-f', '-'], { input: [...claimManifests, pod].join('---\n') });
  await cluster.kubectl(['wait', '--for=jsonpath={.status.phase}=Succeeded', `pod/${binder}`, '-n', namespace, '--timeout=120s'], { timeoutMs: 130_000 });
  await cluster.kubectl(['wait', '--for=jsonpath={.status.phase}=Bound', ...claims.map((claim) => `pvc/${claim}`), '-n', namespace, '--timeout=60s'], { timeoutMs: 70_000 });
  await cluster.kubectl(['delete', 'pod', binder, '-n', namespace, '--wait=false']);
}

/** A workload that passes Pod Security "restricted": uid 1000, gid 1000, fsGroup 2000. */
export function restrictedWorkload(namespace: string, claim: string, image: string): string {
  return `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: ${namespace}}
spec:
  terminationGracePeriodSeconds: 0
  securityContext: {runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 2000, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: app
    image: ${image}
    command: [sleep, "86400"]
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: ${claim}}}]
`;
}
