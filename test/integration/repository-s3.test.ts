/**
 * The S3 backend against a real S3 server (versitygw, test/cluster/s3-server.ts), no cluster:
 * every operation, the failures a user meets (wrong secret, unknown key, unknown bucket, stopped
 * server, throttling, an untrusted certificate), and the real restic as the judge of where files
 * go: what restic writes over S3 we list and read byte for byte, and a repository we copy up file
 * by file passes `restic check --read-data`. Last, the repository code over this backend, both
 * ways: what it writes into a bucket restic checks and restores, what restic writes it restores.
 */
import anyTest, { type TestFn } from 'ava';
import { execa } from 'execa';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { BackendError, BackendNotFoundError, type FileInfo, type FileType } from '../../src/repository/backends/backend.ts';
import { S3Backend, type S3BackendOptions } from '../../src/repository/backends/s3.ts';
import { S3BackendError } from '../../src/repository/backends/s3-location.ts';
import { archiveTar } from '../../src/repository/archiver.ts';
import { Repository } from '../../src/repository/repository.ts';
import { restoreTar } from '../../src/repository/restorer.ts';
import { pipeline } from 'node:stream/promises';
import { findRestic } from '../cluster/restic.ts';
import { type S3Server, startS3Server } from '../cluster/s3-server.ts';
import { integrationEnabled } from './support.ts';

interface Context {
  server: S3Server;
  work: string;
}
const test = (integrationEnabled ? anyTest.serial : anyTest.skip) as TestFn<Context>['serial'];

if (integrationEnabled) {
  (anyTest as TestFn<Context>).before(async (t) => {
    // Enabled but no restic or versitygw: fail, saying how to get them, rather than skip.
    findRestic();
    t.context.server = await startS3Server();
    t.context.work = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-s3-it-'));
  });
  (anyTest as TestFn<Context>).afterEach.always((t) => {
    if (!t.passed && t.context.server) t.log(`versitygw log:\n${t.context.server.log().slice(-4000)}`);
  });
  (anyTest as TestFn<Context>).after.always(async (t) => {
    await t.context.server?.dispose();
    if (t.context.work) fs.rmSync(t.context.work, { recursive: true, force: true });
  });
}

const hexId = () => randomBytes(32).toString('hex');
let prefixes = 0;
const uniquePrefix = (what: string) => `${what}-${++prefixes}-${randomBytes(3).toString('hex')}`;

function backend(t: { teardown(fn: () => Promise<void>): void }, server: S3Server, prefix: string, options: S3BackendOptions = {}): S3Backend {
  const b = new S3Backend(server.location(prefix), { env: server.env, ...options });
  t.teardown(() => b.close());
  return b;
}

