/**
 * Reading an artifact back: one pass over the file that hashes the bytes as stored, decompresses them
 * and walks the tar stream to its end-of-archive marker. verify and restore both start here.
 */
import fs from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UsageError } from '../errors.ts';
import { decompressor, type Compression } from './artifacts.ts';
import { Digest } from './digest.ts';
import { TarStreamCheck, type TarSummary } from './tar-stream.ts';

export interface ArtifactScan {
  /** sha256 of the file as stored (compressed). */
  sha256: string;
  /** Size of the file as stored. */
  bytes: number;
  tar: TarSummary;
}

/** The compression an artifact was written with, from its name (as artifactPath() names it). */
export function compressionOf(file: string): Compression {
  if (file.endsWith('.tar.gz')) return 'gzip';
  if (file.endsWith('.tar.zst')) return 'zstd';
  if (file.endsWith('.tar')) return 'none';
  throw new UsageError(`cannot tell the compression of ${file} from its name (.tar.gz, .tar.zst or .tar)`);
}

/**
 * Reads the whole artifact. The checker may be given (to watch entries as they pass); the tar
 * stream goes nowhere else. Throws if the file cannot be read or decompressed, or is not tar.
 */
export async function scanArtifact(file: string, checker: TarStreamCheck = new TarStreamCheck(), signal?: AbortSignal): Promise<ArtifactScan> {
  const digest = new Digest();
  const decompress = decompressor(compressionOf(file));
  const sink = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  await pipeline([fs.createReadStream(file), digest, ...(decompress ? [decompress] : []), checker, sink], signal ? { signal } : {});
  return { sha256: digest.hash.digest('hex'), bytes: digest.bytes, tar: checker.summary };
}
