/**
 * The two commands people run to check a tool is there, `--help` and `version --client`, answered
 * by the single executable's front (src/sea-front.ts) without loading the CLI, so they start about
 * as fast as kubectl. The help text is the real CLI's, rendered when the release is built, for the
 * widths main.ts wraps it to where the terminal is not narrower (100 when stdout is not a terminal,
 * 110 on a wide one); at any other width the CLI itself answers.
 */
import { invokedForCompletion } from './invocation.ts';
import { pluginVersion } from '../version.ts';

/** Help is wrapped to the terminal's width, at most WIDEST; where stdout is not a terminal, to UNKNOWN. */
const UNKNOWN_TERMINAL_HELP_WIDTH = 100;
const WIDEST_HELP_WIDTH = 110;

/** What main.ts passes to yargs' wrap(). */
export function helpWidth(columns: number | undefined): number {
  return Math.min(WIDEST_HELP_WIDTH, columns || UNKNOWN_TERMINAL_HELP_WIDTH);
}

export const PRERENDERED_HELP_WIDTHS = [UNKNOWN_TERMINAL_HELP_WIDTH, WIDEST_HELP_WIDTH] as const;

export function clientVersionLine(): string {
  return `Client Version: v${pluginVersion} (node ${process.version}, ${process.platform}/${process.arch})`;
}

/** The answer for this run if it is one of the two, else undefined (the CLI answers). */
export function fastAnswer(argv: readonly string[], invokedAs: string | undefined, columns: number | undefined, helpByWidth: Record<string, string>): string | undefined {
  if (invokedForCompletion(invokedAs)) return undefined;
  if (argv.length === 1 && argv[0] === '--help') return helpByWidth[helpWidth(columns)];
  if (argv.length === 2 && argv[0] === 'version' && argv[1] === '--client') return `${clientVersionLine()}\n`;
  return undefined;
}
