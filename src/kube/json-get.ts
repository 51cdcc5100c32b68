/**
 * A request to the API server answered as parsed JSON, sent with node:https and the kubeconfig's
 * TLS, credentials, impersonation and proxy applied as for the WebSocket exec (applyToHTTPSOptions).
 * Discover's two lists and a backup's helper pods take this path: they need neither client-node's
 * generated API (its models and the 5.6 MiB they are part of) nor undici, which were 40 of
 * discover's ~100 ms in the single executable, and 16 MiB of every backup's memory. A failure is
 * shaped as client-node's (an HTTP status with the response body, or the socket's own error), so
 * errors.ts types both the same.
 */
import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

/** A response outside 2xx: its status and body, the fields errors.ts reads from client-node's ApiException. */
export class ApiStatusError extends Error {
  readonly code: number;
  readonly body: string;

  constructor(code: number, body: string) {
    super(`HTTP status ${code}`);
    this.code = code;
    this.body = body;
  }
}

/** The core API's path of a resource, in one namespace or (undefined) all of them. */
export function corePath(resource: string, namespace: string | undefined, name?: string): string {
  const scope = namespace === undefined ? '' : `/namespaces/${encodeURIComponent(namespace)}`;
  return `/api/v1${scope}/${resource}${name === undefined ? '' : `/${encodeURIComponent(name)}`}`;
}

export interface JsonRequest {
  method: 'GET' | 'POST' | 'DELETE';
  /** Starts with /api or /apis. */
  path: string;
  query?: Record<string, string | undefined> | undefined;
  /** Sent as JSON. */
  body?: unknown;
}

/** `server` is the cluster's URL, which may carry a path (a proxy's /k8s/clusters/ID). */
export async function requestJson(kubeConfig: KubeConfig, server: string, { method, path, query = {}, body }: JsonRequest): Promise<unknown> {
  const url = new URL(server.replace(/\/+$/, '') + path);
  for (const [name, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(name, value);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const options: https.RequestOptions = {
    method,
    headers: { Accept: 'application/json', ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {}) },
  };
  await kubeConfig.applyToHTTPSOptions(options);
  return new Promise((resolve, reject) => {
    const request = (url.protocol === 'http:' ? http : https).request(url, options, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const status = response.statusCode ?? 0;
        if (status < 200 || status > 299) return reject(new ApiStatusError(status, body));
        try {
          resolve(JSON.parse(body));
        } catch (error) {
          reject(new Error(`the API server answered ${url.pathname} with a body that is not JSON: ${(error as Error).message}`));
        }
      });
    });
    request.on('error', reject);
    request.end(payload);
  });
}
