import chalk from 'chalk';
import type { Argv, CommandModule } from 'yargs';
import type { VersionInfo } from '@kubernetes/client-node';
import { discoverClaim, PersistentVolumes, type DiscoveredClaim } from '../../backup/discovery.ts';
import { placementFor, PlacementError, startHelperPod } from '../../backup/helper-pod.ts';
import { describeIdentity } from '../../backup/helper-identity.ts';
import { chooseSnapshotSource } from '../../backup/snapshot-choice.ts';
import type { KubeClient } from '../../kube/client.ts';
import { helperOptionsFromFlags, withHelperOptions, type HelperFlags } from '../helper-options.ts';
import { ExitCode, isNkvmError } from '../../errors.ts';
import { checkAccess, grantHint, resourceName, type AccessCheck } from '../../kube/access.ts';
import type { CredentialSource, ResolvedCredentials } from '../../kube/config.ts';
import { connectFromFlags } from '../context.ts';
import { shortAccessModes } from '../format.ts';
import type { GlobalOptions } from '../global-options.ts';
import { renderTable, toJson, toYaml, writeResult } from '../output.ts';
import { listing } from './index.ts';

interface DiagnoseArgs extends GlobalOptions, HelperFlags {
  pvc: string | undefined;
  output: 'text' | 'json' | 'yaml';
}

export interface DiagnoseReport {
  credentials: Omit<ResolvedCredentials, 'kubeConfig'>;
  serverVersion: VersionInfo | null;
  /** Who the API server says we are (SelfSubjectReview): after impersonation, the impersonated identity. */
  identity: { username: string | null; uid: string | null; groups: string[]; impersonated: boolean } | null;
  error: { code: string; message: string; hint: string | null } | null;
  access: AccessCheck[];
  /** The namespace's pod-security.kubernetes.io labels; null when it cannot be read. */
  podSecurity: { enforce: string | null; warn: string | null; audit: string | null; error: string | null } | null;
  /** Whether the helper pod would be admitted, and as whom: a server-side dry-run create. */
  helperAdmission: { admitted: boolean; runAs: string | null; message: string } | null;
  claim: (DiscoveredClaim & { helperPlacement: string; source: string }) | null;
}

const POD_SECURITY_LABEL = 'pod-security.kubernetes.io';

async function identityOf(client: KubeClient): Promise<DiagnoseReport['identity']> {
  try {
    const user = await client.whoAmI();
    return { username: user.username ?? null, uid: user.uid ?? null, groups: user.groups ?? [], impersonated: Boolean(client.credentials.impersonate) };
  } catch (error) {
    // Older servers (before 1.28) have no SelfSubjectReview; the rest of the report still helps.
    if (isNkvmError(error) && error.code !== 'KubernetesAuthenticationError') return null;
    throw error;
  }
}

async function podSecurityOf(client: KubeClient, namespace: string): Promise<NonNullable<DiagnoseReport['podSecurity']>> {
  try {
    const ns = await client.call({ verb: 'get', resource: 'namespaces', name: namespace }, () => client.core.readNamespace({ name: namespace }));
    const labels = ns.metadata?.labels ?? {};
    return { enforce: labels[`${POD_SECURITY_LABEL}/enforce`] ?? null, warn: labels[`${POD_SECURITY_LABEL}/warn`] ?? null, audit: labels[`${POD_SECURITY_LABEL}/audit`] ?? null, error: null };
  } catch (error) {
    if (!isNkvmError(error)) throw error;
    return { enforce: null, warn: null, audit: null, error: error.message };
  }
}

/** The helper for `claim` (or a stand-in claim) created with dryRun=All: admission answers exactly. */
async function helperAdmission(client: KubeClient, args: DiagnoseArgs, claim: DiscoveredClaim | null): Promise<NonNullable<DiagnoseReport['helperAdmission']>> {
  const subject: DiscoveredClaim = claim ?? {
    namespace: client.namespace, name: 'nkvm-diagnose', phase: 'Bound', capacity: null, storageClass: null, accessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem', volume: null, pods: [],
  };
  try {
    const { helper } = helperOptionsFromFlags(args);
    const created = await startHelperPod(client, subject, { ...helper, runId: 'diagnose' }, 'backup', new Set(), { dryRun: true });
    const runAs = describeIdentity(created.identity);
    return { admitted: true, runAs, message: `a backup helper would be admitted, running as ${runAs} (server-side dry run)` };
  } catch (error) {
    if (!isNkvmError(error) && !(error instanceof PlacementError)) throw error;
    return { admitted: false, runAs: null, message: error.message };
  }
}

