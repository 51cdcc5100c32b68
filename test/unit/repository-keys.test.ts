/**
 * Key files without restic: the JSON restic writes (a key file restic v0.19.1 wrote is the golden),
 * scrypt's calibration, adding and removing keys in a local repository, ID prefixes, and what
 * `repo key list` prints (against the real restic: test/integration/repository-keys.test.ts).
 */
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GeneratedKeyFile, keyRows, localTime, parseKeyPrefix, renderKeys } from '../../src/cli/commands/repo-key.ts';
import { isNkvmError } from '../../src/errors.ts';
import { LocalBackend } from '../../src/repository/backends/local.ts';
import { sha256 } from '../../src/repository/crypto.ts';
import {
  AmbiguousKeyPrefixError,
  calibrateKdf,
  CurrentKeyError,
  deriveUserKey,
  encodeKeyFile,
  KeyNotFoundError,
  listKeys,
  openKeyFile,
  openWithPassword,
  removeKey,
  resolveKeyPrefix,
  type KdfParams,
} from '../../src/repository/key.ts';
import { Repository } from '../../src/repository/repository.ts';

const KDF = { N: 1024, r: 8, p: 1 };

// Written by `restic init` (v0.19.1) with the password "pw": its calibration gave p = 7.
const RESTIC_KEY_ID = '89abfa63e18d3055386fcf994948c1c417f90ecd8fb5444f40089e304e6af51c';
const RESTIC_KEY =
  '{"created":"2026-12-06T06:50:26.64525359Z","username":"root","hostname":"vm","kdf":"scrypt","N":32768,"r":8,"p":7,' +
  '"salt":"8gzbIdmI4FHD8iAMiMBllwh3v/GnlKTrYldsnfmxBKVgXDxnT9lXoM8En3uethhr+wcDPLH5wRiXkRralwfvhA==",' +
  '"data":"jsUKkLXNPzcfluIts2R49tJmSEd8E/PoS4b8Q2HkUhuRm8Qb4fHlCOOhYYk0+1v+MS77OGyzsOyLW2hb7G0y+yk8AXb9w8AfIx5oy/gyvJP8VGvhwK16XZSabDoJ1HkWJKlLkqGNJd9nRqjgQU50mMxIeOlhjt9JrM+GfTk7Qw2onlTc/i3aQFyIMu+MhW3mhgWgCXVVSdjUVO/vL01upA=="}';

function tempRepo(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-keys-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'repo');
}

test("restic's key file: named by its SHA-256, opens with its password", async (t) => {
  t.is(sha256(Buffer.from(RESTIC_KEY)).toString('hex'), RESTIC_KEY_ID);
  const opened = await openKeyFile(RESTIC_KEY_ID, Buffer.from(RESTIC_KEY), 'pw');
  t.is(opened.master.encrypt.length, 32);
  t.is(opened.file.p, 7);
});

test("a key file we encode has restic's fields in restic's order and sizes, and opens to the same master key", async (t) => {
  const theirs = JSON.parse(RESTIC_KEY) as Record<string, unknown>;
  const { master } = await openKeyFile(RESTIC_KEY_ID, Buffer.from(RESTIC_KEY), 'pw');
  const salt = Buffer.alloc(64, 7);
  const params: KdfParams = { N: 1024, r: 8, p: 3 };
  const user = await deriveUserKey('another', salt, params);
  const { id, raw, file } = encodeKeyFile(user, master, { created: '2026-12-06T07:00:00.5Z', username: 'alice', hostname: 'laptop', params, salt });
  const ours = JSON.parse(raw.toString()) as Record<string, unknown>;
  t.deepEqual(Object.keys(ours), Object.keys(theirs));
  t.deepEqual(ours, { created: '2026-12-06T07:00:00.5Z', username: 'alice', hostname: 'laptop', kdf: 'scrypt', N: 1024, r: 8, p: 3, salt: salt.toString('base64'), data: file.data });
  t.is(Buffer.from(ours.salt as string, 'base64').length, Buffer.from(theirs.salt as string, 'base64').length);
  // IV, the master key's JSON, MAC: the same length as restic's.
  t.is(Buffer.from(ours.data as string, 'base64').length, Buffer.from(theirs.data as string, 'base64').length);
  t.is(id, sha256(raw).toString('hex'));
  t.false(raw.includes('\n'), 'compact JSON, as json.Marshal writes it');
  const reopened = await openKeyFile(id, raw, 'another');
  t.deepEqual(reopened.master, master);
  await t.throwsAsync(openKeyFile(id, raw, 'pw'), { name: 'UnauthenticatedError' });
});

