/**
 * A data blob sealed as a pack stores it: the plaintext compressed when that is shorter, then
 * encrypted (IV || ciphertext || MAC). What the sealing worker does for each large chunk
 * (seal-worker.ts), in a buffer of its own that it hands back.
 */
import { BlobCompressor, wholeBlob } from './compression.ts';
import { encryptInto, OVERHEAD, type MasterKey } from './crypto.ts';

/** What the sealing worker sends once its script has loaded: chunks go to it from then on. */
export const SEAL_WORKER_READY = 'ready';

export interface SealedBlob {
  /** IV || ciphertext || MAC, in a buffer of exactly that length. */
  sealed: Buffer;
  /** The plaintext's length when the blob is stored compressed. */
  uncompressedLength?: number;
}

export function sealBlob(key: MasterKey, compressor: BlobCompressor | undefined, plaintext: Buffer): SealedBlob {
  const compressed = compressor?.compress(wholeBlob(plaintext));
  const stored = compressed ?? plaintext;
  const sealed = Buffer.allocUnsafeSlow(stored.length + OVERHEAD);
  encryptInto(key, stored, sealed, 0);
  return compressed ? { sealed, uncompressedLength: plaintext.length } : { sealed };
}
