/**
 * The repository's config file (doc/design.rst, "Repository Layout"): encrypted, never compressed,
 * `{"version":2,"id":"<hex>","chunker_polynomial":"<hex>"}`. The polynomial is above 2^53, so it is
 * a BigInt. A config with a field or version this code does not know is refused, naming it: writing
 * into a repository whose rules we do not know could break it.
 */
import crypto from 'node:crypto';
import { randomPolynomial } from './chunker.ts';

export const SUPPORTED_VERSIONS = [1, 2];
export const CURRENT_VERSION = 2;
const KNOWN_FIELDS = new Set(['version', 'id', 'chunker_polynomial']);

export interface RepositoryConfig {
  version: number;
  id: string;
  chunkerPolynomial: bigint;
}

export class UnsupportedConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedConfigError';
  }
}

export function newConfig(polynomial: bigint = randomPolynomial()): RepositoryConfig {
  return { version: CURRENT_VERSION, id: crypto.randomBytes(32).toString('hex'), chunkerPolynomial: polynomial };
}

export function encodeConfig(config: RepositoryConfig): Buffer {
  return Buffer.from(JSON.stringify({ version: config.version, id: config.id, chunker_polynomial: config.chunkerPolynomial.toString(16) }));
}

export function parseConfig(plaintext: Buffer, location = 'the repository'): RepositoryConfig {
  let json: unknown;
  try {
    json = JSON.parse(plaintext.toString('utf8'));
  } catch (error) {
    throw new UnsupportedConfigError(`config of ${location} is not JSON: ${(error as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new UnsupportedConfigError(`config of ${location} is not a JSON object`);
  const record = json as Record<string, unknown>;
  const unknown = Object.keys(record).filter((key) => !KNOWN_FIELDS.has(key));
  if (unknown.length > 0) {
    throw new UnsupportedConfigError(
      `config of ${location} has field${unknown.length === 1 ? '' : 's'} this version does not know: ${unknown.map((k) => JSON.stringify(k)).join(', ')}; refusing to use the repository`,
    );
  }
  const { version, id, chunker_polynomial: polynomial } = record;
  if (typeof version !== 'number' || !SUPPORTED_VERSIONS.includes(version)) {
    throw new UnsupportedConfigError(`config of ${location} has repository version ${JSON.stringify(version)}; this version supports ${SUPPORTED_VERSIONS.join(' and ')}`);
  }
  if (typeof id !== 'string' || id === '') throw new UnsupportedConfigError(`config of ${location} has no id`);
  if (typeof polynomial !== 'string' || !/^[0-9a-fA-F]{1,16}$/.test(polynomial)) {
    throw new UnsupportedConfigError(`config of ${location} has an invalid chunker_polynomial ${JSON.stringify(polynomial)}`);
  }
  const value = BigInt(`0x${polynomial}`);
  if (value === 0n) throw new UnsupportedConfigError(`config of ${location} has a zero chunker_polynomial`);
  return { version, id, chunkerPolynomial: value };
}
