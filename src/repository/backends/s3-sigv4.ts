/**
 * AWS Signature Version 4 for S3 requests in the Authorization header, over node:crypto.
 * The algorithm: AWS "Signature Version 4 signing process" and the S3 variant ("Authenticating
 * Requests: Using the Authorization Header"). S3 differs from other services in two ways that
 * matter here: the path is URI-encoded once (not twice), and x-amz-content-sha256 is a signed header.
 */
import { createHash, createHmac } from 'node:crypto';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  /** Temporary credentials (STS) also carry a token, sent as x-amz-security-token. */
  sessionToken?: string;
}

export const EMPTY_PAYLOAD_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';

export interface SignInput {
  method: string;
  /** host[:port], exactly as sent in the Host header. */
  host: string;
  /** The path as sent on the wire, already URI-encoded (see encodeKeyPath). */
  path: string;
  /** Query parameters, unencoded; a parameter with no value is ''. */
  query?: Record<string, string>;
  /** Headers to sign besides host, x-amz-date, x-amz-content-sha256 and x-amz-security-token. */
  headers?: Record<string, string>;
  /** Hex SHA-256 of the body, or UNSIGNED_PAYLOAD. */
  payloadHash: string;
  region: string;
  service?: string;
  credentials: S3Credentials;
  now: Date;
  /**
   * Whether to add x-amz-content-sha256 (S3 requires it; AWS's generic test suite has none).
   * Default true.
   */
  contentSha256Header?: boolean;
}

export interface Signed {
  /** The headers to send: the caller's, host, x-amz-date, x-amz-content-sha256, authorization. */
  headers: Record<string, string>;
  canonicalRequest: string;
  stringToSign: string;
  signature: string;
}

/** RFC 3986 unreserved characters stay; every other byte of the UTF-8 form is %XX (upper case). */
export function uriEncode(value: string, keepSlash: boolean): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const c = String.fromCharCode(byte);
    if ((byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) || c === '-' || c === '.' || c === '_' || c === '~' || (keepSlash && c === '/')) {
      out += c;
    } else {
      out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    }
  }
  return out;
}

/** The path-style request path of an object, /bucket/key, each part encoded once, slashes kept; /bucket for the bucket. */
export function encodeKeyPath(bucket: string, key: string): string {
  return `/${uriEncode(bucket, false)}${key === '' ? '' : `/${uriEncode(key, true)}`}`;
}

/** The canonical query string; also what goes on the wire, so both agree byte for byte. */
export function canonicalQueryString(query: Record<string, string> = {}): string {
  return Object.entries(query)
    .map(([k, v]) => [uriEncode(k, false), uriEncode(v, false)] as const)
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

/** 20130524T000000Z */
export function amzDate(now: Date): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

function signingKey(secret: string, day: string, region: string, service: string): Buffer {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, day), region), service), 'aws4_request');
}

export function sign(input: SignInput): Signed {
  const service = input.service ?? 's3';
  const date = amzDate(input.now);
  const day = date.slice(0, 8);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(input.headers ?? {})) headers[name.toLowerCase()] = value;
  headers.host = input.host;
  headers['x-amz-date'] = date;
  if (input.contentSha256Header !== false) headers['x-amz-content-sha256'] = input.payloadHash;
  if (input.credentials.sessionToken) headers['x-amz-security-token'] = input.credentials.sessionToken;

  const names = Object.keys(headers).sort();
  const canonicalHeaders = names.map((n) => `${n}:${headers[n]!.trim().replace(/ +/g, ' ')}\n`).join('');
  const signedHeaders = names.join(';');
  const canonicalRequest = [
    input.method.toUpperCase(),
    input.path,
    canonicalQueryString(input.query),
    canonicalHeaders,
    signedHeaders,
    input.payloadHash,
  ].join('\n');
  const scope = `${day}/${input.region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', date, scope, sha256Hex(canonicalRequest)].join('\n');
  const signature = createHmac('sha256', signingKey(input.credentials.secretAccessKey, day, input.region, service))
    .update(stringToSign, 'utf8')
    .digest('hex');
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${input.credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return { headers, canonicalRequest, stringToSign, signature };
}
