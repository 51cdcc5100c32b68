/**
 * A repository in an S3 bucket, laid out as restic lays it out (repositoryPath under the prefix),
 * spoken to with path-style requests signed with AWS Signature Version 4 (s3-sigv4.ts) over one
 * keep-alive undici Agent.
 *
 * Payloads are signed with their real SHA-256, not UNSIGNED-PAYLOAD: the data is in memory anyway,
 * hashing costs little beside the network, and the server then checks every byte it stores against
 * the signature, which on a plain-http endpoint is the only integrity check the upload has.
 *
 * Every failure is a BackendError naming the endpoint and bucket and the cause in words a user can
 * act on; a missing file is a BackendNotFoundError.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { Agent, type Dispatcher } from 'undici';
import { type Backend, BackendError, BackendNotFoundError, type FileInfo, type FileType, repositoryPath } from './backend.ts';
import { EMPTY_PAYLOAD_SHA256, encodeKeyPath, canonicalQueryString, type S3Credentials, sha256Hex, sign } from './s3-sigv4.ts';
import { parseErrorDocument, parseListObjectsV2, type S3ErrorDocument, XmlError } from './s3-xml.ts';
import { parseS3Location, S3BackendError, type S3FailureReason, type S3Location } from './s3-location.ts';

export interface S3BackendOptions {
  /**
   * A PEM file of CA certificates to trust besides the public roots Node carries (a self-signed or
   * private endpoint). The operating system's store is not read: that costs ~150 ms at start.
   */
  caCertFile?: string;
  /** Where AWS_* come from; process.env by default. */
  env?: NodeJS.ProcessEnv;
  /** Instead of AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN. */
  credentials?: S3Credentials;
  /** Instead of AWS_DEFAULT_REGION (default us-east-1). */
  region?: string;
  /** Retries after the first attempt for throttling, 5xx and dropped connections. Default 6. */
  retries?: number;
  /** First backoff delay; it doubles each retry (with jitter), capped by maxRetryDelayMs. Default 250. */
  retryBaseDelayMs?: number;
  maxRetryDelayMs?: number;
  /** Connections kept to the endpoint, as restic's default. Default 5. */
  connections?: number;
  /** Keys per ListObjectsV2 page (S3's maximum and default is 1000). */
  listPageSize?: number;
  /** Waiting for a connection, for response headers, between body chunks. */
  connectTimeoutMs?: number;
  responseTimeoutMs?: number;
}

interface Attempted {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** An operation's description for messages: "read data/ab/abcd…". */
interface Op {
  verb: string;
  key?: string;
}

const RETRYABLE_STATUS = new Set([500, 502, 503, 504]);
const THROTTLE_CODES = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequests', 'TooManyRequestsException']);
/** The body arrived other than it was sent (the signed SHA-256 or Content-MD5 says so): send it again. */
const CORRUPTION_CODES = new Set(['XAmzContentSHA256Mismatch', 'BadDigest']);
const RETRYABLE_CODES = new Set([...THROTTLE_CODES, ...CORRUPTION_CODES, 'RequestTimeout', 'InternalError', 'ServiceUnavailable', 'ConditionalRequestConflict', 'OperationAborted']);
/** Network failures worth another attempt: the connection went away or never answered in time. */
const RETRYABLE_NETWORK = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN',
  'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);
const TLS_TRUST_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'CERT_UNTRUSTED', 'CERT_SIGNATURE_FAILURE',
]);

/** An error undici or the socket raised, with its code found on it or on its cause. */
function networkCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR' && !code.startsWith('ERR_INVALID')) {
      // undici wraps socket errors; prefer the innermost system code when there is one.
      const inner = (e as { cause?: { code?: unknown } }).cause?.code;
      if (typeof inner === 'string' && /^E[A-Z]+$/.test(inner)) return inner;
      return code;
    }
  }
  return undefined;
}

