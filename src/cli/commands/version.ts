import type { CommandModule } from 'yargs';
import type { VersionInfo } from '@kubernetes/client-node';
import { pluginVersion } from '../../version.ts';
import { connectFromFlags } from '../context.ts';
import type { GlobalOptions } from '../global-options.ts';
import { clientVersionLine } from '../fast-paths.ts';
import { toJson, toYaml, writeResult } from '../output.ts';
import { listing } from './index.ts';

interface VersionArgs extends GlobalOptions {
  client: boolean;
  output: 'text' | 'json' | 'yaml';
}

export interface VersionReport {
  clientVersion: { pluginVersion: string; nodeVersion: string; platform: string };
  serverVersion?: VersionInfo;
  credentials?: { source: string; context: string; server: string };
}

export const versionCommand: CommandModule<GlobalOptions, VersionArgs> = {
  ...listing('version'),
  builder: (argv) =>
    argv
      .option('client', { type: 'boolean', default: false, description: 'Only print the client version; do not contact the cluster' })
      .option('output', { alias: 'o', choices: ['text', 'json', 'yaml'] as const, default: 'text' as const, description: 'Output format' })
      .example('kubectl nkvm version', 'Plugin and server versions')
      .example('kubectl nkvm version --client -o json', 'Only the plugin, as JSON'),
  handler: async (args) => {
    const report: VersionReport = {
      clientVersion: { pluginVersion, nodeVersion: process.version, platform: `${process.platform}/${process.arch}` },
    };
    if (!args.client) {
      const client = await connectFromFlags(args);
      report.serverVersion = await client.serverVersion();
      report.credentials = { source: client.credentials.source, context: client.credentials.context, server: client.credentials.server };
    }
    if (args.output === 'json') return writeResult(toJson(report));
    if (args.output === 'yaml') return writeResult(toYaml(report));
    const lines = [clientVersionLine()];
    if (report.serverVersion) lines.push(`Server Version: ${report.serverVersion.gitVersion} (${report.credentials!.server})`);
    writeResult(`${lines.join('\n')}\n`);
  },
};
