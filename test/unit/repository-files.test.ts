import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BackendError, BackendNotFoundError } from '../../src/repository/backends/backend.ts';
import { LocalBackend } from '../../src/repository/backends/local.ts';
import { encrypt, randomMasterKey, sha256 } from '../../src/repository/crypto.ts';
import { encodeIndexFiles, Index } from '../../src/repository/index.ts';
import { decodeHeader, encodeHeader, headerRange, PackWriter } from '../../src/repository/pack.ts';

const id = (n: number) => sha256(Buffer.from([n])).toString('hex');

test('pack header entries are 37 bytes, 41 when compressed, and read back with offsets', async (t) => {
  const key = randomMasterKey();
  const pack = new PackWriter();
  await pack.add('data', id(1), encrypt(key, Buffer.from('plain')));
  await pack.add('tree', id(2), encrypt(key, Buffer.from('compressed tree')), 1000);
  await pack.add('data', id(3), encrypt(key, Buffer.from('compressed data')), 2000);
  t.is(encodeHeader(pack.blobs).length, 37 + 41 + 41);
  t.deepEqual([...encodeHeader(pack.blobs)].filter((_, i) => i === 0 || i === 37 || i === 78), [0, 3, 2]);
  const { id: packId, bytes, blobs } = await pack.finish(key);
  if (!bytes) throw new Error('a pack without a spool is in memory');
  t.is(packId, sha256(bytes).toString('hex'));
  const range = headerRange(packId, bytes.length, bytes.subarray(-4));
  t.deepEqual(decodeHeader(key, packId, bytes.subarray(range.offset, range.offset + range.length)), blobs);
  t.deepEqual(blobs.map((b) => b.offset), [0, 37, 37 + 47]);
});

test('index files list packs as restic does, uncompressed_length only when compressed, and load back', (t) => {
  const blobs = [
    { type: 'data' as const, id: id(1), offset: 0, length: 40 },
    { type: 'data' as const, id: id(2), offset: 40, length: 50, uncompressedLength: 900 },
  ];
  const [file] = encodeIndexFiles([{ id: id(9), blobs }]);
  t.deepEqual(JSON.parse(file!.toString()), {
    packs: [{ id: id(9), blobs: [{ id: id(1), type: 'data', offset: 0, length: 40 }, { id: id(2), type: 'data', offset: 40, length: 50, uncompressed_length: 900 }] }],
  });
  const index = new Index();
  index.addFile(file!);
  index.addFile(Buffer.from('{"supersedes":null,"packs":[{"id":"' + id(8) + '","blobs":null}]}'));
  t.deepEqual(index.get('data', id(2)), { type: 'data', pack: id(9), offset: 40, length: 50, uncompressedLength: 900 });
  t.false(index.has('tree', id(1)));
});

test('the index finds every blob among 120,000 across merges of its compact tables, and duplicates keep their first pack', (t) => {
  const index = new Index();
  const ids = Array.from({ length: 120_000 }, (_, i) => sha256(Buffer.from(String(i))).toString('hex'));
  for (let p = 0; p < 120; p++) {
    index.addPack(id(p), ids.slice(p * 1000, p * 1000 + 1000).map((blobId, i) => ({ type: 'data' as const, id: blobId, offset: i * 100, length: 100, ...(i % 2 ? { uncompressedLength: 500 } : {}) })));
  }
  index.addPack(id(200), [{ type: 'data', id: ids[5]!, offset: 7, length: 8 }]);
  index.compact();
  t.is(index.size, 120_000);
  for (const [n, blobId] of ids.entries()) {
    const entry = index.get('data', blobId);
    if (entry?.pack !== id(Math.floor(n / 1000)) || entry.offset !== (n % 1000) * 100 || entry.uncompressedLength !== (n % 2 ? 500 : undefined)) {
      t.fail(`blob ${n}: ${JSON.stringify(entry)}`);
      return;
    }
  }
  t.false(index.has('tree', ids[0]!));
  t.false(index.has('data', id(250)));
  t.is(index.packs().size, 120);
});