async function collect(iterable: AsyncIterable<FileInfo>): Promise<FileInfo[]> {
  const out: FileInfo[] = [];
  for await (const f of iterable) out.push(f);
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Runs up to `limit` at once. */
async function parallel<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

test('write, read whole and ranged, stat, list, remove', async (t) => {
  const { server } = t.context;
  const prefix = uniquePrefix('ops');
  const b = backend(t, server, prefix);
  await b.create();
  t.false(await b.exists());
  const config = randomBytes(200);
  await b.write('config', 'config', config);
  t.true(await b.exists());
  const files: Record<Exclude<FileType, 'config'>, string> = { keys: hexId(), locks: hexId(), snapshots: hexId(), index: hexId(), data: hexId() };
  const contents = new Map<string, Buffer>();
  for (const [type, name] of Object.entries(files) as [FileType, string][]) {
    const data = randomBytes(1000 + contents.size);
    contents.set(name, data);
    await b.write(type, name, data);
  }
  t.deepEqual(await b.read('config', 'config'), config);
  const data = contents.get(files.data)!;
  t.deepEqual(await b.read('data', files.data), data);
  t.deepEqual(await b.read('data', files.data, { offset: 10, length: 100 }), data.subarray(10, 110));
  t.deepEqual(await b.read('data', files.data, { offset: data.length - 1, length: 1 }), data.subarray(data.length - 1));
  t.deepEqual(await b.read('data', files.data, { offset: 5, length: 0 }), Buffer.alloc(0));
  await t.throwsAsync(b.read('data', files.data, { offset: data.length - 10, length: 20 }), { instanceOf: BackendError, message: /shorter|beyond/ });
  t.deepEqual(await b.stat('data', files.data), { name: files.data, size: data.length });
  t.deepEqual(await b.stat('config', 'config'), { name: 'config', size: 200 });
  for (const [type, name] of Object.entries(files) as [FileType, string][]) {
    t.deepEqual(await collect(b.list(type)), [{ name, size: contents.get(name)!.length }], type);
  }
  t.deepEqual(await collect(b.list('config')), [{ name: 'config', size: 200 }]);
  // Where the files are on the server: restic's layout under the prefix.
  const onDisk = path.join(server.root, server.bucket, prefix);
  t.deepEqual(fs.readFileSync(path.join(onDisk, 'data', files.data.slice(0, 2), files.data)), data);
  t.deepEqual(fs.readFileSync(path.join(onDisk, 'keys', files.keys)), contents.get(files.keys));
  t.deepEqual(fs.readFileSync(path.join(onDisk, 'config')), config);

  await b.remove('data', files.data);
  await b.remove('data', files.data);
  t.deepEqual(await collect(b.list('data')), []);
  await t.throwsAsync(b.read('data', files.data), { instanceOf: BackendNotFoundError });
});

test('missing files are BackendNotFoundError; an empty repository lists nothing', async (t) => {
  const b = backend(t, t.context.server, uniquePrefix('missing'));
  const id = hexId();
  const read = await t.throwsAsync(b.read('snapshots', id), { instanceOf: BackendNotFoundError });
  t.is(read!.message, `snapshots/${id} not found in repository ${b.location}`);
  await t.throwsAsync(b.read('data', id, { offset: 0, length: 10 }), { instanceOf: BackendNotFoundError });
  await t.throwsAsync(b.stat('index', id), { instanceOf: BackendNotFoundError });
  await t.throwsAsync(b.read('config', 'config'), { instanceOf: BackendNotFoundError, message: /^config not found/ });
  await b.remove('locks', id);
  for (const type of ['config', 'keys', 'locks', 'snapshots', 'index', 'data'] as const) t.deepEqual(await collect(b.list(type)), [], type);
});

test('names with XML-special characters list back exactly (the server escapes them, we decode)', async (t) => {
  // restic's names are hex; this holds the parser to what a real server sends for anything else.
  const b = backend(t, t.context.server, uniquePrefix('odd'));
  const names = [`a&b<c>"d'e`, 'tab\tand space', 'ünïcödé-😀', '%41+%2F'];
  for (const name of names) await b.write('snapshots', name, Buffer.from(name));
  t.deepEqual((await collect(b.list('snapshots'))).map((f) => f.name), [...names].sort());
  for (const name of names) t.deepEqual(await b.read('snapshots', name), Buffer.from(name));
});

test('an existing file is never overwritten (If-None-Match: *); a lock may be', async (t) => {
  const { server } = t.context;
  const prefix = uniquePrefix('overwrite');
  const b = backend(t, server, prefix);
  const first = Buffer.from('first');
  for (const type of ['config', 'keys', 'snapshots', 'index', 'data'] as const) {
    const name = type === 'config' ? 'config' : hexId();
    await b.write(type, name, first);
    const error = await t.throwsAsync(b.write(type, name, Buffer.from('second')), { instanceOf: S3BackendError }, type);
    t.is(error!.reason, 'exists');
    t.regex(error!.message, new RegExp(`^S3 endpoint ${server.endpoint}, bucket "${server.bucket}": refusing to overwrite .*: it already exists$`));
    t.deepEqual(await b.read(type, name), first, type);
  }
  const lock = hexId();
  await b.write('locks', lock, Buffer.from('one'));
  await b.write('locks', lock, Buffer.from('two'));
  t.deepEqual(await b.read('locks', lock), Buffer.from('two'));
});

test('of writers racing for one name exactly one wins; the others are told it exists', async (t) => {
  const b = backend(t, t.context.server, uniquePrefix('race'), { connections: 8 });
  const id = hexId();
  const bodies = Array.from({ length: 8 }, (_, i) => Buffer.from(`writer ${i} `.repeat(1000)));
  const results = await Promise.allSettled(bodies.map((body) => b.write('snapshots', id, body)));
  const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
  t.is(winners.length, 1);
  for (const r of results) if (r.status === 'rejected') t.is((r.reason as S3BackendError).reason, 'exists');
  t.deepEqual(await b.read('snapshots', id), bodies[winners[0]!]);
});

test('listing more than 1000 files across data/ subdirectories, page by page', async (t) => {
  t.timeout(5 * 60_000);
  const b = backend(t, t.context.server, uniquePrefix('many'), { connections: 8 });
  const names = Array.from({ length: 1234 }, hexId);
  await parallel(names, 8, (name) => b.write('data', name, Buffer.from(name.slice(0, 1 + (parseInt(name[2]!, 16))))));
  const expected = names.map((name) => ({ name, size: 1 + parseInt(name[2]!, 16) })).sort((a, c) => (a.name < c.name ? -1 : 1));
  // Through a counting proxy, to see the real server cut the listing into pages.
  const proxy = await faultyProxy(t.context.server, { slowDowns: 0 });
  t.teardown(proxy.close);
  const viaProxy = new S3Backend(proxy.location(b.prefix), { env: t.context.server.env });
  t.teardown(() => viaProxy.close());
  const listed = await collect(viaProxy.list('data'));
  t.is(listed.length, 1234, 'every file once');
  t.deepEqual(listed, expected);
  t.is(proxy.requests(), 2, 'two pages: S3 pages hold at most 1000 keys');
  const small = new S3Backend(proxy.location(b.prefix), { env: t.context.server.env, listPageSize: 100 });
  t.teardown(() => small.close());
  t.deepEqual(await collect(small.list('data')), expected);
  t.is(proxy.requests(), 2 + 13, 'then 13 pages of 100');
});

test('a wrong secret is a 403 that says the secret is the likely culprit; an unknown key ID says so', async (t) => {
  const { server } = t.context;
  const wrongSecret = backend(t, server, 'any', { env: { ...server.env, AWS_SECRET_ACCESS_KEY: 'not-the-secret' } });
  for (const attempt of [() => wrongSecret.exists(), () => wrongSecret.create(), () => wrongSecret.read('config', 'config'), () => wrongSecret.write('keys', hexId(), Buffer.from('x'))]) {
    const error = await t.throwsAsync(attempt(), { instanceOf: S3BackendError });
    t.like(error, { reason: 'authentication', status: 403, s3Code: 'SignatureDoesNotMatch' });
    t.regex(error!.message, new RegExp(`^S3 endpoint ${server.endpoint}, bucket "${server.bucket}": cannot .*: the access key ID "${server.accessKeyId}" is known but the signature does not match \\(HTTP 403 SignatureDoesNotMatch\\): the secret access key is likely wrong; check AWS_SECRET_ACCESS_KEY$`));
  }
  const unknownKey = backend(t, server, 'any', { env: { ...server.env, AWS_ACCESS_KEY_ID: 'AKIANOBODY' } });
  const error = await t.throwsAsync(unknownKey.exists(), { instanceOf: S3BackendError });
  t.like(error, { reason: 'authentication', status: 403, s3Code: 'InvalidAccessKeyId' });
  t.regex(error!.message, /the server does not know the access key ID "AKIANOBODY" \(HTTP 403 InvalidAccessKeyId\); check AWS_ACCESS_KEY_ID$/);
});

test('an unknown bucket is named, for every operation', async (t) => {
  const { server } = t.context;
  const b = new S3Backend(`s3:${server.endpoint}/no-such-bucket/repo`, { env: server.env });
  t.teardown(() => b.close());
  const message = `S3 endpoint ${server.endpoint}, bucket "no-such-bucket": cannot `;
  const tail = ': the bucket "no-such-bucket" does not exist (HTTP 404 NoSuchBucket); create it or correct the repository location';
  const id = hexId();
  for (const [what, attempt] of [
    ['list the bucket', () => b.create()],
    ['stat repo/config', () => b.exists()],
    ['read repo/config', () => b.read('config', 'config')],
    [`stat repo/keys/${id}`, () => b.stat('keys', id)],
    [`write repo/keys/${id}`, () => b.write('keys', id, Buffer.from('x'))],
    [`list repo/index/`, () => collect(b.list('index'))],
  ] as const) {
    const error = await t.throwsAsync(attempt(), { instanceOf: S3BackendError }, what);
    t.is(error!.message, `${message}${what}${tail}`);
    t.like(error, { reason: 'no-such-bucket', status: 404, s3Code: 'NoSuchBucket' });
  }
});

test('a stopped server is unreachable, after the retries', async (t) => {
  const server = await startS3Server();
  t.teardown(() => server.dispose());
  const b = backend(t, server, 'repo', { retries: 2, retryBaseDelayMs: 20 });
  await b.create();
  await server.stop();
  const error = await t.throwsAsync(b.exists(), { instanceOf: S3BackendError });
  t.is(error!.reason, 'unreachable');
  t.is(
    error!.message,
    `S3 endpoint ${server.endpoint}, bucket "${server.bucket}": cannot stat repo/config: the server is unreachable: connection refused (after 2 retries); check the address and port and that the S3 server is running`,
  );
  // It comes back: the same backend works again.
  await server.restart();
  t.false(await b.exists());
});

test('an unknown host name is unreachable, not retried for long', async (t) => {
  const b = new S3Backend('s3:http://nkvm-no-such-host.invalid:9000/bucket/repo', { credentials: { accessKeyId: 'a', secretAccessKey: 's' } });
  t.teardown(() => b.close());
  const error = await t.throwsAsync(b.exists(), { instanceOf: BackendError });
  t.regex(error!.message, /^S3 endpoint http:\/\/nkvm-no-such-host.invalid:9000, bucket "bucket": cannot stat repo\/config: the server is unreachable: the host name nkvm-no-such-host.invalid does not resolve \((ENOTFOUND|EAI_AGAIN)\)/);
});

/**
 * A proxy in front of the real server: answers the first `slowDowns` requests 503 SlowDown and
 * drops the connection of the next `resets`, then forwards everything, Host header included (the
 * signature covers it).
 */
async function faultyProxy(server: S3Server, faults: { slowDowns: number; resets?: number }) {
  let seen = 0;
  const proxy = http.createServer((req, res) => {
    seen++;
    if (seen <= faults.slowDowns) {
      req.resume();
      req.on('end', () => {
        res.writeHead(503, { 'content-type': 'application/xml' });
        res.end('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>');
      });
      return;
    }
    if (seen <= faults.slowDowns + (faults.resets ?? 0)) {
      req.socket.destroy();
      return;
    }
    const upstream = http.request({ host: server.host, port: server.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const port = (proxy.address() as net.AddressInfo).port;
  return {
    location: (prefix: string) => `s3:http://127.0.0.1:${port}/${server.bucket}/${prefix}`,
    endpoint: `http://127.0.0.1:${port}`,
    requests: () => seen,
    close: () => new Promise<void>((resolve) => {
      proxy.closeAllConnections();
      proxy.close(() => resolve());
    }),
  };
}

test('503 SlowDown and dropped connections are retried with backoff, and the request succeeds', async (t) => {
  const { server } = t.context;
  const proxy = await faultyProxy(server, { slowDowns: 3, resets: 1 });
  t.teardown(proxy.close);
  const b = new S3Backend(proxy.location('retried'), { env: server.env, retries: 4, retryBaseDelayMs: 20 });
  t.teardown(() => b.close());
  const id = hexId();
  const data = randomBytes(5000);
  await b.write('data', id, data);
  t.is(proxy.requests(), 5, '3 throttled, 1 dropped, 1 through');
  t.deepEqual(await b.read('data', id), data);
});

test('throttling that does not stop gives up with the throttled message', async (t) => {
  const { server } = t.context;
  const proxy = await faultyProxy(server, { slowDowns: 1000 });
  t.teardown(proxy.close);
  const b = new S3Backend(proxy.location('throttled'), { env: server.env, retries: 3, retryBaseDelayMs: 10 });
  t.teardown(() => b.close());
  const id = hexId();
  const error = await t.throwsAsync(b.write('index', id, Buffer.from('x')), { instanceOf: S3BackendError });
  t.like(error, { reason: 'throttled', status: 503, s3Code: 'SlowDown' });
  t.is(
    error!.message,
    `S3 endpoint ${proxy.endpoint}, bucket "${server.bucket}": cannot write throttled/index/${id}: the server is throttling requests (HTTP 503 SlowDown: "Please reduce your request rate.") and still was after 3 retries; lower the number of parallel requests or try again later`,
  );
  t.is(proxy.requests(), 4, 'one attempt and 3 retries');
});

test('a PUT whose answer was lost is not reported as an overwrite when it is retried', async (t) => {
  const { server } = t.context;
  // The proxy forwards the first PUT but drops its answer; the retry then meets its own object.
  let puts = 0;
  const proxy = http.createServer((req, res) => {
    const upstream = http.request({ host: server.host, port: server.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      if (req.method === 'PUT' && ++puts === 1) {
        answer.resume();
        answer.on('end', () => req.socket.destroy());
        return;
      }
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    proxy.closeAllConnections();
    proxy.close(() => resolve());
  }));
  const port = (proxy.address() as net.AddressInfo).port;
  const b = new S3Backend(`s3:http://127.0.0.1:${port}/${server.bucket}/lost-answer`, { env: server.env, retries: 2, retryBaseDelayMs: 10 });
  t.teardown(() => b.close());
  const id = hexId();
  const data = randomBytes(3000);
  await b.write('snapshots', id, data);
  t.is(puts, 2);
  t.deepEqual(await b.read('snapshots', id), data);
  // A different file under the same name is still refused.
  await t.throwsAsync(b.write('snapshots', id, randomBytes(3000)), { instanceOf: BackendError, message: /already exists/ });
});

test('a body altered on the way is refused by the server (the payload is signed) and sent again', async (t) => {
  const { server } = t.context;
  // Flips one byte of the first `corrupt` PUT bodies it forwards.
  const corruptingProxy = async (corrupt: number) => {
    let puts = 0;
    const proxy = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        if (req.method === 'PUT' && ++puts <= corrupt && body.length > 0) body[body.length >> 1]! ^= 0x01;
        const upstream = http.request({ host: server.host, port: server.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        });
        upstream.end(body);
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => {
      proxy.closeAllConnections();
      proxy.close(() => resolve());
    }));
    return { port: (proxy.address() as net.AddressInfo).port, puts: () => puts };
  };
  const once = await corruptingProxy(1);
  const b = new S3Backend(`s3:http://127.0.0.1:${once.port}/${server.bucket}/altered`, { env: server.env, retries: 2, retryBaseDelayMs: 10 });
  t.teardown(() => b.close());
  const id = hexId();
  const data = randomBytes(4096);
  await b.write('data', id, data);
  t.is(once.puts(), 2);
  t.deepEqual(fs.readFileSync(path.join(server.root, server.bucket, 'altered', 'data', id.slice(0, 2), id)), data, 'the good copy is stored');

  const always = await corruptingProxy(1000);
  const c = new S3Backend(`s3:http://127.0.0.1:${always.port}/${server.bucket}/altered`, { env: server.env, retries: 2, retryBaseDelayMs: 10 });
  t.teardown(() => c.close());
  const other = hexId();
  const error = await t.throwsAsync(c.write('data', other, data), { instanceOf: S3BackendError });
  t.like(error, { reason: 'integrity', s3Code: 'XAmzContentSHA256Mismatch' });
  t.regex(error!.message, /the bytes the server received differ from those sent \(HTTP 400 XAmzContentSHA256Mismatch\) every time, after 2 retries; something between here and the server alters them/);
  t.false(fs.existsSync(path.join(server.root, server.bucket, 'altered', 'data', other.slice(0, 2), other)), 'nothing altered was stored');
});

test('https with a self-signed certificate: refused with the --cacert hint, trusted with --cacert', async (t) => {
  const server = await startS3Server({ tls: true });
  t.teardown(() => server.dispose());
  t.true(server.endpoint.startsWith('https://127.0.0.1:'));
  const untrusting = backend(t, server, 'tls');
  const error = await t.throwsAsync(untrusting.exists(), { instanceOf: S3BackendError });
  t.is(error!.reason, 'tls');
  t.regex(
    error!.message,
    new RegExp(`^S3 endpoint ${server.endpoint}, bucket "${server.bucket}": cannot stat tls/config: the server's TLS certificate is not trusted \\((DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)[^)]*\\); if the endpoint uses a self-signed or private CA, pass its certificate with --cacert FILE$`),
  );
  const trusting = backend(t, server, 'tls', { caCertFile: server.caCertFile! });
  await trusting.create();
  await trusting.write('config', 'config', Buffer.from('over tls'));
  t.deepEqual(await trusting.read('config', 'config'), Buffer.from('over tls'));
  // Plain http against the https port says what is wrong rather than hanging.
  const plain = new S3Backend(server.location('tls').replace('https:', 'http:'), { env: server.env, retries: 0 });
  t.teardown(() => plain.close());
  const plainError = await t.throwsAsync(plain.exists(), { instanceOf: S3BackendError });
  // versitygw closes a plain-http connection to its TLS port without answering.
  t.is(plainError!.reason, 'unreachable');
  t.regex(plainError!.message, new RegExp(`^S3 endpoint http://127.0.0.1:${server.port}, bucket "${server.bucket}": cannot stat tls/config: the connection failed .*\\(if the endpoint speaks https, write s3:https://\\.\\.\\.\\)$`));
  // And https against a plain-http server says the endpoint may speak http.
  const { server: httpServer } = t.context;
  const tlsToPlain = new S3Backend(httpServer.location('x').replace('http:', 'https:'), { env: httpServer.env, retries: 0 });
  t.teardown(() => tlsToPlain.close());
  const tlsError = await t.throwsAsync(tlsToPlain.exists(), { instanceOf: S3BackendError });
  t.is(tlsError!.reason, 'tls');
  t.regex(tlsError!.message, /the TLS handshake failed \(.*\); does the endpoint speak plain http\? then write s3:http:\/\/\.\.\.$/);
});

test('a server bound to another address of this machine (as pods reach the node), over https; and IPv6', async (t) => {
  const address = Object.values(os.networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
  if (!address) {
    t.log('no non-loopback IPv4 address here; only IPv6 loopback is tried');
  } else {
    const server = await startS3Server({ host: address, tls: true });
    t.teardown(() => server.dispose());
    t.is(server.endpoint, `https://${address}:${server.port}`);
    const b = backend(t, server, 'bound', { caCertFile: server.caCertFile! });
    await b.write('config', 'config', Buffer.from('bound'));
    t.deepEqual(await b.read('config', 'config'), Buffer.from('bound'));
  }
  const v6 = await startS3Server({ host: '::1' });
  t.teardown(() => v6.dispose());
  t.is(v6.endpoint, `http://[::1]:${v6.port}`);
  const b6 = backend(t, v6, 'six');
  await b6.write('keys', 'ab'.repeat(32), Buffer.from('over IPv6'));
  t.deepEqual(await collect(b6.list('keys')), [{ name: 'ab'.repeat(32), size: 9 }]);
});

function restic(server: S3Server, args: string[], env: Record<string, string> = {}) {
  return execa(findRestic(), ['--no-cache', ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: os.tmpdir(), RESTIC_PASSWORD: 'nkvm-test-password', ...server.env, ...env },
    extendEnv: false,
    timeout: 5 * 60_000,
  });
}

/** Every file of a restic repository on disk, as (type, name, bytes). */
function localRepositoryFiles(dir: string): { type: FileType; name: string; path: string }[] {
  const out: { type: FileType; name: string; path: string }[] = [{ type: 'config', name: 'config', path: path.join(dir, 'config') }];
  // Over S3 a directory exists only while a file is in it.
  const entries = (...parts: string[]) => (fs.existsSync(path.join(dir, ...parts)) ? fs.readdirSync(path.join(dir, ...parts)) : []);
  for (const type of ['keys', 'locks', 'snapshots', 'index'] as const) {
    for (const name of entries(type)) out.push({ type, name, path: path.join(dir, type, name) });
  }
  for (const sub of entries('data')) {
    for (const name of entries('data', sub)) out.push({ type: 'data', name, path: path.join(dir, 'data', sub, name) });
  }
  return out;
}

function seedDirectory(dir: string): void {
  fs.mkdirSync(path.join(dir, 'sub', 'deeper'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'random.bin'), randomBytes(1536 * 1024));
  fs.writeFileSync(path.join(dir, 'sub', 'text.txt'), 'hello from nkvm\n'.repeat(1000));
  for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(dir, 'sub', 'deeper', `f${i}`), randomBytes(100 + i));
}

test('oracle: what restic writes over S3 we list and read byte for byte', async (t) => {
  t.timeout(5 * 60_000);
  const { server, work } = t.context;
  const prefix = uniquePrefix('restic-made');
  const init = await restic(server, ['-r', server.location(prefix), 'init']);
  t.regex(init.stdout, /created restic repository/);
  const b = backend(t, server, prefix);
  const onDisk = path.join(server.root, server.bucket, prefix);
  // Right after init: exactly restic's one key and its config, nothing else.
  const [key] = fs.readdirSync(path.join(onDisk, 'keys'));
  t.deepEqual(await collect(b.list('keys')), [{ name: key!, size: fs.statSync(path.join(onDisk, 'keys', key!)).size }]);
  t.deepEqual(await collect(b.list('config')), [{ name: 'config', size: fs.statSync(path.join(onDisk, 'config')).size }]);
  for (const type of ['locks', 'snapshots', 'index', 'data'] as const) t.deepEqual(await collect(b.list(type)), [], type);
  t.deepEqual(await b.read('config', 'config'), fs.readFileSync(path.join(onDisk, 'config')));
  t.deepEqual(await b.read('keys', key!), fs.readFileSync(path.join(onDisk, 'keys', key!)));

  const source = path.join(work, 'source-a');
  seedDirectory(source);
  await restic(server, ['-r', server.location(prefix), 'backup', source]);

  t.true(await b.exists());
  const local = localRepositoryFiles(onDisk);
  for (const type of ['config', 'keys', 'locks', 'snapshots', 'index', 'data'] as const) {
    const expected = local
      .filter((f) => f.type === type)
      .map((f) => ({ name: f.name, size: fs.statSync(f.path).size }))
      .sort((a, c) => (a.name < c.name ? -1 : 1));
    t.deepEqual(await collect(b.list(type)), expected, type);
  }
  t.is((await collect(b.list('keys'))).length, 1);
  t.true((await collect(b.list('data'))).length >= 1);
  for (const file of local) t.deepEqual(await b.read(file.type, file.name), fs.readFileSync(file.path), `${file.type}/${file.name}`);
  const config = fs.readFileSync(path.join(onDisk, 'config'));
  t.deepEqual(await b.read('config', 'config'), config);
  t.deepEqual(await b.read('config', 'config', { offset: 1, length: config.length - 2 }), config.subarray(1, -1));
});

test('oracle: a repository copied up file by file through our backend passes restic check --read-data', async (t) => {
  t.timeout(5 * 60_000);
  const { server, work } = t.context;
  const localRepo = path.join(work, 'local-repo');
  const source = path.join(work, 'source-b');
  seedDirectory(source);
  await restic(server, ['-r', localRepo, 'init']);
  await restic(server, ['-r', localRepo, 'backup', source]);
  const prefix = uniquePrefix('copied');
  const b = backend(t, server, prefix);
  await b.create();
  const files = localRepositoryFiles(localRepo);
  for (const file of files) await b.write(file.type, file.name, fs.readFileSync(file.path));
  t.true(files.some((f) => f.type === 'data'));
  const check = await restic(server, ['-r', server.location(prefix), 'check', '--read-data'], {});
  t.is(check.exitCode, 0);
  t.regex(check.stdout, /no errors were found/);
  const snapshots = JSON.parse((await restic(server, ['-r', server.location(prefix), 'snapshots', '--json'])).stdout) as { paths: string[] }[];
  t.deepEqual(snapshots.map((s) => s.paths), [[source]]);
  // restic writes beside what we wrote: its lock files landed where we list them, and went again.
  t.deepEqual(await collect(b.list('locks')), []);
});

/** Every regular file under a directory: relative path -> SHA-256. */
function fileDigests(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) out[path.relative(root, full)] = createHash('sha256').update(fs.readFileSync(full)).digest('hex');
    }
  };
  walk(root);
  return out;
}

