/**
 * The completion sources that need the Kubernetes client library: loaded by sources.ts only when a
 * value from the cluster or the kubeconfig is wanted. Named imports, so the bundle keeps only what is
 * used of the library.
 */
import { KubeConfig, StorageV1Api } from '@kubernetes/client-node';
import type { KubeClient } from '../../kube/client.ts';
import { chooseCredentialSource, mergeKubeconfigs, systemCredentialEnvironment } from '../../kube/config.ts';
import type { Candidate, KubeconfigEntry } from './engine.ts';

/** The credential sources that are kubeconfig files (not the ServiceAccount, not flags alone). */
const KUBECONFIG_SOURCES = new Set<string>(['kubeconfig-flag', 'remote-kubeconfig', 'kubeconfig-env', 'kubeconfig-home']);

export async function storageClasses(kube: KubeClient): Promise<Candidate[]> {
  const api = kube.credentials.kubeConfig.makeApiClient(StorageV1Api);
  const list = await kube.call({ verb: 'list', resource: 'storageclasses' }, () => api.listStorageClass());
  return list.items
    .map((sc) => ({
      value: sc.metadata?.name ?? '',
      description: `${sc.provisioner}${sc.metadata?.annotations?.['storageclass.kubernetes.io/is-default-class'] === 'true' ? ' (default)' : ''}`,
    }))
    .filter((candidate) => candidate.value);
}

/** The contexts, clusters or users of the kubeconfig the commands would read (--kubeconfig, $KUBECONFIG, ...). */
export function kubeconfigEntries(kubeconfigFlag: string | undefined, entry: KubeconfigEntry): Candidate[] {
  const { chosen } = chooseCredentialSource({ kubeconfig: kubeconfigFlag }, systemCredentialEnvironment());
  if (!chosen || !KUBECONFIG_SOURCES.has(chosen.source)) return [];
  const configs = chosen.paths.map((file) => {
    const config = new KubeConfig();
    config.loadFromFile(file);
    return config;
  });
  const merged = configs.length === 1 ? configs[0]! : mergeKubeconfigs(configs);
  if (entry === 'cluster') return merged.getClusters().map((cluster) => ({ value: cluster.name, description: cluster.server }));
  if (entry === 'user') return merged.getUsers().map((user) => ({ value: user.name }));
  const current = merged.getCurrentContext();
  return merged.getContexts().map((context) => ({
    value: context.name,
    description: [`cluster ${context.cluster}`, context.namespace ? `namespace ${context.namespace}` : null, context.name === current ? 'current' : null]
      .filter(Boolean)
      .join(', '),
  }));
}