test('index files loaded, then packs added: sorted tails merged into the head keep each blob\'s first pack, in files and between them', (t) => {
  const index = new Index();
  // Some share their first 32 bits, which the sort's numeric keys hold: those are told apart in full.
  const ids = Array.from({ length: 3_000 }, (_, i) => sha256(Buffer.from(`blob ${i}`)).toString('hex')).map((blobId, i) => (i % 7 === 0 ? `abcdef01${blobId.slice(8)}` : blobId));
  const file = (pack: number, blobs: string[]) => Buffer.from(JSON.stringify({ packs: [{ id: id(pack), blobs: blobs.map((blobId, i) => ({ id: blobId, type: 'data', offset: i, length: 1 })) }] }));
  index.addFile(file(1, ids.slice(0, 2_000)));
  index.addFile(file(2, [...ids.slice(1_500, 2_500), ids[0]!]));
  index.compact();
  index.addPack(id(3), ids.slice(2_400).map((blobId, i) => ({ type: 'data' as const, id: blobId, offset: i, length: 1 })));
  t.is(index.size, 3_000);
  const packOf = (n: number) => index.get('data', ids[n]!)?.pack;
  t.deepEqual([packOf(0), packOf(1_999), packOf(2_000), packOf(2_499), packOf(2_500), packOf(2_999)], [id(1), id(1), id(2), id(2), id(3), id(3)]);
  t.true(ids.every((blobId) => index.has('data', blobId)));
});

test('blobs added since the last merge are found before it, IDs sharing their first bytes too; a blob in the sorted part and added again keeps its first pack', (t) => {
  const index = new Index();
  // Every fifth shares its first four bytes (its slot in the hash of the unsorted part) with the others.
  const ids = Array.from({ length: 60_000 }, (_, i) => sha256(Buffer.from(`tail ${i}`)).toString('hex')).map((blobId, i) => (i % 5 === 0 ? `0badcafe${blobId.slice(8)}` : blobId));
  const blobs = (from: number, to: number) => ids.slice(from, to).map((blobId, i) => ({ type: 'data' as const, id: blobId, offset: from + i, length: 1 }));
  index.addFile(Buffer.from(JSON.stringify({ packs: [{ id: id(1), blobs: blobs(0, 1_000).map(({ id: blobId, offset, length }) => ({ id: blobId, type: 'data', offset, length })) }] })));
  // Added one by one after entries loaded from a file and not yet sorted: each is found at once.
  for (let p = 0; p < 59; p++) {
    index.addPack(id(10 + p), blobs(1_000 + p * 1_000, 2_000 + p * 1_000));
    const last = 1_999 + p * 1_000;
    if (index.get('data', ids[last]!)?.offset !== last || index.get('data', ids[last - 995]!)?.pack !== id(10 + p)) {
      t.fail(`after pack ${p}: ${JSON.stringify(index.get('data', ids[last]!))}`);
      return;
    }
  }
  index.addPack(id(99), [{ type: 'data', id: ids[3]!, offset: 77, length: 1 }, { type: 'data', id: ids[59_999]!, offset: 78, length: 1 }]);
  t.like(index.get('data', ids[3]!), { pack: id(1), offset: 3 }, 'in the sorted part and added again: its first pack');
  t.like(index.get('data', ids[59_999]!), { pack: id(68), offset: 59_999 }, 'added twice since the merge: its first pack');
  t.false(index.has('data', `0badcafe${'0'.repeat(56)}`), 'an ID whose first bytes many share, none of them');
  t.is(index.size, 60_000);
  t.true(ids.every((blobId, n) => index.get('data', blobId)?.offset === n));
});

test('the local backend: restic layout, read-only files, no overwrites, ranges, typed not-found', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-local-backend-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const backend = new LocalBackend(path.join(root, 'repo'));
  await backend.create();
  t.false(await backend.exists());
  t.is(fs.readdirSync(path.join(root, 'repo', 'data')).length, 256);
  const name = id(1);
  await backend.write('data', name, Buffer.from('0123456789'));
  t.is((fs.statSync(path.join(root, 'repo', 'data', name.slice(0, 2), name)).mode & 0o777).toString(8), '400');
  await t.throwsAsync(backend.write('data', name, Buffer.from('other')), { instanceOf: BackendError, message: /already exists/ });
  t.is((await backend.read('data', name, { offset: 3, length: 4 })).toString(), '3456');
  await t.throwsAsync(backend.read('data', name, { offset: 8, length: 4 }), { instanceOf: BackendError, message: /shorter than expected/ });
  await t.throwsAsync(backend.read('snapshots', id(2)), { instanceOf: BackendNotFoundError });
  await backend.write('locks', id(3), Buffer.from('a'));
  await backend.write('locks', id(3), Buffer.from('b'));
  t.is((fs.statSync(path.join(root, 'repo', 'locks', id(3))).mode & 0o777).toString(8), '600');
  const listed = [];
  for await (const info of backend.list('data')) listed.push(info);
  t.deepEqual(listed, [{ name, size: 10 }]);
  t.deepEqual(fs.readdirSync(path.join(root, 'repo', 'data', name.slice(0, 2))), [name], 'no temporary file is left');
  await backend.remove('data', name);
  await backend.remove('data', name);
  await backend.write('config', 'config', Buffer.from('c'));
  t.true(await backend.exists());
});
