/**
 * Incremental backups without a cluster: the helper's listing and tar commands run by the same
 * busybox sh, find, stat, xargs and tar the helper image has, on a real directory; the listing is
 * compared with the parent snapshot and only what changed is read.
 */
import test from 'ava';
import crypto from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { listingScript, newListingNonce, parseStatTime, readListing, type ListingCapabilities } from '../../src/backup/claim-listing.ts';
import { EMPTY_ARCHIVE, requestedTarCommand } from '../../src/backup/incremental-copy.ts';
import { TarStreamCheck, type TarEntry } from '../../src/backup/tar-stream.ts';
import { saveArchiveSnapshot } from '../../src/repository/archiver.ts';
import { LocalBackend } from '../../src/repository/backends/local.ts';
import { archiveDirectory, restoreDirectory } from '../../src/repository/directory.ts';
import { archiveChanges, archivePlannedTree, directoryAtPath, ParentTrees, parentTreesAtPath, planRequests, type RequestPlan } from '../../src/repository/incremental.ts';
import { NodesByName } from '../../src/repository/tree-nodes.ts';
import type { Node } from '../../src/repository/tree.ts';
import { Repository } from '../../src/repository/repository.ts';
import { restoreTar } from '../../src/repository/restorer.ts';
import type { SnapshotWithId } from '../../src/repository/snapshot.ts';

const KDF = { N: 1024, r: 8, p: 1 };
const SNAPSHOT_PATH = '/data/pvc';

