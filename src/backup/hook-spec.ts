/**
 * Which hooks a pod gets, with no cluster in sight (hooks.ts runs them): from --pre-hook/--post-hook
 * (run by `sh -c`), else from Velero's pod annotations as Velero reads them
 * (`pre.hook.backup.velero.io/command` a JSON array or one word, `/container` default the pod's first
 * container, `/on-error` Fail|Continue default Fail, `/timeout` a Go duration default 30s; the same
 * with `post.`), so a cluster annotated for Velero behaves the same.
 */
import type { V1Pod } from '@kubernetes/client-node';

export type HookPhase = 'pre' | 'post';

export interface HookFlags {
  preHook?: string | undefined;
  postHook?: string | undefined;
  hookContainer?: string | undefined;
  /** Milliseconds. */
  hookTimeoutMs?: number | undefined;
  hookOnError?: 'fail' | 'continue' | undefined;
}

export interface HookSpec {
  phase: HookPhase;
  command: string[];
  container: string;
  timeoutMs: number;
  onError: 'fail' | 'continue';
  /** Where it came from: the flags, or the pod's Velero annotations. */
  source: 'flag' | 'annotation';
}

/** What a hook did, as the result, the catalog and `artifacts show` record it. */
export interface HookRecord {
  phase: HookPhase;
  pod: string;
  container: string;
  command: string[];
  source: 'flag' | 'annotation';
  /** undefined when it did not end (timed out, or the exec failed). */
  exitCode: number | null;
  durationMs: number;
  ok: boolean;
  /** Why it failed, and the tail of its output. */
  error?: string | undefined;
}

export const DEFAULT_HOOK_TIMEOUT_MS = 30_000;
const VELERO = 'hook.backup.velero.io';

const UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration ("30s", "1m30s", "1.5h") in milliseconds, as Velero's annotation holds it; undefined if it is not one. */
export function parseGoDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(trimmed)) return undefined;
  let total = 0;
  for (const [, value, , unit] of trimmed.matchAll(/(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(value) * UNITS[unit!]!;
  return total;
}

/** Velero's parseStringToCommand: a JSON array of strings, or the whole text as one word. */
function veleroCommand(text: string): string[] | undefined {
  const trimmed = text.trim();
  if (!trimmed) return undefined;
  if (trimmed.startsWith('[')) {
    const parsed = JSON.parse(trimmed) as unknown;
    if (!Array.isArray(parsed) || !parsed.every((part) => typeof part === 'string') || parsed.length === 0) throw new Error(`${VELERO}/command ${trimmed} is not a JSON array of strings`);
    return parsed as string[];
  }
  return [trimmed];
}

/** The pod's hook of this phase: the flags win over its annotations; undefined when it has none. */
export function hookFor(pod: V1Pod, phase: HookPhase, flags: HookFlags): HookSpec | undefined {
  const firstContainer = pod.spec?.containers[0]?.name ?? '';
  const flagged = phase === 'pre' ? flags.preHook : flags.postHook;
  if (flagged) {
    return {
      phase,
      command: ['sh', '-c', flagged],
      container: flags.hookContainer ?? firstContainer,
      timeoutMs: flags.hookTimeoutMs ?? DEFAULT_HOOK_TIMEOUT_MS,
      onError: flags.hookOnError ?? 'fail',
      source: 'flag',
    };
  }
  const annotations = pod.metadata?.annotations ?? {};
  const annotation = (name: string) => annotations[`${phase}.${VELERO}/${name}`];
  const command = veleroCommand(annotation('command') ?? '');
  if (!command) return undefined;
  const timeout = annotation('timeout');
  return {
    phase,
    command,
    container: flags.hookContainer ?? annotation('container') ?? firstContainer,
    timeoutMs: flags.hookTimeoutMs ?? (timeout ? parseGoDuration(timeout) : undefined) ?? DEFAULT_HOOK_TIMEOUT_MS,
    onError: flags.hookOnError ?? (annotation('on-error')?.toLowerCase() === 'continue' ? 'continue' : 'fail'),
    source: 'annotation',
  };
}
