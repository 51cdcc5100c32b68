/** The helper pod's flags, shared by backup and restore. */
import type { Argv } from 'yargs';
import { DEFAULT_HELPER_IMAGE } from '../backup/defaults.ts';
import type { HelperPodOptions } from '../backup/helper-pod.ts';
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
}

export function withHelperOptions<T>(argv: Argv<T>): Argv<T & HelperFlags> {
  return argv
    .option('helper-image', { type: 'string', default: DEFAULT_HELPER_IMAGE, description: 'Image of the helper pod; it needs sh, sleep and tar' })
    .option('pod-ready-timeout', { type: 'string', default: '2m', description: 'How long a helper pod may take to start' })
    .option('helper-deadline', { type: 'string', default: '6h', description: 'Longest life of a helper pod (activeDeadlineSeconds), even if this process dies' })
    .option('helper-requests', { type: 'string', array: true, description: 'Helper resource requests, e.g. cpu=100m,memory=64Mi' })
    .option('helper-limits', { type: 'string', array: true, description: 'Helper resource limits, e.g. memory=256Mi' })
    .option('toleration', { type: 'string', array: true, description: 'Helper toleration: key=value:Effect, key:Effect or key (repeatable)' })
    .option('node-selector', { type: 'string', array: true, description: 'Helper node selector: key=value (repeatable)' })
    .option('image-pull-secret', { type: 'string', array: true, description: 'Secret for pulling the helper image (repeatable)' }) as unknown as Argv<T & HelperFlags>;
}

export function helperOptionsFromFlags(flags: HelperFlags): { helper: Omit<HelperPodOptions, 'runId'>; podReadyTimeoutMs: number } {
  const podReadyTimeoutMs = parseDuration(flags.podReadyTimeout, '--pod-ready-timeout');
  const deadlineSeconds = Math.ceil(parseDuration(flags.helperDeadline, '--helper-deadline') / 1000);
  if (deadlineSeconds < 60) throw new UsageError('--helper-deadline must be at least 1m');
  const requests = parseKeyValues(flags.helperRequests, '--helper-requests');
  const limits = parseKeyValues(flags.helperLimits, '--helper-limits');
  return {
    podReadyTimeoutMs,
    helper: {
      image: flags.helperImage,
      deadlineSeconds,
      resources: Object.keys(requests).length || Object.keys(limits).length ? { requests, limits } : undefined,
      tolerations: (flags.toleration ?? []).map(parseToleration),
      nodeSelector: parseKeyValues(flags.nodeSelector, '--node-selector'),
      imagePullSecrets: flags.imagePullSecret,
    },
  };
}
