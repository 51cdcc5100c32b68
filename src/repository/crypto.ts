/**
 * restic's authenticated encryption (doc/design.rst, "Keys, Encryption and MAC"): every encrypted
 * item is `IV(16) || AES-256-CTR(ciphertext) || MAC(16)`. The 16 random bytes are both the whole CTR
 * counter block and the Poly1305-AES nonce; the MAC covers the ciphertext only, with the Poly1305 key
 * `r || AES-128(k, nonce)`. `r` is stored as it was drawn (Poly1305 clamps it itself).
 */
import crypto from 'node:crypto';
import { poly1305 } from './poly1305.ts';

export const IV_SIZE = 16;
export const MAC_SIZE = 16;
/** What encryption adds to a plaintext's length. */
export const OVERHEAD = IV_SIZE + MAC_SIZE;

export interface MasterKey {
  /** AES-256 key. */
  encrypt: Buffer;
  /** Poly1305-AES key: AES-128 key `k` and the Poly1305 `r`. */
  mac: { k: Buffer; r: Buffer };
}

/** The MAC of an encrypted item does not match: wrong key, or the bytes were changed. */
export class UnauthenticatedError extends Error {
  constructor(what = 'data') {
    super(`ciphertext verification failed for ${what}: wrong key or corrupted data`);
    this.name = 'UnauthenticatedError';
  }
}

export function randomMasterKey(): MasterKey {
  return { encrypt: crypto.randomBytes(32), mac: { k: crypto.randomBytes(16), r: crypto.randomBytes(16) } };
}

/** The 64 bytes scrypt derives: AES key, then `k`, then `r`. */
export function masterKeyFromBytes(bytes: Uint8Array): MasterKey {
  if (bytes.length !== 64) throw new Error(`a key is 64 bytes, got ${bytes.length}`);
  const b = Buffer.from(bytes);
  return { encrypt: b.subarray(0, 32), mac: { k: b.subarray(32, 48), r: b.subarray(48, 64) } };
}

/**
 * AES-128-ECB ciphers by MAC key, reused: ECB without padding is stateless block by block, and a
 * cipher per blob (native memory V8 does not see) made the process grow by kilobytes per small blob.
 */
const ecbCiphers = new WeakMap<Buffer, crypto.Cipheriv>();

function aes128Block(k: Buffer, block: Uint8Array): Buffer {
  let cipher = ecbCiphers.get(k);
  if (!cipher) {
    cipher = crypto.createCipheriv('aes-128-ecb', k, null);
    cipher.setAutoPadding(false);
    ecbCiphers.set(k, cipher);
  }
  return cipher.update(block);
}

export function poly1305Mac(message: Uint8Array, nonce: Uint8Array, key: MasterKey['mac']): Buffer {
  const polyKey = Buffer.allocUnsafe(32);
  key.r.copy(polyKey, 0);
  aes128Block(key.k, nonce).copy(polyKey, 16);
  return poly1305(message, polyKey);
}

function ctr(key: MasterKey, iv: Uint8Array, data: Uint8Array): Buffer {
  const cipher = crypto.createCipheriv('aes-256-ctr', key.encrypt, iv);
  // CTR has no final block: update's output is the whole ciphertext, without a copy into a concat.
  const out = cipher.update(data);
  cipher.final();
  return out;
}

/**
 * Random bytes for IVs, drawn from the system 4 KiB at a time: a call of randomFillSync costs some
 * 7 µs, which over a million small blobs was 7 s. Each byte of the pool is used once.
 */
const ivPool = Buffer.allocUnsafeSlow(4096);
let ivPoolAt = ivPool.length;

function randomIv(into: Buffer): void {
  if (ivPoolAt + IV_SIZE > ivPool.length) {
    crypto.randomFillSync(ivPool);
    ivPoolAt = 0;
  }
  ivPool.copy(into, 0, ivPoolAt, ivPoolAt + IV_SIZE);
  ivPoolAt += IV_SIZE;
}

/** IV || ciphertext || MAC, with a fresh random IV. */
export function encrypt(key: MasterKey, plaintext: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(plaintext.length + OVERHEAD);
  encryptInto(key, plaintext, out, 0);
  return out;
}

/**
 * encrypt() into `out` at `at`, which must have room for the plaintext and OVERHEAD; returns the
 * length written. A pack's blobs are sealed in place in the pack's buffer.
 */
export function encryptInto(key: MasterKey, plaintext: Uint8Array, out: Buffer, at: number): number {
  const iv = out.subarray(at, at + IV_SIZE);
  do randomIv(iv);
  while (iv.every((byte) => byte === 0)); // restic refuses a zero nonce
  const ciphertext = out.subarray(at + IV_SIZE, at + IV_SIZE + plaintext.length);
  ctr(key, iv, plaintext).copy(ciphertext);
  poly1305Mac(ciphertext, iv, key.mac).copy(out, at + IV_SIZE + plaintext.length);
  return plaintext.length + OVERHEAD;
}

/** The plaintext of IV || ciphertext || MAC; UnauthenticatedError when the MAC does not match. */
export function decrypt(key: MasterKey, data: Uint8Array, what?: string): Buffer {
  if (data.length < OVERHEAD) throw new UnauthenticatedError(what ? `${what} (too short)` : undefined);
  const iv = data.subarray(0, IV_SIZE);
  const ciphertext = data.subarray(IV_SIZE, data.length - MAC_SIZE);
  const mac = data.subarray(data.length - MAC_SIZE);
  const expected = poly1305Mac(ciphertext, iv, key.mac);
  if (!crypto.timingSafeEqual(expected, mac)) throw new UnauthenticatedError(what);
  return ctr(key, iv, ciphertext);
}

export function sha256(data: Uint8Array): Buffer {
  return crypto.hash('sha256', data, 'buffer');
}

/** The SHA-256 of pieces in order, as of their concatenation; each piece is read once, as it comes. */
export function sha256Pieces(pieces: Iterable<Uint8Array>): Buffer {
  const hash = crypto.createHash('sha256');
  for (const piece of pieces) hash.update(piece);
  return hash.digest();
}
