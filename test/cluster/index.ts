/**
 * Hands a test a fresh single-node cluster from the chosen provider:
 * NKVM_CLUSTER_PROVIDER=local|kind, by default kind where `docker info` and `kind` work, else local.
 */
import { kindAvailable, startKindCluster } from './kind.ts';
import { startLocalCluster } from './local.ts';
import type { TestCluster } from './types.ts';

export type { TestCluster } from './types.ts';
export type ProviderName = 'local' | 'kind';

export async function chooseProvider(env: Record<string, string | undefined> = process.env): Promise<ProviderName> {
  const requested = env.NKVM_CLUSTER_PROVIDER;
  if (requested === 'local' || requested === 'kind') return requested;
  if (requested) throw new Error(`NKVM_CLUSTER_PROVIDER must be "local" or "kind", not "${requested}"`);
  return (await kindAvailable()) ? 'kind' : 'local';
}

export async function createCluster(provider?: ProviderName): Promise<TestCluster> {
  const chosen = provider ?? (await chooseProvider());
  return chosen === 'kind' ? startKindCluster() : startLocalCluster();
}
