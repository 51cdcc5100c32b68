/**
 * Where the plugin's credentials come from, in a fixed order:
 *   1. --kubeconfig FILE (with --context)
 *   2. a remote cluster's kubeconfig mounted from a Secret (/etc/nkvm/remote/config, or $NKVM_REMOTE_KUBECONFIG)
 *   3. $KUBECONFIG (a merged list, kubectl's rules) or ~/.kube/config
 *   4. the in-cluster ServiceAccount (token, ca.crt, namespace; $NKVM_SERVICEACCOUNT_DIR overrides the dir)
 * A source that is absent is skipped; a source that is present but broken is an error, never a
 * silent fall-through. client-node's own loadFromDefault() would end at http://localhost:8080; we never do.
 * kubectl's connection flags (--server, --token, --cluster, --user, --as, ...) then override what the
 * source says, as cli-runtime does; with --server and no kubeconfig at all, the flags alone are the source.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Cluster, Context, KubeConfig, User } from '@kubernetes/client-node';
import { KubernetesAuthenticationError } from '../errors.ts';
import { DispatcherKubeConfig } from './dispatcher-http.ts';
import { ImpersonatingKubeConfig, type Impersonation } from './impersonation.ts';

export const DEFAULT_REMOTE_KUBECONFIG = '/etc/nkvm/remote/config';
export const DEFAULT_SERVICEACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export type CredentialSource = 'kubeconfig-flag' | 'remote-kubeconfig' | 'kubeconfig-env' | 'kubeconfig-home' | 'in-cluster' | 'flags';

/** kubectl's connection flags: each one given replaces what the kubeconfig says. */
export interface ConnectionOverrides {
  cluster?: string | undefined;
  user?: string | undefined;
  server?: string | undefined;
  token?: string | undefined;
  certificateAuthority?: string | undefined;
  clientCertificate?: string | undefined;
  clientKey?: string | undefined;
  insecureSkipTlsVerify?: boolean | undefined;
  tlsServerName?: string | undefined;
  username?: string | undefined;
  password?: string | undefined;
  impersonate?: Impersonation | undefined;
}

export interface CredentialRequest {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  namespace?: string | undefined;
  overrides?: ConnectionOverrides | undefined;
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
  /** Who the requests impersonate (--as, --as-group, --as-uid), if anyone. */
  impersonate: Impersonation | undefined;
  skipped: SkippedSource[];
}

export const credentialSourceDescriptions: Record<CredentialSource, string> = {
  'kubeconfig-flag': '--kubeconfig',
  'remote-kubeconfig': 'remote kubeconfig mount',
  'kubeconfig-env': 'KUBECONFIG',
  'kubeconfig-home': '~/.kube/config',
  'in-cluster': 'in-cluster ServiceAccount',
  flags: 'command-line flags (--server)',
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

  // No kubeconfig, but --server: the connection flags alone describe the cluster, as with kubectl.
  if (request.overrides?.server) return { chosen: { source: 'flags', paths: [] }, skipped };

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
  const merged = new DispatcherKubeConfig();
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
    const config = new DispatcherKubeConfig();
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
  const config = new DispatcherKubeConfig();
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
  const from = `${credentialSourceDescriptions[chosen.source]} ${chosen.paths.join(path.delimiter)}`.trim();
  const loaded =
    chosen.source === 'flags' ? flagsOnlyConfig() : chosen.source === 'in-cluster' ? loadServiceAccount(chosen.paths[0]!, environment.env) : loadKubeconfigFiles(chosen);
  const kubeConfig = withOverrides(loaded, request, from);

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
    impersonate: request.overrides?.impersonate,
    skipped,
  };
}

/** An empty cluster and user for --server with no kubeconfig; the flags fill them in. */
function flagsOnlyConfig(): KubeConfig {
  const config = new DispatcherKubeConfig();
  config.loadFromOptions({
    clusters: [{ name: 'flags', server: '', skipTLSVerify: false }],
    users: [{ name: 'flags' }],
    contexts: [{ name: 'flags', cluster: 'flags', user: 'flags' }],
    currentContext: 'flags',
  });
  return config;
}