function renderText(report: DiagnoseReport, credentialSourceDescriptions: Record<CredentialSource, string>): string {
  const c = report.credentials;
  const lines = [
    `Credentials:  ${credentialSourceDescriptions[c.source]} (${c.paths.join(', ')})`,
    `Context:      ${c.context}`,
    `Cluster:      ${c.cluster} (${c.server})`,
    `User:         ${c.user}${report.identity ? ` (the server sees ${report.identity.username ?? '?'}${report.identity.impersonated ? ', impersonated' : ''}; groups ${report.identity.groups.join(', ') || '-'})` : ''}`,
    `Namespace:    ${c.namespace}`,
    `Skipped:      ${c.skipped.map((s) => `${credentialSourceDescriptions[s.source]} (${s.reason})`).join('; ') || '-'}`,
    `Server:       ${report.serverVersion ? report.serverVersion.gitVersion : chalk.red('unreachable')}`,
  ];
  if (report.error) {
    lines.push('', `${chalk.red('error:')} ${report.error.message}`, ...(report.error.hint ? [`${chalk.dim('hint:')} ${report.error.hint}`] : []));
  }
  if (report.podSecurity) {
    const ps = report.podSecurity;
    lines.push(
      '',
      `Pod Security: ${ps.error ? chalk.yellow(`unknown (${ps.error})`) : `enforce ${ps.enforce ?? '<unset: the cluster default>'}, warn ${ps.warn ?? '-'}, audit ${ps.audit ?? '-'}`}`,
    );
  }
  if (report.helperAdmission) {
    const admission = report.helperAdmission;
    lines.push(`Helper pod:   ${admission.admitted ? chalk.green('admitted') : chalk.red('refused')}: ${admission.message}`);
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
      `  Helper pod:   ${claim.helperPlacement}`,
      `  Backup reads: ${claim.source}`,
    );
    if (claim.phase !== 'Bound') lines.push(`  ${chalk.red('cannot be backed up:')} the claim is ${claim.phase}, not Bound`);
  }
  return `${lines.join('\n')}\n`;
}

export const diagnoseCommand: CommandModule<GlobalOptions, DiagnoseArgs> = {
  ...listing('diagnose'),
  builder: (argv) =>
    withHelperOptions(argv)
      .positional('pvc', { type: 'string', description: 'Also check this claim: phase, users, where a helper would run' })
      .option('output', { alias: 'o', choices: ['text', 'json', 'yaml'] as const, default: 'text' as const, description: 'Output format' })
      .example('kubectl nkvm diagnose', 'Credentials, server and permissions in the current namespace')
      .example('kubectl nkvm diagnose data -n shop', '... and claim "data" in namespace shop: where and as whom its helper would run') as unknown as Argv<DiagnoseArgs>,
  handler: async (args) => {
    const client = await connectFromFlags(args);
    const { kubeConfig: _kubeConfig, ...credentials } = client.credentials;
    const report: DiagnoseReport = { credentials, serverVersion: null, identity: null, error: null, access: [], podSecurity: null, helperAdmission: null, claim: null };
    let exitCode: number = ExitCode.ok;
    try {
      report.serverVersion = await client.serverVersion();
      report.identity = await identityOf(client);
      report.access = await checkAccess(client, client.namespace);
      if (report.access.some((check) => check.required && !check.allowed)) exitCode = ExitCode.permission;
      report.podSecurity = await podSecurityOf(client, client.namespace);
      const claim = args.pvc ? await discoverClaim(client, client.namespace, args.pvc) : null;
      if (claim) {
        let helperPlacement: string;
        try {
          helperPlacement = placementFor(claim).reason;
        } catch (error) {
          if (!(error instanceof PlacementError)) throw error;
          helperPlacement = `cannot run: ${error.message}`;
        }
        // What a backup with --snapshot auto would read, and why.
        const { SnapshotFactsReader } = await import('../../backup/volume-snapshot.ts');
        const choice = chooseSnapshotSource(await new SnapshotFactsReader(client, new PersistentVolumes(client)).read(claim), 'auto', undefined);
        report.claim = { ...claim, helperPlacement, source: choice.use ? `a VolumeSnapshot: ${choice.reason}` : `the live claim: ${choice.reason.replace(/^read live: /, '')}` };
      }
      if (report.access.some((check) => check.verb === 'create' && check.resource === 'pods' && !check.subresource && check.allowed)) {
        report.helperAdmission = await helperAdmission(client, args, claim);
        if (!report.helperAdmission.admitted && exitCode === ExitCode.ok) exitCode = ExitCode.admission;
      }
    } catch (error) {
      if (!isNkvmError(error)) throw error;
      report.error = { code: error.code, message: error.message, hint: error.hint ?? null };
      exitCode = error.exitCode;
    }
    if (args.output === 'json') writeResult(toJson(report));
    else if (args.output === 'yaml') writeResult(toYaml(report));
    else writeResult(renderText(report, (await import('../../kube/config.ts')).credentialSourceDescriptions));
    process.exitCode = exitCode;
  },
};
