/**
 * Key files (doc/design.rst, "Keys, Encryption and MAC"): plain JSON in keys/<sha256 of the file>,
 * holding scrypt's parameters and salt and the master key encrypted with the key scrypt derives
 * from the password. Opening a repository tries the key files until one opens with the password.
 */
import crypto from 'node:crypto';
import os from 'node:os';
import type { Backend } from './backends/backend.ts';
import { decrypt, encrypt, masterKeyFromBytes, sha256, UnauthenticatedError, type MasterKey } from './crypto.ts';
import { formatTime, nowNs } from './time.ts';

/** No key file opens with this password. */
export class WrongPasswordError extends Error {
  readonly location: string;
  constructor(location: string, keysTried: number) {
    super(
      keysTried === 0
        ? `repository ${location} has no key files`
        : `wrong password or no key found in repository ${location} (${keysTried} key file${keysTried === 1 ? '' : 's'} tried)`,
    );
    this.name = 'WrongPasswordError';
    this.location = location;
  }
}

export interface KdfParams {
  N: number;
  r: number;
  p: number;
}

/** What restic's calibration typically settles on; about 32 MiB and a fraction of a second. */
export const DEFAULT_KDF: KdfParams = { N: 32768, r: 8, p: 1 };

/** restic's salt: 64 random bytes (crypto.NewSalt). */
export const SALT_LENGTH = 64;

/** restic's limits for a new key's scrypt (repository.KDFTimeout, KDFMemory). */
export const KDF_TIMEOUT_MS = 500;
export const KDF_MEMORY_MIB = 60;

/** How long one scrypt with these parameters takes here, in milliseconds. */
export type ScryptTimer = (params: KdfParams) => Promise<number>;

async function timeScrypt(params: KdfParams): Promise<number> {
  const start = performance.now();
  await deriveRaw('weakpassword', crypto.randomBytes(16), params, 32);
  return performance.now() - start;
}

/**
 * The parameters restic gives a new key (simple-scrypt's Calibrate with restic's limits): r = 8; N
 * the largest power of two whose 128·r·N bytes stay under 60 MiB (32768), halved while one run takes
 * longer than 500 ms; then p as many runs as fit in 500 ms. So a key costs an attacker what it costs
 * this machine in half a second, and opening it costs a user as much.
 */
export async function calibrateKdf(time: ScryptTimer = timeScrypt, timeoutMs = KDF_TIMEOUT_MS, memoryMiB = KDF_MEMORY_MIB): Promise<KdfParams> {
  const params: KdfParams = { N: 1, r: 8, p: 1 };
  while (128 * params.r * params.N < memoryMiB * 1024 * 1024) params.N *= 2;
  params.N /= 2;
  let duration = await time(params);
  while (duration > timeoutMs && params.N > 2) {
    params.N /= 2;
    duration = await time(params);
  }
  params.p = Math.max(1, Math.floor(timeoutMs / Math.max(duration, 1e-3)));
  duration = await time(params);
  // A loaded machine can make the longer run slower than p short ones: lower p until it fits.
  while (duration > timeoutMs && params.p > 1) {
    params.p = Math.max(1, Math.floor(timeoutMs / (duration / params.p)));
    duration = await time(params);
  }
  return params;
}

let calibrated: Promise<KdfParams> | undefined;

/** calibrateKdf once per process, as restic keeps its params after the first AddKey. */
export function calibratedKdf(): Promise<KdfParams> {
  calibrated ??= calibrateKdf();
  return calibrated;
}

export interface KeyFile {
  created: string;
  username: string;
  hostname: string;
  kdf: string;
  N: number;
  r: number;
  p: number;
  /** base64 */
  salt: string;
  /** base64: IV || encrypted JSON of the master key || MAC */
  data: string;
}

export interface OpenedKey {
  id: string;
  master: MasterKey;
  file: KeyFile;
}

/** scrypt with Node's memory limit raised to what the parameters need (restic 0.14 wrote N=32768, r=8, p=3). */
export async function deriveUserKey(password: string, salt: Uint8Array, params: KdfParams): Promise<MasterKey> {
  return masterKeyFromBytes(await deriveRaw(password, salt, params, 64));
}

