/**
 * check without restic: the subset choices, and a tiny repository (one blob a pack) damaged in known
 * ways, where the affected snapshots are known exactly. Against restic: test/integration/repository-check.test.ts.
 */
import test, { type ExecutionContext } from 'ava';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalBackend } from '../../src/repository/backends/local.ts';
import { checkRepository, checkRepositoryLocked, parseReadDataSubset, selectPacks } from '../../src/repository/check.ts';
import { acquireLock, listLocks, RepositoryLockedError } from '../../src/repository/lock.ts';
import { Repository } from '../../src/repository/repository.ts';
import { newSnapshot } from '../../src/repository/snapshot.ts';
import { GoMode, type Node } from '../../src/repository/tree.ts';

const KDF = { N: 1024, r: 8, p: 1 };

test('read-data-subset parses as restic does', (t) => {
  t.deepEqual(parseReadDataSubset('2/5'), { kind: 'group', n: 2, t: 5 });
  t.deepEqual(parseReadDataSubset('12.5%'), { kind: 'percent', percent: 12.5 });
  t.deepEqual(parseReadDataSubset('100M'), { kind: 'bytes', bytes: 100 * 1024 * 1024 });
  t.deepEqual(parseReadDataSubset('4096'), { kind: 'bytes', bytes: 4096 });
  for (const bad of ['0/5', '6/5', '1/300', '0%', '101%', 'x', '0']) t.throws(() => parseReadDataSubset(bad), undefined, bad);
});

test('subsets: group n of t by the first byte, at least one pack for a percentage, a size as its share', (t) => {
  const packs = new Map<string, number>();
  for (let i = 0; i < 256; i++) packs.set(i.toString(16).padStart(2, '0') + 'ab'.repeat(31), 100);
  const group = selectPacks(packs, { kind: 'group', n: 2, t: 4 });
  t.is(group.length, 64);
  t.true(group.every((id) => parseInt(id.slice(0, 2), 16) % 4 === 1));
  t.is(selectPacks(packs, { kind: 'percent', percent: 10 }).length, 25);
  t.is(selectPacks(packs, { kind: 'percent', percent: 0.01 }).length, 1);
  t.is(new Set(selectPacks(packs, { kind: 'percent', percent: 100 })).size, 256);
  t.is(selectPacks(packs, { kind: 'bytes', bytes: 2560 }).length, 25);
});

const T = 1_700_000_000_000_000_000n;
const file = (name: string, content: string[]): Node => ({ name: Buffer.from(name), type: 'file', mode: 0o644, mtime: T, atime: T, ctime: T, uid: 0, gid: 0, size: 1, content });
const dir = (name: string, subtree: string): Node => ({ name: Buffer.from(name), type: 'dir', mode: GoMode.dir + 0o755, mtime: T, atime: T, ctime: T, uid: 0, gid: 0, subtree });

/** Three data blobs x, y, z each in its own pack; snapshot A has x and y (y in a subdirectory), B has y and z. */
async function fixture(t: ExecutionContext) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-check-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const repoPath = path.join(root, 'repo');
  const repo = await Repository.init(new LocalBackend(repoPath), 'pw', { kdf: KDF, packSize: 1 });
  const blob = async (seed: string) => (await repo.saveBlob('data', crypto.createHash('sha512').update(seed).digest())).id;
  const [x, y, z] = [await blob('x'), await blob('y'), await blob('z')];
  const sub = await repo.saveTree([file('y', [y])]);
  const a = await repo.saveSnapshot(newSnapshot({ tree: await repo.saveTree([file('x', [x]), dir('sub', sub)]), paths: ['/a'], hostname: 'h', time: T }));
  const b = await repo.saveSnapshot(newSnapshot({ tree: await repo.saveTree([file('y', [y]), file('z', [z])]), paths: ['/b'], hostname: 'h', time: T + 1n }));
  const packOf = (id: string) => repo.index.get('data', id)!.pack;
  const packPath = (pack: string) => path.join(repoPath, 'data', pack.slice(0, 2), pack);
  const reopen = () => Repository.open(new LocalBackend(repoPath), 'pw', { loadIndex: false });
  return { repoPath, x, y, z, a, b, packOf, packPath, reopen };
}

