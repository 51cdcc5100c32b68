/**
 * The boundary where client-node failures become the plugin's typed errors: 401 and TLS trust
 * failures are authentication problems, 403 is RBAC, 404 is "not found", the rest is a discovery
 * failure that keeps the API's own status and message.
 */
import {
  KubernetesAuthenticationError,
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

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT', 'ECONNRESET', 'EAI_AGAIN']);

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
    if (api.code === 404) {
      return new NotFoundError(`${describe(operation)} failed: API status 404 (Not Found)${apiMessage}`);
    }
    return new KubernetesDiscoveryError(`${describe(operation)} failed: API status ${api.code} (${reason})${apiMessage}`, {
      status: api.code,
      ...(api.code === 403 ? { hint: canIHint(operation) } : {}),
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
  if (code && UNREACHABLE_CODES.has(code)) {
    return new KubernetesDiscoveryError(`cannot reach the API server${server} (${code}) to ${describe(operation)}`, {
      hint: 'check the server address in your kubeconfig and that the cluster is running',
      cause: error,
    });
  }
  const message = errorMessage(error);
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