/**
 * The kubeconfig with the connection flags applied to its current context (after --context): --cluster
 * and --user pick other entries, the rest replace fields of the cluster and user in use. A CA or
 * --insecure-skip-tls-verify replaces the other; a token or basic credentials replace the user's
 * other ways to authenticate (exec plugins, auth providers), so only the one the flags give is used.
 * With impersonation, the result adds Impersonate-* headers to every request, exec included.
 */
function withOverrides(config: KubeConfig, request: CredentialRequest, from: string): KubeConfig {
  const flags = request.overrides ?? {};
  if (request.context) {
    if (!config.getContextObject(request.context)) {
      const known = config.getContexts().map((c) => c.name);
      throw new KubernetesAuthenticationError(`context "${request.context}" not found in ${from}`, {
        hint: known.length ? `known contexts: ${known.join(', ')}` : 'that source defines no contexts',
      });
    }
    config.setCurrentContext(request.context);
  }
  const touched = Object.entries(flags).some(([name, value]) => value !== undefined && name !== 'impersonate');
  if (!touched && !flags.impersonate) return config;
  const contextName = config.getCurrentContext();
  const context = contextName ? config.getContextObject(contextName) : null;
  if (!context) {
    throw new KubernetesAuthenticationError(`no current context in ${from}`, { hint: 'pass --context NAME or run `kubectl config use-context NAME`' });
  }
  const pick = <T extends { name: string }>(kind: 'cluster' | 'user', name: string, list: readonly T[]): T => {
    const found = list.find((entry) => entry.name === name);
    if (!found) throw new KubernetesAuthenticationError(`${kind} "${name}" not found in ${from}`, { hint: `known ${kind}s: ${list.map((entry) => entry.name).join(', ') || 'none'}` });
    return found;
  };
  const baseCluster = pick('cluster', flags.cluster ?? context.cluster, config.clusters);
  const baseUser = flags.user !== undefined || context.user ? pick('user', flags.user ?? context.user, config.users) : { name: 'flags' };
  const trust = flags.certificateAuthority !== undefined || flags.insecureSkipTlsVerify;
  const cluster = {
    ...baseCluster,
    ...(flags.server !== undefined ? { server: flags.server } : {}),
    ...(trust ? { caFile: flags.certificateAuthority, caData: undefined, skipTLSVerify: Boolean(flags.insecureSkipTlsVerify) } : {}),
    ...(flags.tlsServerName !== undefined ? { tlsServerName: flags.tlsServerName } : {}),
  };
  const replacesAuth = flags.token !== undefined || flags.username !== undefined;
  const user = {
    ...baseUser,
    ...(flags.clientCertificate !== undefined ? { certFile: flags.clientCertificate, certData: undefined } : {}),
    ...(flags.clientKey !== undefined ? { keyFile: flags.clientKey, keyData: undefined } : {}),
    ...(replacesAuth ? { exec: undefined, authProvider: undefined, token: flags.token, username: flags.username, password: flags.password } : {}),
  };
  if (!cluster.server) throw new KubernetesAuthenticationError(`no server: ${from} names none for cluster "${cluster.name}"`, { hint: 'pass -s/--server https://HOST:PORT' });
  if (flags.certificateAuthority !== undefined && flags.insecureSkipTlsVerify) {
    throw new KubernetesAuthenticationError('--certificate-authority and --insecure-skip-tls-verify cannot be used together', { hint: 'give the CA to check the server, or skip the check, not both' });
  }
  const result = flags.impersonate ? new ImpersonatingKubeConfig(flags.impersonate) : new DispatcherKubeConfig();
  result.loadFromOptions({
    clusters: [cluster, ...config.clusters.filter((entry) => entry.name !== cluster.name)],
    users: [user, ...config.users.filter((entry) => entry.name !== user.name)],
    contexts: [{ ...context, cluster: cluster.name, user: user.name }, ...config.contexts.filter((entry) => entry.name !== context.name)],
    currentContext: context.name,
  });
  return result;
}
