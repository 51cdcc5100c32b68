// The S3 backend's handling of answers a real versitygw does not give (the integration suite covers
// the ones it does): a server without conditional writes, broken pagination, ignored or wrong
// ranges, non-S3 error pages, access denied, clock skew, session tokens. A stand-in server on
// 127.0.0.1 answers what each test scripts.
import test from 'ava';
import http from 'node:http';
import type net from 'node:net';
import { S3Backend } from '../../src/repository/backends/s3.ts';
import { S3BackendError, type S3FailureReason } from '../../src/repository/backends/s3-location.ts';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

type Handler = (req: Seen, res: http.ServerResponse) => void;

async function fakeS3(t: { teardown(fn: () => Promise<void> | void): void }, handler: Handler) {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const request = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks) };
      seen.push(request);
      handler(request, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  const open = (options: ConstructorParameters<typeof S3Backend>[1] = {}) => {
    const backend = new S3Backend(`s3:http://127.0.0.1:${port}/bucket/repo`, {
      credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' },
      retries: 2,
      retryBaseDelayMs: 1,
      ...options,
    });
    t.teardown(() => backend.close());
    return backend;
  };
  return { seen, open, endpoint: `http://127.0.0.1:${port}` };
}

const xmlError = (res: http.ServerResponse, status: number, code: string, message = '') => {
  res.writeHead(status, { 'content-type': 'application/xml' });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`);
};

const listing = (keys: string[], next?: string) =>
  `<ListBucketResult><IsTruncated>${next !== undefined}</IsTruncated>${keys.map((k) => `<Contents><Key>${k}</Key><Size>1</Size></Contents>`).join('')}${next ? `<NextContinuationToken>${next.replace(/&/g, '&amp;')}</NextContinuationToken>` : ''}</ListBucketResult>`;

const ID = 'ab'.repeat(32);

test('every request is signed for the endpoint and region, with the payload hash; PUTs of new files carry If-None-Match: *', async (t) => {
  const { seen, open } = await fakeS3(t, (_req, res) => res.end());
  await open({ region: 'eu-west-1', credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 's', sessionToken: 'TOKEN' } }).write('keys', ID, Buffer.from('hello'));
  const put = seen[0]!;
  t.is(put.method, 'PUT');
  t.is(put.url, `/bucket/repo/keys/${ID}`);
  t.is(put.headers['if-none-match'], '*');
  t.is(put.headers['x-amz-content-sha256'], '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
  t.is(put.headers['x-amz-security-token'], 'TOKEN');
  t.regex(put.headers.authorization!, /^AWS4-HMAC-SHA256 Credential=AKIDTEST\/\d{8}\/eu-west-1\/s3\/aws4_request, SignedHeaders=content-type;host;if-none-match;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=[0-9a-f]{64}$/);
  t.deepEqual(put.body, Buffer.from('hello'));
});

test('a server without conditional writes (501) gets a HEAD before each write, and an existing file is still refused', async (t) => {
  const stored = new Set<string>();
  const { seen, open } = await fakeS3(t, (req, res) => {
    if (req.method === 'PUT' && req.headers['if-none-match']) return xmlError(res, 501, 'NotImplemented', 'A header you provided implies functionality that is not implemented');
    if (req.method === 'PUT') {
      stored.add(req.url);
      return res.end();
    }
    if (req.method === 'HEAD') {
      res.writeHead(stored.has(req.url) ? 200 : 404, { 'content-length': '5' });
      return res.end();
    }
    res.end();
  });
  const b = open();
  await b.write('index', ID, Buffer.from('first'));
  const error = await t.throwsAsync(b.write('index', ID, Buffer.from('again')), { instanceOf: S3BackendError });
  t.is(error!.reason, 'exists');
  t.deepEqual(seen.map((r) => `${r.method}${r.headers['if-none-match'] ? ' if-none-match' : ''}`), ['PUT if-none-match', 'HEAD', 'PUT', 'HEAD']);
});

test('pagination: every page is followed with its token; a server that loops or drops the token is caught', async (t) => {
  const pages: Record<string, string> = {
    '': listing(['repo/data/00/a', 'repo/data/01/b'], 'p2'),
    p2: listing(['repo/data/ff/c', 'repo/data/ff/'], 'p3&x'),
    'p3&x': listing(['repo/data/ab/d']),
  };
  const { seen, open } = await fakeS3(t, (req, res) => {
    const token = new URL(req.url, 'http://x').searchParams.get('continuation-token') ?? '';
    res.end(pages[token] ?? listing([], token));
  });
  const names: string[] = [];
  for await (const f of open().list('data')) names.push(f.name);
  t.deepEqual(names, ['a', 'b', 'c', 'd'], 'directory markers (keys ending in /) are skipped');
  t.deepEqual(seen.map((r) => new URL(r.url, 'http://x').searchParams.get('continuation-token')), [null, 'p2', 'p3&x']);
  t.is(new URL(seen[0]!.url, 'http://x').searchParams.get('prefix'), 'repo/data/');
  t.is(new URL(seen[0]!.url, 'http://x').searchParams.get('delimiter'), null, 'data/ is listed recursively');

  const looping = await fakeS3(t, (_req, res) => res.end(listing(['repo/keys/a'], 'same')));
  await t.throwsAsync(async () => {
    for await (const _ of looping.open().list('keys'));
  }, { instanceOf: S3BackendError, message: /repeats continuation token "same" \(a server bug\)/ });
  t.is(new URL(looping.seen[0]!.url, 'http://x').searchParams.get('delimiter'), '/');

  const tokenless = await fakeS3(t, (_req, res) => res.end('<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>'));
  await t.throwsAsync(async () => {
    for await (const _ of tokenless.open().list('index'));
  }, { instanceOf: S3BackendError, message: /cut short without a continuation token/ });
});

test('ranges: a server that ignores Range is sliced; one that sends other bytes is caught', async (t) => {
  const whole = Buffer.from('0123456789');
  const ignoring = await fakeS3(t, (_req, res) => res.end(whole));
  t.deepEqual(await ignoring.open().read('data', ID, { offset: 3, length: 4 }), Buffer.from('3456'));
  t.is(ignoring.seen[0]!.headers.range, 'bytes=3-6');

  const wrong = await fakeS3(t, (_req, res) => {
    res.writeHead(206, { 'content-range': 'bytes 0-3/10' });
    res.end(whole.subarray(0, 4));
  });
  await t.throwsAsync(wrong.open().read('data', ID, { offset: 3, length: 4 }), { instanceOf: S3BackendError, message: /asked for bytes from 3 .* got "bytes 0-3\/10"/ });
});

test('a gateway error page that is not S3 XML is retried, then named with its status', async (t) => {
  const { seen, open, endpoint } = await fakeS3(t, (_req, res) => {
    res.writeHead(502, { 'content-type': 'text/html' });
    res.end('<html><body>Bad Gateway</body></html>');
  });
  const error = await t.throwsAsync(open().read('snapshots', ID), { instanceOf: S3BackendError });
  t.is(error!.message, `S3 endpoint ${endpoint}, bucket "bucket": cannot read repo/snapshots/${ID}: the server kept failing (HTTP 502) after 2 retries; check the S3 server's health and logs`);
  t.like(error, { reason: 'server', status: 502 });
  t.is(seen.length, 3);
});