function deriveRaw(password: string, salt: Uint8Array, params: KdfParams, length: number): Promise<Buffer> {
  const maxmem = 128 * params.N * params.r + 128 * params.r * params.p + 64 * 1024 * 1024;
  return new Promise<Buffer>((resolve, reject) => {
    crypto.scrypt(Buffer.from(password, 'utf8'), salt, length, { N: params.N, r: params.r, p: params.p, maxmem }, (error, key) =>
      error ? reject(error) : resolve(key),
    );
  });
}

interface MasterKeyJson {
  mac: { k: string; r: string };
  encrypt: string;
}

function masterKeyToJson(key: MasterKey): MasterKeyJson {
  return { mac: { k: key.mac.k.toString('base64'), r: key.mac.r.toString('base64') }, encrypt: key.encrypt.toString('base64') };
}

function masterKeyFromJson(json: MasterKeyJson): MasterKey {
  const key = {
    encrypt: Buffer.from(json.encrypt ?? '', 'base64'),
    mac: { k: Buffer.from(json.mac?.k ?? '', 'base64'), r: Buffer.from(json.mac?.r ?? '', 'base64') },
  };
  if (key.encrypt.length !== 32 || key.mac.k.length !== 16 || key.mac.r.length !== 16) throw new Error('invalid master key in key file');
  if (key.encrypt.every((b) => b === 0) || key.mac.k.every((b) => b === 0) || key.mac.r.every((b) => b === 0)) throw new Error('invalid master key in key file (zero)');
  return key;
}

/** Opens one key file with the password; UnauthenticatedError when the password does not fit. */
export async function openKeyFile(id: string, raw: Buffer, password: string): Promise<OpenedKey> {
  const file = JSON.parse(raw.toString('utf8')) as KeyFile;
  if (file.kdf !== 'scrypt') throw new Error(`key ${id}: unsupported KDF ${JSON.stringify(file.kdf)}, only scrypt`);
  const user = await deriveUserKey(password, Buffer.from(file.salt, 'base64'), file);
  const plaintext = decrypt(user, Buffer.from(file.data, 'base64'), `key ${id}`);
  return { id, master: masterKeyFromJson(JSON.parse(plaintext.toString('utf8')) as MasterKeyJson), file };
}

/** Tries every key file (at most `maxKeys`, like restic's 20) until one opens with the password. */
export async function openWithPassword(backend: Backend, password: string, maxKeys = 20): Promise<OpenedKey> {
  let tried = 0;
  for await (const info of backend.list('keys')) {
    if (tried >= maxKeys) break;
    tried += 1;
    const raw = await backend.read('keys', info.name);
    try {
      return await openKeyFile(info.name, raw, password);
    } catch (error) {
      if (error instanceof UnauthenticatedError) continue;
      throw error;
    }
  }
  throw new WrongPasswordError(backend.location, tried);
}

/** Who a key file names as its owner; restic fills what is not given with this user and this host. */
export interface KeyOwner {
  username?: string | undefined;
  hostname?: string | undefined;
}

function defaultOwner(owner: KeyOwner): { username: string; hostname: string } {
  let username = owner.username ?? '';
  if (!username) {
    try {
      username = os.userInfo().username;
    } catch {
      // no passwd entry: restic leaves it empty too
    }
  }
  return { username, hostname: owner.hostname || os.hostname() };
}

/**
 * A key file's bytes as restic marshals its Key: the fields in its order, salt and data in standard
 * base64. Its ID is the SHA-256 of exactly these bytes.
 */
export function encodeKeyFile(user: MasterKey, master: MasterKey, fields: { created: string; username: string; hostname: string; params: KdfParams; salt: Uint8Array }): { id: string; raw: Buffer; file: KeyFile } {
  const file: KeyFile = {
    created: fields.created,
    username: fields.username,
    hostname: fields.hostname,
    kdf: 'scrypt',
    N: fields.params.N,
    r: fields.params.r,
    p: fields.params.p,
    salt: Buffer.from(fields.salt).toString('base64'),
    data: encrypt(user, Buffer.from(JSON.stringify(masterKeyToJson(master)))).toString('base64'),
  };
  const raw = Buffer.from(JSON.stringify(file));
  return { id: sha256(raw).toString('hex'), raw, file };
}

