/**
 * One connection to one cluster: the resolved credentials and the API clients made from them.
 * Commands get it from `connect()` and never build clients themselves.
 */
import { AuthenticationV1Api, AuthorizationV1Api, CoreV1Api, VersionApi, type V1ResourceAttributes, type V1UserInfo, type VersionInfo } from '@kubernetes/client-node';
import { resolveCredentials, type CredentialRequest, type ResolvedCredentials } from './config.ts';
import { callApi, type ApiOperation } from './errors.ts';

export interface ConnectOptions extends CredentialRequest {
  requestTimeoutMs: number;
}

export class KubeClient {
  readonly credentials: ResolvedCredentials;
  readonly core: CoreV1Api;
  private readonly requestTimeoutMs: number;

  constructor(credentials: ResolvedCredentials, requestTimeoutMs: number) {
    this.credentials = credentials;
    this.requestTimeoutMs = requestTimeoutMs;
    this.core = credentials.kubeConfig.makeApiClient(CoreV1Api);
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
