/**
 * client-node sends every API call with undici's fetch, and fetch refuses the Fetch standard's "bad
 * ports" (6000, 6665-6669, 10080, ...) before it connects; kubectl reaches an API server on any port.
 * This HTTP library sends the same request with undici's lower-level Dispatcher.request, which has
 * no such list, through the dispatcher the request carries (client-node's TLS agent or proxy, with
 * our impersonation interceptor composed on it). DispatcherKubeConfig makes every API client use it.
 */
import { Readable } from 'node:stream';
import {
  KubeConfig,
  ResponseContext,
  wrapHttpLibrary,
  type ApiConstructor,
  type ApiType,
  type Configuration,
  type RequestContext,
} from '@kubernetes/client-node';
import { getGlobalDispatcher } from 'undici';

async function send(request: RequestContext): Promise<ResponseContext> {
  const url = new URL(request.getUrl());
  const body = request.getBody();
  // The Kubernetes API sends JSON text; client-node's other body kinds (forms) are for other APIs.
  if (body !== undefined && typeof body !== 'string') throw new TypeError(`unsupported request body (${body.constructor.name}): only text is sent to the API server`);
  const response = await (request.getDispatcher() ?? getGlobalDispatcher()).request({
    origin: url.origin,
    path: url.pathname + url.search,
    method: request.getHttpMethod(),
    headers: request.getHeaders(),
    body,
    signal: request.getSignal(),
  });
  // As fetch's Headers hand them over: lower-case names, repeated values joined.
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return new ResponseContext(response.statusCode, headers, {
    text: () => response.body.text(),
    binary: async () => Buffer.from(await response.body.arrayBuffer()),
    stream: () => Readable.toWeb(response.body) as ReadableStream<Uint8Array>,
  });
}

let library: ReturnType<typeof wrapHttpLibrary> | undefined;
/** Made on first use: reading a name of the client's bundle loads it, and a KubeConfig alone needs less (sea-assets.ts). */
export function dispatcherHttpLibrary(): ReturnType<typeof wrapHttpLibrary> {
  return (library ??= wrapHttpLibrary({ send }));
}

/** A KubeConfig whose API clients (KubernetesObjectApi's too, which it makes) send through dispatcherHttpLibrary. */
export class DispatcherKubeConfig extends KubeConfig {
  override makeApiClient<T extends ApiType>(apiClientType: ApiConstructor<T>): T {
    // client-node builds the configuration (server, auth, User-Agent); only the HTTP library changes.
    const withDispatcherHttp = function (config: Configuration): T {
      return new apiClientType({ ...config, httpApi: dispatcherHttpLibrary() });
    } as unknown as ApiConstructor<T>;
    return super.makeApiClient(withDispatcherHttp);
  }
}
