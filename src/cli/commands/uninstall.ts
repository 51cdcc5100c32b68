/**
 * `kubectl nkvm uninstall`: removes what `install` created, found by the install's label, and nothing
 * else; the store claim (the catalog and every artifact) stays unless --purge.
 */
import type { Argv, CommandModule } from 'yargs';
import { DEFAULT_INSTALL_NAMESPACE, INSTALL_LABEL, INSTALL_NAMESPACE_LABEL, MANAGED_BY } from '../../install/manifests.ts';
import { connectFromFlags } from '../context.ts';
import type { GlobalOptions } from '../global-options.ts';
import { writeInfo, writeResult } from '../output.ts';
import { listing } from './index.ts';

interface UninstallArgs extends GlobalOptions {
  name: string;
  purge: boolean;
}

/** What install makes, in the order it is removed: the schedule first, the store last. */
const KINDS = [
  ['batch/v1', 'CronJob'],
  ['batch/v1', 'Job'],
  ['v1', 'ServiceAccount'],
  ['rbac.authorization.k8s.io/v1', 'RoleBinding'],
  ['rbac.authorization.k8s.io/v1', 'Role'],
  ['rbac.authorization.k8s.io/v1', 'ClusterRoleBinding'],
  ['rbac.authorization.k8s.io/v1', 'ClusterRole'],
] as const;

export const uninstallCommand: CommandModule<GlobalOptions, UninstallArgs> = {
  ...listing('uninstall'),
  builder: (argv) =>
    argv
      .option('name', { type: 'string', default: 'nkvm', description: 'The name given to install' })
      .option('purge', { type: 'boolean', default: false, description: 'Also delete the store claim: the in-cluster catalog and every artifact in it' })
      .example('kubectl nkvm uninstall', 'Remove the install in nkvm-system, keeping its backups')
      .example('kubectl nkvm uninstall -n backups --purge', 'Remove everything, the backups too') as unknown as Argv<UninstallArgs>,
  handler: async (args) => {
    const client = await connectFromFlags(args);
    const namespace = args.namespace ?? DEFAULT_INSTALL_NAMESPACE;
    const selector = `${INSTALL_LABEL}=${args.name},${INSTALL_NAMESPACE_LABEL}=${namespace},app.kubernetes.io/managed-by=${MANAGED_BY['app.kubernetes.io/managed-by']}`;
    const kinds = args.purge ? [...KINDS, ['v1', 'PersistentVolumeClaim'] as const] : KINDS;
    const removed: string[] = [];
    for (const [apiVersion, kind] of kinds) {
      for (const object of await client.listLabelled(apiVersion, kind, selector)) {
        if (await client.remove(object)) removed.push(`${kind.toLowerCase()}/${object.metadata?.name}${object.metadata?.namespace ? ` -n ${object.metadata.namespace}` : ''} deleted`);
      }
    }
    if (removed.length === 0) {
      writeInfo(`No install named ${args.name} found (label ${INSTALL_LABEL}=${args.name}).`);
      return;
    }
    writeResult(`${removed.join('\n')}\n`);
    if (!args.purge) writeInfo(`Kept the store claim in ${namespace} (the in-cluster catalog and artifacts); --purge deletes it.`);
  },
};
