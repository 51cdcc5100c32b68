// API calls go through dispatcher-http.ts, not fetch: a real HTTP server on one of fetch's "bad
// ports" answers them, and sees the method, headers (impersonated groups as separate lines) and
// body; the answer's status, headers and body come back as fetch gave them. (The integration suite
// does the same against a real API server; this covers what it does not: errors, signals, streams.)
import test from 'ava';
import http from 'node:http';
import type net from 'node:net';
import { ApiException, CoreV1Api, HttpMethod, KubernetesObjectApi, RequestContext } from '@kubernetes/client-node';
import { dispatcherHttpLibrary } from '../../src/kube/dispatcher-http.ts';
import { resolveCredentials } from '../../src/kube/config.ts';
import { callApi } from '../../src/kube/errors.ts';
import { requestJson } from '../../src/kube/json-get.ts';
import { KubernetesDiscoveryError } from '../../src/errors.ts';

interface Seen {
  method: string;
  url: string;
  rawHeaders: string[];
  body: string;
}

/** A server on the first free bad port; it answers each request with what `answer` says. */
async function badPortServer(t: { teardown(fn: () => Promise<void>): void }, answer: (seen: Seen, res: http.ServerResponse) => void) {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request = { method: req.method!, url: req.url!, rawHeaders: req.rawHeaders, body: Buffer.concat(chunks).toString() };
      seen.push(request);
      answer(request, res);
    });
  });
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  for (const port of [6669, 6668, 6667, 6666, 6665, 6000]) {
    const listening = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false)).listen(port, '127.0.0.1', () => resolve(true));
    });
    if (listening) return { seen, url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}` };
  }
  throw new Error('every bad port tried is in use');
}

/** Every line of one header, in the order sent. */
function headerLines(rawHeaders: string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === name) values.push(rawHeaders[i + 1]!);
  return values;
}

function credentials(server: string) {
  return resolveCredentials(
    { namespace: 'shop', overrides: { server, insecureSkipTlsVerify: true, token: 'secret', impersonate: { user: 'bob', groups: ['g1', 'g, 2'] } } },
    { env: {}, homeDir: '/nonexistent', fileExists: () => false },
  ).kubeConfig;
}

test('typed and object API calls reach a server on a bad port with their method, headers and body; status, headers and body come back', async (t) => {
  const { seen, url } = await badPortServer(t, (request, res) => {
    if (request.url === '/api/v1') {
      // What KubernetesObjectApi asks first: the resources of the group version.
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'APIResourceList', groupVersion: 'v1', resources: [{ name: 'configmaps', kind: 'ConfigMap', namespaced: true, singularName: 'configmap', verbs: ['get'] }] }));
      return;
    }
    if (request.url.endsWith('/missing')) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 404, message: 'configmaps "missing" not found' }));
      return;
    }
    res.writeHead(201, [['content-type', 'application/json'], ['warning', 'one'], ['warning', 'two']]);
    res.end(request.body);
  });
  const kubeConfig = credentials(url);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const created = await core.createNamespacedConfigMapWithHttpInfo({ namespace: 'shop', body: { metadata: { name: 'settings' }, data: { mode: 'fast' } } });
  t.is(created.httpStatusCode, 201);
  t.deepEqual(created.data.data, { mode: 'fast' });
  t.is(created.headers.warning, 'one, two', 'repeated answer headers joined, as fetch does');
  t.like(seen[0], { method: 'POST', url: '/api/v1/namespaces/shop/configmaps' });
  t.deepEqual(JSON.parse(seen[0]!.body), { metadata: { name: 'settings' }, data: { mode: 'fast' } });
  t.deepEqual(headerLines(seen[0]!.rawHeaders, 'authorization'), ['Bearer secret']);
  t.deepEqual(headerLines(seen[0]!.rawHeaders, 'impersonate-user'), ['bob']);
  t.deepEqual(headerLines(seen[0]!.rawHeaders, 'impersonate-group'), ['g1', 'g, 2'], 'one line per group');
  t.deepEqual(headerLines(seen[0]!.rawHeaders, 'content-type'), ['application/json']);

  const objects = KubernetesObjectApi.makeApiClient(kubeConfig);
  const missing = await t.throwsAsync(objects.read({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'missing', namespace: 'shop' } }), { instanceOf: ApiException });
  t.is((missing as ApiException<string>).code, 404);
  t.regex(String((missing as ApiException<string>).body), /configmaps \\"missing\\" not found/);
  t.deepEqual(seen.slice(1).map((request) => `${request.method} ${request.url}`), ['GET /api/v1', 'GET /api/v1/namespaces/shop/configmaps/missing']);
});

test('the request signal aborts the call, and the answer body reads as a stream and as binary', async (t) => {
  const { url } = await badPortServer(t, (request, res) => {
    if (request.url === '/slow') return; // never answers
    res.end('hello');
  });
  const abort = new AbortController();
  const slow = new RequestContext(`${url}/slow`, HttpMethod.GET);
  slow.setSignal(abort.signal);
  const pending = dispatcherHttpLibrary().send(slow).toPromise();
  setTimeout(() => abort.abort(new Error('stopped')), 50);
  await t.throwsAsync(pending, { message: 'stopped' });

  const streamed = await dispatcherHttpLibrary().send(new RequestContext(`${url}/a`, HttpMethod.GET)).toPromise();
  const chunks: Uint8Array[] = [];
  for await (const chunk of streamed.body.stream()!) chunks.push(chunk);
  t.is(Buffer.concat(chunks).toString(), 'hello');
  const binary = await dispatcherHttpLibrary().send(new RequestContext(`${url}/b`, HttpMethod.GET)).toPromise();
  t.deepEqual(await binary.body.binary(), Buffer.from('hello'));
});

test('requestJson (discover\'s lists, a backup\'s helper pods) reaches a server on a bad port with the credentials and impersonation, keeps the server\'s path and the query, sends a JSON body, and a refusal is typed as any API call\'s', async (t) => {
  const { seen, url } = await badPortServer(t, (request, res) => {
    if (request.method === 'POST' || request.method === 'DELETE') {
      res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Pod', metadata: { name: 'made' }, echo: request.body || null }));
      return;
    }
    if (request.url.includes('/pods')) {
      res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 403, message: 'pods is forbidden: User "bob" cannot list resource "pods"' }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'PersistentVolumeClaimList', items: [{ metadata: { name: 'data' } }] }));
  });
  const kubeConfig = credentials(url);
  const list = await requestJson(kubeConfig, `${url}/k8s/clusters/c-1/`, { method: 'GET', path: '/api/v1/namespaces/shop/persistentvolumeclaims', query: { labelSelector: 'app=db,tier!=cache', limit: undefined } });
  t.deepEqual(list, { kind: 'PersistentVolumeClaimList', items: [{ metadata: { name: 'data' } }] });
  t.like(seen[0], { method: 'GET', url: '/k8s/clusters/c-1/api/v1/namespaces/shop/persistentvolumeclaims?labelSelector=app%3Ddb%2Ctier%21%3Dcache' });
  t.deepEqual(headerLines(seen[0]!.rawHeaders, 'authorization'), ['Bearer secret']);
  t.deepEqual(headerLines(seen[0]!.rawHeaders, 'impersonate-user'), ['bob']);
  t.deepEqual(headerLines(seen[0]!.rawHeaders, 'impersonate-group'), ['g1', 'g, 2'], 'one line per group');

  const refused = await t.throwsAsync(callApi({ verb: 'list', resource: 'pods', namespace: 'shop', server: url }, () => requestJson(kubeConfig, url, { method: 'GET', path: '/api/v1/namespaces/shop/pods' })));
  t.true(refused instanceof KubernetesDiscoveryError);
  t.regex(refused!.message, /list pods in namespace "shop" failed: API status 403 \(Forbidden\): pods is forbidden/);

  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'x-' } };
  const made = await requestJson(kubeConfig, url, { method: 'POST', path: '/api/v1/namespaces/shop/pods', query: { dryRun: 'All' }, body: pod });
  t.deepEqual(made, { kind: 'Pod', metadata: { name: 'made' }, echo: JSON.stringify(pod) });
  t.like(seen.at(-1), { method: 'POST', url: '/api/v1/namespaces/shop/pods?dryRun=All' });
  t.deepEqual(headerLines(seen.at(-1)!.rawHeaders, 'content-type'), ['application/json']);
  t.deepEqual(headerLines(seen.at(-1)!.rawHeaders, 'authorization'), ['Bearer secret']);
  await requestJson(kubeConfig, url, { method: 'DELETE', path: '/api/v1/namespaces/shop/pods/made', query: { gracePeriodSeconds: '0' } });
  t.like(seen.at(-1), { method: 'DELETE', url: '/api/v1/namespaces/shop/pods/made?gracePeriodSeconds=0', body: '' });
});
