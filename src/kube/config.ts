/**
 * Where the plugin's credentials come from, in a fixed order:
 *   1. --kubeconfig FILE (with --context)
 *   2. a remote cluster's kubeconfig mounted from a Secret (/etc/nkvm/remote/config, or $NKVM_REMOTE_KUBECONFIG)
 *   3. $KUBECONFIG (a merged list, kubectl's rules) or ~/.kube/config
 *   4. the in-cluster ServiceAccount (token, ca.crt, namespace; $NKVM_SERVICEACCOUNT_DIR overrides the dir)
 * A source that is absent is skipped; a source that is present but broken is an error, never a
 * silent fall-through. client-node's own loadFromDefault() would end at http://localhost:8080; we never do.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig, type Cluster, type Context, type User } from '@kubernetes/client-node';
import { KubernetesAuthenticationError } from '../errors.ts';

export const DEFAULT_REMOTE_KUBECONFIG = '/etc/nkvm/remote/config';
export const DEFAULT_SERVICEACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export type CredentialSource = 'kubeconfig-flag' | 'remote-kubeconfig' | 'kubeconfig-env' | 'kubeconfig-home' | 'in-cluster';

export interface CredentialRequest {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  namespace?: string | undefined;
}

/** What the environment offers, separated from the file system so the order is unit-testable. */
export interface CredentialEnvironment {
  env: Record<string, string | undefined>;
  homeDir: string;
  fileExists(file: string): boolean;
}

export interface CredentialCandidate {
  source: CredentialSource;
  /** Files (kubeconfigs) or the ServiceAccount directory this source reads. */
  paths: string[];
}

export interface SkippedSource {
  source: CredentialSource;
  reason: string;
}

export interface ResolvedCredentials {
  kubeConfig: KubeConfig;
  source: CredentialSource;
  paths: string[];
  context: string;
  cluster: string;
  server: string;
  user: string;
  namespace: string;
  skipped: SkippedSource[];
}

export const credentialSourceDescriptions: Record<CredentialSource, string> = {
  'kubeconfig-flag': '--kubeconfig',
  'remote-kubeconfig': 'remote kubeconfig mount',
  'kubeconfig-env': 'KUBECONFIG',
  'kubeconfig-home': '~/.kube/config',
  'in-cluster': 'in-cluster ServiceAccount',
};

export function systemCredentialEnvironment(): CredentialEnvironment {
  return { env: process.env, homeDir: os.homedir(), fileExists: (file) => fs.existsSync(file) };
}

/**
 * Picks the first source that is present. Returns it and what was skipped on the way (for the
 * error that names everything tried, and for `diagnose`).
 */
export function chooseCredentialSource(
  request: CredentialRequest,
  environment: CredentialEnvironment,
): { chosen: CredentialCandidate | undefined; skipped: SkippedSource[] } {
  const { env, homeDir, fileExists } = environment;
  const skipped: SkippedSource[] = [];

  if (request.kubeconfig) {
    return { chosen: { source: 'kubeconfig-flag', paths: [request.kubeconfig] }, skipped };
  }
  skipped.push({ source: 'kubeconfig-flag', reason: 'not given' });

  const remote = env.NKVM_REMOTE_KUBECONFIG || DEFAULT_REMOTE_KUBECONFIG;
  if (fileExists(remote)) return { chosen: { source: 'remote-kubeconfig', paths: [remote] }, skipped };
  skipped.push({ source: 'remote-kubeconfig', reason: `${remote} not found` });

  if (env.KUBECONFIG) {
    const listed = env.KUBECONFIG.split(path.delimiter).filter(Boolean);
    const existing = listed.filter((file) => fileExists(file));
    if (existing.length > 0) return { chosen: { source: 'kubeconfig-env', paths: existing }, skipped };
    skipped.push({ source: 'kubeconfig-env', reason: `none of ${listed.join(path.delimiter)} exists` });
  } else {
    skipped.push({ source: 'kubeconfig-env', reason: 'unset' });
    const home = path.join(homeDir, '.kube', 'config');
    if (fileExists(home)) return { chosen: { source: 'kubeconfig-home', paths: [home] }, skipped };
    skipped.push({ source: 'kubeconfig-home', reason: `${home} not found` });
  }

  const saDir = env.NKVM_SERVICEACCOUNT_DIR || DEFAULT_SERVICEACCOUNT_DIR;
  const tokenFile = path.join(saDir, 'token');
  if (!fileExists(tokenFile)) {
    skipped.push({ source: 'in-cluster', reason: `${tokenFile} not found` });
  } else if (!env.KUBERNETES_SERVICE_HOST || !env.KUBERNETES_SERVICE_PORT) {
    skipped.push({ source: 'in-cluster', reason: 'KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT unset' });
  } else {
    return { chosen: { source: 'in-cluster', paths: [saDir] }, skipped };
  }
  return { chosen: undefined, skipped };
}

/**
 * Merges kubeconfig files the way kubectl does: the first file to define a name (or the current
 * context) wins, and later duplicates are ignored rather than fatal.
 */
