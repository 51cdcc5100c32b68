/**
 * The boundary where client-node failures become the plugin's typed errors: 401 and TLS trust
 * failures are authentication problems, 403 is RBAC unless an admission controller wrote it, 404 is
 * "not found", the rest is a discovery failure that keeps the API's own status and message.
 */
import {
  KubernetesAdmissionError,
  KubernetesAuthenticationError,
  KubernetesConnectionError,
  KubernetesDiscoveryError,
  NotFoundError,
  isNkvmError,
  type NkvmError,
} from '../errors.ts';

/** What the plugin was doing when the call failed, for the message and the hint. */
export interface ApiOperation {
  verb: string;
  resource: string;
  namespace?: string | undefined;
  name?: string | undefined;
  server?: string | undefined;
}

interface StatusBody {
  message?: string;
  reason?: string;
}

const TLS_TRUST_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

/** Why a connection failed, in kubectl's words where kubectl has them. */
const CONNECTION_FAILURES: Record<string, (hostPort: string, host: string) => string> = {
  ECONNREFUSED: (hostPort) => `The connection to the server ${hostPort} was refused - did you specify the right host or port?`,
  ENOTFOUND: (hostPort, host) => `Unable to connect to the server ${hostPort}: lookup ${host}: no such host`,
  EAI_AGAIN: (hostPort, host) => `Unable to connect to the server ${hostPort}: lookup ${host}: temporary failure in name resolution`,
  EHOSTUNREACH: (hostPort) => `Unable to connect to the server ${hostPort}: no route to host`,
  ENETUNREACH: (hostPort) => `Unable to connect to the server ${hostPort}: network is unreachable`,
  ETIMEDOUT: (hostPort) => `Unable to connect to the server ${hostPort}: i/o timeout`,
  UND_ERR_CONNECT_TIMEOUT: (hostPort) => `Unable to connect to the server ${hostPort}: i/o timeout`,
  ECONNRESET: (hostPort) => `Unable to connect to the server ${hostPort}: connection reset by peer`,
  UND_ERR_SOCKET: (hostPort) => `Unable to connect to the server ${hostPort}: the connection closed unexpectedly`,
};

function hostAndPort(server: string | undefined): { hostPort: string; host: string } {
  try {
    const url = new URL(server ?? '');
    const port = url.port || (url.protocol === 'http:' ? '80' : '443');
    return { hostPort: `${url.hostname}:${port}`, host: url.hostname.replace(/^\[|\]$/g, '') };
  } catch {
    return { hostPort: server ?? 'the API server', host: server ?? '' };
  }
}

/** A proxy in the way is worth saying: its failures look like the server's. */
function proxyNote(env: Record<string, string | undefined> = process.env): string {
  const proxy = env.HTTPS_PROXY || env.https_proxy || env.HTTP_PROXY || env.http_proxy;
  return proxy ? `; requests may go through the proxy ${proxy} (HTTPS_PROXY/NO_PROXY)` : '';
}

export const httpReasons: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** client-node's ApiException carries the HTTP code and the raw response body (a V1Status as JSON text). */
function apiStatus(error: unknown): { code: number; status: StatusBody } | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'number') return undefined;
  const body = (error as { body?: unknown }).body;
  let status: StatusBody = {};
  if (typeof body === 'string') {
    try {
      status = JSON.parse(body) as StatusBody;
    } catch {
      status = { message: body.trim() || undefined } as StatusBody;
    }
  } else if (typeof body === 'object' && body !== null) {
    status = body as StatusBody;
  }
  return { code, status };
}

/** The first Node system error code on the error or its cause chain (fetch wraps socket errors). */
function systemErrorCode(error: unknown): string | undefined {
  for (let current = error, depth = 0; current && depth < 5; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Errors, WebSocket ErrorEvents (which carry a message but are not Errors), or anything else. */
function errorMessage(error: unknown): string {
  if (typeof error === 'object' && error !== null && typeof (error as { message?: unknown }).message === 'string') {
    return (error as { message: string }).message;
  }
  return String(error);
}

function describe(operation: ApiOperation): string {
  const target = operation.name ? `${operation.resource}/${operation.name}` : operation.resource;
  return `${operation.verb} ${target}${operation.namespace ? ` in namespace "${operation.namespace}"` : ''}`;
}

/**
 * A 403 whose message is an admission controller's, told apart from RBAC by the message each one
 * writes: Pod Security `violates PodSecurity "<level>:<version>": <fields>`, ResourceQuota
 * `exceeded quota: <name>` / `failed quota: <name>: must specify ...`, LimitRange `maximum|minimum
 * <resource> usage per Container`, and webhooks `admission webhook "<name>" denied the request`.
 */
export function admissionRejection(message: string, operation: ApiOperation, cause?: unknown): KubernetesAdmissionError | undefined {
  const what = `${describe(operation)} was refused by admission`;
  const podSecurity = /violates PodSecurity "([^":]+)(?::[^"]*)?": (.*)$/s.exec(message);
  if (podSecurity) {
    return new KubernetesAdmissionError('PodSecurity', `${what}: the namespace enforces Pod Security level "${podSecurity[1]}", and the helper pod violates it: ${podSecurity[2]}`, {
      hint: `in a "restricted" namespace the helper runs as the workload's user unless --run-as-user names another: drop --run-as-user 0 (or give a non-root --run-as-user); \`kubectl nkvm diagnose -n ${operation.namespace ?? 'NAMESPACE'}\` shows the level and whether a helper would be admitted`,
      cause,
    });
  }
  const quota = /(?:exceeded|failed) quota: ([^,:\s]+)/.exec(message);
  if (quota) {
    return new KubernetesAdmissionError('ResourceQuota', `${what}: ResourceQuota "${quota[1]}" refused the helper pod: ${message}`, {
      hint: `give the helper the resources the quota asks for, e.g. --helper-requests cpu=100m,memory=64Mi --helper-limits cpu=1,memory=256Mi; see \`kubectl describe quota ${quota[1]} -n ${operation.namespace ?? 'NAMESPACE'}\``,
      cause,
    });
  }
  if (/(?:maximum|minimum) \S+ usage per (?:Container|Pod)|must be less than or equal to \S+ limit/.test(message)) {
    return new KubernetesAdmissionError('LimitRange', `${what}: a LimitRange refused the helper pod: ${message}`, {
      hint: `set the helper's resources within the LimitRange with --helper-requests and --helper-limits; see \`kubectl describe limitrange -n ${operation.namespace ?? 'NAMESPACE'}\``,
      cause,
    });
  }
  const webhook = /admission webhook "([^"]+)" denied the request/.exec(message);
  if (webhook) {
    return new KubernetesAdmissionError('webhook', `${what}: the admission webhook "${webhook[1]}" denied it: ${message}`, {
      hint: 'the webhook is a policy of this cluster (e.g. Kyverno or Gatekeeper); ask its owners what a backup helper pod must look like',
      cause,
    });
  }
  return undefined;
}