test('a sound repository checks clean, with and without read-data', async (t) => {
  const f = await fixture(t);
  const plain = await checkRepository(await f.reopen());
  t.true(plain.ok, JSON.stringify(plain.problems));
  t.is(plain.stats.snapshots, 2);
  t.is(plain.stats.packsRead, 0);
  const full = await checkRepository(await f.reopen(), { readData: true, readWindow: 16 });
  t.true(full.ok, JSON.stringify(full.problems));
  t.is(full.stats.packsRead, full.stats.packs);
});

test('a flipped byte in a blob: read-data finds it and names the one snapshot that reaches it', async (t) => {
  const f = await fixture(t);
  const pack = f.packOf(f.x);
  fs.chmodSync(f.packPath(pack), 0o600);
  const fd = fs.openSync(f.packPath(pack), 'r+');
  const byte = Buffer.alloc(1);
  fs.readSync(fd, byte, 0, 1, 20);
  byte[0]! ^= 0x01;
  fs.writeSync(fd, byte, 0, 1, 20);
  fs.closeSync(fd);
  t.true((await checkRepository(await f.reopen())).ok, 'without read-data the damage is not seen');
  const result = await checkRepository(await f.reopen(), { readData: true, readWindow: 7 });
  t.false(result.ok);
  t.is(result.problems.length, 1);
  t.like(result.problems[0], { kind: 'pack-damaged', pack, snapshots: [f.a], blobs: [{ type: 'data', id: f.x }] });
  t.regex(result.problems[0]!.message, /does not hash to its name/);
  t.deepEqual(result.damagedSnapshots, [f.a]);
  // A subset that leaves that pack out sees nothing.
  const other = await checkRepository(await f.reopen(), { readData: { kind: 'group', n: ((parseInt(pack.slice(0, 2), 16) + 1) % 2) + 1, t: 2 } });
  t.true(other.ok);
});

test('a missing pack is found without read-data and names every snapshot that reaches it, oldest first', async (t) => {
  const f = await fixture(t);
  const pack = f.packOf(f.y);
  fs.rmSync(f.packPath(pack));
  const result = await checkRepository(await f.reopen());
  t.is(result.problems.length, 1);
  t.like(result.problems[0], { kind: 'pack-missing', pack, snapshots: [f.a, f.b] });
  t.deepEqual(result.damagedSnapshots, [f.a, f.b]);
});

test('a truncated pack is the wrong size, and a damaged index file loses what it listed', async (t) => {
  const f = await fixture(t);
  const pack = f.packOf(f.z);
  fs.chmodSync(f.packPath(pack), 0o600);
  fs.truncateSync(f.packPath(pack), 10);
  const result = await checkRepository(await f.reopen());
  t.like(result.problems[0], { kind: 'pack-size', pack, snapshots: [f.b] });
  const read = await checkRepository(await f.reopen(), { readData: true });
  t.like(read.problems[0], { pack, snapshots: [f.b] });

  const indexDir = path.join(f.repoPath, 'index');
  for (const name of fs.readdirSync(indexDir)) {
    fs.chmodSync(path.join(indexDir, name), 0o600);
    fs.appendFileSync(path.join(indexDir, name), 'x');
  }
  const noIndex = await checkRepository(await f.reopen());
  t.true(noIndex.problems.some((p) => p.kind === 'index'));
  t.true(noIndex.problems.some((p) => p.kind === 'blob-missing'));
  t.deepEqual(noIndex.damagedSnapshots, [f.a, f.b]);
});

function flipByte(file: string, at: number): void {
  fs.chmodSync(file, 0o600);
  const fd = fs.openSync(file, 'r+');
  const byte = Buffer.alloc(1);
  fs.readSync(fd, byte, 0, 1, at);
  byte[0]! ^= 0x01;
  fs.writeSync(fd, byte, 0, 1, at);
  fs.closeSync(fd);
}

