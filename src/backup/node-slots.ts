/**
 * At most N copies at once on one node (--max-per-node): a copy takes its node's slot before its
 * pre-hooks (an application is not frozen while its copy waits) and gives it back after its
 * post-hooks. Copies wait in the order they asked.
 */
export class NodeSlots {
  private readonly limit: number;
  private readonly nodes = new Map<string, { active: number; waiting: (() => void)[] }>();

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Waits for a slot on `node`; the returned function frees it (once). */
  async acquire(node: string): Promise<() => void> {
    const state = this.nodes.get(node) ?? { active: 0, waiting: [] };
    this.nodes.set(node, state);
    if (state.active >= this.limit) await new Promise<void>((resolve) => state.waiting.push(resolve));
    else state.active += 1;
    let freed = false;
    return () => {
      if (freed) return;
      freed = true;
      const next = state.waiting.shift();
      // The slot passes straight to the next waiter: the count stays as it is.
      if (next) next();
      else state.active -= 1;
    };
  }
}