function canIHint(operation: ApiOperation): string {
  const scope = operation.namespace ? ` -n ${operation.namespace}` : operation.resource.startsWith('persistentvolumes') ? '' : ' -A';
  return `check with \`kubectl auth can-i ${operation.verb} ${operation.resource}${scope}\`, or run \`kubectl nkvm diagnose\``;
}

export function toKubernetesError(error: unknown, operation: ApiOperation): NkvmError {
  if (isNkvmError(error)) return error;
  const api = apiStatus(error);
  if (api) {
    const reason = httpReasons[api.code] ?? api.status.reason ?? 'Error';
    const apiMessage = api.status.message ? `: ${api.status.message}` : '';
    if (api.code === 401) {
      return new KubernetesAuthenticationError(
        `the API server rejected the credentials (API status 401 (Unauthorized)) while trying to ${describe(operation)}`,
        { hint: 'the token or client certificate is invalid or expired; refresh your kubeconfig or ServiceAccount token', cause: error },
      );
    }
    const admission = api.code === 403 ? admissionRejection(api.status.message ?? '', operation, error) : undefined;
    if (admission) return admission;
    if (api.code === 404) {
      return new NotFoundError(`${describe(operation)} failed: API status 404 (Not Found)${apiMessage}`);
    }
    const impersonation = api.code === 403 ? /cannot impersonate resource "([^"]+)"/.exec(api.status.message ?? '') : null;
    return new KubernetesDiscoveryError(`${describe(operation)} failed: API status ${api.code} (${reason})${apiMessage}`, {
      status: api.code,
      ...(impersonation
        ? { hint: `your credentials may not impersonate that ${impersonation[1]!.replace(/s$/, '')}: they need the "impersonate" verb on ${impersonation[1]} (e.g. \`kubectl create clusterrole impersonator --verb=impersonate --resource=${impersonation[1]} --resource-name=NAME\`, and bind it); check with \`kubectl auth can-i impersonate ${impersonation[1]}\`` }
        : api.code === 403
          ? { hint: canIHint(operation) }
          : {}),
      cause: error,
    });
  }
  const code = systemErrorCode(error);
  const server = operation.server ? ` ${operation.server}` : '';
  if (code && TLS_TRUST_CODES.has(code)) {
    return new KubernetesAuthenticationError(`TLS verification of the API server${server} failed (${code})`, {
      hint: "the cluster's certificate-authority in your kubeconfig (or the ServiceAccount's ca.crt) does not match the server",
      cause: error,
    });
  }
  const message = errorMessage(error);
  const connection = code ? CONNECTION_FAILURES[code] : undefined;
  if (connection) {
    const { hostPort, host } = hostAndPort(operation.server);
    const timedOut = code === 'ETIMEDOUT' && /--request-timeout/.test(message);
    return new KubernetesConnectionError(
      timedOut ? `the server ${hostPort} did not answer within the request timeout (--request-timeout) to ${describe(operation)}` : `${connection(hostPort, host)} (${code}, while trying to ${describe(operation)})`,
      { hint: `check the server address (${operation.server ?? 'in your kubeconfig'}) and that the cluster is running${proxyNote()}`, cause: error },
    );
  }
  // fetch refuses the Fetch standard's "bad ports" before connecting. API calls no longer use fetch
  // (dispatcher-http.ts); client-node's OIDC auth provider still does, to reach its identity provider.
  if (/bad port/.test(errorMessage((error as { cause?: unknown }).cause ?? ''))) {
    return new KubernetesConnectionError(`Unable to reach the OIDC identity provider to ${describe(operation)}: its port is one that fetch refuses to use (a "bad port" of the Fetch standard)`, {
      hint: "the kubeconfig's oidc auth provider (idp-issuer-url) must use another port; or log in with an exec credential plugin such as kubectl oidc-login",
      cause: error,
    });
  }
  // The WebSocket handshake (exec) reports an HTTP refusal only in its message.
  const handshake = /Unexpected server response: (\d{3})/.exec(message);
  if (handshake) return toKubernetesError({ code: Number(handshake[1]), body: '' }, operation);
  return new KubernetesDiscoveryError(`${describe(operation)} failed: ${message}`, { cause: error });
}

/** Runs one API call and converts whatever it throws. */
export async function callApi<T>(operation: ApiOperation, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw toKubernetesError(error, operation);
  }
}
