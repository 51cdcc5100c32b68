/**
 * Every write of the plugin goes through here: results to stdout, everything else (progress,
 * warnings, errors) to stderr, so `-o json | jq` always sees clean JSON.
 */
import chalk from 'chalk';
import { dump as dumpYaml } from 'js-yaml';

export const OUTPUT_FORMATS = ['table', 'wide', 'json', 'yaml', 'name'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export interface ColorInputs {
  noColorFlag: boolean;
  env: Record<string, string | undefined>;
  isTTY: boolean;
}

/**
 * Decided once at start: --no-color, then NO_COLOR, then FORCE_COLOR, then whether stderr/stdout is a
 * terminal. chalk alone ignores NO_COLOR, hence this.
 */
export function colorLevel({ noColorFlag, env, isTTY }: ColorInputs): 0 | 1 | 2 | 3 {
  if (noColorFlag) return 0;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return 0;
  if (env.FORCE_COLOR !== undefined) {
    if (env.FORCE_COLOR === '0' || env.FORCE_COLOR === 'false') return 0;
    const level = Number(env.FORCE_COLOR);
    return level >= 1 && level <= 3 ? (level as 1 | 2 | 3) : 1;
  }
  return isTTY && env.TERM !== 'dumb' ? 1 : 0;
}

export function configureColor(inputs: ColorInputs): void {
  chalk.level = colorLevel(inputs);
}

/** A kubectl-style `List` document, the shape of every `-o json|yaml` list. */
export function asList<T>(items: T[]): { apiVersion: 'v1'; kind: 'List'; items: T[] } {
  return { apiVersion: 'v1', kind: 'List', items };
}

export function toJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

export function toYaml(value: unknown): string {
  return dumpYaml(value, { noRefs: true, lineWidth: -1, sortKeys: false });
}

/** Visible width, ignoring ANSI colour codes, so coloured cells still align. */
function visibleLength(text: string): number {
  return text.replace(/\u001b\[[0-9;]*m/g, '').length;
}

/** An aligned table like kubectl's: upper-case headers, columns separated by three spaces. */
export function renderTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, column) =>
    Math.max(visibleLength(header), ...rows.map((row) => visibleLength(row[column] ?? ''))),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell + ' '.repeat(widths[column]! - visibleLength(cell))))
      .join('   ')
      .trimEnd();
  return [line(headers.map((h) => h.toUpperCase())), ...rows.map(line)].join('\n') + '\n';
}

let stdoutClosed = false;

/** A closed pipe (`| head`) ends output quietly, like any Unix tool. */
export function installPipeHandling(): void {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') {
      stdoutClosed = true;
      return;
    }
    throw error;
  });
}

export function writeResult(text: string): void {
  if (!stdoutClosed) process.stdout.write(text);
}

export function writeInfo(text: string): void {
  process.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
}

export function writeWarning(text: string): void {
  writeInfo(`${chalk.yellow('warning:')} ${text}`);
}

export function writeError(message: string, hint?: string): void {
  writeInfo(`${chalk.red('error:')} ${message}`);
  if (hint) writeInfo(`${chalk.dim('hint:')} ${hint}`);
}