function errorText(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const message = (e as { message?: unknown }).message;
    // OpenSSL's messages carry its error queue: keep the reason ("wrong version number").
    const clean = typeof message === 'string' ? (/:SSL routines:[^:]*:([^:]+):/.exec(message)?.[1] ?? message).replace(/\s+/g, ' ').trim() : '';
    if (clean && !parts.includes(clean)) parts.push(clean);
  }
  return parts.join(': ') || String(error);
}

class NetworkFailure {
  readonly error: unknown;
  readonly code: string | undefined;
  constructor(error: unknown) {
    this.error = error;
    this.code = networkCode(error);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class S3Backend implements Backend {
  readonly location: string;
  readonly endpoint: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly region: string;
  private readonly host: string;
  private readonly origin: string;
  private readonly credentials: S3Credentials;
  private readonly agent: Agent;
  private readonly retries: number;
  private readonly retryBaseDelayMs: number;
  private readonly maxRetryDelayMs: number;
  private readonly listPageSize: number;
  private readonly responseTimeoutMs: number;
  private readonly caCertFile: string | undefined;
  /** Cleared when the server answers If-None-Match with 501: then a HEAD guards each write. */
  private conditionalWrites = true;

  constructor(location: string, options: S3BackendOptions = {}) {
    const parsed = parseS3Location(location);
    const env = options.env ?? process.env;
    this.location = location;
    this.bucket = parsed.bucket;
    this.prefix = parsed.prefix;
    this.host = parsed.host;
    this.origin = `${parsed.scheme}://${parsed.host}`;
    this.endpoint = this.origin;
    this.region = options.region ?? (env.AWS_DEFAULT_REGION || 'us-east-1');
    const credentials = options.credentials ?? credentialsFromEnv(env);
    if (!credentials) {
      throw new S3BackendError(
        `no credentials for S3 endpoint ${this.origin} (bucket "${this.bucket}"): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`,
        'authentication',
      );
    }
    this.credentials = credentials;
    this.retries = options.retries ?? 6;
    this.retryBaseDelayMs = options.retryBaseDelayMs ?? 250;
    this.maxRetryDelayMs = options.maxRetryDelayMs ?? 10_000;
    this.listPageSize = options.listPageSize ?? 1000;
    this.responseTimeoutMs = options.responseTimeoutMs ?? 120_000;
    this.caCertFile = options.caCertFile;
    let ca: string[] | undefined;
    if (options.caCertFile) {
      let pem: string;
      try {
        pem = fs.readFileSync(options.caCertFile, 'utf8');
      } catch (error) {
        throw new S3BackendError(`cannot read the CA certificate file ${options.caCertFile} (--cacert): ${(error as Error).message}`, 'configuration', { cause: error });
      }
      if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
        throw new S3BackendError(`${options.caCertFile} (--cacert) holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`, 'configuration');
      }
      // Node's `ca` replaces the system's roots; restic's --cacert adds to them.
      ca = [...tls.rootCertificates, pem];
    }
    this.agent = new Agent({
      connections: options.connections ?? 5,
      keepAliveTimeout: 30_000,
      connect: { timeout: options.connectTimeoutMs ?? 15_000, ...(ca ? { ca } : {}) },
      headersTimeout: this.responseTimeoutMs,
      bodyTimeout: this.responseTimeoutMs,
    });
  }

  /** Closes the kept-alive connections. */
  async close(): Promise<void> {
    await this.agent.close();
  }

  /** The object key of a repository file. */
  key(type: FileType, name: string): string {
    checkName(type, name);
    // Go's path.Join, as restic joins them: no prefix means the bucket's root.
    return path.posix.join(this.prefix, repositoryPath(type, name));
  }

  private where(): string {
    return `S3 endpoint ${this.origin}, bucket "${this.bucket}"`;
  }

  async exists(): Promise<boolean> {
    try {
      await this.stat('config', 'config');
      return true;
    } catch (error) {
      if (error instanceof BackendNotFoundError) return false;
      throw error;
    }
  }

  async create(): Promise<void> {
    // A listing, not HEAD bucket: its error body says why (HEAD answers carry no body).
    await this.listPage({ verb: 'list the bucket' }, this.prefix === '' ? '' : `${this.prefix}/`, undefined, undefined, 1);
  }

  async write(type: FileType, name: string, data: Uint8Array): Promise<void> {
    const key = this.key(type, name);
    const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const payloadHash = sha256Hex(body);
    const op = { verb: 'write', key };
    const mayOverwrite = type === 'locks';
    if (!mayOverwrite && !this.conditionalWrites && (await this.head(key, op)) !== undefined) {
      throw this.refusedOverwrite(type, name, key);
    }
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (!mayOverwrite && this.conditionalWrites) headers['if-none-match'] = '*';
    const expected = !mayOverwrite && this.conditionalWrites ? [200, 412, 501] : [200];
    const response = await this.send(op, { method: 'PUT', key, headers, body, payloadHash }, expected, async (attempt, res) => {
      // A PUT retried after its answer was lost may find its own first attempt: same bytes, same ETag.
      if (res.status === 412 && attempt > 0) {
        const etag = await this.headEtag(key, op);
        if (etag !== undefined && etag === createHash('md5').update(body).digest('hex')) return { ...res, status: 200 };
      }
      return res;
    });
    if (response.status === 412) throw this.refusedOverwrite(type, name, key);
    if (response.status === 501) {
      // Conditional writes unsupported (older S3-compatible servers): check first, then write.
      this.conditionalWrites = false;
      await this.write(type, name, data);
    }
  }

  private refusedOverwrite(type: FileType, name: string, key: string): BackendError {
    return new S3BackendError(`${this.where()}: refusing to overwrite ${type === 'config' ? 'config' : `${type}/${name}`} (key "${key}"): it already exists`, 'exists');
  }

  async read(type: FileType, name: string, range?: { offset: number; length: number }): Promise<Buffer> {
    const key = this.key(type, name);
    const op = { verb: 'read', key };
    const headers: Record<string, string> = {};
    if (range) {
      if (!Number.isSafeInteger(range.offset) || !Number.isSafeInteger(range.length) || range.offset < 0 || range.length < 0) {
        throw new RangeError(`invalid range offset ${range.offset} length ${range.length}`);
      }
      if (range.length === 0) {
        await this.stat(type, name);
        return Buffer.alloc(0);
      }
      headers.range = `bytes=${range.offset}-${range.offset + range.length - 1}`;
    }
    const response = await this.send(op, { method: 'GET', key, headers }, [200, 206, 404, 416]);
    if (response.status === 404) throw await this.notFound(type, name, key, response);
    if (response.status === 416) {
      throw new S3BackendError(`${this.where()}: cannot read ${range!.length} bytes at offset ${range!.offset} of ${key}: the range is beyond the end of the file`, 'short-file');
    }
    let body = response.body;
    // A server that ignores Range sends the whole file; one that honours it must say which bytes.
    if (range && response.status === 200) body = body.subarray(range.offset, range.offset + range.length);
    const contentRange = response.headers['content-range'];
    if (range && response.status === 206 && typeof contentRange === 'string' && !contentRange.startsWith(`bytes ${range.offset}-`)) {
      throw new S3BackendError(`${this.where()}: asked for bytes from ${range.offset} of ${key} and got "${contentRange}"`, 'protocol');
    }
    if (range && body.length !== range.length) {
      throw new S3BackendError(`${this.where()}: read ${body.length} bytes instead of ${range.length} at offset ${range.offset} of ${key}: the file is shorter`, 'short-file');
    }
    return body;
  }

  async stat(type: FileType, name: string): Promise<FileInfo> {
    const key = this.key(type, name);
    const size = await this.head(key, { verb: 'stat', key });
    if (size === undefined) throw await this.notFound(type, name, key);
    return { name, size };
  }

  async *list(type: FileType): AsyncIterable<FileInfo> {
    if (type === 'config') {
      if (await this.exists()) yield await this.stat('config', 'config');
      return;
    }
    const dir = `${path.posix.join(this.prefix, type)}/`;
    // data/ has one level of subdirectories; the other types none, so a delimiter keeps
    // whatever else lies below them (restic lists them the same way) out of the answer.
    const delimiter = type === 'data' ? undefined : '/';
    let token: string | undefined;
    const seenTokens = new Set<string>();
    do {
      const page = await this.listPage({ verb: `list ${dir}` }, dir, delimiter, token, this.listPageSize);
      for (const object of page.objects) {
        if (!object.key.startsWith(dir) || object.key.endsWith('/')) continue;
        const name = object.key.slice(object.key.lastIndexOf('/') + 1);
        if (name === '') continue;
        yield { name, size: object.size };
      }
      if (page.isTruncated) {
        token = page.nextContinuationToken;
        if (token === undefined) throw new S3BackendError(`${this.where()}: listing ${dir} was cut short without a continuation token (a server bug)`, 'protocol');
        if (seenTokens.has(token)) throw new S3BackendError(`${this.where()}: listing ${dir} repeats continuation token "${token}" (a server bug)`, 'protocol');
        seenTokens.add(token);
      } else {
        token = undefined;
      }
    } while (token !== undefined);
  }

  async remove(type: FileType, name: string): Promise<void> {
    const key = this.key(type, name);
    const op = { verb: 'remove', key };
    const response = await this.send(op, { method: 'DELETE', key }, [200, 204, 404]);
    if (response.status === 404) {
      const error = parseErrorDocument(response.body.toString('utf8'));
      if (error?.code === 'NoSuchBucket') throw this.describe(op, response, error);
    }
  }


  private async listPage(op: Op, prefix: string, delimiter: string | undefined, token: string | undefined, maxKeys: number) {
    const query: Record<string, string> = { 'list-type': '2', prefix, 'max-keys': String(maxKeys) };
    if (delimiter) query.delimiter = delimiter;
    if (token !== undefined) query['continuation-token'] = token;
    const response = await this.send(op, { method: 'GET', key: undefined, query }, [200]);
    try {
      return parseListObjectsV2(response.body.toString('utf8'));
    } catch (error) {
      if (error instanceof XmlError) {
        throw new S3BackendError(`${this.where()}: cannot ${op.verb}: the server's answer is not a ListObjectsV2 result (${error.message})`, 'protocol', { cause: error });
      }
      throw error;
    }
  }

  /** The object's size, or undefined when it does not exist. */
  private async head(key: string, op: Op): Promise<number | undefined> {
    const response = await this.send(op, { method: 'HEAD', key }, [200, 404]);
    if (response.status === 404) return undefined;
    return contentLength(response, this.where(), key);
  }

  private async headEtag(key: string, op: Op): Promise<string | undefined> {
    const response = await this.send(op, { method: 'HEAD', key }, [200, 404]);
    const etag = response.headers.etag;
    return response.status === 200 && typeof etag === 'string' ? etag.replace(/"/g, '').toLowerCase() : undefined;
  }

  /**
   * A 404 for an object: not found, unless the bucket itself is missing. HEAD answers have no body,
   * so a missing bucket is told apart by a listing, whose error body names it.
   */
  private async notFound(type: FileType, name: string, key: string, response?: Attempted): Promise<Error> {
    const op = { verb: response ? 'read' : 'stat', key };
    const known = response ? parseErrorDocument(response.body.toString('utf8')) : undefined;
    if (known?.code === 'NoSuchBucket') return this.describe(op, response!, known);
    if (!known) await this.listPage(op, key, undefined, undefined, 1);
    return new BackendNotFoundError(this.location, type, name);
  }

  /**
   * One request, retried with backoff on throttling, 5xx and dropped connections. Returns the answer
   * when its status is one the caller handles; anything else becomes a BackendError.
   */
  private async send(
    op: Op,
    request: { method: string; key: string | undefined; query?: Record<string, string>; headers?: Record<string, string>; body?: Buffer; payloadHash?: string },
    expected: number[],
    check?: (attempt: number, response: Attempted) => Promise<Attempted>,
  ): Promise<Attempted> {
    const requestPath = encodeKeyPath(this.bucket, request.key ?? '');
    const queryString = canonicalQueryString(request.query);
    const wirePath = queryString ? `${requestPath}?${queryString}` : requestPath;
    let lastFailure: Attempted | NetworkFailure | undefined;
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      if (attempt > 0) {
        const exp = Math.min(this.maxRetryDelayMs, this.retryBaseDelayMs * 2 ** (attempt - 1));
        await sleep(exp / 2 + Math.random() * (exp / 2));
      }
      const signed = sign({
        method: request.method,
        host: this.host,
        path: requestPath,
        query: request.query ?? {},
        headers: request.headers ?? {},
        payloadHash: request.payloadHash ?? EMPTY_PAYLOAD_SHA256,
        region: this.region,
        credentials: this.credentials,
        now: new Date(),
      });
      let response: Attempted;
      try {
        const res = await this.agent.request({
          origin: this.origin,
          path: wirePath,
          method: request.method as Dispatcher.HttpMethod,
          headers: signed.headers,
          body: request.body ?? null,
        });
        // A HEAD answer's Content-Length is the object's size, with no body behind it.
        const body = request.method === 'HEAD' || res.statusCode === 204 ? (await res.body.dump(), Buffer.alloc(0)) : await readBody(res.body, res.headers['content-length']);
        response = { status: res.statusCode, headers: res.headers, body };
      } catch (error) {
        const failure = new NetworkFailure(error);
        lastFailure = failure;
        if (failure.code && RETRYABLE_NETWORK.has(failure.code)) continue;
        throw this.describeNetwork(op, failure, attempt);
      }
      if (check) response = await check(attempt, response);
      if (expected.includes(response.status)) return response;
      const error = parseErrorDocument(response.body.toString('utf8'));
      if (RETRYABLE_STATUS.has(response.status) || response.status === 429 || (error?.code && RETRYABLE_CODES.has(error.code))) {
        lastFailure = response;
        continue;
      }
      if (request.method === 'HEAD' && !error && response.status >= 400) {
        // HEAD answers carry no body to say why; a listing of the same key does (and throws).
        await this.listPage(op, request.key ?? '', undefined, undefined, 1);
      }
      throw this.describe(op, response, error);
    }
    if (lastFailure instanceof NetworkFailure) throw this.describeNetwork(op, lastFailure, this.retries);
    const error = parseErrorDocument(lastFailure!.body.toString('utf8'));
    throw this.describe(op, lastFailure!, error, this.retries);
  }

  private describeNetwork(op: Op, failure: NetworkFailure, retries: number): BackendError {
    const code = failure.code;
    const detail = errorText(failure.error);
    const after = retries > 0 ? ` (after ${retries} ${retries === 1 ? 'retry' : 'retries'})` : '';
    const what = `cannot ${op.verb}${op.key ? ` ${op.key}` : ''}`;
    let cause: string;
    let reason: S3FailureReason;
    if (code && TLS_TRUST_CODES.has(code)) {
      reason = 'tls';
      // Node adds advice about its own flags after a ';', which a user of this tool cannot follow.
      const detail = errorText(failure.error).split(';')[0]!;
      cause = `the server's TLS certificate is not trusted (${code}: ${detail}); if the endpoint uses a self-signed or private CA, pass its certificate with --cacert FILE`;
      if (this.caCertFile) cause = `the server's TLS certificate is not trusted even with --cacert ${this.caCertFile} (${code}: ${detail}); is that the CA that signed the server's certificate?`;
    } else if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
      reason = 'tls';
      cause = `the server's TLS certificate is not valid for ${this.host} (${detail}); use the host name the certificate was issued for`;
    } else if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
      reason = 'tls';
      cause = `the server's TLS certificate is expired or not yet valid (${code}); check the server's certificate and this machine's clock`;
    } else if (code === 'EPROTO' || /wrong version number|packet length too long/i.test(detail)) {
      reason = 'tls';
      cause = `the TLS handshake failed (${detail}); does the endpoint speak plain http? then write s3:http://...`;
    } else if (code === 'ECONNREFUSED') {
      reason = 'unreachable';
      cause = `the server is unreachable: connection refused${after}; check the address and port and that the S3 server is running`;
    } else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
      reason = 'unreachable';
      cause = `the server is unreachable: the host name ${this.host.replace(/:\d+$/, '')} does not resolve (${code})${after}; check the endpoint's spelling and DNS`;
    } else if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
      reason = 'unreachable';
      cause = `the server is unreachable: no connection (${code})${after}; check the address, the network and any firewall between here and the endpoint`;
    } else if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      reason = 'unreachable';
      cause = `the server stopped answering (no response in ${Math.round(this.responseTimeoutMs / 1000)} s, ${code})${after}; the server may be overloaded or hung`;
    } else if (code && RETRYABLE_NETWORK.has(code)) {
      reason = 'unreachable';
      cause = `the connection failed (${code}: ${detail})${after}; the server or the network dropped it`;
      // A TLS server closes a plain-http connection without a byte of answer.
      const bytesRead = (failure.error as { socket?: { bytesRead?: number } }).socket?.bytesRead;
      if (this.origin.startsWith('http:') && code === 'UND_ERR_SOCKET' && bytesRead === 0) cause += ` (if the endpoint speaks https, write s3:https://...)`;
    } else {
      reason = 'unknown';
      cause = `${detail}${code ? ` (${code})` : ''}`;
    }
    return new S3BackendError(`${this.where()}: ${what}: ${cause}`, reason, { cause: failure.error });
  }

  private describe(op: Op, response: Attempted, error: S3ErrorDocument | undefined, retries = 0): BackendError {
    const what = `cannot ${op.verb}${op.key ? ` ${op.key}` : ''}`;
    const code = error?.code;
    const said = error?.message ? `: "${error.message}"` : '';
    const status = `HTTP ${response.status}${code ? ` ${code}` : ''}`;
    let cause: string;
    let reason: S3FailureReason;
    if (code === 'InvalidAccessKeyId') {
      reason = 'authentication';
      cause = `the server does not know the access key ID "${this.credentials.accessKeyId}" (${status}); check AWS_ACCESS_KEY_ID`;
    } else if (code === 'SignatureDoesNotMatch') {
      reason = 'authentication';
      cause = `the access key ID "${this.credentials.accessKeyId}" is known but the signature does not match (${status}): the secret access key is likely wrong; check AWS_SECRET_ACCESS_KEY`;
    } else if (code === 'InvalidToken' || code === 'ExpiredToken' || code === 'TokenRefreshRequired') {
      reason = 'authentication';
      cause = `the session token was refused (${status}${said}); renew the temporary credentials and AWS_SESSION_TOKEN`;
    } else if (code === 'RequestTimeTooSkewed') {
      reason = 'authentication';
      cause = `this machine's clock differs too much from the server's (${status}); set the clock right`;
    } else if (code === 'AuthorizationHeaderMalformed' || code === 'IncorrectRegion') {
      reason = 'configuration';
      cause = `the server refused the region "${this.region}" (${status}${said}); set AWS_DEFAULT_REGION to the bucket's region`;
    } else if (code === 'AccessDenied' || response.status === 403) {
      reason = 'permission';
      cause = `access denied (${status}${said}): the credentials are valid for the server but not allowed to ${op.verb.split(' ')[0]} in this bucket; check the key's policy`;
    } else if (code === 'NoSuchBucket') {
      reason = 'no-such-bucket';
      cause = `the bucket "${this.bucket}" does not exist (${status}); create it or correct the repository location`;
    } else if (!error && response.body.includes('HTTP request to an HTTPS server')) {
      reason = 'configuration';
      cause = `the endpoint speaks https, not http (${status}); write the location as s3:https://...`;
    } else if (code === 'PermanentRedirect' || (response.status >= 300 && response.status < 400)) {
      reason = 'configuration';
      cause = `the server redirects elsewhere (${status}${said}); the bucket may live in another region or endpoint`;
    } else if (code && CORRUPTION_CODES.has(code)) {
      reason = 'integrity';
      cause = `the bytes the server received differ from those sent (${status})${retries > 0 ? ` every time, after ${retries} retries` : ''}; something between here and the server alters them (a proxy, faulty network hardware)`;
    } else if (retries > 0 && (response.status === 503 || response.status === 429 || (code && THROTTLE_CODES.has(code)))) {
      reason = 'throttled';
      cause = `the server is throttling requests (${status}${said}) and still was after ${retries} retries; lower the number of parallel requests or try again later`;
    } else if (retries > 0) {
      reason = 'server';
      cause = `the server kept failing (${status}${said}) after ${retries} retries; check the S3 server's health and logs`;
    } else if (code === 'NoSuchKey') {
      reason = 'server';
      cause = `the file does not exist (${status})`;
    } else {
      reason = 'server';
      cause = `the server answered ${status}${said}`;
    }
    return new S3BackendError(`${this.where()}: ${what}: ${cause}`, reason, { status: response.status, ...(code ? { s3Code: code } : {}) });
  }
}

