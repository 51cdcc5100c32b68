/** The helper pod's flags, shared by backup and restore. */
import type { Argv } from 'yargs';
import { DEFAULT_HELPER_IMAGE } from '../backup/defaults.ts';
import { DEFAULT_HELPER_RESOURCES, type HelperPodOptions } from '../backup/helper-pod.ts';
import { UsageError } from '../errors.ts';
import { parseKeyValues, parseToleration } from './flags.ts';
import { parseDuration } from './global-options.ts';

export interface HelperFlags {
  helperImage: string;
  podReadyTimeout: string;
  helperDeadline: string;
  helperRequests: string[] | undefined;
  helperLimits: string[] | undefined;
  toleration: string[] | undefined;
  nodeSelector: string[] | undefined;
  imagePullSecret: string[] | undefined;
  runAsUser: number | undefined;
  runAsGroup: number | undefined;
  fsGroup: number | undefined;
}

export function withHelperOptions<T>(argv: Argv<T>): Argv<T & HelperFlags> {
  return argv
    .option('helper-image', { type: 'string', default: DEFAULT_HELPER_IMAGE, description: 'Image of the helper pod; it needs sh, sleep and tar' })
    .option('pod-ready-timeout', { type: 'string', default: '2m', description: 'How long a helper pod may take to start' })
    .option('helper-deadline', { type: 'string', default: '6h', description: 'Longest life of a helper pod (activeDeadlineSeconds), even if this process dies; a helper claims share gets it for each round of --parallel copies' })
    .option('helper-requests', { type: 'string', array: true, description: 'Helper resource requests, e.g. cpu=100m,memory=64Mi' })
    .option('helper-limits', { type: 'string', array: true, description: 'Helper resource limits, e.g. memory=256Mi' })
    .option('toleration', { type: 'string', array: true, description: 'Helper toleration: key=value:Effect, key:Effect or key (repeatable)' })
    .option('node-selector', { type: 'string', array: true, description: 'Helper node selector: key=value (repeatable)' })
    .option('image-pull-secret', { type: 'string', array: true, description: 'Secret for pulling the helper image (repeatable)' })
    .option('run-as-user', { type: 'number', description: 'Run the helper as this user, with no capabilities (default: root; in a Pod Security "restricted" namespace, the user of the pod that mounts the claim)' })
    .option('run-as-group', { type: 'number', description: "The helper's group (default: the mounting pod's)" })
    .option('fs-group', { type: 'number', description: "The helper's fsGroup, a supplementary group that may read the volume (default: the mounting pod's)" }) as unknown as Argv<T & HelperFlags>;
}

export function helperOptionsFromFlags(flags: HelperFlags): { helper: Omit<HelperPodOptions, 'runId'>; podReadyTimeoutMs: number } {
  const podReadyTimeoutMs = parseDuration(flags.podReadyTimeout, '--pod-ready-timeout');
  const deadlineSeconds = Math.ceil(parseDuration(flags.helperDeadline, '--helper-deadline') / 1000);
  if (deadlineSeconds < 60) throw new UsageError('--helper-deadline must be at least 1m');
  const requests = parseKeyValues(flags.helperRequests, '--helper-requests');
  const limits = parseKeyValues(flags.helperLimits, '--helper-limits');
  const runAs = {
    runAsUser: idFlag(flags.runAsUser, '--run-as-user'),
    runAsGroup: idFlag(flags.runAsGroup, '--run-as-group'),
    fsGroup: idFlag(flags.fsGroup, '--fs-group'),
  };
  return {
    podReadyTimeoutMs,
    helper: {
      image: flags.helperImage,
      deadlineSeconds,
      // Each flag overrides the defaults key by key: --helper-limits memory=1Gi keeps the default cpu limit.
      resources: { requests: { ...DEFAULT_HELPER_RESOURCES.requests, ...requests }, limits: { ...DEFAULT_HELPER_RESOURCES.limits, ...limits } },
      runAs,
      tolerations: (flags.toleration ?? []).map(parseToleration),
      nodeSelector: parseKeyValues(flags.nodeSelector, '--node-selector'),
      imagePullSecrets: flags.imagePullSecret,
    },
  };
}

/** A user or group ID: a whole number from 0 to 2^31-1, as Kubernetes accepts. */
function idFlag(value: number | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < 0 || value > 2147483647) throw new UsageError(`${flag} must be a user or group ID (a whole number from 0 to 2147483647), not ${value}`);
  return value;
}
