import chalk from 'chalk';
import type { Argv, CommandModule } from 'yargs';
import type { VersionInfo } from '@kubernetes/client-node';
import { discoverClaim, type DiscoveredClaim } from '../../backup/discovery.ts';
import { pinnedNodeFor } from '../../backup/helper-pod.ts';
import { ExitCode, isNkvmError } from '../../errors.ts';
import { checkAccess, grantHint, resourceName, type AccessCheck } from '../../kube/access.ts';
import { credentialSourceDescriptions, type ResolvedCredentials } from '../../kube/config.ts';
import { connectFromFlags } from '../context.ts';
import { shortAccessModes } from '../format.ts';
import type { GlobalOptions } from '../global-options.ts';
import { renderTable, toJson, toYaml, writeResult } from '../output.ts';

interface DiagnoseArgs extends GlobalOptions {
  pvc: string | undefined;
  output: 'text' | 'json' | 'yaml';
}

export interface DiagnoseReport {
  credentials: Omit<ResolvedCredentials, 'kubeConfig'>;
  serverVersion: VersionInfo | null;
  error: { code: string; message: string; hint: string | null } | null;
  access: AccessCheck[];
  claim: (DiscoveredClaim & { helperPinnedTo: string | null }) | null;
}

function renderText(report: DiagnoseReport): string {
  const c = report.credentials;
  const lines = [
    `Credentials:  ${credentialSourceDescriptions[c.source]} (${c.paths.join(', ')})`,
    `Context:      ${c.context}`,
    `Cluster:      ${c.cluster} (${c.server})`,
    `User:         ${c.user}`,
    `Namespace:    ${c.namespace}`,
    `Skipped:      ${c.skipped.map((s) => `${credentialSourceDescriptions[s.source]} (${s.reason})`).join('; ') || '-'}`,
    `Server:       ${report.serverVersion ? report.serverVersion.gitVersion : chalk.red('unreachable')}`,
  ];
  if (report.error) {
    lines.push('', `${chalk.red('error:')} ${report.error.message}`, ...(report.error.hint ? [`${chalk.dim('hint:')} ${report.error.hint}`] : []));
  }
  if (report.access.length) {
    lines.push('', `Access (namespace ${c.namespace}):`);
    const table = renderTable(
      ['verb', 'resource', 'allowed', 'needed for'],
      report.access.map((check) => [
        check.verb,
        resourceName(check),
        check.allowed ? chalk.green('yes') : check.required ? chalk.red('no') : chalk.yellow('no'),
        check.neededFor,
      ]),
    );
    lines.push(...table.trimEnd().split('\n').map((line) => `  ${line}`));
    const denied = report.access.filter((check) => !check.allowed && check.required);
    if (denied.length) {
      lines.push('', 'To grant what is missing:');
      lines.push(...denied.map((check) => `  ${grantHint(check)}`));
    }
  }
  if (report.claim) {
    const claim = report.claim;
    lines.push(
      '',
      `Claim ${claim.namespace}/${claim.name}:`,
      `  Phase:        ${claim.phase}`,
      `  Capacity:     ${claim.capacity ?? '-'}`,
      `  Access modes: ${shortAccessModes(claim.accessModes)}`,
      `  Volume:       ${claim.volume ?? '<none>'} (${claim.volumeMode})`,
      `  Used by:      ${claim.pods.map((p) => `${p.name} (${p.phase}${p.node ? ` on ${p.node}` : ''})`).join(', ') || '<none>'}`,
      `  Helper pod:   ${claim.helperPinnedTo ? `pinned to node ${claim.helperPinnedTo} (ReadWriteOnce, in use there)` : 'scheduled freely'}`,
    );
    if (claim.phase !== 'Bound') lines.push(`  ${chalk.red('cannot be backed up:')} the claim is ${claim.phase}, not Bound`);
  }
  return `${lines.join('\n')}\n`;
}

export const diagnoseCommand: CommandModule<GlobalOptions, DiagnoseArgs> = {
  command: 'diagnose [pvc]',
  describe: 'Show which credentials are used and from where, the server version, and whether every permission the plugin needs is granted',
  builder: (argv) =>
    argv
      .positional('pvc', { type: 'string', description: 'Also check this claim: phase, users, where a helper would run' })
      .option('output', { alias: 'o', choices: ['text', 'json', 'yaml'] as const, default: 'text' as const, description: 'Output format' })
      .example('kubectl nkvm diagnose', 'Credentials, server and permissions in the current namespace')
      .example('kubectl nkvm diagnose data -n shop', '... and claim "data" in namespace shop') as unknown as Argv<DiagnoseArgs>,
  handler: async (args) => {
    const client = connectFromFlags(args);
    const { kubeConfig: _kubeConfig, ...credentials } = client.credentials;
    const report: DiagnoseReport = { credentials, serverVersion: null, error: null, access: [], claim: null };
    let exitCode: number = ExitCode.ok;
    try {
      report.serverVersion = await client.serverVersion();
      report.access = await checkAccess(client, client.namespace);
      if (report.access.some((check) => check.required && !check.allowed)) exitCode = ExitCode.permission;
      if (args.pvc) {
        const claim = await discoverClaim(client, client.namespace, args.pvc);
        report.claim = { ...claim, helperPinnedTo: pinnedNodeFor(claim) ?? null };
      }
    } catch (error) {
      if (!isNkvmError(error)) throw error;
      report.error = { code: error.code, message: error.message, hint: error.hint ?? null };
      exitCode = error.exitCode;
    }
    if (args.output === 'json') writeResult(toJson(report));
    else if (args.output === 'yaml') writeResult(toYaml(report));
    else writeResult(renderText(report));
    process.exitCode = exitCode;
  },
};
