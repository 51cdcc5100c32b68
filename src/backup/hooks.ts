/**
 * Hooks: commands run with exec in the pods that mount a claim, the pre-hook just before the copy
 * and the post-hook after it (also when the backup fails or is interrupted: a frozen application
 * must never stay frozen), so an application can flush and pause for a consistent backup. Which
 * hooks a pod gets: hook-spec.ts.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { execStream, TailBuffer } from '../kube/exec.ts';
import type { KubeClient } from '../kube/client.ts';
import { toKubernetesError } from '../kube/errors.ts';
import type { HookRecord, HookSpec } from './hook-spec.ts';
import { readPod } from './helper-pod.ts';

/** What of a failing hook's output is kept: its tail. */
const OUTPUT_TAIL = 2000;

/** Runs one hook with exec in its pod, within its timeout; never throws. */
export async function runHook(client: KubeClient, namespace: string, pod: string, spec: HookSpec, signal?: AbortSignal): Promise<HookRecord> {
  const output = new TailBuffer(OUTPUT_TAIL);
  // A hook cut at its timeout has its output stream destroyed with the reason: that is reported below.
  output.on('error', () => {});
  const started = Date.now();
  const timeout = AbortSignal.timeout(spec.timeoutMs);
  const record = { phase: spec.phase, pod, container: spec.container, command: spec.command, source: spec.source };
  try {
    const outcome = await execStream(client.credentials.kubeConfig, {
      namespace,
      pod,
      container: spec.container,
      command: spec.command,
      stdout: output,
      onStderr: (chunk) => output.write(chunk),
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    const exitCode = outcome.exitCode ?? null;
    const ok = exitCode === 0;
    const tail = output.text.trim();
    const why =
      exitCode !== null ? `exit code ${exitCode}` : timeout.aborted ? `timed out after ${spec.timeoutMs / 1000}s` : outcome.status?.message ?? 'the exec ended without an exit code';
    return { ...record, exitCode, durationMs: Date.now() - started, ok, ...(ok ? {} : { error: `${why}${tail ? `: ${tail}` : ''}` }) };
  } catch (error) {
    const why = timeout.aborted
      ? `timed out after ${spec.timeoutMs / 1000}s`
      : toKubernetesError(error, { verb: 'create', resource: 'pods/exec', namespace, name: pod }).message;
    return { ...record, exitCode: null, durationMs: Date.now() - started, ok: false, error: why };
  }
}

/** One line for a hook: "pre-hook in web-0/app [sh -c fsfreeze -f /data]: exit code 1 after 0.2s: ...". */
export function describeHook(hook: HookRecord): string {
  const outcome = hook.ok ? 'ok' : hook.error ?? 'failed';
  return `${hook.phase}-hook in ${hook.pod}/${hook.container} [${hook.command.join(' ')}]: ${outcome} after ${(hook.durationMs / 1000).toFixed(1)}s`;
}

/** The running pods that mount the claim, read whole (annotations, containers): where its hooks run. */
export async function podsForHooks(client: KubeClient, namespace: string, podNames: string[]): Promise<V1Pod[]> {
  const pods: V1Pod[] = [];
  for (const name of podNames) {
    const pod = await readPod(client, namespace, name);
    if (pod.status?.phase === 'Running') pods.push(pod);
  }
  return pods;
}
