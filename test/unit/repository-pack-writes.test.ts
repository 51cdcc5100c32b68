/**
 * A pack is written while the next one fills: one write under way at a time, a blob of a pack
 * being written read back once it is there, and a write that fails fails the backup with nothing
 * indexed for that pack; a backup that fails waits for the write under way. Each test runs twice:
 * packs built in their files as they fill (a local repository), and packs held in memory and
 * written whole (S3).
 */
import test from 'ava';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FileType, SpoolFile } from '../../src/repository/backends/backend.ts';
import { LocalBackend } from '../../src/repository/backends/local.ts';
import { Repository } from '../../src/repository/repository.ts';
import { sha256 } from '../../src/repository/crypto.ts';
import { archiveImage, archiveTar } from '../../src/repository/archiver.ts';
import { execFileSync } from 'node:child_process';

const KDF = { N: 1024, r: 8, p: 1 };
const PACK_SIZE = 64 * 1024;

/**
 * A local backend whose pack writes (whole, or a spooled pack's commit) wait until released, or
 * fail from the `failAt`th on. Without `spools`, packs are written whole, as to S3.
 */
class HeldBackend extends LocalBackend {
  released = false;
  private readonly waiting: (() => void)[] = [];
  underWay = 0;
  mostUnderWay = 0;
  packsWritten = 0;
  failAt = Infinity;
  /** Pack write attempts (1 is the first) that fail once. */
  readonly failAttempts = new Set<number>();
  attempts = 0;

  constructor(dir: string, spools: boolean) {
    super(dir);
    if (!spools) Object.defineProperty(this, 'spool', { value: undefined });
  }

  override async write(type: FileType, name: string, data: Uint8Array): Promise<void> {
    if (type !== 'data') return super.write(type, name, data);
    return this.held(() => super.write(type, name, data));
  }

  override async spool(): Promise<SpoolFile> {
    const file = await super.spool();
    const commit = file.commit.bind(file);
    return Object.assign(file, { commit: (name: string) => this.held(() => commit(name)) });
  }

  private async held(write: () => Promise<void>): Promise<void> {
    this.underWay += 1;
    this.mostUnderWay = Math.max(this.mostUnderWay, this.underWay);
    try {
      if (!this.released) await new Promise<void>((resolve) => this.waiting.push(resolve));
      this.attempts += 1;
      if (this.packsWritten + 1 >= this.failAt || this.failAttempts.has(this.attempts)) throw new Error('no space left on device (test)');
      await write();
      this.packsWritten += 1;
    } finally {
      this.underWay -= 1;
    }
  }

  release(): void {
    this.released = true;
    for (const resolve of this.waiting.splice(0)) resolve();
  }
}

const ways = [
  { way: 'spooled', spools: true },
  { way: 'in memory', spools: false },
];

async function repository(t: { teardown(fn: () => void): void }, spools: boolean): Promise<{ repo: Repository; backend: HeldBackend; dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-pack-writes-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const backend = new HeldBackend(dir, spools);
  await Repository.init(backend, 'pw', { kdf: KDF });
  // Uncompressed, so that each 20 KiB blob fills the small packs as much as it says.
  return { repo: await Repository.open(backend, 'pw', { packSize: PACK_SIZE, compression: false }), backend, dir };
}

const blob = () => crypto.randomBytes(20 * 1024);

