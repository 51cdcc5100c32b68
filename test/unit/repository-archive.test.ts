import test from 'ava';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { TarStreamCheck, type TarEntry } from '../../src/backup/tar-stream.ts';
import { endOfArchive, entryHeader, dataPadding, type TarWriteEntry } from '../../src/backup/tar-writer.ts';
import { archiveImage, archiveTar, ArchiveError, saveArchiveSnapshot } from '../../src/repository/archiver.ts';
import { LocalBackend } from '../../src/repository/backends/local.ts';
import { MAX_BLOBS_PER_PACK } from '../../src/repository/pack.ts';
import { Repository } from '../../src/repository/repository.ts';
import { fileContent, imageNode, restoreTar } from '../../src/repository/restorer.ts';
import { parseTime } from '../../src/repository/time.ts';

/** Cheap scrypt for tests: the key format is the same, only the cost differs. */
const KDF = { N: 1024, r: 8, p: 1 };

async function repository(t: { teardown: (fn: () => void) => void }): Promise<Repository> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-repo-unit-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return Repository.init(new LocalBackend(path.join(dir, 'repo')), 'pw', { kdf: KDF });
}

const T = 1_600_000_000_123_456_789n;
function entry(name: string, type: TarWriteEntry['type'], fields: Partial<TarWriteEntry> & { data?: string } = {}): Buffer {
  const data = fields.data === undefined ? undefined : Buffer.from(fields.data);
  const header = entryHeader({ name: Buffer.from(name), type, mode: 0o644, uid: 1, gid: 2, size: data?.length ?? 0, mtimeNs: T, ...fields });
  return data ? Buffer.concat([header, data, dataPadding(data.length)]) : header;
}

async function entriesOf(stream: Readable): Promise<(TarEntry & { data: string })[]> {
  const entries: (TarEntry & { data: string })[] = [];
  const check = new TarStreamCheck({ onEntry: (e) => entries.push({ ...e, data: '' }), onData: (d) => (entries.at(-1)!.data += d.toString()) });
  for await (const chunk of stream) check.feed(chunk as Buffer);
  if (!check.summary.complete) throw new Error('incomplete tar');
  return entries;
}

test('a tar stream in and back out: hard links to files in directories tar already left, revisited and implicit directories', async (t) => {
  const repo = await repository(t);
  const archive = Buffer.concat([
    entry('./', 'directory', { mode: 0o750 }),
    entry('./a/', 'directory', { mode: 0o755 }),
    entry('./a/x/', 'directory', { mode: 0o700 }),
    entry('./a/x/f', 'file', { data: 'linked content', mode: 0o4755 }),
    entry('./b/', 'directory', { mode: 0o1777 }),
    // a and a/x are saved by now: the link rewrites both trees.
    entry('./b/link', 'hardlink', { linkName: Buffer.from('./a/x/f'), mode: 0o4755 }),
    entry('./second link', 'hardlink', { linkName: Buffer.from('a/x/f'), mode: 0o4755 }),
    // A link in the directory its target is in, still open; then a directory tar comes back to.
    entry('./b/own', 'file', { data: 'own' }),
    entry('./b/own link', 'hardlink', { linkName: Buffer.from('./b/own') }),
    entry('./a/later', 'file', { data: 'a again' }),
    // No entry for c/ or c/d/: made up.
    entry('./c/d/file', 'file', { data: 'in an implicit directory' }),
    entry('./sym', 'symlink', { linkName: Buffer.from([0x74, 0xff]), mode: 0o777 }),
    entry(`./${'n'.repeat(150)}`, 'file', { data: 'long name' }),
    endOfArchive(),
  ]);
  const result = await archiveTar(repo, Readable.from([archive]), { path: '/data/pvc', hostname: 'ns' });
  t.is(result.files, 8);
  const out = await entriesOf(restoreTar(repo, await repo.findSnapshot(result.snapshotId)));
  t.deepEqual(
    out.map((e) => [e.name.toString('latin1'), e.type, e.mode.toString(8), e.linkName.toString('latin1'), e.data, e.mtimeNs]),
    [
      ['./', 'directory', '750', '', '', T],
      ['./a/', 'directory', '755', '', '', T],
      ['./a/later', 'file', '644', '', 'a again', T],
      ['./a/x/', 'directory', '700', '', '', T],
      ['./a/x/f', 'file', '4755', '', 'linked content', T],
      ['./b/', 'directory', '1777', '', '', T],
      ['./b/link', 'hardlink', '4755', './a/x/f', '', T],
      ['./b/own', 'file', '644', '', 'own', T],
      ['./b/own link', 'hardlink', '644', './b/own', '', T],
      // Directories tar did not announce get the snapshot's time.
      ['./c/', 'directory', '755', '', '', parseTime(result.snapshot.time)],
      ['./c/d/', 'directory', '755', '', '', parseTime(result.snapshot.time)],
      ['./c/d/file', 'file', '644', '', 'in an implicit directory', T],
      [`./${'n'.repeat(150)}`, 'file', '644', '', 'long name', T],
      ['./second link', 'hardlink', '4755', './a/x/f', '', T],
      ['./sym', 'symlink', '777', 't\xff', '', T],
    ],
  );
  // The trees rewritten for the link are the ones the snapshot uses; restic's restorer links names by inode when links > 1.
  const pvc = (await repo.loadTree((await repo.loadTree((await repo.loadTree(result.snapshot.tree))[0]!.subtree!))[0]!.subtree!));
  const a = await repo.loadTree(pvc.find((n) => n.name.toString() === 'a')!.subtree!);
  const [f] = await repo.loadTree(a.find((n) => n.name.toString() === 'x')!.subtree!);
  const link = (await repo.loadTree(pvc.find((n) => n.name.toString() === 'b')!.subtree!))[0]!;
  t.like(f, { links: 2, inode: 1, size: 14 });
  t.like(link, { links: 2, inode: 1, size: 14, content: f!.content });
});

