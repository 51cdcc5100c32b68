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

export function workloadManifest(namespace: string, claim: string, pod: string, image: string, storageClass: string): string {
  return `${claimManifest(namespace, claim, storageClass)}---
${podManifest(namespace, claim, pod, image)}`;
}

/** Creates the namespace, claim and pod, waits until the pod runs, and writes `script` into /data. */
export async function seedWorkload(
  cluster: TestCluster,
  names: SeededWorkload,
  script = 'mkdir -p /data/reports && echo "hello from nkvm" > /data/hello.txt && head -c 1048576 /dev/urandom > /data/reports/random.bin',
): Promise<void> {
  // The claim is bound before the pod exists: a pod scheduled while its claim is still unbound can
  // wait minutes for the scheduler to try again.
  await cluster.kubectl(['apply', '-f', '-'], { input: claimManifest(names.namespace, names.claim, cluster.storageClass) });
  await cluster.kubectl(['wait', '--for=jsonpath={.status.phase}=Bound', `pvc/${names.claim}`, '-n', names.namespace, '--timeout=120s'], { timeoutMs: 130_000 });
  await cluster.kubectl(['apply', '-f', '-'], { input: podManifest(names.namespace, names.claim, names.pod, cluster.images.helper) });
  await cluster.kubectl(['wait', '--for=condition=Ready', `pod/${names.pod}`, '-n', names.namespace, '--timeout=120s'], { timeoutMs: 130_000 });
  await cluster.kubectl(['exec', names.pod, '-n', names.namespace, '--', 'sh', '-c', script], { timeoutMs: 120_000 });
}
