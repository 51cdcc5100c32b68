/**
 * Files the helper could not read. A helper that runs as the workload's user (helper-identity.ts)
 * reads what that user may: tar skips the rest, says so on stderr, and exits 1 at the end with an
 * otherwise complete archive. This reads tar's stderr line by line (busybox's and GNU's wording),
 * counts the paths refused with "Permission denied", keeps the first few, and keeps any other
 * complaint apart, since only a backup whose sole problem is unreadable paths may pass as partial.
 */
const SAMPLE_SIZE = 5;

/** busybox: `tar: can't open 'x': Permission denied` (files), `tar: x: Permission denied` (directories); GNU: `tar: x: Cannot open: Permission denied`. */
const DENIED = [/^tar: can't open '(.*)': Permission denied$/, /^tar: (.*): Cannot (?:open|opendir|read|stat): Permission denied$/, /^tar: (.*): Permission denied$/];
/** The summary lines both tars print before exiting 1 after such errors. */
const SUMMARY = /^tar: (?:error exit delayed from previous errors|Exiting with failure status due to previous errors)$/;

export interface UnreadableSummary {
  count: number;
  /** The first few, as paths inside the claim. */
  sample: string[];
}

export class UnreadablePaths {
  count = 0;
  readonly sample: string[] = [];
  /** Lines that are not about a refused path: any of them makes a non-zero exit a real failure. */
  readonly otherErrors: string[] = [];
  private pending = '';

  /** Feed stderr as it arrives. */
  push(chunk: Buffer | string): void {
    const lines = (this.pending + chunk.toString()).split('\n');
    this.pending = lines.pop() ?? '';
    for (const line of lines) this.line(line);
  }

  /** Call once stderr is complete. */
  end(): void {
    if (this.pending) this.line(this.pending);
    this.pending = '';
  }

  get summary(): UnreadableSummary {
    return { count: this.count, sample: [...this.sample] };
  }

  /** True when tar's failure is fully explained by refused paths. */
  get onlyRefusals(): boolean {
    return this.count > 0 && this.otherErrors.length === 0;
  }

  private line(raw: string): void {
    const line = raw.replace(/\r$/, '');
    if (!line || SUMMARY.test(line)) return;
    for (const pattern of DENIED) {
      const match = pattern.exec(line);
      if (!match) continue;
      this.count += 1;
      if (this.sample.length < SAMPLE_SIZE) this.sample.push(match[1]!.replace(/^\.\//, ''));
      return;
    }
    if (this.otherErrors.length < SAMPLE_SIZE) this.otherErrors.push(line);
  }
}

/** "3 paths could not be read as uid 1000 ...: a/b, c (and 1 more)". */
export function describeUnreadable(summary: UnreadableSummary, identity: string): string {
  const more = summary.count > summary.sample.length ? ` (and ${summary.count - summary.sample.length} more)` : '';
  const noun = summary.count === 1 ? 'path' : 'paths';
  return `${summary.count} ${noun} could not be read as ${identity}: ${summary.sample.join(', ')}${more}`;
}
