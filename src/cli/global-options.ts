/**
 * The flags every command shares, named and behaving like kubectl's so the plugin inherits the
 * user's context the way `kubectl` does.
 */
import type { Argv } from 'yargs';
import { UsageError } from '../errors.ts';

export interface GlobalOptions {
  kubeconfig: string | undefined;
  context: string | undefined;
  namespace: string | undefined;
  requestTimeout: string;
  color: boolean;
  debug: boolean;
}

export function withGlobalOptions<T>(argv: Argv<T>): Argv<T & GlobalOptions> {
  return argv
    .option('kubeconfig', { type: 'string', description: 'Path to the kubeconfig file to use', global: true })
    .option('context', { type: 'string', description: 'The name of the kubeconfig context to use', global: true })
    .option('namespace', {
      alias: 'n',
      type: 'string',
      description: 'The namespace scope for this request (default: the context namespace)',
      global: true,
    })
    .option('request-timeout', {
      type: 'string',
      default: '30s',
      description: 'How long to wait for a single API request (e.g. 10s, 1m; 0 = no timeout)',
      global: true,
    })
    .option('color', { type: 'boolean', default: true, description: 'Colour output (--no-color disables)', global: true })
    .option('debug', { type: 'boolean', default: false, description: 'Print stack traces and API details on errors', global: true }) as unknown as Argv<
    T & GlobalOptions
  >;
}

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses kubectl-style durations: "30s", "1m30s", "500ms", "7d", or a bare number of seconds. 0 means none. */
export function parseDuration(text: string, flag: string): number {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const parts = [...trimmed.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== trimmed) {
    throw new UsageError(`invalid duration for ${flag}: "${text}"`, 'use a number with a unit, e.g. 30s, 2m, 1h30m');
  }
  return parts.reduce((total, [, amount, unit]) => total + Number(amount) * DURATION_UNITS_MS[unit!]!, 0);
}