/** A machine where one scrypt takes `msPerUnit` per MiB of memory and per unit of p. */
function machine(msPerMiB: number, options: { pSlowdown?: number } = {}) {
  const calls: KdfParams[] = [];
  const timer = async (params: KdfParams) => {
    calls.push({ ...params });
    const mib = (128 * params.r * params.N) / (1024 * 1024);
    return mib * msPerMiB * params.p * (params.p > 1 ? (options.pSlowdown ?? 1) : 1);
  };
  return { timer, calls };
}

test("calibration as restic's: r 8, N the power of two under 60 MiB, p as many runs as fit in 500 ms", async (t) => {
  const fast = machine(2); // 64 ms for N = 32768
  t.deepEqual(await calibrateKdf(fast.timer), { N: 32768, r: 8, p: 7 });
  t.deepEqual(fast.calls[0], { N: 32768, r: 8, p: 1 });
});

test('calibration halves N on a slow machine, then sets p', async (t) => {
  const slow = machine(40); // 1280 ms for N = 32768, 640 for 16384, 320 for 8192
  t.deepEqual(await calibrateKdf(slow.timer), { N: 8192, r: 8, p: 1 });
  t.deepEqual(slow.calls.map((c) => c.N), [32768, 16384, 8192, 8192]);
});

test('calibration lowers p when the longer run is slower than p short ones', async (t) => {
  const loaded = machine(2, { pSlowdown: 1.5 }); // p = 7 takes 672 ms: p = 500 / 96 = 5 (480 ms)
  t.deepEqual(await calibrateKdf(loaded.timer), { N: 32768, r: 8, p: 5 });
});

test('calibration follows the memory limit', async (t) => {
  t.is((await calibrateKdf(machine(0.01).timer, 500, 16)).N, 8192);
});

test('addKey writes a key for the same master key, with the owner given or this user and host; it opens', async (t) => {
  const backend = new LocalBackend(tempRepo(t));
  const repo = await Repository.init(backend, 'first', { kdf: KDF });
  const id = await repo.addKey('second', KDF, { username: 'ci', hostname: 'runner' });
  const plain = await repo.addKey('third', KDF);
  const second = await openWithPassword(backend, 'second');
  t.is(second.id, id);
  t.deepEqual(second.master, repo.key);
  t.is(second.file.username, 'ci');
  t.is(second.file.hostname, 'runner');
  const third = await openWithPassword(backend, 'third');
  t.is(third.id, plain);
  t.is(third.file.hostname, os.hostname());
  t.is(third.file.username, os.userInfo().username);
  const keys = await listKeys(backend);
  t.deepEqual(keys.map((k) => k.id).sort(), [repo.keyId, id, plain].sort());
});

test('a key that does not open once written is removed again, and the error says so', async (t) => {
  const backend = new LocalBackend(tempRepo(t));
  const repo = await Repository.init(backend, 'first', { kdf: KDF });
  const read = backend.read.bind(backend);
  backend.read = async (type, name, range) => {
    const bytes = await read(type, name, range);
    if (type === 'keys' && name !== repo.keyId) bytes[bytes.length - 5]! ^= 1; // a byte of the data's base64
    return bytes;
  };
  await t.throwsAsync(repo.addKey('second', KDF), { message: /did not open the repository once written, and was removed/ });
  t.deepEqual((await listKeys(backend)).map((k) => k.id), [repo.keyId]);
});

test('removeKey removes another key, never the current one', async (t) => {
  const backend = new LocalBackend(tempRepo(t));
  const repo = await Repository.init(backend, 'first', { kdf: KDF });
  const other = await repo.addKey('second', KDF);
  await t.throwsAsync(removeKey(backend, repo.keyId, repo.keyId), { instanceOf: CurrentKeyError });
  await removeKey(backend, other, repo.keyId);
  t.deepEqual((await listKeys(backend)).map((k) => k.id), [repo.keyId]);
  await t.throwsAsync(openWithPassword(backend, 'second'), { name: 'WrongPasswordError' });
});

test('a key file that is not JSON is listed as unreadable, not fatal', async (t) => {
  const backend = new LocalBackend(tempRepo(t));
  const repo = await Repository.init(backend, 'first', { kdf: KDF });
  await backend.write('keys', 'ab'.repeat(32), Buffer.from('not json'));
  const keys = await listKeys(backend);
  t.is(keys.length, 2);
  t.true(keys.some((k) => k.id === 'ab'.repeat(32) && 'error' in k));
  t.deepEqual(keyRows(keys, repo.keyId).map((row) => row.id), [repo.keyId]);
});

