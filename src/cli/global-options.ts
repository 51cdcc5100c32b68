/**
 * The flags every command shares, named and behaving like kubectl's so the plugin inherits the
 * user's context the way `kubectl` does.
 */
import type { Argv } from 'yargs';
import { UsageError } from '../errors.ts';

export interface GlobalOptions {
  kubeconfig: string | undefined;
  context: string | undefined;
  namespace: string | undefined;
  requestTimeout: string;
  cluster: string | undefined;
  user: string | undefined;
  server: string | undefined;
  token: string | undefined;
  certificateAuthority: string | undefined;
  clientCertificate: string | undefined;
  clientKey: string | undefined;
  insecureSkipTlsVerify: boolean;
  tlsServerName: string | undefined;
  username: string | undefined;
  password: string | undefined;
  as: string | undefined;
  asGroup: string[] | undefined;
  asUid: string | undefined;
  cacheDir: string | undefined;
  disableCompression: boolean;
  color: boolean;
  debug: boolean;
}

/**
 * kubectl's connection flags (cli-runtime's ConfigFlags), with its names and meanings. Like kubectl,
 * command help leaves them out; `kubectl nkvm options` lists them.
 */
export const CONNECTION_FLAGS = {
  cluster: { type: 'string', description: 'The name of the kubeconfig cluster to use' },
  user: { type: 'string', description: 'The name of the kubeconfig user to use' },
  server: { alias: 's', type: 'string', description: 'The address and port of the Kubernetes API server' },
  token: { type: 'string', description: 'Bearer token for authentication to the API server' },
  'certificate-authority': { type: 'string', description: 'Path to a cert file for the certificate authority' },
  'client-certificate': { type: 'string', description: 'Path to a client certificate file for TLS' },
  'client-key': { type: 'string', description: 'Path to a client key file for TLS' },
  'insecure-skip-tls-verify': { type: 'boolean', default: false, description: "If true, the server's certificate will not be checked for validity. This will make your HTTPS connections insecure" },
  'tls-server-name': { type: 'string', description: 'Server name to use for server certificate validation. If it is not provided, the hostname used to contact the server is used' },
  username: { type: 'string', description: 'Username for basic authentication to the API server' },
  password: { type: 'string', description: 'Password for basic authentication to the API server' },
  as: { type: 'string', description: 'Username to impersonate for the operation. User could be a regular user or a service account in a namespace' },
  'as-group': { type: 'string', array: true, description: 'Group to impersonate for the operation, this flag can be repeated to specify multiple groups' },
  'as-uid': { type: 'string', description: 'UID to impersonate for the operation' },
  'cache-dir': { type: 'string', description: 'Default cache directory (accepted for kubectl compatibility; the plugin keeps no discovery cache)' },
  'disable-compression': { type: 'boolean', default: false, description: 'If true, opt-out of response compression for all requests to the server (accepted for kubectl compatibility)' },
} as const;

export function withGlobalOptions<T>(argv: Argv<T>): Argv<T & GlobalOptions> {
  return argv
    .option('kubeconfig', { type: 'string', description: 'Path to the kubeconfig file to use', global: true })
    .option('context', { type: 'string', description: 'The name of the kubeconfig context to use', global: true })
    .option('namespace', {
      alias: 'n',
      type: 'string',
      description: 'The namespace scope for this request (default: the context namespace)',
      global: true,
    })
    .option('request-timeout', {
      type: 'string',
      default: '30s',
      description: 'How long to wait for a single API request (e.g. 10s, 1m; 0 = no timeout)',
      global: true,
    })
    .options(Object.fromEntries(Object.entries(CONNECTION_FLAGS).map(([name, option]) => [name, { ...option, global: true, hidden: true }])))
    .option('color', { type: 'boolean', default: true, description: 'Colour output (--no-color disables)', global: true })
    .option('debug', { type: 'boolean', default: false, description: 'Print stack traces and API details on errors', global: true }) as unknown as Argv<
    T & GlobalOptions
  >;
}

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** An age such as --older-than: a bare number is refused, since "30" would mean 30 seconds and prune nearly everything. */
export function parseAge(text: string, flag: string): number {
  if (/^\s*\d+\s*$/.test(text)) throw new UsageError(`${flag} needs a unit: "${text}"`, `e.g. ${flag} 30d, 12h, 90m`);
  return parseDuration(text, flag);
}

/** Parses kubectl-style durations: "30s", "1m30s", "500ms", "7d", or a bare number of seconds. 0 means none. */
export function parseDuration(text: string, flag: string): number {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const parts = [...trimmed.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== trimmed) {
    throw new UsageError(`invalid duration for ${flag}: "${text}"`, 'use a number with a unit, e.g. 30s, 2m, 1h30m');
  }
  return parts.reduce((total, [, amount, unit]) => total + Number(amount) * DURATION_UNITS_MS[unit!]!, 0);
}
