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
  const maxmem = 128 * params.N * params.r + 128 * params.r * params.p + 64 * 1024 * 1024;
  const bytes = await new Promise<Buffer>((resolve, reject) => {
    crypto.scrypt(Buffer.from(password, 'utf8'), salt, 64, { N: params.N, r: params.r, p: params.p, maxmem }, (error, key) =>
      error ? reject(error) : resolve(key),
    );
  });
  return masterKeyFromBytes(bytes);
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

/** Writes a new key file that opens `master` with `password`; returns its ID. */
export async function addKey(backend: Backend, master: MasterKey, password: string, params: KdfParams = DEFAULT_KDF): Promise<string> {
  const salt = crypto.randomBytes(64);
  const user = await deriveUserKey(password, salt, params);
  let username = '';
  try {
    username = os.userInfo().username;
  } catch {
    // no passwd entry: restic leaves it empty too
  }
  const file: KeyFile = {
    created: formatTime(nowNs()),
    username,
    hostname: os.hostname(),
    kdf: 'scrypt',
    N: params.N,
    r: params.r,
    p: params.p,
    salt: salt.toString('base64'),
    data: encrypt(user, Buffer.from(JSON.stringify(masterKeyToJson(master)))).toString('base64'),
  };
  const raw = Buffer.from(JSON.stringify(file));
  const id = sha256(raw).toString('hex');
  await backend.write('keys', id, raw);
  return id;
}