/**
 * The whole body, into one buffer of the announced length when there is one (no second copy, so a
 * 16 MiB pack costs 16 MiB, not 32); a body that ends short or runs long is an error worth a retry.
 */
async function readBody(body: AsyncIterable<Buffer> & { arrayBuffer(): Promise<ArrayBuffer> }, length: string | string[] | undefined): Promise<Buffer> {
  const size = typeof length === 'string' && /^[0-9]+$/.test(length) ? Number(length) : NaN;
  if (!Number.isSafeInteger(size)) return Buffer.from(await body.arrayBuffer());
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for await (const chunk of body) {
    if (offset + chunk.length > size) throw Object.assign(new Error(`the body is longer than its Content-Length ${size}`), { code: 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' });
    chunk.copy(out, offset);
    offset += chunk.length;
  }
  if (offset !== size) throw Object.assign(new Error(`the body ended after ${offset} of ${size} bytes`), { code: 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' });
  return out;
}

function contentLength(response: Attempted, where: string, key: string): number {
  const value = response.headers['content-length'];
  const size = typeof value === 'string' && /^[0-9]+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(size)) throw new S3BackendError(`${where}: the server gave no valid size for ${key} (Content-Length "${String(value)}")`, 'protocol');
  return size;
}

function checkName(type: FileType, name: string): void {
  if (type === 'config') return;
  if (name === '' || name.includes('/') || name === '.' || name === '..') throw new RangeError(`invalid ${type} file name "${name}"`);
}

/** AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and, if set, AWS_SESSION_TOKEN; undefined when either key is unset. */
export function credentialsFromEnv(env: NodeJS.ProcessEnv = process.env): S3Credentials | undefined {
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) return undefined;
  return env.AWS_SESSION_TOKEN ? { accessKeyId, secretAccessKey, sessionToken: env.AWS_SESSION_TOKEN } : { accessKeyId, secretAccessKey };
}
