/**
 * One connection to one cluster: the resolved credentials and the API clients made from them.
 * Commands get it from `connect()` and never build clients themselves.
 */
import {
  AuthenticationV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  KubernetesObjectApi,
  PatchStrategy,
  VersionApi,
  type KubernetesObject,
  type V1ResourceAttributes,
  type V1UserInfo,
  type VersionInfo,
} from '@kubernetes/client-node';
import { resolveCredentials, type CredentialRequest, type ResolvedCredentials } from './config.ts';
import { callApi, type ApiOperation } from './errors.ts';
import { requestJson, type JsonRequest } from './json-get.ts';

export interface ConnectOptions extends CredentialRequest {
  requestTimeoutMs: number;
}

export class KubeClient {
  readonly credentials: ResolvedCredentials;
  private readonly requestTimeoutMs: number;
  private coreApi: CoreV1Api | undefined;

  constructor(credentials: ResolvedCredentials, requestTimeoutMs: number) {
    this.credentials = credentials;
    this.requestTimeoutMs = requestTimeoutMs;
  }

  /** Made on first use: a command that only lists (getJson) never loads the generated API. */
  get core(): CoreV1Api {
    return (this.coreApi ??= this.credentials.kubeConfig.makeApiClient(CoreV1Api));
  }

  get namespace(): string {
    return this.credentials.namespace;
  }

  /** Runs an API call with the typed-error boundary and --request-timeout applied. */
  call<T>(operation: Omit<ApiOperation, 'server'>, request: () => Promise<T>): Promise<T> {
    const withServer = { ...operation, server: this.credentials.server };
    if (this.requestTimeoutMs <= 0) return callApi(withServer, request);
    return callApi(withServer, () => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const error = new Error(`request timed out after ${this.requestTimeoutMs} ms (--request-timeout)`);
          (error as NodeJS.ErrnoException).code = 'ETIMEDOUT';
          reject(error);
        }, this.requestTimeoutMs);
      });
      return Promise.race([request(), timeout]).finally(() => clearTimeout(timer));
    });
  }

  /** A request of `path` (/api/... or /apis/...) answered as parsed JSON, through the same typed-error boundary (json-get.ts says why apart). */
  requestJson(operation: Omit<ApiOperation, 'server'>, request: JsonRequest): Promise<unknown> {
    return this.call(operation, () => requestJson(this.credentials.kubeConfig, this.credentials.server, request));
  }

  getJson(operation: Omit<ApiOperation, 'server'>, path: string, query?: Record<string, string | undefined>): Promise<unknown> {
    return this.requestJson(operation, { method: 'GET', path, query });
  }

  serverVersion(): Promise<VersionInfo> {
    const api = this.credentials.kubeConfig.makeApiClient(VersionApi);
    return this.call({ verb: 'get', resource: 'version' }, () => api.getCode());
  }

  /** Who the API server says these credentials are, impersonation applied (SelfSubjectReview). */
  async whoAmI(): Promise<V1UserInfo> {
    const api = this.credentials.kubeConfig.makeApiClient(AuthenticationV1Api);
    const review = await this.call({ verb: 'create', resource: 'selfsubjectreviews' }, () =>
      api.createSelfSubjectReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } }),
    );
    return review.status?.userInfo ?? {};
  }

  /** Server-side apply, as `kubectl apply --server-side --force-conflicts` with the plugin as field manager. */
  async apply(object: KubernetesObject, options: { dryRun?: boolean } = {}): Promise<KubernetesObject> {
    const api = KubernetesObjectApi.makeApiClient(this.credentials.kubeConfig);
    const { kind, metadata } = object;
    return this.call({ verb: 'patch', resource: `${kind?.toLowerCase()}s`, namespace: metadata?.namespace, name: metadata?.name }, () =>
      api.patch(object, undefined, options.dryRun ? 'All' : undefined, 'kubectl-nkvm', true, PatchStrategy.ServerSideApply),
    );
  }

  /** Deletes one object; one already gone is fine. Dependents (a CronJob's Jobs and pods) go in the background. */
  async remove(object: KubernetesObject): Promise<boolean> {
    const api = KubernetesObjectApi.makeApiClient(this.credentials.kubeConfig);
    const { kind, metadata } = object;
    try {
      await this.call({ verb: 'delete', resource: `${kind?.toLowerCase()}s`, namespace: metadata?.namespace, name: metadata?.name }, () =>
        api.delete(object, undefined, undefined, undefined, undefined, 'Background'),
      );
      return true;
    } catch (error) {
      if ((error as { code?: string }).code === 'NotFoundError') return false;
      throw error;
    }
  }

  /** Every object of these kinds, in every namespace, that carries the label selector. */
  async listLabelled(apiVersion: string, kind: string, labelSelector: string): Promise<KubernetesObject[]> {
    const api = KubernetesObjectApi.makeApiClient(this.credentials.kubeConfig);
    const list = await this.call({ verb: 'list', resource: `${kind.toLowerCase()}s` }, () => api.list(apiVersion, kind, undefined, undefined, undefined, undefined, undefined, labelSelector));
    return list.items.map((item) => ({ ...item, apiVersion, kind }));
  }

  /** Whether these credentials may do one thing (SelfSubjectAccessReview, whatever authorizer the server runs). */
  async reviewAccess(attributes: V1ResourceAttributes): Promise<{ allowed: boolean; reason: string | null }> {
    const api = this.credentials.kubeConfig.makeApiClient(AuthorizationV1Api);
    const review = await this.call({ verb: 'create', resource: 'selfsubjectaccessreviews' }, () =>
      api.createSelfSubjectAccessReview({ body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: attributes } } }),
    );
    return { allowed: Boolean(review.status?.allowed), reason: review.status?.reason || review.status?.evaluationError || null };
  }
}

export function connect(options: ConnectOptions): KubeClient {
  return new KubeClient(resolveCredentials(options), options.requestTimeoutMs);
}