test('our repository code writes into the bucket through this backend: restic check --read-data passes, restic restore gives the files back', async (t) => {
  t.timeout(5 * 60_000);
  const { server, work } = t.context;
  const source = path.join(work, 'source-ours');
  seedDirectory(source);
  const prefix = uniquePrefix('ours');
  const b = backend(t, server, prefix);
  const repo = await Repository.init(b, 'nkvm-test-password');
  const tar = spawn('tar', ['-c', '-f', '-', '-C', source, '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const result = await archiveTar(repo, tar.stdout, { path: '/data/claim', hostname: 'shop' });
  t.truthy(result.snapshotId);

  const check = await restic(server, ['-r', server.location(prefix), 'check', '--read-data']);
  t.regex(check.stdout, /no errors were found/);
  const restored = path.join(work, 'restored-ours');
  await restic(server, ['-r', server.location(prefix), 'restore', 'latest', '--target', restored]);
  t.deepEqual(fileDigests(path.join(restored, 'data', 'claim')), fileDigests(source));
});

test('an S3 endpoint on a bad port (which fetch refuses; the backend uses undici\'s Agent.request): our repository code writes there, restic checks and restores it', async (t) => {
  t.timeout(5 * 60_000);
  const { work } = t.context;
  // A server of its own on the first free port of the Fetch standard's "bad ports" list.
  const free = (port: number) => new Promise<boolean>((resolve) => {
    const probe = net.createServer().once('error', () => resolve(false)).listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
  const candidates = [6666, 6667, 6668, 6665, 6669];
  const freeness = await Promise.all(candidates.map(free));
  const port = candidates.find((_, i) => freeness[i]);
  if (port === undefined) return t.fail('every bad port tried is in use');
  const server = await startS3Server({ port });
  t.teardown(() => server.dispose());
  t.is(server.endpoint, `http://127.0.0.1:${port}`);
  const source = path.join(work, 'source-bad-port');
  seedDirectory(source);
  const repo = await Repository.init(backend(t, server, 'bad-port'), 'nkvm-test-password');
  const tar = spawn('tar', ['-c', '-f', '-', '-C', source, '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.truthy((await archiveTar(repo, tar.stdout, { path: '/data/claim', hostname: 'shop' })).snapshotId);

  t.regex((await restic(server, ['-r', server.location('bad-port'), 'check', '--read-data'])).stdout, /no errors were found/);
  const restored = path.join(work, 'restored-bad-port');
  await restic(server, ['-r', server.location('bad-port'), 'restore', 'latest', '--target', restored]);
  t.deepEqual(fileDigests(path.join(restored, 'data', 'claim')), fileDigests(source));
});

test('a restic backup into the bucket is restored by our repository code through this backend', async (t) => {
  t.timeout(5 * 60_000);
  const { server, work } = t.context;
  const source = path.join(work, 'source-theirs');
  seedDirectory(source);
  const prefix = uniquePrefix('theirs');
  await restic(server, ['-r', server.location(prefix), 'init']);
  await restic(server, ['-r', server.location(prefix), 'backup', '--host', 'shop', source]);
  const repo = await Repository.open(backend(t, server, prefix), 'nkvm-test-password');
  const [snapshot] = JSON.parse((await restic(server, ['-r', server.location(prefix), 'snapshots', '--json'])).stdout) as { id: string }[];
  const target = path.join(work, 'extracted-theirs');
  fs.mkdirSync(target);
  const tar = spawn('tar', ['-x', '-f', '-', '-C', target], { stdio: ['pipe', 'inherit', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => tar.on('close', resolve));
  await pipeline(restoreTar(repo, await repo.findSnapshot(snapshot!.id)), tar.stdin);
  t.is(await exited, 0);
  // The tar holds the backed-up directory's contents, not the absolute path restic recorded.
  t.deepEqual(fileDigests(target), fileDigests(source));
});
