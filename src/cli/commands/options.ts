/** `kubectl nkvm options`: the flags every command takes, as `kubectl options` lists kubectl's. */
import type { CommandModule } from 'yargs';
import { CONNECTION_FLAGS, type GlobalOptions } from '../global-options.ts';
import { writeResult } from '../output.ts';
import { listing } from './index.ts';

const SHOWN_IN_HELP = [
  ['--kubeconfig', 'Path to the kubeconfig file to use'],
  ['--context', 'The name of the kubeconfig context to use'],
  ['-n, --namespace', 'The namespace scope for this request'],
  ['--request-timeout', 'How long to wait for a single API request (e.g. 10s, 1m; 0 = no timeout; default 30s)'],
  ['--no-color', 'No colour in the output (also NO_COLOR)'],
  ['--debug', 'Print stack traces and API details on errors'],
] as const;

export function renderOptions(): string {
  const connection = Object.entries(CONNECTION_FLAGS).map(([name, option]) => [
    'alias' in option ? `-${option.alias}, --${name}` : `--${name}`,
    option.description,
  ]);
  const lines = ['The following options can be passed to any command:', ''];
  for (const [flag, description] of [...SHOWN_IN_HELP, ...connection].sort((a, b) => a[0]!.replace(/^-\w, /, '').localeCompare(b[0]!.replace(/^-\w, /, '')))) {
    lines.push(`    ${flag}:`, `        ${description}`, '');
  }
  return `${lines.join('\n').trimEnd()}\n`;
}

export const optionsCommand: CommandModule<GlobalOptions, GlobalOptions> = {
  ...listing('options'),
  handler: () => writeResult(renderOptions()),
};