test('429 and 500 InternalError are retried until they pass', async (t) => {
  let n = 0;
  const { seen, open } = await fakeS3(t, (_req, res) => {
    n++;
    if (n === 1) return xmlError(res, 429, 'TooManyRequests');
    if (n === 2) return xmlError(res, 500, 'InternalError', 'We encountered an internal error. Please try again.');
    res.end('ok');
  });
  t.deepEqual(await open().read('keys', ID), Buffer.from('ok'));
  t.is(seen.length, 3);
});

test('access denied, clock skew, a refused token and a wrong region each say what to fix', async (t) => {
  const cases: [string, number, string, RegExp, S3FailureReason][] = [
    ['AccessDenied', 403, 'Access Denied', /access denied \(HTTP 403 AccessDenied: "Access Denied"\): the credentials are valid for the server but not allowed to read in this bucket; check the key's policy$/, 'permission'],
    ['RequestTimeTooSkewed', 403, 'The difference between the request time and the current time is too large.', /this machine's clock differs too much from the server's \(HTTP 403 RequestTimeTooSkewed\); set the clock right$/, 'authentication'],
    ['ExpiredToken', 400, 'The provided token has expired.', /the session token was refused .*; renew the temporary credentials and AWS_SESSION_TOKEN$/, 'authentication'],
    ['AuthorizationHeaderMalformed', 400, "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-central-1'", /the server refused the region "us-east-1" .*; set AWS_DEFAULT_REGION to the bucket's region$/, 'configuration'],
  ];
  for (const [code, status, message, expected, reason] of cases) {
    const { open } = await fakeS3(t, (_req, res) => xmlError(res, status, code, message));
    const error = await t.throwsAsync(open().read('keys', ID), { instanceOf: S3BackendError }, code);
    t.regex(error!.message, expected, code);
    t.is(error!.reason, reason, code);
  }
});

test('a HEAD refused without a body is explained by a listing of the same key', async (t) => {
  const { seen, open } = await fakeS3(t, (req, res) => {
    if (req.method === 'HEAD') {
      res.writeHead(403);
      return res.end();
    }
    xmlError(res, 403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.');
  });
  const error = await t.throwsAsync(open().stat('keys', ID), { instanceOf: S3BackendError });
  t.regex(error!.message, /cannot stat repo\/keys\/(ab){32}: the server does not know the access key ID "AKIDTEST" \(HTTP 403 InvalidAccessKeyId\); check AWS_ACCESS_KEY_ID$/);
  t.deepEqual(seen.map((r) => r.method), ['HEAD', 'GET']);
  t.is(new URL(seen[1]!.url, 'http://x').searchParams.get('prefix'), `repo/keys/${ID}`);
});
