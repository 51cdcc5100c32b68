/**
 * The permissions the plugin needs, checked with SelfSubjectAccessReview: the API server answers
 * for the credentials in use, whatever authorizer it runs.
 */
import type { KubeClient } from './client.ts';

export interface AccessRequirement {
  verb: string;
  resource: string;
  subresource?: string;
  /** Cluster-scoped resources are checked without a namespace. */
  clusterScoped?: boolean;
  required: boolean;
  neededFor: string;
}

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
];

export interface AccessCheck extends AccessRequirement {
  namespace: string | null;
  allowed: boolean;
  reason: string | null;
}

export function resourceName(requirement: AccessRequirement): string {
  return requirement.subresource ? `${requirement.resource}/${requirement.subresource}` : requirement.resource;
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
        resource: requirement.resource,
        ...(requirement.subresource ? { subresource: requirement.subresource } : {}),
        ...(scope ? { namespace: scope } : {}),
      });
      return { ...requirement, namespace: scope, allowed: review.allowed, reason: review.reason };
    }),
  );
}