test('a stream cut short, a link to nothing and ".." are refused, and no snapshot is written', async (t) => {
  const repo = await repository(t);
  const file = entry('./f', 'file', { data: 'x'.repeat(1000) });
  await t.throwsAsync(archiveTar(repo, Readable.from([file.subarray(0, 700)]), { path: '/data/p', hostname: 'n' }), { instanceOf: ArchiveError, message: /cut short/ });
  await t.throwsAsync(archiveTar(repo, Readable.from([Buffer.concat([entry('./l', 'hardlink', { linkName: Buffer.from('./nothing') }), endOfArchive()])]), { path: '/data/p', hostname: 'n' }), {
    message: /hard link to "\.\/nothing": no such file/,
  });
  await t.throwsAsync(archiveTar(repo, Readable.from([Buffer.concat([entry('./../escape', 'file', { data: '' }), endOfArchive()])]), { path: '/data/p', hostname: 'n' }), { message: /"\.\." component/ });
  t.deepEqual(await repo.listSnapshots(), []);
});

test('the same content twice is stored once', async (t) => {
  const repo = await repository(t);
  const data = 'same '.repeat(10_000);
  const result = await archiveTar(repo, Readable.from([Buffer.concat([entry('./one', 'file', { data }), entry('./two', 'file', { data }), endOfArchive()])]), { path: '/data/p', hostname: 'n' });
  t.is(result.snapshot.summary!.data_blobs, 1);
  // Like restic's, data_added counts tree blobs too.
  t.true(result.snapshot.summary!.data_added < 2 * data.length);
});

test('a device image is one file at the snapshot\'s path, chunked like any file: an unchanged region is stored once, and it reads back whole', async (t) => {
  const repo = await repository(t);
  const random = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 2654435761 >>> 13) & 0xff));
  const image = Buffer.concat([random(3 * 1048576), Buffer.alloc(2 * 1048576)]);
  const pieces = (data: Buffer) => Readable.from(Array.from({ length: Math.ceil(data.length / 65536) }, (_, i) => data.subarray(i * 65536, (i + 1) * 65536)));
  const first = await archiveImage(repo, pieces(image), { path: '/data/disk' });
  const saved = await saveArchiveSnapshot(repo, first, { path: '/data/disk', hostname: 'ns' });
  const snapshot = await repo.loadSnapshot(saved.snapshotId);
  const node = await imageNode(repo, snapshot);
  t.like(node, { type: 'file', size: image.length });
  t.is(node!.name.toString(), 'disk');
  const back: Buffer[] = [];
  for await (const chunk of fileContent(repo, node!)) back.push(chunk as Buffer);
  t.true(Buffer.concat(back).equals(image));
  // The same image again adds no data; a directory snapshot has no image.
  const again = await archiveImage(repo, pieces(image), { path: '/data/disk' });
  t.is(again.added.dataBlobs, 0);
  const tree = await archiveTar(repo, Readable.from([Buffer.concat([entry('./', 'directory'), endOfArchive()])]), { path: '/data/pvc', hostname: 'ns' });
  t.is(await imageNode(repo, await repo.loadSnapshot(tree.snapshotId)), undefined);
});

