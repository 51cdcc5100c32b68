import type { Argv, CommandModule } from 'yargs';
import { discoverClaims, type DiscoveredClaim } from '../../backup/discovery.ts';
import { connectFromFlags } from '../context.ts';
import { shortAccessModes } from '../format.ts';
import type { GlobalOptions } from '../global-options.ts';
import { asList, OUTPUT_FORMATS, renderTable, toJson, toYaml, writeResult, type OutputFormat } from '../output.ts';
import { listing } from './index.ts';

interface DiscoverArgs extends GlobalOptions {
  allNamespaces: boolean;
  selector: string | undefined;
  output: OutputFormat;
}

function usedBy(claim: DiscoveredClaim): string {
  return claim.pods.map((pod) => `${pod.name}${pod.node ? `@${pod.node}` : ''}`).join(',') || '<none>';
}

export function renderClaims(claims: DiscoveredClaim[], format: OutputFormat, showNamespace: boolean): string {
  switch (format) {
    case 'json':
      return toJson(asList(claims));
    case 'yaml':
      return toYaml(asList(claims));
    case 'name':
      return claims.map((claim) => `${claim.namespace}/${claim.name}\n`).join('');
    case 'table':
    case 'wide': {
      const wide = format === 'wide';
      const headers = [
        ...(showNamespace ? ['namespace'] : []),
        'name', 'status', 'capacity', 'access modes', 'storageclass', 'volume',
        ...(wide ? ['volume mode', 'pods', 'nodes'] : ['used by']),
      ];
      const rows = claims.map((claim) => [
        ...(showNamespace ? [claim.namespace] : []),
        claim.name,
        claim.phase,
        claim.capacity ?? '-',
        shortAccessModes(claim.accessModes),
        claim.storageClass ?? '<none>',
        claim.volume ?? '<none>',
        ...(wide
          ? [claim.volumeMode, claim.pods.map((p) => `${p.name}(${p.phase})`).join(',') || '<none>', [...new Set(claim.pods.map((p) => p.node).filter(Boolean))].join(',') || '<none>']
          : [usedBy(claim)]),
      ]);
      return renderTable(headers, rows);
    }
  }
}

export const discoverCommand: CommandModule<GlobalOptions, DiscoverArgs> = {
  ...listing('discover'),
  builder: (argv) =>
    argv
      .option('all-namespaces', { alias: 'A', type: 'boolean', default: false, description: 'List claims in every namespace' })
      .option('selector', { alias: 'l', type: 'string', description: 'Only claims with these labels (e.g. app=db,tier!=cache)' })
      .option('output', { alias: 'o', choices: OUTPUT_FORMATS, default: 'table' as OutputFormat, description: 'Output format' })
      .example('kubectl nkvm discover', 'Claims in the current namespace')
      .example('kubectl nkvm discover -A -o wide', 'Every claim in the cluster, with volume mode and nodes')
      .example('kubectl nkvm discover -n shop -l app=db -o json | jq ".items[].name"', 'For scripts') as unknown as Argv<DiscoverArgs>,
  handler: async (args) => {
    const client = await connectFromFlags(args);
    const claims = await discoverClaims(client, { namespace: client.namespace, allNamespaces: args.allNamespaces, labelSelector: args.selector });
    if (claims.length === 0 && (args.output === 'table' || args.output === 'wide')) {
      process.stderr.write(args.allNamespaces ? 'No PersistentVolumeClaims found.\n' : `No PersistentVolumeClaims found in namespace ${client.namespace}.\n`);
      return;
    }
    writeResult(renderClaims(claims, args.output, args.allNamespaces));
  },
};
