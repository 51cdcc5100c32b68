/**
 * Completion's real sources: the cluster (as the connection flags on the line and the kubeconfig
 * choose it, with a short request timeout), the kubeconfig's contexts, clusters and users, and the
 * local catalog, read only if it exists (completion never creates one). The Kubernetes client and the
 * catalog's SQLite are loaded only by the source that needs them, so that completing a command or a
 * flag name starts as fast as the plugin can.
 */
import fs from 'node:fs';
import { claimsWithPods, listClaims } from '../../backup/discovery.ts';
import type { KubeClient } from '../../kube/client.ts';
import type { Catalog } from '../../store/catalog.ts';
import { connectFromFlags } from '../context.ts';
import type { GlobalOptions } from '../global-options.ts';
import { catalogPath } from '../store-options.ts';
import { DEFAULT_SOURCE_TIMEOUT_MS, type Candidate, type CatalogQuery, type CompletionSources, type ConnectionFlags } from './engine.ts';

/** How many backups are offered: the newest. */
export const BACKUP_CANDIDATES = 100;

/** Connects as the commands do, from the flags on the line; without --request-timeout there, with completion's short one. */
async function client(connection: ConnectionFlags, requestTimeoutMs: number): Promise<KubeClient> {
  const requestTimeout = typeof connection.requestTimeout === 'string' ? connection.requestTimeout : `${requestTimeoutMs}ms`;
  return await connectFromFlags({ ...connection, requestTimeout, color: false, debug: false } as unknown as GlobalOptions);
}

async function openCatalog(query: CatalogQuery): Promise<Catalog | undefined> {
  const file = catalogPath({ catalog: query.catalog, outputDir: undefined });
  if (!fs.existsSync(file)) return undefined;
  const { Catalog } = await import('../../store/catalog.ts');
  return Catalog.open(file, { lockTimeoutMs: 500 });
}

export function clusterSources(requestTimeoutMs: number = DEFAULT_SOURCE_TIMEOUT_MS): CompletionSources {
  return {
    async namespaces(connection) {
      const kube = await client(connection, requestTimeoutMs);
      const list = await kube.call({ verb: 'list', resource: 'namespaces' }, () => kube.core.listNamespace());
      return list.items.map((namespace) => ({ value: namespace.metadata?.name ?? '' })).filter((c) => c.value);
    },

    async claims(connection) {
      const kube = await client(connection, requestTimeoutMs);
      // No pods: completion wants names, fast; discovery's projection gives phase, size and class.
      return claimsWithPods(await listClaims(kube, kube.namespace), []).map((claim) => ({
        value: claim.name,
        description: [claim.phase, claim.capacity, claim.storageClass, claim.volumeMode === 'Block' ? 'Block' : null].filter(Boolean).join(', '),
      }));
    },

    async storageClasses(connection) {
      const kube = await client(connection, requestTimeoutMs);
      const { storageClasses } = await import('./kube-sources.ts');
      return storageClasses(kube);
    },

    async kubeconfig(connection, entry) {
      const { kubeconfigEntries } = await import('./kube-sources.ts');
      return kubeconfigEntries(typeof connection.kubeconfig === 'string' ? connection.kubeconfig : undefined, entry);
    },

    async backups(query) {
      const catalog = await openCatalog(query);
      if (!catalog) return [];
      const records = await catalog.listBackups({ limit: BACKUP_CANDIDATES, ...(query.status ? { status: query.status } : {}) });
      return records.map((record) => ({
        value: record.id,
        description: `${record.namespace}/${record.pvc}, ${record.status}, ${record.startedAt.replace(/\.\d{3}Z$/, 'Z')}`,
      }));
    },

    async catalogClaims(query) {
      const catalog = await openCatalog(query);
      if (!catalog) return [];
      const records = await catalog.listBackups({ limit: 1000, ...(query.namespace ? { namespace: query.namespace } : {}) });
      const claims = new Map<string, Candidate>();
      for (const record of records) {
        if (!claims.has(record.pvc)) claims.set(record.pvc, { value: record.pvc, description: `in ${record.namespace}` });
      }
      return [...claims.values()];
    },
  };
}
