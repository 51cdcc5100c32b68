/**
 * macOS: injecting the blob strips the signature Node.js shipped with, and Apple silicon refuses to
 * run unsigned code, so each macOS executable is signed ad hoc (no certificate, as `codesign -s -`
 * does) with rcodesign, then checked here independently of it: `rcodesign verify` rejects every ad-hoc
 * signature (it looks for a CMS signature, which ad-hoc signing leaves empty, and calls itself buggy).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './config.ts';

export function rcodesignPath(): string {
  return execFileSync('bash', [path.join(REPO_ROOT, 'scripts', 'release', 'build-rcodesign.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

export function signAdHoc(rcodesign: string, file: string, identifier: string): void {
  const result = spawnSync(rcodesign, ['sign', '--binary-identifier', identifier, file], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`rcodesign sign ${file} failed (exit ${result.status}):\n${result.stderr}`);
}

export interface AdHocSignature { identifier: string; flags: number; pages: number }

/**
 * Checks a thin 64-bit Mach-O's embedded signature: an ad-hoc CodeDirectory (SHA-256) whose page
 * hashes match the file's pages and whose code limit covers everything before the signature.
 * Throws on any mismatch; returns what it found.
 */
export function verifyAdHocSignature(file: string): AdHocSignature {
  const buf = fs.readFileSync(file);
  if (buf.readUInt32LE(0) !== 0xfeedfacf) throw new Error(`${file}: not a thin 64-bit Mach-O`);
  const ncmds = buf.readUInt32LE(16);
  let at = 32;
  let sig: { offset: number; size: number } | undefined;
  for (let i = 0; i < ncmds; i++) {
    const cmd = buf.readUInt32LE(at);
    if (cmd === 0x1d) sig = { offset: buf.readUInt32LE(at + 8), size: buf.readUInt32LE(at + 12) }; // LC_CODE_SIGNATURE
    at += buf.readUInt32LE(at + 4);
  }
  if (!sig) throw new Error(`${file}: no LC_CODE_SIGNATURE: unsigned`);
  // The SuperBlob and its blobs are big-endian.
  if (buf.readUInt32BE(sig.offset) !== 0xfade0cc0) throw new Error(`${file}: bad signature SuperBlob magic`);
  const count = buf.readUInt32BE(sig.offset + 8);
  let cd = -1;
  for (let i = 0; i < count; i++) {
    const type = buf.readUInt32BE(sig.offset + 12 + i * 8);
    if (type === 0) cd = sig.offset + buf.readUInt32BE(sig.offset + 16 + i * 8);
  }
  if (cd < 0 || buf.readUInt32BE(cd) !== 0xfade0c02) throw new Error(`${file}: no CodeDirectory`);
  const flags = buf.readUInt32BE(cd + 12);
  const hashOffset = buf.readUInt32BE(cd + 16);
  const identOffset = buf.readUInt32BE(cd + 20);
  const nCodeSlots = buf.readUInt32BE(cd + 28);
  const codeLimit = buf.readUInt32BE(cd + 32);
  const hashSize = buf[cd + 36]!;
  const hashType = buf[cd + 37]!;
  const pageSize = 2 ** buf[cd + 39]!;
  if (!(flags & 0x2)) throw new Error(`${file}: the CodeDirectory is not ad hoc (flags 0x${flags.toString(16)})`);
  if (hashType !== 2 || hashSize !== 32) throw new Error(`${file}: CodeDirectory hash type ${hashType} is not SHA-256`);
  if (codeLimit !== sig.offset) throw new Error(`${file}: the signature covers ${codeLimit} bytes, not the ${sig.offset} before it`);
  if (nCodeSlots !== Math.ceil(codeLimit / pageSize)) throw new Error(`${file}: ${nCodeSlots} page hashes for ${codeLimit} bytes`);
  for (let page = 0; page < nCodeSlots; page++) {
    const start = page * pageSize;
    const digest = createHash('sha256').update(buf.subarray(start, Math.min(start + pageSize, codeLimit))).digest();
    if (!digest.equals(buf.subarray(cd + hashOffset + page * 32, cd + hashOffset + (page + 1) * 32))) {
      throw new Error(`${file}: page ${page} does not match its signed hash`);
    }
  }
  const identifier = buf.subarray(cd + identOffset, buf.indexOf(0, cd + identOffset)).toString('utf8');
  return { identifier, flags, pages: nCodeSlots };
}