function run(script: string, input?: Buffer): Promise<{ stdout: Buffer; stderr: string; code: number | null }> {
  const child = spawn('busybox', ['sh', '-c', script], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin.on('error', () => {}); // commands that read no input close it early
  child.stdin.end(input ?? Buffer.alloc(0));
  return new Promise((resolve) => child.on('close', (code) => resolve({ stdout: Buffer.concat(out), stderr, code })));
}

/** One backup as copy.ts makes it, the helper's commands run here; `between` runs after the plan, before tar reads. */
async function backup(repo: Repository, root: string, parent: SnapshotWithId | undefined, between?: () => void) {
  const nonce = newListingNonce();
  const listed = await run(listingScript(root, nonce));
  if (listed.code !== 0) throw new Error(`listing failed: ${listed.stderr}`);
  const parentTrees = parent ? await parentTreesAtPath(repo, parent.tree, SNAPSHOT_PATH) : undefined;
  void parentTrees?.readAhead(); // as a backup does, while the walk already asks for trees
  const requested: Buffer[] = [];
  const plan: RequestPlan = await planRequests(repo, parentTrees, readListing(Readable.from([listed.stdout]), nonce), (name) => void requested.push(name), SNAPSHOT_PATH);
  between?.();
  const list = Buffer.concat(requested.flatMap((name) => [name, Buffer.from([0])]));
  const tar = plan.requested > 0 ? await run(requestedTarCommand(root), list) : { stdout: EMPTY_ARCHIVE, stderr: '', code: 0 };
  const archived = plan.unchanged
    ? await archivePlannedTree(repo, Readable.from([tar.stdout]), plan.unchanged, SNAPSHOT_PATH)
    : await archiveChanges(repo, Readable.from([tar.stdout]), readListing(Readable.from([listed.stdout]), nonce), parentTrees, { path: SNAPSHOT_PATH });
  const saved = await saveArchiveSnapshot(repo, archived, { path: SNAPSHOT_PATH, hostname: 'ns', ...(parent ? { parent: parent.id } : {}) });
  return { plan, requested: requested.map((name) => name.toString('latin1')), archived, snapshot: await repo.loadSnapshot(saved.snapshotId), tar, listingBytes: listed.stdout.length };
}

async function restored(repo: Repository, snapshot: SnapshotWithId) {
  const entries: (TarEntry & { data: Buffer })[] = [];
  const check = new TarStreamCheck({ onEntry: (e) => entries.push({ ...e, data: Buffer.alloc(0) }), onData: (d) => (entries.at(-1)!.data = Buffer.concat([entries.at(-1)!.data, d])) });
  for await (const chunk of restoreTar(repo, snapshot)) check.feed(chunk as Buffer);
  return new Map(entries.map((e) => [e.name.toString('latin1').replace(/\/$/, ''), e]));
}

function fixture(t: { teardown: (fn: () => void) => void }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-incremental-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const root = path.join(dir, 'claim');
  fs.mkdirSync(path.join(root, 'sub', 'deeper'), { recursive: true });
  fs.mkdirSync(path.join(root, 'empty'));
  fs.writeFileSync(path.join(root, 'big'), Buffer.alloc(3 * 1024 * 1024, 7));
  fs.writeFileSync(path.join(root, 'a b'), 'spaces');
  fs.writeFileSync(path.join(root, '-dash'), 'dash');
  fs.writeFileSync(path.join(root, 'new\nline'), 'newline in its name');
  fs.writeFileSync(Buffer.from([...Buffer.from(`${root}/latin-`), 0xff]), 'not utf-8');
  fs.writeFileSync(path.join(root, 'sub', 'deeper', 'file'), 'deep');
  fs.writeFileSync(path.join(root, 'sub', 'empty-file'), '');
  fs.linkSync(path.join(root, 'sub', 'deeper', 'file'), path.join(root, 'hard'));
  fs.symlinkSync('sub/deeper/file', path.join(root, 'link'));
  fs.chmodSync(path.join(root, 'a b'), 0o4755);
  return { dir, root };
}

test('stat times with their offset and nanoseconds', (t) => {
  t.is(parseStatTime('2026-12-06 06:47:31.635665144 +0000'), 1796539651_635665144n);
  t.is(parseStatTime('2026-12-06 07:47:31.5 +0100'), 1796539651_500000000n);
  t.is(parseStatTime('1969-12-31 23:59:59 +0000'), -1_000_000_000n);
  t.is(parseStatTime('1969-12-31 18:59:59.000000001 -0500'), -999_999_999n);
  // Years beyond four digits and before year 0, as a clock set wrong can stamp a file.
  t.is(parseStatTime('12026-01-01 00:00:00 +0000'), BigInt(Date.UTC(12026, 0, 1) / 1000) * 1_000_000_000n);
  const before = new Date(0);
  before.setUTCFullYear(-1, 0, 1);
  t.is(parseStatTime('-0001-01-01 00:00:00 +0000'), BigInt(before.getTime() / 1000) * 1_000_000_000n);
  for (const bad of ['2026-12-06 06:47:31', '2026-12-06T06:47:31 +0000', '2026-12-06 06:47:31. +0000', '2026-12-06 06:47:31.1234567890 +0000', '26-12-06 06:47:31 +0000', '2026-12-06 06:47:31 +00:00']) {
    t.throws(() => parseStatTime(bad), { message: /listing could not be read/ }, bad);
  }
});

test('a first backup reads every file and symlink; an unchanged second reads nothing and stores the same tree', async (t) => {
  const repo = await Repository.init(new LocalBackend(path.join(fixture(t).dir, 'repo')), 'pw', { kdf: KDF });
  const { root } = fixture(t);
  const first = await backup(repo, root, undefined);
  t.is(first.plan.requested, 9, first.requested.join(' | '));
  t.is(first.archived.changes!.filesNew, 8);
  const files = await restored(repo, first.snapshot);
  t.deepEqual(files.get('./new\nline')?.data.toString(), 'newline in its name');
  t.deepEqual(files.get('./latin-\xff')?.data.toString(), 'not utf-8');
  t.is(files.get('./big')?.data.length, 3 * 1024 * 1024);
  t.is(files.get('./a b')?.mode, 0o4755);
  t.is(files.get('./link')?.linkName.toString(), 'sub/deeper/file');
  t.is(files.get('./empty')?.type, 'directory');
  t.deepEqual(files.get('./sub/empty-file')?.data, Buffer.alloc(0));
  // Hard links keep their inode: restic's restorer links the names again.
  const hard = files.get('./hard')!;
  const deep = files.get('./sub/deeper/file')!;
  t.true([hard.type, deep.type].includes('hardlink'), 'one name of the two is a link to the other');
  t.is(fs.statSync(path.join(root, 'big'), { bigint: true }).mtimeNs, files.get('./big')!.mtimeNs!);
  t.is(first.archived.entries, files.size, 'the snapshot\'s entries, as a tar of it lists them');
  t.is((await backup(repo, root, first.snapshot)).archived.entries, files.size);

  const second = await backup(repo, root, first.snapshot);
  t.is(second.plan.requested, 0, second.requested.join(' | '));
  t.is(second.tar.stdout.length, 1024, 'an empty archive');
  t.is(second.snapshot.tree, first.snapshot.tree, 'the same tree: nothing new stored');
  t.is(second.snapshot.parent, first.snapshot.id);
  t.is(second.archived.added.dataBlobs + second.archived.added.treeBlobs, 0);
  t.like(second.snapshot.summary, { files_new: 0, files_changed: 0, files_unmodified: 8, total_files_processed: 8 });
});

test('the parent\'s trees are read ahead breadth-first within a budget, each handed to the walk once', async (t) => {
  const repo = await Repository.init(new LocalBackend(path.join(fixture(t).dir, 'repo')), 'pw', { kdf: KDF });
  const { root } = fixture(t);
  const first = await backup(repo, root, undefined);
  const reads: string[] = [];
  const loadTreeByName = repo.loadTreeByName.bind(repo);
  repo.loadTreeByName = (id: string) => (reads.push(id), loadTreeByName(id));
  const subtree = (nodes: Node[], name: string) => nodes.find((node) => node.name.toString() === name)!.subtree!;
  const claim = (await directoryAtPath(repo, first.snapshot.tree, SNAPSHOT_PATH))!.nodes;
  const sub = subtree(claim, 'sub');
  const empty = subtree(claim, 'empty');
  const deeper = subtree(await repo.loadTree(sub), 'deeper');

  const trees = (await parentTreesAtPath(repo, first.snapshot.tree, SNAPSHOT_PATH))!;
  reads.length = 0;
  const budget = { left: 1_000_000 };
  await trees.readAhead(budget);
  t.deepEqual(reads, [empty, sub, deeper], 'the claim\'s directories in name order, then the next level');
  const held = 1_000_000 - budget.left;
  t.true(held > 0, 'what is read ahead is held of the budget');
  const subTree = await trees.load(sub);
  t.is(subTree.get(Buffer.from('deeper'))?.subtree, deeper, 'the tree read ahead');
  t.is(budget.left, 1_000_000 - held + subTree.bytes, 'taken: its bytes are given back');
  t.is(reads.length, 3, 'not read again');
  await trees.load(sub);
  t.deepEqual(reads.slice(3), [sub], 'handed out once: asked again, it is read again');
  trees.dropReadAhead();
  t.is(budget.left, 1_000_000, 'dropped: the rest given back');
  await trees.load(deeper);
  t.deepEqual(reads.slice(4), [deeper], 'a dropped tree is read when asked for');

  // A budget of one byte: the tree that uses it up is read, nothing after it; none left, none read.
  const small = (await parentTreesAtPath(repo, first.snapshot.tree, SNAPSHOT_PATH))!;
  reads.length = 0;
  const tiny = { left: 1 };
  await small.readAhead(tiny);
  t.deepEqual(reads, [empty]);
  const another = (await parentTreesAtPath(repo, first.snapshot.tree, SNAPSHOT_PATH))!;
  reads.length = 0;
  await another.readAhead(tiny);
  t.deepEqual(reads, [], 'the budget is shared: another backup of the run reads nothing ahead');

  // A tree that is not in the repository: reading ahead stops without failing; the walk is told.
  const missing = 'ab'.repeat(32);
  const broken = new ParentTrees(repo, new NodesByName(Buffer.from(`{"nodes":[{"name":"gone","type":"dir","mode":2147484141,"subtree":"${missing}"}]}\n`)));
  await t.notThrowsAsync(broken.readAhead());
  await t.throwsAsync(broken.load(missing));
  // A node that does not decode: the same.
  await t.notThrowsAsync(new ParentTrees(repo, new NodesByName(Buffer.from('{"nodes":[{"name":"bad","type":"dir","subtree":x}]}\n'))).readAhead());

  // Read ahead while the walk runs, as a backup does: the same plan and the same tree.
  const second = await backup(repo, root, first.snapshot);
  t.is(second.plan.requested, 0);
  t.is(second.snapshot.tree, first.snapshot.tree);
});

test('a claim whose files are unchanged but a directory is not reads nothing; its new trees are counted as added', async (t) => {
  const repo = await Repository.init(new LocalBackend(path.join(fixture(t).dir, 'repo')), 'pw', { kdf: KDF });
  const { root } = fixture(t);
  const first = await backup(repo, root, undefined);
  fs.chmodSync(path.join(root, 'sub', 'deeper'), 0o700);
  const second = await backup(repo, root, first.snapshot);
  t.is(second.plan.requested, 0, second.requested.join(' | '));
  t.truthy(second.plan.unchanged, 'the planning walk made the trees');
  t.not(second.snapshot.tree, first.snapshot.tree);
  // deeper's node is in sub's tree: sub's, the claim's root's and the two above it (/data/pvc) are new.
  t.is(second.archived.added.treeBlobs, 4);
  t.like(second.archived.changes, { filesUnmodified: 8, dirsChanged: 1 });
  const files = await restored(repo, second.snapshot);
  t.is(files.get('./sub/deeper')?.mode, 0o700);
  t.is(files.get('./big')?.data.length, 3 * 1024 * 1024);
  t.is(second.archived.entries, files.size);
});

test('a file named in UTF-8 beyond ASCII is found unchanged, and read again once it changes', async (t) => {
  const { dir } = fixture(t);
  const repo = await Repository.init(new LocalBackend(path.join(dir, 'repo')), 'pw', { kdf: KDF });
  const root = path.join(dir, 'utf8');
  fs.mkdirSync(root);
  fs.writeFileSync(path.join(root, 'café-☕'), 'coffee');
  fs.writeFileSync(path.join(root, 'plain'), 'tea');
  const first = await backup(repo, root, undefined);
  const second = await backup(repo, root, first.snapshot);
  t.is(second.plan.requested, 0, second.requested.join(' | '));
  t.like(second.archived.changes, { filesUnmodified: 2 });
  const mtime = fs.statSync(path.join(root, 'café-☕')).mtime;
  fs.writeFileSync(path.join(root, 'café-☕'), 'COFFEE');
  fs.utimesSync(path.join(root, 'café-☕'), mtime, mtime);
  const third = await backup(repo, root, second.snapshot);
  t.deepEqual(third.requested, ['./café-☕'].map((name) => Buffer.from(name).toString('latin1')));
  t.is((await restored(repo, third.snapshot)).get(Buffer.from('./café-☕').toString('latin1'))?.data.toString(), 'COFFEE');
});

test('only new, rewritten and re-permissioned files are read; deleted ones leave the snapshot', async (t) => {
  const repo = await Repository.init(new LocalBackend(path.join(fixture(t).dir, 'repo')), 'pw', { kdf: KDF });
  const { root } = fixture(t);
  const first = await backup(repo, root, undefined);
  // Same size and mtime, new content and ctime: restic's rule catches it by ctime.
  const mtime = fs.statSync(path.join(root, '-dash')).mtime;
  fs.writeFileSync(path.join(root, '-dash'), 'DASH');
  fs.utimesSync(path.join(root, '-dash'), mtime, mtime);
  fs.chmodSync(path.join(root, 'sub', 'empty-file'), 0o600);
  fs.writeFileSync(path.join(root, 'sub', 'added'), 'added');
  fs.rmSync(path.join(root, 'new\nline'));
  const second = await backup(repo, root, first.snapshot);
  t.deepEqual(second.requested.sort(), ['./-dash', './sub/added', './sub/empty-file']);
  t.like(second.archived.changes, { filesNew: 1, filesChanged: 2, filesUnmodified: 5 });
  const files = await restored(repo, second.snapshot);
  t.is(files.get('./-dash')?.data.toString(), 'DASH');
  t.is(files.get('./sub/added')?.data.toString(), 'added');
  t.is(files.get('./sub/empty-file')?.mode, 0o600);
  t.false(files.has('./new\nline'));
  t.is(files.get('./big')?.data.length, 3 * 1024 * 1024, 'unchanged content comes from the parent');
  t.true(second.tar.stdout.length < 8 * 1024, `${second.tar.stdout.length} tar bytes for three small files`);
});

test('a requested file that vanishes before tar reads it is left out; the backup still completes', async (t) => {
  const repo = await Repository.init(new LocalBackend(path.join(fixture(t).dir, 'repo')), 'pw', { kdf: KDF });
  const { root } = fixture(t);
  const first = await backup(repo, root, undefined);
  fs.writeFileSync(path.join(root, 'sub', 'short-lived'), 'x');
  fs.writeFileSync(path.join(root, 'a b'), 'rewritten');
  const second = await backup(repo, root, first.snapshot, () => fs.rmSync(path.join(root, 'sub', 'short-lived')));
  t.is(second.tar.code, 1, 'tar said the path is gone');
  t.regex(second.tar.stderr, /short-lived: No such file or directory/);
  const files = await restored(repo, second.snapshot);
  t.false(files.has('./sub/short-lived'));
  t.is(files.get('./a b')?.data.toString(), 'rewritten');
});

test('the helper\'s capabilities are found before the listing sets pipefail: a tar killed by SIGPIPE after grep -q matched still has --no-recursion', async (t) => {
  const { dir, root } = fixture(t);
  // A tar whose help prints the line grep -q looks for first: grep has exited when the rest comes.
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, 'tar'), '#!/bin/sh\necho "  --no-recursion"\nsleep 0.2\necho more\n', { mode: 0o755 });
  const nonce = newListingNonce();
  // bash, not busybox sh: busybox runs its own tar applet whatever PATH says.
  const listed = execFileSync('bash', ['--norc', '--noprofile', '-c', listingScript(root, nonce)], { env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
  let capabilities: ListingCapabilities | undefined;
  let entries = 0;
  for await (const _ of readListing(Readable.from([listed]), nonce, (caps) => (capabilities = caps))) entries += 1;
  t.deepEqual(capabilities, { xargsNul: true, noRecursion: true });
  t.true(entries > 10);
});

test('a helper without gzip sends its listing plain, and it reads the same', async (t) => {
  const { dir, root } = fixture(t);
  // Only what the listing needs, as links: no gzip on this PATH.
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  for (const tool of ['find', 'stat', 'xargs', 'tar', 'grep']) fs.symlinkSync(execFileSync('bash', ['-c', `command -v ${tool}`]).toString().trim(), path.join(bin, tool));
  const nonce = newListingNonce();
  const plain = execFileSync('/bin/bash', ['--norc', '--noprofile', '-c', listingScript(root, nonce)], { env: { PATH: bin } });
  t.true(plain.subarray(0, nonce.length).equals(Buffer.from(nonce)), 'not gzip\'d');
  const gzipped = (await run(listingScript(root, nonce))).stdout;
  t.is(gzipped[0], 0x1f, 'gzip\'d where busybox has gzip');
  const read = async (listing: Buffer) => {
    const entries = [];
    for await (const entry of readListing(Readable.from([listing]), nonce)) entries.push({ ...entry, path: entry.path.toString('latin1') });
    return entries.sort((a, b) => (a.path < b.path ? -1 : 1));
  };
  t.deepEqual(await read(plain), await read(gzipped));
});

test('the listing splits records at its nonce only, so names with newlines and the nonce-like text stay whole', async (t) => {
  const nonce = newListingNonce();
  const { root } = fixture(t);
  fs.writeFileSync(path.join(root, `x\n${'nkvm-0 '}y`), 'tricky');
  const listed = await run(listingScript(root, nonce));
  const chunks: Buffer[] = [];
  for (let i = 0; i < listed.stdout.length; i += 7) chunks.push(listed.stdout.subarray(i, i + 7));
  const entries = [];
  for await (const entry of readListing(Readable.from(chunks), nonce)) entries.push(entry);
  t.true(entries.some((e) => e.path.toString() === './x\nnkvm-0 y' && e.type === 'file' && e.size === 6));
  t.true(entries.some((e) => e.path.toString() === './new\nline'));
  t.is(entries[0]!.path.toString(), '.');
  t.is(entries.filter((e) => e.type === 'dir').length, 4);
});

test('a directory read in place (a data mover) gives the very tree the helper\'s listing and tar gave, and against that parent reads only what changed', async (t) => {
  const repo = await Repository.init(new LocalBackend(path.join(fixture(t).dir, 'repo')), 'pw', { kdf: KDF });
  const { root } = fixture(t);
  execFileSync('mkfifo', [path.join(root, 'fifo')]);
  // Larger than a read block: read ahead while the block before is saved, cut as the tar's copy is.
  fs.writeFileSync(path.join(root, 'large'), crypto.randomBytes(3 * 1024 * 1024 + 12345));
  const viaTar = await backup(repo, root, undefined);
  const direct = await archiveDirectory(repo, root, undefined, { path: SNAPSHOT_PATH });
  t.is(direct.tree, viaTar.snapshot.tree, 'the same metadata, content and links: the same tree');
  t.is(direct.entries, viaTar.archived.entries);
  const progress: { files: number; bytes: number }[] = [];
  const again = await archiveDirectory(repo, root, await parentTreesAtPath(repo, viaTar.snapshot.tree, SNAPSHOT_PATH), { path: SNAPSHOT_PATH, onProgress: (done) => progress.push(done), progressEveryMs: 0 });
  t.is(again.read, 0);
  // Unchanged files count as gone through: the progress ends at the claim's files and bytes.
  t.true(progress.length > 1 && progress.every((done, i) => i === 0 || (done.bytes >= progress[i - 1]!.bytes && done.files >= progress[i - 1]!.files)));
  t.deepEqual(progress.at(-1), { files: again.files, bytes: again.bytes });
  t.is(again.tree, viaTar.snapshot.tree);
  fs.appendFileSync(path.join(root, 'a b'), ' and more');
  const changed = await archiveDirectory(repo, root, await parentTreesAtPath(repo, viaTar.snapshot.tree, SNAPSHOT_PATH), { path: SNAPSHOT_PATH });
  t.is(changed.read, 'spaces and more'.length);
  t.like(changed.changes, { filesChanged: 1, filesUnmodified: 8, filesNew: 0 });
  t.deepEqual(changed.problems, { vanished: [], unreadable: [] });
});

test('a snapshot written back into a directory in place (a mover\'s restore): contents, modes, owners, times, symlinks and hard links as they were', async (t) => {
  const repo = await Repository.init(new LocalBackend(path.join(fixture(t).dir, 'repo')), 'pw', { kdf: KDF });
  const { root, dir } = fixture(t);
  fs.chownSync(path.join(root, '-dash'), 1234, 5678);
  const archived = await archiveDirectory(repo, root, undefined, { path: SNAPSHOT_PATH });
  const target = path.join(dir, 'restored');
  fs.mkdirSync(target);
  const at = (await directoryAtPath(repo, archived.tree, SNAPSHOT_PATH))!;
  const restored = await restoreDirectory(repo, at.nodes, at.self, target, { owners: true });
  t.like(restored, { files: 8, skipped: [] });
  const again = await archiveDirectory(repo, target, undefined, { path: SNAPSHOT_PATH });
  // Everything but inode numbers and ctimes (new files have new ones) is the same, and the times
  // within a microsecond (Node sets them from a double of seconds: about 240 ns apart, today).
  const times: [bigint, bigint][] = [];
  const strip = async (tree: string): Promise<unknown> => {
    // In order, one node after the other: the times line up between the two trees.
    const walk = async (nodes: Node[]): Promise<unknown[]> => {
      const out: unknown[] = [];
      for (const { inode: _i, ctime: _c, deviceId: _d, subtree, mtime, atime, ...rest } of nodes) {
        times.push([mtime, atime]);
        out.push({ ...rest, name: rest.name.toString('latin1'), children: subtree ? await walk(await repo.loadTree(subtree)) : undefined });
      }
      return out;
    };
    const found = (await directoryAtPath(repo, tree, SNAPSHOT_PATH))!;
    const { inode: _i, ctime: _c, subtree: _s, mtime, atime, ...self } = found.self!;
    times.push([mtime, atime]);
    return { self, nodes: await walk(found.nodes) };
  };
  t.deepEqual(await strip(again.tree), await strip(archived.tree));
  const half = times.length / 2;
  for (let i = 0; i < half; i++) {
    const [[m1, a1], [m2, a2]] = [times[i]!, times[half + i]!];
    const off = (x: bigint, y: bigint) => (x > y ? x - y : y - x) > 1000n;
    if (off(m1, m2) || off(a1, a2)) t.fail(`times ${i}: ${m1}/${a1} and ${m2}/${a2}`);
  }
  t.is(fs.statSync(path.join(target, 'hard')).ino, fs.statSync(path.join(target, 'sub', 'deeper', 'file')).ino, 'hard links linked again');
  t.like(fs.statSync(path.join(target, '-dash')), { uid: 1234, gid: 5678 });
});
