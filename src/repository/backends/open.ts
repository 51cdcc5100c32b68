/**
 * A repository location, as a user writes it, to its backend: `s3:...` is a bucket (s3.ts parses it
 * as restic does), `local:PATH` or any other text a directory.
 */
import type { Backend } from './backend.ts';
import { LocalBackend } from './local.ts';
import { S3Backend } from './s3.ts';
import { isS3Location } from './s3-location.ts';

export interface BackendOptions {
  /** A PEM file of CAs to trust for an https S3 endpoint (--cacert). */
  caCertFile?: string | undefined;
  env?: NodeJS.ProcessEnv;
}

export function openBackend(location: string, options: BackendOptions = {}): Backend {
  if (isS3Location(location)) {
    return new S3Backend(location, { ...(options.caCertFile ? { caCertFile: options.caCertFile } : {}), ...(options.env ? { env: options.env } : {}) });
  }
  return new LocalBackend(location.startsWith('local:') ? location.slice('local:'.length) : location);
}
