/**
 * Impersonation (--as, --as-group, --as-uid) on every request, as kubectl sends it: the headers
 * Impersonate-User, Impersonate-Uid and one Impersonate-Group per group. client-node has no such
 * option, so this KubeConfig adds them where it prepares both kinds of request: API calls (undici,
 * dispatcher-http.ts) and WebSocket exec. An API call's headers hold one value a name, and "a, b"
 * would reach the API server as a single group; so the groups travel in a private header to an
 * undici interceptor that turns them into separate header lines at the last moment.
 */
import type https from 'node:https';
import type { Cluster, KubeConfig, RequestContext } from '@kubernetes/client-node';
import { Agent, getGlobalDispatcher, ProxyAgent, type Dispatcher } from 'undici';
import { DispatcherKubeConfig } from './dispatcher-http.ts';

export interface Impersonation {
  user?: string | undefined;
  groups: string[];
  uid?: string | undefined;
}

const GROUPS_CARRIER = 'x-nkvm-impersonate-groups';

type CreateDispatcher = (cluster: Cluster | null, agentOptions: https.AgentOptions) => Dispatcher | undefined;

function singleHeaders(impersonate: Impersonation): Record<string, string> {
  return {
    ...(impersonate.user !== undefined ? { 'Impersonate-User': impersonate.user } : {}),
    ...(impersonate.uid !== undefined ? { 'Impersonate-Uid': impersonate.uid } : {}),
  };
}

/** Replaces the carrier header with one Impersonate-Group line per group. */
const expandGroups: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (options, handler) => {
  const headers = options.headers;
  if (headers && !Array.isArray(headers) && typeof headers === 'object' && !(Symbol.iterator in headers)) {
    const record = { ...(headers as Record<string, string | string[] | undefined>) };
    const carried = record[GROUPS_CARRIER];
    if (typeof carried === 'string') {
      delete record[GROUPS_CARRIER];
      record['impersonate-group'] = carried.split(',').map(decodeURIComponent);
      return dispatch({ ...options, headers: record }, handler);
    }
  }
  return dispatch(options, handler);
};

export class ImpersonatingKubeConfig extends DispatcherKubeConfig {
  readonly impersonate: Impersonation;

  constructor(impersonate: Impersonation) {
    super();
    this.impersonate = impersonate;
    if (impersonate.groups.length) {
      // client-node's undici Agent allows HTTP/2, where undici folds repeated header values into one
      // field: with groups to send, the connection stays HTTP/1.1. (createDispatcher is private in
      // client-node's types; createDispatcherOptions, which it delegates to, is public.)
      const clientNodeDispatcher = (this as unknown as { createDispatcher: CreateDispatcher }).createDispatcher.bind(this);
      const createDispatcher: CreateDispatcher = (cluster, agentOptions) => {
        const options = this.createDispatcherOptions(cluster, agentOptions);
        if (options.type === 'agent') return new Agent({ connect: options.connect, allowH2: false });
        if (options.type === 'proxy') return new ProxyAgent({ uri: options.uri, requestTls: options.requestTls, connect: options.connect, allowH2: false } as ProxyAgent.Options);
        return clientNodeDispatcher(cluster, agentOptions);
      };
      Object.assign(this, { createDispatcher });
    }
  }

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    for (const [name, value] of Object.entries(singleHeaders(this.impersonate))) context.setHeaderParam(name, value);
    if (this.impersonate.groups.length) {
      context.setHeaderParam(GROUPS_CARRIER, this.impersonate.groups.map(encodeURIComponent).join(','));
      context.setDispatcher((context.getDispatcher() ?? getGlobalDispatcher()).compose(expandGroups));
    }
  }

  /** The WebSocket (exec) path: Node's http sends an array value as repeated header lines. */
  override async applyToHTTPSOptions(options: Parameters<KubeConfig['applyToHTTPSOptions']>[0]): Promise<void> {
    await super.applyToHTTPSOptions(options);
    const headers = { ...(options.headers as Record<string, string | string[]> | undefined), ...singleHeaders(this.impersonate) };
    if (this.impersonate.groups.length) headers['Impersonate-Group'] = [...this.impersonate.groups];
    options.headers = headers;
  }
}