test('checking some snapshots reads only the packs they reach and names only them', async (t) => {
  const f = await fixture(t);
  const packX = f.packOf(f.x);
  flipByte(f.packPath(packX), 20);
  const onlyB = await checkRepository(await f.reopen(), { readData: true, snapshots: [f.b] });
  t.true(onlyB.ok, 'B does not reach x, whose pack is not read');
  t.is(onlyB.stats.snapshots, 1);
  t.is(onlyB.stats.packsRead, 3, "the packs of y, z and of B's tree");
  const onlyA = await checkRepository(await f.reopen(), { readData: true, snapshots: [f.a] });
  t.like(onlyA.problems[0], { kind: 'pack-damaged', pack: packX, snapshots: [f.a] });
  t.deepEqual(onlyA.damagedSnapshots, [f.a]);
  const missing = await checkRepository(await f.reopen(), { snapshots: ['0'.repeat(64)] });
  t.like(missing.problems.at(-1), { kind: 'snapshot', snapshots: ['0'.repeat(64)] });
});

test('a pack damaged only after its blobs (a byte appended) is reported, but no snapshot loses data: every blob is intact', async (t) => {
  const f = await fixture(t);
  const packX = f.packOf(f.x);
  fs.chmodSync(f.packPath(packX), 0o600);
  fs.appendFileSync(f.packPath(packX), 'x');
  const result = await checkRepository(await f.reopen(), { readData: true });
  t.is(result.problems.length, 1);
  t.like(result.problems[0], { kind: 'pack-size', pack: packX, snapshots: [] });
  t.regex(result.problems[0]!.message, /header/);
  t.false('blobs' in result.problems[0]!);
  t.deepEqual(result.damagedSnapshots, []);
  t.false(result.ok);
});

test('the locked check holds a shared lock while it runs: an exclusive lock (prune) is refused meanwhile', async (t) => {
  const f = await fixture(t);
  const repo = await f.reopen();
  let attempt: Promise<unknown> | undefined;
  const result = await checkRepositoryLocked(repo, {
    readData: true,
    onProgress: (p) => {
      if (p.phase === 'index' && !attempt) attempt = acquireLock(repo, { exclusive: true, waitBeforeCheckMs: 1 }).then((l) => l.release(), (e: unknown) => e);
    },
  }, { waitBeforeCheckMs: 1 });
  t.true(result.ok);
  t.true((await attempt) instanceof RepositoryLockedError);
  t.deepEqual(await listLocks(repo), []);
});

test('a blob indexed in two packs: a note when the lengths agree, a problem when they do not; a lost copy loses nothing', async (t) => {
  const f = await fixture(t);
  const repo = await f.reopen();
  const entry = (await Repository.open(new LocalBackend(f.repoPath), 'pw')).index.get('data', f.x)!;
  // An index file naming a pack that does not exist, which also holds x.
  const ghost = 'ee'.repeat(32);
  const claim = (length: number) => Buffer.from(JSON.stringify({ packs: [{ id: ghost, blobs: [{ id: f.x, type: 'data', offset: 0, length }] }] }));
  const same = await repo.saveUnpacked('index', claim(entry.length));
  // Whichever index file is read first, x is found in its intact pack.
  for (const order of [(a: string, b: string) => (a < b ? -1 : 1), (a: string, b: string) => (a < b ? 1 : -1)]) {
    const reordered = await f.reopen();
    const list = reordered.backend.list.bind(reordered.backend);
    reordered.backend.list = async function* (type) {
      const files = [];
      for await (const file of list(type)) files.push(file);
      yield* files.sort((a, b) => order(a.name, b.name));
    };
    const consistent = await checkRepository(reordered, { readData: true });
    t.deepEqual(consistent.problems.map((p) => p.kind), ['pack-missing']);
    t.deepEqual(consistent.problems[0]!.snapshots, [], 'x has an intact copy: no snapshot loses it');
    t.regex(consistent.notes.join('\n'), /1 blobs are stored more than once/);
  }
  await repo.backend.remove('index', same);
  await repo.saveUnpacked('index', claim(entry.length + 5));
  const inconsistent = await checkRepository(await f.reopen());
  t.true(inconsistent.problems.some((p) => p.kind === 'index-inconsistent' && /different lengths/.test(p.message)), JSON.stringify(inconsistent.problems));
});