for (const { way, spools } of ways) {
  test(`${way}: the next pack fills while one is written; a blob of the pack being written is read once it is there`, async (t) => {
    const { repo, backend } = await repository(t, spools);
    const blobs = Array.from({ length: 8 }, blob);
    const ids: string[] = [];
    // Three blobs fill a pack: the first pack's write starts and is held; saving goes on into the next pack.
    for (const data of blobs.slice(0, 5)) ids.push((await repo.saveBlob('data', data)).id);
    t.is(backend.underWay, 1);
    t.is(backend.packsWritten, 0);
    t.true(repo.hasBlob('data', ids[0]!), 'a blob of the pack being written is known (not saved twice)');
    t.false((await repo.saveBlob('data', blobs[0]!)).added);
    const early = repo.loadBlob('data', ids[0]!);
    setTimeout(() => backend.release(), 50);
    t.deepEqual(await early, blobs[0]);
    for (const data of blobs.slice(5)) ids.push((await repo.saveBlob('data', data)).id);
    await repo.flush();
    t.is(backend.mostUnderWay, 1, 'one pack write at a time');
    t.is(backend.underWay, 0);
    t.deepEqual(fs.readdirSync(path.join(backend.location, 'data')).filter((name) => !/^[0-9a-f]{2}$/.test(name)), [], 'every pack file is in place, none left under a temporary name');
    const reopened = await Repository.open(new LocalBackend(backend.location), 'pw');
    for (const [index, id] of ids.entries()) t.deepEqual(await reopened.loadBlob('data', id), blobs[index]);
  });

  test(`${way}: a pack write that fails fails the backup, and no index lists that pack`, async (t) => {
    const { repo, backend, dir } = await repository(t, spools);
    backend.release();
    backend.failAt = 2;
    const saving = (async () => {
      for (let i = 0; i < 12; i++) await repo.saveBlob('data', blob());
      await repo.flush();
    })();
    await t.throwsAsync(saving, { message: /no space left on device/ });
    t.is(backend.packsWritten, 1);
    await repo.flush().catch(() => undefined);
    await repo.close();
    const reopened = await Repository.open(new LocalBackend(dir), 'pw');
    const packs = new Set(fs.readdirSync(path.join(dir, 'data'), { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile()).map((entry) => entry.name));
    const indexed = reopened.index.packs();
    t.is(packs.size, 1, 'the pack written before the failure is there, unreferenced until a backup indexes it; closing removed the files of the packs not written');
    t.true([...indexed].every((pack) => packs.has(pack)), 'every indexed pack is there');
  });

  test(`${way}: a large tree's pack is written at once, without waiting to fill; the small trees after it share the next`, async (t) => {
    const { repo, backend, dir } = await repository(t, spools);
    backend.release();
    const tree = (bytes: number) => Buffer.from(`{"nodes":[${JSON.stringify(crypto.randomBytes(bytes / 2).toString('hex'))}]}\n`);
    // A pack is 64 KiB here: a tree of an eighth of it or more is large.
    await repo.saveBlob('tree', tree(1000));
    await repo.saveBlob('tree', tree(10_000));
    t.is(backend.packsWritten + backend.underWay, 1, 'the large tree and the one before it are written without waiting for a full pack');
    await repo.saveBlob('tree', tree(1000));
    await repo.saveBlob('tree', tree(1000));
    await repo.flush();
    const reopened = await Repository.open(new LocalBackend(dir), 'pw');
    t.is(reopened.index.packs().size, 2);
  });

  test(`${way}: a pack whose write failed is written again: once by the next pack, then by every flush until it is there`, async (t) => {
    const { repo, backend, dir } = await repository(t, spools);
    backend.release();
    backend.failAttempts.add(2);
    const blobs = Array.from({ length: 12 }, blob);
    for (const data of blobs) await repo.saveBlob('data', data);
    await repo.flush();
    t.true(backend.attempts > backend.packsWritten, 'a write was tried again');
    // Failing for good: the backup fails, and a later flush on the same repository writes what was held.
    backend.failAt = backend.packsWritten + 1;
    const more = Array.from({ length: 3 }, blob);
    for (const data of more) await repo.saveBlob('data', data).catch(() => undefined);
    await t.throwsAsync(repo.flush(), { message: /no space left/ });
    t.true(repo.hasBlob('data', sha256(more[0]!).toString('hex')), 'the unwritten pack\'s blobs stay known, and readable');
    t.deepEqual(await repo.loadBlob('data', sha256(more[0]!).toString('hex')), more[0]);
    backend.failAt = Infinity;
    await repo.flush();
    const reopened = await Repository.open(new LocalBackend(dir), 'pw');
    for (const data of [...blobs, ...more]) t.deepEqual(await reopened.loadBlob('data', sha256(data).toString('hex')), data);
  });
}

/** A tar stream of files of 30 KiB: the first 200 KiB of it fill packs of 64 KiB. */
function tarOfFiles(dir: string): Buffer {
  const source = path.join(dir, 'source');
  fs.mkdirSync(source);
  for (let i = 0; i < 8; i++) fs.writeFileSync(path.join(source, `f${i}`), crypto.randomBytes(30 * 1024));
  return execFileSync('tar', ['--format=posix', '-cf', '-', '-C', source, '.']);
}

for (const [{ what, archive, input, cutAt }, { way, spools }] of [
  { what: 'a tar stream', archive: archiveTar, input: tarOfFiles, cutAt: 200 * 1024 },
  // A chunk is 8 MiB at most: 9 MiB of a device hold a whole one, a pack of its own.
  { what: 'a device image', archive: archiveImage, input: () => crypto.randomBytes(10 * 1024 * 1024), cutAt: 9 * 1024 * 1024 },
].flatMap((input) => ways.map((way) => [input, way] as const))) {
  test(`${way}: ${what} cut off while a pack is being written rejects only once that write has ended: nothing lands after its caller lets go of the lock`, async (t) => {
    const { repo, backend, dir } = await repository(t, spools);
    const stream = input(dir);
    async function* cutOff() {
      yield stream.subarray(0, cutAt); // past the first pack: its write is held
      throw new Error('connection lost');
    }
    setTimeout(() => backend.release(), 300);
    await t.throwsAsync(archive(repo, cutOff(), { path: '/data/cut', hostname: 'h' }), { message: 'connection lost' });
    t.is(backend.underWay, 0, 'no pack write under way once the backup has failed');
    t.true(backend.packsWritten >= 1);
  });
}
