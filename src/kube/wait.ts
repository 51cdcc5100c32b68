/** Waiting on the cluster: the same poll wherever the plugin must know that objects it deleted are gone. */
import { setTimeout as sleep } from 'node:timers/promises';

export interface ObjectToWaitFor {
  /** How the object is named to the user, e.g. "claim ns/name". */
  name: string;
  /** Reads it; NotFoundError (src/kube/errors.ts) means it is gone. */
  read: () => Promise<unknown>;
}

/**
 * Polls every `intervalMs` until each object is gone, for at most `timeoutMs`; returns the names of
 * those still there then (empty: all gone). Any error but NotFound counts as "still there".
 */
export async function untilGone(objects: readonly ObjectToWaitFor[], timeoutMs: number, intervalMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let left = [...objects];
  for (;;) {
    const present = await Promise.all(left.map((object) => object.read().then(() => true, (error) => (error as { code?: string }).code !== 'NotFoundError')));
    left = left.filter((_, index) => present[index]);
    if (left.length === 0 || Date.now() >= deadline) return left.map((object) => object.name);
    await sleep(intervalMs);
  }
}
