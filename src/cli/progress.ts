/**
 * Live progress bars for `backup` on a terminal's stderr: one line per claim, redrawn in place with
 * ANSI cursor movement, and a permanent line above them for each claim that has finished. Writes only
 * to the stream it is given; whether to show it at all is progressEnabled's call.
 */
import chalk from 'chalk';
import type { BackupStage } from '../backup/manager.ts';
import { formatBytes, formatDuration, formatRate } from './format.ts';

export const PROGRESS_MODES = ['auto', 'always', 'never'] as const;
export type ProgressMode = (typeof PROGRESS_MODES)[number];

/** `--progress`: auto shows bars only on a terminal's stderr and never beside -o json|yaml. */
export function progressEnabled(flag: ProgressMode, stderrIsTTY: boolean, machineOutput: boolean): boolean {
  if (flag === 'always') return true;
  if (flag === 'never') return false;
  return stderrIsTTY && !machineOutput;
}

export type ProgressStage = BackupStage;

export interface ClaimProgress {
  stage: ProgressStage;
  /** Tar bytes received in the current copy attempt. */
  tarBytes?: number | undefined;
  /** Measured size of the claim's data (du): approximate, may arrive late or never. */
  totalBytes?: number | undefined;
  /** The copy attempt, 1-based. */
  attempt?: number | undefined;
  maxAttempts?: number | undefined;
}

export interface ProgressStream {
  write(text: string): boolean;
  columns?: number | undefined;
}

/** The permanent line's text for a success: "1.0 GiB in 12.3s (85 MiB/s)". */
export function doneText(bytes: number, durationMs: number): string {
  return `${formatBytes(bytes)} in ${formatDuration(durationMs)} (${formatRate(bytes, durationMs)})`;
}

