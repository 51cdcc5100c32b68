/**
 * Who the helper pod runs as. By default it is root with the one or few capabilities its job needs
 * (helper-pod.ts), so every file is read and every owner restored. A namespace that enforces Pod
 * Security "restricted" admits no root and no added capability: there the helper runs as the
 * workload does, the user, group, fsGroup and supplemental groups of the pod that mounts the claim,
 * and reads what that user can read. --run-as-user/--run-as-group/--fs-group choose the identity
 * outright.
 */
import type { DiscoveredClaim } from './discovery.ts';

export interface HelperIdentity {
  /** 0: the root helper with capabilities; anything else: restricted-compliant, no capabilities. */
  uid: number;
  /** Unset: the image's group for that user (what the workload gets when its spec sets none). */
  gid?: number | undefined;
  fsGroup?: number | undefined;
  supplementalGroups?: number[] | undefined;
  /** Where it came from, for the result: "default", "--run-as-user", "pod web-0", ... */
  source: string;
}

/** What the user asked for on the command line. */
export interface RunAsFlags {
  runAsUser?: number | undefined;
  runAsGroup?: number | undefined;
  fsGroup?: number | undefined;
}

export const ROOT_IDENTITY: HelperIdentity = { uid: 0, gid: 0, source: 'default' };

/** nobody: the identity of last resort when no pod says which user owns a claim's files. */
const NOBODY = 65534;

export const isRoot = (identity: HelperIdentity): boolean => identity.uid === 0;

/** The helper runs as nobody only because nothing said who owns the claim's files. */
export const isNobodyFallback = (identity: HelperIdentity): boolean => identity.uid === NOBODY && identity.source === NOBODY_SOURCE;

const NOBODY_SOURCE = 'no pod mounting the claim names a non-root user: nobody';

/**
 * The owner of the claim's root directory, as a restore's identity where no pod names one: its
 * group as fsGroup too, so files the restore makes are the group's, as a setgid root would make them.
 */
export function rootOwnerIdentity(uid: number, gid: number): HelperIdentity {
  return { uid, gid, fsGroup: gid, source: "owner of the claim's root" };
}

/**
 * The workload's identity: the first pod mounting the claim whose spec names a user (running pods
 * first), else nobody. The flags, where given, override field by field.
 */
export function workloadIdentity(claim: DiscoveredClaim, flags: RunAsFlags = {}): HelperIdentity {
  const pods = [...claim.pods].sort((a, b) => Number(b.phase === 'Running') - Number(a.phase === 'Running'));
  const pod = pods.find((candidate) => candidate.identity.runAsUser !== undefined && candidate.identity.runAsUser !== 0);
  const base: HelperIdentity = pod
    ? { uid: pod.identity.runAsUser!, gid: pod.identity.runAsGroup, fsGroup: pod.identity.fsGroup, supplementalGroups: pod.identity.supplementalGroups, source: `pod ${pod.name}` }
    : { uid: NOBODY, gid: NOBODY, source: NOBODY_SOURCE };
  return withFlags(base, flags);
}

function withFlags(base: HelperIdentity, flags: RunAsFlags): HelperIdentity {
  if (flags.runAsUser === undefined && flags.runAsGroup === undefined && flags.fsGroup === undefined) return base;
  return {
    ...base,
    ...(flags.runAsUser !== undefined ? { uid: flags.runAsUser } : {}),
    ...(flags.runAsGroup !== undefined ? { gid: flags.runAsGroup } : {}),
    ...(flags.fsGroup !== undefined ? { fsGroup: flags.fsGroup } : {}),
    source: flags.runAsUser !== undefined ? '--run-as-user' : `${base.source}, with flags`,
  };
}

/**
 * The identity to try first: the flags' when --run-as-user is given (group and fsGroup default to
 * the workload's), root otherwise, unless the namespace is already known to enforce "restricted".
 */
export function initialIdentity(claim: DiscoveredClaim, flags: RunAsFlags, restricted: boolean): HelperIdentity {
  if (flags.runAsUser !== undefined || restricted) return workloadIdentity(claim, flags);
  if (flags.runAsGroup !== undefined || flags.fsGroup !== undefined) return withFlags(ROOT_IDENTITY, flags);
  return ROOT_IDENTITY;
}

/** One line for results and the catalog: "root" or "uid 1000, gid 2000, fsGroup 2000 (pod web-0)". */
export function describeIdentity(identity: HelperIdentity): string {
  if (isRoot(identity) && identity.fsGroup === undefined && identity.source === 'default') return 'root';
  const parts = [`uid ${identity.uid}`];
  if (identity.gid !== undefined) parts.push(`gid ${identity.gid}`);
  if (identity.fsGroup !== undefined) parts.push(`fsGroup ${identity.fsGroup}`);
  if (identity.supplementalGroups?.length) parts.push(`groups ${identity.supplementalGroups.join(',')}`);
  return `${parts.join(', ')} (${identity.source})`;
}
