/**
 * The permissions the plugin needs, checked with SelfSubjectAccessReview: the API server answers
 * for the credentials in use, whatever authorizer it runs.
 */
import type { KubeClient } from './client.ts';

export interface AccessRequirement {
  verb: string;
  /** The API group: the core group when absent. */
  group?: string;
  resource: string;
  subresource?: string;
  /** Cluster-scoped resources are checked without a namespace. */
  clusterScoped?: boolean;
  required: boolean;
  neededFor: string;
}

const SNAPSHOT_GROUP = 'snapshot.storage.k8s.io';

export const ACCESS_REQUIREMENTS: AccessRequirement[] = [
  { verb: 'list', resource: 'persistentvolumeclaims', required: true, neededFor: 'discover, backup --all' },
  { verb: 'get', resource: 'persistentvolumeclaims', required: true, neededFor: 'backup NAME' },
  { verb: 'list', resource: 'persistentvolumes', clusterScoped: true, required: false, neededFor: 'volume details (optional)' },
  { verb: 'get', resource: 'persistentvolumes', clusterScoped: true, required: false, neededFor: 'volume details (optional)' },
  { verb: 'list', resource: 'pods', required: true, neededFor: 'which pods and nodes use a claim' },
  { verb: 'get', resource: 'pods', required: true, neededFor: 'waiting for the helper pod' },
  { verb: 'create', resource: 'pods', required: true, neededFor: 'starting the helper pod' },
  { verb: 'delete', resource: 'pods', required: true, neededFor: 'removing the helper pod' },
  // Exec over WebSocket is a GET upgrade: authorized as "get" (and, from Kubernetes 1.35, also "create").
  { verb: 'create', resource: 'pods', subresource: 'exec', required: true, neededFor: 'running tar in the helper pod, and --pre-hook/--post-hook (or Velero hook annotations) in the workload\'s pods' },
  { verb: 'get', resource: 'pods', subresource: 'exec', required: true, neededFor: 'running tar in the helper pod (WebSocket)' },
  { verb: 'list', resource: 'events', required: false, neededFor: 'explaining a helper pod that does not start (optional)' },
  // Backups from CSI snapshots (--snapshot auto, the default, falls back to the live claim without them).
  { verb: 'list', group: SNAPSHOT_GROUP, resource: 'volumesnapshotclasses', clusterScoped: true, required: false, neededFor: 'backups from CSI snapshots: finding the class (optional)' },
  { verb: 'get', group: 'storage.k8s.io', resource: 'storageclasses', clusterScoped: true, required: false, neededFor: 'backups from CSI snapshots: a claim\'s CSI driver (optional)' },
  { verb: 'create', group: SNAPSHOT_GROUP, resource: 'volumesnapshots', required: false, neededFor: 'backups from CSI snapshots (optional)' },
  { verb: 'get', group: SNAPSHOT_GROUP, resource: 'volumesnapshots', required: false, neededFor: 'backups from CSI snapshots: waiting until ready (optional)' },
  { verb: 'delete', group: SNAPSHOT_GROUP, resource: 'volumesnapshots', required: false, neededFor: 'backups from CSI snapshots: removing the snapshot (optional)' },
  { verb: 'create', resource: 'persistentvolumeclaims', required: false, neededFor: 'backups from CSI snapshots: the claim made from the snapshot; restore --create (optional)' },
  { verb: 'delete', resource: 'persistentvolumeclaims', required: false, neededFor: 'backups from CSI snapshots: removing that claim (optional)' },
];

export interface AccessCheck extends AccessRequirement {
  namespace: string | null;
  allowed: boolean;
  reason: string | null;
}

/** As kubectl names it: `pods/exec`, `volumesnapshots.snapshot.storage.k8s.io`. */
export function resourceName(requirement: AccessRequirement): string {
  const resource = requirement.group ? `${requirement.resource}.${requirement.group}` : requirement.resource;
  return requirement.subresource ? `${resource}/${requirement.subresource}` : resource;
}

/** The kubectl command that would grant a denied permission (to be run by someone allowed to). */
export function grantHint(check: AccessCheck): string {
  const resource = resourceName(check);
  return check.clusterScoped
    ? `kubectl create clusterrole nkvm-reader --verb=${check.verb} --resource=${resource} (and bind it)`
    : `kubectl create role nkvm-backup --verb=${check.verb} --resource=${resource} -n ${check.namespace} (and bind it)`;
}

export async function checkAccess(client: KubeClient, namespace: string): Promise<AccessCheck[]> {
  return Promise.all(
    ACCESS_REQUIREMENTS.map(async (requirement) => {
      const scope = requirement.clusterScoped ? null : namespace;
      const review = await client.reviewAccess({
        verb: requirement.verb,
        ...(requirement.group ? { group: requirement.group } : {}),
        resource: requirement.resource,
        ...(requirement.subresource ? { subresource: requirement.subresource } : {}),
        ...(scope ? { namespace: scope } : {}),
      });
      return { ...requirement, namespace: scope, allowed: review.allowed, reason: review.reason };
    }),
  );
}