const REDRAW_INTERVAL_MS = 100;
const RATE_WINDOW_MS = 5000;
const SAMPLE_SPACING_MS = 100;
const BAR_WIDTH = { min: 8, max: 30 };
const ESC = '\u001b[';
const ANSI = /\u001b\[[0-9;]*[A-Za-z]/y;

interface Sample {
  t: number;
  bytes: number;
}

interface ClaimState extends ClaimProgress {
  samples: Sample[];
}

const STAGE_LABELS: Record<Exclude<ProgressStage, 'copy'>, string> = {
  discovery: 'discovering',
  'helper-pod': 'scheduling helper',
  'pre-hook': 'running pre-hooks',
  snapshot: 'taking a snapshot',
  finalize: 'finalizing',
  done: 'done',
};

export function stageLabel({ stage, attempt, maxAttempts }: ClaimProgress): string {
  if (stage !== 'copy') return STAGE_LABELS[stage];
  if (!attempt || attempt <= 1) return 'copying';
  return maxAttempts ? `retry ${attempt - 1}/${maxAttempts - 1}` : `retry ${attempt - 1}`;
}

/** Bytes per second over the last ~5 s of samples, not since the start; undefined until measurable. */
function rateOf(samples: Sample[]): number | undefined {
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (!first || !last || last.t - first.t < 500) return undefined;
  return ((last.bytes - first.bytes) * 1000) / (last.t - first.t);
}

/** Cut to `width` visible characters, skipping colour codes; a cut coloured line is reset. */
export function truncate(line: string, width: number): string {
  let out = '';
  let visible = 0;
  let coloured = false;
  for (let i = 0; i < line.length; ) {
    ANSI.lastIndex = i;
    const code = ANSI.exec(line);
    if (code) {
      out += code[0];
      coloured = true;
      i += code[0].length;
      continue;
    }
    const char = String.fromCodePoint(line.codePointAt(i)!);
    if (visible === width) return coloured ? `${out}${ESC}0m` : out;
    out += char;
    visible += 1;
    i += char.length;
  }
  return out;
}

export class ProgressBars {
  private readonly stream: ProgressStream;
  private readonly now: () => number;
  private readonly claims = new Map<string, ClaimState>();
  /** Lines written since the last redraw that stay: finished claims, log(). */
  private pending: string[] = [];
  private liveLines = 0;
  private lastDraw = Number.NEGATIVE_INFINITY;
  private closed = false;

  constructor(stream: ProgressStream, options: { now?: () => number } = {}) {
    this.stream = stream;
    this.now = options.now ?? Date.now;
  }

  update(key: string, progress: ClaimProgress): void {
    if (this.closed) return;
    const now = this.now();
    const previous = this.claims.get(key);
    const state: ClaimState = { samples: [], ...previous, stage: progress.stage };
    for (const [field, value] of Object.entries(progress)) if (value !== undefined) Object.assign(state, { [field]: value });
    const newStage = !previous || previous.stage !== state.stage || previous.attempt !== state.attempt;
    if (state.stage === 'copy' && progress.tarBytes !== undefined) {
      const samples = newStage || progress.tarBytes < (state.samples.at(-1)?.bytes ?? 0) ? [] : state.samples;
      const beforeLast = samples[samples.length - 2];
      if (beforeLast && now - beforeLast.t < SAMPLE_SPACING_MS) samples.pop();
      samples.push({ t: now, bytes: progress.tarBytes });
      while (samples.length > 2 && samples[1]!.t <= now - RATE_WINDOW_MS) samples.shift();
      state.samples = samples;
    }
    this.claims.set(key, state);
    if (newStage || now - this.lastDraw >= REDRAW_INTERVAL_MS) this.draw(now);
  }

  /** The claim's bar becomes a permanent line: "✔ shop/data  1.0 GiB in 12.3s (85 MiB/s)". */
  finish(key: string, outcome: { ok: boolean; text: string }): void {
    if (this.closed) return;
    this.claims.delete(key);
    this.pending.push(`${outcome.ok ? chalk.green('✔') : chalk.red('✖')} ${key}  ${outcome.text}`);
    this.draw(this.now());
  }

  /** A permanent line above the bars (a warning, say): writing around them would break the redraw. */
  log(text: string): void {
    if (this.closed) {
      this.stream.write(`${text}\n`);
      return;
    }
    this.pending.push(text);
    this.draw(this.now());
  }

  /** Clears the live area; the permanent lines stay. Safe to call again. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.claims.clear();
    this.draw(this.now());
  }

  private draw(now: number): void {
    this.lastDraw = now;
    const columns = this.stream.columns || 80;
    // Permanent lines are not cut: they are drawn once and scroll away, so a wrap cannot break anything.
    const lines = this.pending.map((line) => `${ESC}2K${line}\n`);
    this.pending = [];
    for (const line of this.liveBars(columns - 1)) lines.push(`${ESC}2K${line}\n`);
    const up = this.liveLines > 0 ? `${ESC}${this.liveLines}A\r` : '';
    const live = this.claims.size;
    // Fewer lines than before: erase what is left of the old ones below.
    const clear = live < this.liveLines ? `${ESC}0J` : '';
    this.liveLines = live;
    const text = up + lines.join('') + clear;
    if (text) this.stream.write(text);
  }

  private liveBars(width: number): string[] {
    const keyWidth = Math.max(0, ...[...this.claims.keys()].map((key) => key.length));
    const rows = [...this.claims].map(([key, claim]) => {
      const head = `${key.padEnd(keyWidth)}  ${stageLabel(claim).padEnd(11)}`;
      const bytes = claim.tarBytes ?? 0;
      const total = claim.totalBytes !== undefined && claim.totalBytes > 0 && bytes <= claim.totalBytes ? claim.totalBytes : undefined;
      const copying = claim.stage === 'copy';
      const rate = copying ? rateOf(claim.samples) : undefined;
      const done = claim.stage === 'done';
      // The total is disk usage, not tar size: never claim 100% before the claim is done.
      const percent = done ? 100 : total === undefined ? undefined : Math.min(99, Math.floor((bytes * 100) / total));
      const stats: string[] = [];
      if (percent !== undefined) stats.push(`${String(percent).padStart(3)}%`);
      if (copying || claim.tarBytes !== undefined) stats.push(total === undefined ? formatBytes(bytes) : `${formatBytes(bytes)} / ${formatBytes(total)}`);
      if (rate !== undefined) stats.push(formatRate(rate, 1000));
      if (rate && total !== undefined && !done) stats.push(`ETA ${formatDuration(Math.max(1, Math.ceil((total - bytes) / rate)) * 1000)}`);
      return { head, fraction: percent === undefined ? undefined : percent / 100, tail: stats.join('  ') };
    });
    // One bar width for all lines, so they stay aligned; no bar when too narrow or the total is unknown.
    const room = Math.min(...rows.map((row) => width - row.head.length - row.tail.length - 5));
    const barWidth = Math.min(BAR_WIDTH.max, room);
    return rows.map(({ head, fraction, tail }) => {
      let bar = '';
      if (fraction !== undefined && barWidth >= BAR_WIDTH.min) {
        const filled = Math.round(fraction * barWidth);
        bar = `${'█'.repeat(filled)}${chalk.dim('░'.repeat(barWidth - filled))}  `;
      }
      return truncate(`${head}  ${bar}${chalk.dim(tail)}`.trimEnd(), width);
    });
  }
}