export function mergeKubeconfigs(configs: KubeConfig[]): KubeConfig {
  const clusters = new Map<string, Cluster>();
  const users = new Map<string, User>();
  const contexts = new Map<string, Context>();
  let currentContext = '';
  for (const config of configs) {
    for (const cluster of config.clusters) if (!clusters.has(cluster.name)) clusters.set(cluster.name, cluster);
    for (const user of config.users) if (!users.has(user.name)) users.set(user.name, user);
    for (const context of config.contexts) if (!contexts.has(context.name)) contexts.set(context.name, context);
    if (!currentContext && config.currentContext) currentContext = config.currentContext;
  }
  const merged = new KubeConfig();
  merged.loadFromOptions({
    clusters: [...clusters.values()],
    users: [...users.values()],
    contexts: [...contexts.values()],
    currentContext,
  });
  return merged;
}

function loadKubeconfigFiles(candidate: CredentialCandidate): KubeConfig {
  const configs = candidate.paths.map((file) => {
    const config = new KubeConfig();
    try {
      config.loadFromFile(file);
    } catch (error) {
      throw new KubernetesAuthenticationError(
        `cannot read kubeconfig ${file} (${credentialSourceDescriptions[candidate.source]}): ${(error as Error).message}`,
        { hint: 'check that the file exists and is a valid kubeconfig (`kubectl config view --kubeconfig FILE`)', cause: error },
      );
    }
    return config;
  });
  return configs.length === 1 ? configs[0]! : mergeKubeconfigs(configs);
}

function loadServiceAccount(saDir: string, env: Record<string, string | undefined>): KubeConfig {
  const caFile = path.join(saDir, 'ca.crt');
  if (!fs.existsSync(caFile)) {
    throw new KubernetesAuthenticationError(`in-cluster ServiceAccount ${saDir} has a token but no ca.crt`);
  }
  const host = env.KUBERNETES_SERVICE_HOST!;
  const server = `https://${host.includes(':') ? `[${host}]` : host}:${env.KUBERNETES_SERVICE_PORT}`;
  const namespaceFile = path.join(saDir, 'namespace');
  const namespace = fs.existsSync(namespaceFile) ? fs.readFileSync(namespaceFile, 'utf8').trim() : undefined;
  const config = new KubeConfig();
  config.loadFromOptions({
    clusters: [{ name: 'in-cluster', server, caFile, skipTLSVerify: false }],
    // The tokenFile provider re-reads the projected token, which the kubelet rotates.
    users: [{ name: 'serviceaccount', authProvider: { name: 'tokenFile', config: { tokenFile: path.join(saDir, 'token') } } }],
    contexts: [{ name: 'in-cluster', cluster: 'in-cluster', user: 'serviceaccount', ...(namespace ? { namespace } : {}) }],
    currentContext: 'in-cluster',
  });
  return config;
}

export function resolveCredentials(
  request: CredentialRequest,
  environment: CredentialEnvironment = systemCredentialEnvironment(),
): ResolvedCredentials {
  const { chosen, skipped } = chooseCredentialSource(request, environment);
  if (!chosen) {
    const tried = skipped.map((s) => `${credentialSourceDescriptions[s.source]} (${s.reason})`).join('; ');
    throw new KubernetesAuthenticationError(`no credentials found. Tried: ${tried}`, {
      hint: 'pass --kubeconfig FILE, set KUBECONFIG, or run inside a cluster with a ServiceAccount',
    });
  }
  const from = `${credentialSourceDescriptions[chosen.source]} ${chosen.paths.join(path.delimiter)}`;
  const kubeConfig =
    chosen.source === 'in-cluster' ? loadServiceAccount(chosen.paths[0]!, environment.env) : loadKubeconfigFiles(chosen);

  if (request.context) {
    if (!kubeConfig.getContextObject(request.context)) {
      const known = kubeConfig.getContexts().map((c) => c.name);
      throw new KubernetesAuthenticationError(`context "${request.context}" not found in ${from}`, {
        hint: known.length ? `known contexts: ${known.join(', ')}` : 'that source defines no contexts',
      });
    }
    kubeConfig.setCurrentContext(request.context);
  }
  const contextName = kubeConfig.getCurrentContext();
  const context = contextName ? kubeConfig.getContextObject(contextName) : null;
  if (!context) {
    throw new KubernetesAuthenticationError(`no current context in ${from}`, {
      hint: 'pass --context NAME or run `kubectl config use-context NAME`',
    });
  }
  const cluster = kubeConfig.getCluster(context.cluster);
  if (!cluster?.server) {
    throw new KubernetesAuthenticationError(`context "${contextName}" in ${from} names no cluster with a server`);
  }
  return {
    kubeConfig,
    source: chosen.source,
    paths: chosen.paths,
    context: contextName,
    cluster: cluster.name,
    server: cluster.server,
    user: context.user,
    namespace: request.namespace || context.namespace || 'default',
    skipped,
  };
}