/**
 * Writes a new key file that opens `master` with `password`; returns its ID. Read back and opened
 * before it counts, as restic does: a key that does not open is removed again, so a broken write
 * never leaves a key that looks usable.
 */
export async function addKey(backend: Backend, master: MasterKey, password: string, params: KdfParams = DEFAULT_KDF, owner: KeyOwner = {}): Promise<string> {
  const salt = crypto.randomBytes(SALT_LENGTH);
  const user = await deriveUserKey(password, salt, params);
  const { id, raw } = encodeKeyFile(user, master, { created: formatTime(nowNs()), ...defaultOwner(owner), params, salt });
  await backend.write('keys', id, raw);
  try {
    const opened = await openKeyFile(id, await backend.read('keys', id), password);
    if (!sameMasterKey(opened.master, master)) throw new Error('it holds another master key');
  } catch (error) {
    await backend.remove('keys', id).catch(() => {});
    throw new Error(`the new key ${id.slice(0, 8)} did not open the repository once written, and was removed: ${(error as Error).message}`, { cause: error });
  }
  return id;
}

function sameMasterKey(a: MasterKey, b: MasterKey): boolean {
  return a.encrypt.equals(b.encrypt) && a.mac.k.equals(b.mac.k) && a.mac.r.equals(b.mac.r);
}

/** A key file as `key list` shows it: its metadata, read without the password (the file is plain JSON). */
export type ListedKey = { id: string; file: KeyFile } | { id: string; error: Error };

export async function listKeys(backend: Backend): Promise<ListedKey[]> {
  const keys: ListedKey[] = [];
  for await (const info of backend.list('keys')) {
    try {
      const file = JSON.parse((await backend.read('keys', info.name)).toString('utf8')) as KeyFile;
      if (typeof file !== 'object' || file === null || Array.isArray(file)) throw new Error('not a JSON object');
      keys.push({ id: info.name, file });
    } catch (error) {
      keys.push({ id: info.name, error: error as Error });
    }
  }
  return keys;
}

/** No key file's ID starts with the prefix. */
export class KeyNotFoundError extends Error {
  readonly prefix: string;
  constructor(prefix: string) {
    super(`no key with ID or ID prefix "${prefix}"`);
    this.name = 'KeyNotFoundError';
    this.prefix = prefix;
  }
}

/** More than one key file's ID starts with the prefix. */
export class AmbiguousKeyPrefixError extends Error {
  readonly matches: string[];
  constructor(prefix: string, matches: string[]) {
    super(`the key ID prefix "${prefix}" matches ${matches.length} keys: ${matches.map((id) => id.slice(0, 8)).join(', ')}`);
    this.name = 'AmbiguousKeyPrefixError';
    this.matches = matches;
  }
}

/** The one ID the prefix names, as restic's Find: any length, but exactly one match. */
export function resolveKeyPrefix(ids: Iterable<string>, prefix: string): string {
  const matches = [...ids].filter((id) => id.startsWith(prefix)).sort();
  if (matches.length === 0) throw new KeyNotFoundError(prefix);
  if (matches.length > 1) throw new AmbiguousKeyPrefixError(prefix, matches);
  return matches[0]!;
}

/** The key that opened the repository cannot be removed through it. */
export class CurrentKeyError extends Error {
  constructor(id: string) {
    super(`refusing to remove key ${id.slice(0, 8)}: it is the key that opened the repository`);
    this.name = 'CurrentKeyError';
  }
}

/** Removes a key file, never the one that opened the repository (restic's RemoveKey refuses it too). */
export async function removeKey(backend: Backend, id: string, currentId: string): Promise<void> {
  if (id === currentId) throw new CurrentKeyError(id);
  await backend.remove('keys', id);
}
