/**
 * Reading an artifact back: one pass over the file that hashes the bytes as stored, decompresses them
 * and walks the tar stream to its end-of-archive marker (or, for a Block claim's image, hashes the raw
 * bytes). verify and restore both start here.
 */
import fs from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UsageError } from '../errors.ts';
import { decompressor, type ArtifactKind, type Compression } from './artifacts.ts';
import { Digest } from './digest.ts';
import { TarStreamCheck, type TarSummary } from './tar-stream.ts';

export interface ArtifactScan {
  /** sha256 of the file as stored (compressed). */
  sha256: string;
  /** Size of the file as stored. */
  bytes: number;
  /** The tar stream's summary; for a device image only bytes (and complete) mean anything. */
  tar: TarSummary;
  /** sha256 of a device image's raw bytes; null for a tar. */
  imageSha256: string | null;
}

/** The compression an artifact was written with, from its name (as artifactPath() names it). */
export function compressionOf(file: string): Compression {
  if (/\.(?:tar|img)\.gz$/.test(file)) return 'gzip';
  if (/\.(?:tar|img)\.zst$/.test(file)) return 'zstd';
  if (/\.(?:tar|img)$/.test(file)) return 'none';
  throw new UsageError(`cannot tell the compression of ${file} from its name (.tar.gz, .tar.zst, .tar, or .img.* for a device image)`);
}

/** Whether an artifact holds a tar or a device image, from its name. */
export function artifactKindOf(file: string): ArtifactKind {
  return /\.img(?:\.gz|\.zst)?$/.test(file) ? 'image' : 'tar';
}

/**
 * Reads the whole artifact. The checker may be given (to watch entries as they pass); the tar
 * stream goes nowhere else. Throws if the file cannot be read or decompressed, or is not tar.
 */
export async function scanArtifact(file: string, checker: TarStreamCheck = new TarStreamCheck(), signal?: AbortSignal): Promise<ArtifactScan> {
  const digest = new Digest();
  const decompress = decompressor(compressionOf(file));
  const sink = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  const image = artifactKindOf(file) === 'image' ? new Digest() : undefined;
  await pipeline([fs.createReadStream(file), digest, ...(decompress ? [decompress] : []), image ?? checker, sink], signal ? { signal } : {});
  if (image) {
    const tar: TarSummary = { bytes: image.bytes, entries: 0, regularFiles: 0, directories: 0, contentBytes: image.bytes, complete: true };
    return { sha256: digest.hash.digest('hex'), bytes: digest.bytes, tar, imageSha256: image.hash.digest('hex') };
  }
  return { sha256: digest.hash.digest('hex'), bytes: digest.bytes, tar: checker.summary, imageSha256: null };
}