const IDS = ['5c657874aa', '5c6500bb00', 'eb78040b11'];

test('an ID prefix resolves to the one key it starts, as restic Find', (t) => {
  t.is(resolveKeyPrefix(IDS, 'eb'), 'eb78040b11');
  t.is(resolveKeyPrefix(IDS, '5c657'), '5c657874aa');
  t.is(resolveKeyPrefix(IDS, '5c657874aa'), '5c657874aa');
});

test('an ambiguous prefix names the keys it matches; an unknown one is its own error', (t) => {
  const ambiguous = t.throws(() => resolveKeyPrefix(IDS, '5c65'), { instanceOf: AmbiguousKeyPrefixError });
  t.deepEqual(ambiguous.matches, ['5c6500bb00', '5c657874aa']);
  t.regex(ambiguous.message, /"5c65" matches 2 keys: 5c6500bb, 5c657874/);
  t.throws(() => resolveKeyPrefix(IDS, '5c657874aa0'), { instanceOf: KeyNotFoundError });
  t.throws(() => resolveKeyPrefix([], 'eb'), { instanceOf: KeyNotFoundError });
});

test('a key ID as typed: hex in any case; anything else is a usage error', (t) => {
  t.is(parseKeyPrefix('EB78'), 'eb78');
  for (const bad of ['', 'zz', 'eb78-', 'a'.repeat(65)]) {
    const error = t.throws(() => parseKeyPrefix(bad));
    t.true(isNkvmError(error) && error.code === 'UsageError' && error.exitCode === 2, bad);
  }
});

test('key list: oldest first, the current one marked, short IDs in the table and full ones in JSON', (t) => {
  const file = (created: string, username: string) => ({ created, username, hostname: 'vm', kdf: 'scrypt', N: 1024, r: 8, p: 1, salt: '', data: '' });
  const rows = keyRows(
    [
      { id: 'b'.repeat(64), file: file('2026-12-06T08:00:00+01:00', 'bob') },
      { id: 'a'.repeat(64), file: file('2026-12-06T07:30:00.123Z', 'alice') },
    ],
    'b'.repeat(64),
  );
  // 08:00 at +01:00 is 07:00 UTC: before 07:30 UTC, whatever the text says.
  t.deepEqual(rows, [
    { current: true, id: 'b'.repeat(64), userName: 'bob', hostName: 'vm', created: '2026-12-06T08:00:00+01:00' },
    { current: false, id: 'a'.repeat(64), userName: 'alice', hostName: 'vm', created: '2026-12-06T07:30:00.123Z' },
  ]);
  const table = renderKeys(rows, 'table').split('\n');
  t.regex(table[0]!, /^CURRENT +ID +USER +HOST +CREATED$/);
  t.regex(table[1]!, /^\* +bbbbbbbb +bob +vm +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
  t.regex(table[2]!, /^ +aaaaaaaa +alice +vm /);
  t.deepEqual(JSON.parse(renderKeys(rows, 'json')), { apiVersion: 'v1', kind: 'List', items: rows });
  t.is(renderKeys(rows, 'name'), `${'b'.repeat(64)}\n${'a'.repeat(64)}\n`);
});

test("created times in restic's layout, in this machine's zone", (t) => {
  const ms = Date.UTC(2026, 11, 6, 7, 30, 0);
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  t.is(localTime('2026-12-06T07:30:00.999Z'), `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:00`);
  t.is(localTime('yesterday'), 'yesterday');
});

test('a generated key file: 0600, named after its key, never over another file of that name', (t) => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-keys-home-'));
  t.teardown(() => fs.rmSync(home, { recursive: true, force: true }));
  const previous = process.env.NKVM_HOME;
  process.env.NKVM_HOME = home;
  t.teardown(() => {
    if (previous === undefined) delete process.env.NKVM_HOME;
    else process.env.NKVM_HOME = previous;
  });
  const id = 'c0ffee00'.repeat(8);
  const first = GeneratedKeyFile.create();
  t.is(fs.statSync(first.file).mode & 0o777, 0o600);
  first.nameAfter(id);
  t.is(first.file, path.join(home, 'repository-c0ffee00.key'));
  t.is(fs.readFileSync(first.file, 'utf8'), `${first.password}\n`);
  const second = GeneratedKeyFile.create();
  second.nameAfter(id);
  t.is(second.file, path.join(home, `repository-${id}.key`));
  t.is(fs.readFileSync(first.file, 'utf8'), `${first.password}\n`, 'the first file is kept');
  t.deepEqual(fs.readdirSync(home).sort(), ['repository-c0ffee00.key', `repository-${id}.key`]);
});