test('a file of many chunks restores whole and in order, its next chunks read while one is written; a chunk that went missing fails the restore by name', async (t) => {
  const repo = await repository(t);
  // 12 MiB of random bytes: some 8 chunks at restic's boundaries (512 KiB to 8 MiB).
  const data = crypto.randomBytes(12 * 1048576);
  const header = entryHeader({ name: Buffer.from('./big'), type: 'file', mode: 0o600, uid: 1, gid: 2, size: data.length, mtimeNs: T });
  const tar = Buffer.concat([header, data, dataPadding(data.length), entry('./after', 'file', { data: 'after' }), endOfArchive()]);
  const result = await archiveTar(repo, Readable.from([tar]), { path: '/data/p', hostname: 'n' });
  const node = (await repo.loadTree((await repo.loadTree((await repo.loadTree(result.snapshot.tree))[0]!.subtree!))[0]!.subtree!)).find((n) => n.name.toString() === 'big')!;
  t.true(node.content!.length >= 4, `${node.content!.length} chunks`);
  const back: Buffer[] = [];
  let name = '';
  const check = new TarStreamCheck({ onEntry: (e) => (name = e.name.toString()), onData: (d) => name === './big' && back.push(Buffer.from(d)) });
  for await (const chunk of restoreTar(repo, result.snapshot)) check.feed(chunk as Buffer);
  t.true(check.summary.complete);
  t.true(Buffer.concat(back).equals(data));

  // The pack of the file's third chunk is gone: the restore fails, naming what is missing.
  const lost = repo.index.get('data', node.content![2]!)!.pack;
  const packs = path.join(repo.backend.location, 'data', lost.slice(0, 2), lost);
  fs.chmodSync(packs, 0o600);
  fs.rmSync(packs);
  const reopened = await Repository.open(new LocalBackend(repo.backend.location), 'pw');
  const error = await t.throwsAsync(async () => {
    for await (const chunk of restoreTar(reopened, result.snapshot)) void chunk;
  });
  t.regex(error!.message, new RegExp(lost.slice(0, 8)));
});

test('a pack holds at most 50,000 blobs, and an index file lists as many: tiny blobs fill packs by count before size', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-repo-unit-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const backend = new LocalBackend(path.join(dir, 'repo'));
  const repo = await Repository.init(backend, 'pw', { kdf: KDF });
  const count = MAX_BLOBS_PER_PACK + 10;
  for (let i = 0; i < count; i++) await repo.saveBlob('data', Buffer.from(`blob ${i}`));
  await repo.flush();
  const reopened = await Repository.open(backend, 'pw');
  const packs = [...reopened.index.packs()];
  const sizes = await Promise.all(packs.map(async (pack) => (await reopened.readPackHeader(pack)).length));
  t.deepEqual(sizes.sort((a, b) => b - a), [MAX_BLOBS_PER_PACK, 10]);
  t.is(reopened.index.size, count);
  t.deepEqual(await reopened.loadBlob('data', crypto.createHash('sha256').update(`blob ${count - 1}`).digest('hex')), Buffer.from(`blob ${count - 1}`));
});

test('blobs through the reused compressor and pack buffer: one that does not compress is stored as it is, the next compresses, packs stay within their size, all read back', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-repo-unit-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const backend = new LocalBackend(path.join(dir, 'repo'));
  const repo = await Repository.init(backend, 'pw', { kdf: KDF, packSize: 64 * 1024 });
  const random = crypto.randomBytes(40 * 1024);
  const text = Buffer.from('the quick brown fox jumps over the lazy dog '.repeat(1000));
  const blobs = [random, text, crypto.randomBytes(100 * 1024), text.subarray(1), Buffer.from('x'), Buffer.alloc(0)];
  // Saved at once: they are added one at a time, none lost to a pack being written.
  const ids = (await Promise.all(blobs.map((blob) => repo.saveBlob('data', blob)))).map((saved) => saved.id);
  t.deepEqual(await repo.loadBlob('data', ids[1]!), text); // still in the pack being filled
  await repo.flush();
  const reopened = await Repository.open(backend, 'pw');
  for (const [i, blob] of blobs.entries()) t.deepEqual(await reopened.loadBlob('data', ids[i]!), blob);
  t.is(reopened.index.get('data', ids[0]!)!.uncompressedLength, undefined);
  t.is(reopened.index.get('data', ids[1]!)!.uncompressedLength, text.length);
  t.is(reopened.index.get('data', ids[3]!)!.uncompressedLength, text.length - 1);
  const packs = [...reopened.index.packs()];
  t.true(packs.length >= 2);
  // A pack holds what fits in its size; the 100 KiB blob, larger than a pack, has one of its own.
  for (const pack of packs) {
    const { size } = await backend.stat('data', pack);
    const blobsIn = (await reopened.readPackHeader(pack)).length;
    t.true(size <= 64 * 1024 || blobsIn === 1, `pack of ${size} bytes with ${blobsIn} blobs`);
  }
});

test('an index loaded meanwhile: a blob lookup before it is loaded is an error, not a "new"; after, the blob is found', async (t) => {
  const repo = await repository(t);
  const { id } = await repo.saveBlob('data', Buffer.from('known content'));
  await repo.flush();
  const reopened = await Repository.open(repo.backend, 'pw', { loadIndex: 'meanwhile' });
  t.throws(() => reopened.hasBlob('data', id), { message: /index is still loading/ });
  await t.throwsAsync(() => reopened.loadBlob('data', id), { message: /index is still loading/ });
  await reopened.indexLoaded();
  t.true(reopened.hasBlob('data', id));
});
