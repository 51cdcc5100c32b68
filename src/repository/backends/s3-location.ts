/**
 * An S3 repository location as restic writes it, and the error every S3 failure is: apart from the
 * backend (s3.ts) so that checking flags needs none of the HTTP client.
 */
import path from 'node:path';
import { BackendError } from './backend.ts';

export interface S3Location {
  /** 'http' only when the location says so (tests, a server on a trusted network). */
  scheme: 'http' | 'https';
  /** host[:port], as it goes in the Host header. */
  host: string;
  bucket: string;
  /** Where the repository starts inside the bucket ('' for the bucket's root), cleaned like a path. */
  prefix: string;
}

/**
 * Parses a location as restic's s3 backend does (internal/backend/s3/config.go):
 *   s3:https://HOST[:PORT]/BUCKET[/PREFIX]   s3:http://...   (a URL: host, then bucket and prefix)
 *   s3:HOST/BUCKET[/PREFIX]   s3://HOST/BUCKET[/PREFIX]     (https)
 * The prefix is cleaned like Go's path.Clean.
 */
export function parseS3Location(location: string): S3Location {
  const bad = (why: string): never => {
    throw new S3BackendError(`invalid S3 repository location "${location}": ${why}; expected s3:https://HOST[:PORT]/BUCKET[/PREFIX]`, 'configuration');
  };
  let scheme: 'http' | 'https' = 'https';
  let host: string;
  let rest: string;
  if (location.startsWith('s3:http')) {
    let url: URL;
    try {
      url = new URL(location.slice(3));
    } catch {
      return bad('not a URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return bad(`unknown scheme "${url.protocol}"`);
    if (url.search || url.hash || url.username || url.password) return bad('a query, fragment or user in the URL is not supported');
    scheme = url.protocol === 'http:' ? 'http' : 'https';
    host = url.host;
    if (url.pathname === '' || url.pathname === '/') return bad('no bucket name');
    try {
      rest = decodeURIComponent(url.pathname.slice(1));
    } catch {
      return bad('malformed percent-encoding in the path');
    }
  } else {
    let s: string;
    if (location.startsWith('s3://')) s = location.slice(5);
    else if (location.startsWith('s3:')) s = location.slice(3);
    else return bad('it does not start with "s3:"');
    const slash = s.indexOf('/');
    host = slash === -1 ? s : s.slice(0, slash);
    rest = slash === -1 ? '' : s.slice(slash + 1);
  }
  const slash = rest.indexOf('/');
  const bucket = slash === -1 ? rest : rest.slice(0, slash);
  const rawPrefix = slash === -1 ? '' : rest.slice(slash + 1);
  if (host === '') return bad('no host');
  if (bucket === '') return bad('no bucket name');
  let prefix = rawPrefix === '' ? '' : path.posix.normalize(rawPrefix);
  if (prefix.length > 1 && prefix.endsWith('/')) prefix = prefix.slice(0, -1);
  if (prefix === '.') prefix = '';
  return { scheme, host, bucket, prefix };
}

/**
 * What went wrong, for whoever maps failures to exit codes: 'unreachable' (refused, unknown host,
 * timeouts, dropped), 'tls' (certificate not trusted or not for this host), 'authentication' (key ID,
 * secret, token or clock), 'permission' (AccessDenied), 'no-such-bucket', 'configuration' (region,
 * redirect), 'throttled' (retries exhausted), 'server' (5xx and anything else it answered),
 * 'integrity' (the server received other bytes than were sent, every time),
 * 'exists' (a refused overwrite), 'short-file' (a range past the end), 'protocol' (an answer that
 * is not S3's).
 */
export type S3FailureReason =
  | 'unreachable' | 'tls' | 'authentication' | 'permission' | 'no-such-bucket' | 'configuration'
  | 'throttled' | 'server' | 'integrity' | 'exists' | 'short-file' | 'protocol' | 'unknown';

/** A BackendError with the reason, and the HTTP status and S3 error code when the server answered. */
export class S3BackendError extends BackendError {
  readonly reason: S3FailureReason;
  readonly status: number | undefined;
  readonly s3Code: string | undefined;
  constructor(message: string, reason: S3FailureReason, options: { cause?: unknown; status?: number; s3Code?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.reason = reason;
    this.status = options.status;
    this.s3Code = options.s3Code;
  }
}

/** Whether a repository location names an S3 bucket (restic's "s3:" locations) rather than a directory. */
export function isS3Location(location: string): boolean {
  return location.startsWith('s3:');
}
