/**
 * Our repository code against the real restic, both ways, no cluster: what we write from a tar stream
 * passes `restic check --read-data` and `restic restore` gives back the source tree exactly; what
 * `restic backup` writes (compressed or not) we open, and our tar of it extracts to the source tree.
 */
import anyTest, { type TestFn } from 'ava';
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { LocalBackend } from '../../src/repository/backends/local.ts';
import { archiveTar } from '../../src/repository/archiver.ts';
import { encodeConfig, UnsupportedConfigError } from '../../src/repository/config.ts';
import { encrypt } from '../../src/repository/crypto.ts';
import { WrongPasswordError } from '../../src/repository/key.ts';
import { Repository } from '../../src/repository/repository.ts';
import { restoreTar } from '../../src/repository/restorer.ts';
import type { Node } from '../../src/repository/tree.ts';
import { findDebianRestic, findRestic, restic } from '../cluster/restic.ts';
import { integrationEnabled } from './support.ts';

interface Context {
  work: string;
  source: string;
}

const test = anyTest as TestFn<Context>;
const suite = integrationEnabled ? test.serial : test.serial.skip;
const PASSWORD = 'correct horse battery staple';
const asRoot = process.getuid?.() === 0;
const join = (...parts: (string | Buffer)[]) => Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [Buffer.from(p)] : [Buffer.from('/'), Buffer.from(p)])));

if (integrationEnabled) {
  test.before((t) => {
    // Enabled but no restic: fail loudly rather than skip, the format would go unchecked.
    findRestic();
    t.context.work = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-repo-restic-'));
    t.context.source = path.join(t.context.work, 'source');
    makeTree(t.context.source);
  });
  test.after.always((t) => {
    if (t.context.work) fs.rmSync(t.context.work, { recursive: true, force: true });
  });
}

/** A tree with what breaks naive implementations: odd names, links, modes, empty things, a 20 MiB file. */
function makeTree(root: string): void {
  const at = (...parts: (string | Buffer)[]) => join(root, ...parts);
  fs.mkdirSync(root);
  for (const dir of ['dir with space', 'a/b/c', 'empty', 'sticky', 'setgid', 'ünïcödé dir']) fs.mkdirSync(at(dir), { recursive: true });
  fs.writeFileSync(at('big'), crypto.randomBytes(20 * 1024 * 1024));
  fs.writeFileSync(at('zero'), '');
  fs.writeFileSync(at('a/b/c', 'zero too'), '');
  fs.writeFileSync(at('dir with space', 'file with space'), 'spaces\n');
  fs.writeFileSync(at('new\nline'), 'a newline in the name\n');
  fs.writeFileSync(at('-leading-dash'), 'dash\n');
  fs.writeFileSync(at('ünïcödé dir', 'ファイル😀'), 'utf-8\n');
  fs.writeFileSync(at(Buffer.from([0x6e, 0x6f, 0x74, 0xff, 0xfe, 0x75, 0x74, 0x66])), 'not utf-8 name\n');
  fs.writeFileSync(at('x'.repeat(120)), 'a name longer than 100 bytes\n');
  fs.writeFileSync(at('a/b/c', 'deep'), crypto.randomBytes(100_000));
  fs.writeFileSync(at('setuid'), '#!/bin/sh\n');
  fs.chmodSync(at('setuid'), 0o4755);
  fs.writeFileSync(at('private'), 'secret\n');
  fs.chmodSync(at('private'), 0o600);
  fs.chmodSync(at('sticky'), 0o1777);
  fs.chmodSync(at('setgid'), 0o2775);
  fs.symlinkSync('a/b/c/deep', at('symlink'));
  fs.symlinkSync('does/not/exist', at('dangling'));
  fs.symlinkSync(Buffer.from([0x74, 0xff]), at('symlink to non-utf-8'));
  fs.writeFileSync(at('a', 'linked'), 'hard linked content\n');
  fs.linkSync(at('a', 'linked'), at('hard link'));
  fs.linkSync(at('a', 'linked'), at('a/b/c', 'hard link too'));
  execFileSync('mkfifo', ['-m', '0640', at('fifo').toString()]);
  if (asRoot) {
    // A character device with a major and a minor above 255, to check the device number's packing.
    execFileSync('mknod', ['-m', '0600', at('chardev').toString(), 'c', '259', '300']);
    fs.lchownSync(at('private'), 1000, 2000);
    fs.lchownSync(at('dir with space'), 1001, 1002);
    fs.lchownSync(at('symlink'), 1003, 1004);
  }
  // Times with a fraction of a second, set last (creating entries changes directory times).
  walk(Buffer.from(root)).reverse().forEach((p, i) => fs.lutimesSync(p, 1_612_325_105.123456 + i * 7.000321, 1_612_325_105.123456 + i * 7.000321));
}

function walk(dir: Buffer): Buffer[] {
  const out: Buffer[] = [dir];
  for (const name of fs.readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare)) {
    const p = join(dir, name);
    if (fs.lstatSync(p).isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}

/**
 * Everything restic and tar must reproduce, per path. `times`: 'ns' compares every mtime exactly;
 * 'seconds' every mtime in whole seconds (a busybox tar stream has no more); 'files' only regular
 * files' mtimes, in whole seconds, and no symlink owners (busybox tar extracting sets neither the
 * time nor the owner of a symlink and lets a directory's time change as it fills it; the plugin's
 * restore fixes those up afterwards).
 */
function describe(root: string, times: 'ns' | 'seconds' | 'files' = 'ns'): Record<string, unknown>[] {
  const rootBuffer = Buffer.from(root);
  const firstName = new Map<bigint, string>();
  return walk(rootBuffer).map((p) => {
    const relative = p.subarray(rootBuffer.length).toString('latin1') || '/';
    const stat = fs.lstatSync(p, { bigint: true });
    const entry: Record<string, unknown> = {
      path: relative,
      type: stat.isDirectory() ? 'dir' : stat.isSymbolicLink() ? 'symlink' : stat.isFile() ? 'file' : stat.isFIFO() ? 'fifo' : stat.isCharacterDevice() ? `chardev ${stat.rdev}` : 'other',
      mode: (stat.mode & 0o7777n).toString(8),
      mtime: times === 'ns' ? stat.mtimeNs : times === 'seconds' || stat.isFile() ? stat.mtimeNs / 1_000_000_000n : undefined,
    };
    if (asRoot && !(times === 'files' && stat.isSymbolicLink())) entry.owner = `${stat.uid}:${stat.gid}`;
    if (stat.isSymbolicLink()) entry.target = fs.readlinkSync(p, { encoding: 'buffer' }).toString('hex');
    if (stat.isFile()) {
      entry.size = stat.size;
      entry.sha256 = crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
      entry.links = stat.nlink;
      if (stat.nlink > 1n) {
        if (!firstName.has(stat.ino)) firstName.set(stat.ino, relative);
        entry.sameFileAs = firstName.get(stat.ino);
      }
    }
    return entry;
  });
}

/**
 * `tar` of the source as a stream, archived into the repository: GNU tar in pax format (it keeps
 * nanosecond mtimes), or busybox tar as the helper pods run it.
 */
async function archiveSource(repo: Repository, source: string, pvc: string, tarCommand: string[] = ['tar', '--format=posix']) {
  const tar = spawn(tarCommand[0]!, [...tarCommand.slice(1), '-c', '-f', '-', '-C', source, '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => tar.on('close', resolve));
  const result = await archiveTar(repo, tar.stdout, { path: `/data/${pvc}`, hostname: 'shop' });
  if ((await exited) !== 0) throw new Error('tar failed');
  return result;
}

async function extract(repo: Repository, snapshotId: string, target: string, tarCommand: string[] = ['tar']): Promise<void> {
  fs.mkdirSync(target, { recursive: true });
  const tar = spawn(tarCommand[0]!, [...tarCommand.slice(1), '-x', '-f', '-', '-C', target], { stdio: ['pipe', 'inherit', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => tar.on('close', resolve));
  await pipeline(restoreTar(repo, await repo.findSnapshot(snapshotId)), tar.stdin);
  if ((await exited) !== 0) throw new Error('tar -x failed');
}

async function filesOfTree(repo: Repository, tree: string, subpath: string[]): Promise<Node[]> {
  let nodes = await repo.loadTree(tree);
  for (const part of subpath) nodes = await repo.loadTree(nodes.find((n) => n.name.toString() === part)!.subtree!);
  return nodes;
}

suite('a repository we write from a tar stream passes restic check --read-data, and restic restore gives the tree back exactly', async (t) => {
  const repoPath = path.join(t.context.work, 'ours');
  const repo = await Repository.init(new LocalBackend(repoPath), PASSWORD);
  const result = await archiveSource(repo, t.context.source, 'data-pvc');
  t.is(result.bytes, 20 * 1024 * 1024 + 100_000 + 7 + 22 + 5 + 6 + 15 + 29 + 10 + 7 + 20);

  const check = await restic(repoPath, PASSWORD, ['check', '--read-data']);
  t.is(check.exitCode, 0, `${check.stdout}\n${check.stderr}`);
  t.regex(check.stdout, /no errors were found/);

  const snapshots = await restic(repoPath, PASSWORD, ['snapshots', '--json']);
  const [snapshot] = JSON.parse(snapshots.stdout) as { id: string; hostname: string; paths: string[] }[];
  t.like(snapshot, { id: result.snapshotId, hostname: 'shop', paths: ['/data/data-pvc'] });

  const ls = await restic(repoPath, PASSWORD, ['ls', '--json', 'latest']);
  t.is(ls.exitCode, 0, ls.stderr);
  const listed = ls.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>).filter((e) => e.struct_type === 'node');
  const byPath = new Map(listed.map((e) => [e.path as string, e]));
  t.like(byPath.get('/data/data-pvc/new\nline'), { type: 'file', size: 22 });
  t.like(byPath.get('/data/data-pvc/setuid'), { permissions: 'urwxr-xr-x' });
  t.like(byPath.get('/data/data-pvc/sticky'), { type: 'dir', permissions: 'dtrwxrwxrwx' });
  t.like(byPath.get('/data/data-pvc/symlink'), { type: 'symlink' });
  t.like(byPath.get('/data/data-pvc/ünïcödé dir/ファイル😀'), { type: 'file', size: 6 });
  t.truthy(byPath.get('/data/data-pvc/empty'));

  const restored = path.join(t.context.work, 'restored-by-restic');
  const restore = await restic(repoPath, PASSWORD, ['restore', 'latest', '--target', restored]);
  t.is(restore.exitCode, 0, restore.stderr);
  t.deepEqual(describe(path.join(restored, 'data', 'data-pvc')), describe(t.context.source));
});

suite('restic backups, compressed and not, are read by us: our tar of them extracts to the source tree', async (t) => {
  for (const compression of ['auto', 'off']) {
    const repoPath = path.join(t.context.work, `restic-${compression}`);
    t.is((await restic(repoPath, PASSWORD, ['init'])).exitCode, 0);
    const backup = await restic(repoPath, PASSWORD, ['backup', '--json', '--host', 'shop', '--compression', compression, t.context.source]);
    t.is(backup.exitCode, 0, backup.stderr);
    const summary = JSON.parse(backup.stdout.trim().split('\n').at(-1)!) as { snapshot_id: string };
    const repo = await Repository.open(new LocalBackend(repoPath), PASSWORD);
    const packs = [...repo.index.packs()];
    t.true(packs.length > 0);
    const target = path.join(t.context.work, `extracted-${compression}`);
    await extract(repo, summary.snapshot_id, target);
    t.deepEqual(describe(target), describe(t.context.source), `compression ${compression}`);
  }
});

suite('a file backed up by restic and by us gives the same blob IDs (same chunker, same polynomial)', async (t) => {
  const theirsPath = path.join(t.context.work, 'restic-auto');
  const theirs = await Repository.open(new LocalBackend(theirsPath), PASSWORD);
  const oursPath = path.join(t.context.work, 'ours-same-polynomial');
  const ours = await Repository.init(new LocalBackend(oursPath), PASSWORD, { polynomial: theirs.config.chunkerPolynomial });
  const result = await archiveSource(ours, t.context.source, 'data-pvc');
  const [theirSnapshot] = await theirs.listSnapshots();
  const theirFiles = await filesOfTree(theirs, theirSnapshot!.tree, t.context.source.split('/').filter(Boolean));
  const ourFiles = await filesOfTree(ours, result.snapshot.tree, ['data', 'data-pvc']);
  const big = (nodes: Node[]) => nodes.find((n) => n.name.toString() === 'big')!.content!;
  t.true(big(theirFiles).length >= 3, '20 MiB of random data makes several chunks');
  t.deepEqual(big(ourFiles), big(theirFiles));
  const deep = async (repo: Repository, nodes: Node[]) => (await filesOfTree(repo, nodes.find((n) => n.name.toString() === 'a')!.subtree!, ['b', 'c'])).find((n) => n.name.toString() === 'deep')!.content;
  t.deepEqual(await deep(ours, ourFiles), await deep(theirs, theirFiles));
});

suite('a second key we add opens the repository for restic; a wrong password is a typed error', async (t) => {
  const repoPath = path.join(t.context.work, 'ours');
  const repo = await Repository.open(new LocalBackend(repoPath), PASSWORD);
  await repo.addKey('second password');
  const listed = await restic(repoPath, 'second password', ['snapshots', '--json']);
  t.is(listed.exitCode, 0, listed.stderr);
  t.is((JSON.parse(listed.stdout) as unknown[]).length, 1);
  await t.throwsAsync(Repository.open(new LocalBackend(repoPath), 'wrong'), { instanceOf: WrongPasswordError, message: /wrong password or no key found in repository .* \(2 key files tried\)/ });
  await t.throwsAsync(Repository.open(new LocalBackend(path.join(t.context.work, 'restic-auto')), 'wrong'), { instanceOf: WrongPasswordError });
});

suite('a config with a field we do not know is refused, naming it', async (t) => {
  const repoPath = path.join(t.context.work, 'restic-off');
  const backend = new LocalBackend(repoPath);
  const repo = await Repository.open(backend, PASSWORD);
  const config = JSON.parse(encodeConfig(repo.config).toString()) as Record<string, unknown>;
  await backend.remove('config', 'config');
  await backend.write('config', 'config', encrypt(repo.key, Buffer.from(JSON.stringify({ ...config, future_feature: true }))));
  await t.throwsAsync(Repository.open(backend, PASSWORD), { instanceOf: UnsupportedConfigError, message: /"future_feature"/ });
});

suite('busybox tar, as the helper pods run it: its stream makes a snapshot restic restores, and it extracts our tar', async (t) => {
  const repoPath = path.join(t.context.work, 'ours-busybox');
  const repo = await Repository.init(new LocalBackend(repoPath), PASSWORD);
  const result = await archiveSource(repo, t.context.source, 'data-pvc', ['busybox', 'tar']);
  const check = await restic(repoPath, PASSWORD, ['check', '--read-data']);
  t.is(check.exitCode, 0, `${check.stdout}\n${check.stderr}`);
  const restored = path.join(t.context.work, 'restored-busybox-by-restic');
  t.is((await restic(repoPath, PASSWORD, ['restore', 'latest', '--target', restored])).exitCode, 0);
  t.deepEqual(describe(path.join(restored, 'data', 'data-pvc'), 'seconds'), describe(t.context.source, 'seconds'));

  const extracted = path.join(t.context.work, 'extracted-by-busybox');
  await extract(repo, result.snapshotId, extracted, ['busybox', 'tar']);
  t.deepEqual(describe(extracted, 'files'), describe(t.context.source, 'files'));
});

suite("Debian's restic 0.14 checks and restores what we write, and we read what it writes", async (t) => {
  const binary = findDebianRestic();
  const oursPath = path.join(t.context.work, 'ours-for-0.14');
  const ours = await Repository.init(new LocalBackend(oursPath), PASSWORD);
  await archiveSource(ours, t.context.source, 'data-pvc');
  const check = await restic(oursPath, PASSWORD, ['check', '--read-data'], { binary });
  t.is(check.exitCode, 0, `${check.stdout}\n${check.stderr}`);
  const restored = path.join(t.context.work, 'restored-by-0.14');
  const restore = await restic(oursPath, PASSWORD, ['restore', 'latest', '--target', restored], { binary });
  t.is(restore.exitCode, 0, restore.stderr);
  // restic 0.14 predates linktarget_raw (0.17): it restores a non-UTF-8 symlink target as U+FFFD.
  const withoutRawTarget = (entries: Record<string, unknown>[]) => entries.filter((e) => e.path !== '/symlink to non-utf-8');
  t.deepEqual(withoutRawTarget(describe(path.join(restored, 'data', 'data-pvc'))), withoutRawTarget(describe(t.context.source)));

  const theirsPath = path.join(t.context.work, 'restic-0.14');
  t.is((await restic(theirsPath, PASSWORD, ['init'], { binary })).exitCode, 0);
  const backup = await restic(theirsPath, PASSWORD, ['backup', '--json', t.context.source], { binary });
  t.is(backup.exitCode, 0, backup.stderr);
  const summary = JSON.parse(backup.stdout.trim().split('\n').at(-1)!) as { snapshot_id: string };
  const theirs = await Repository.open(new LocalBackend(theirsPath), PASSWORD);
  t.is(theirs.config.version, 2);
  const target = path.join(t.context.work, 'extracted-from-0.14');
  await extract(theirs, summary.snapshot_id, target);
  t.deepEqual(withoutRawTarget(describe(target)), withoutRawTarget(describe(t.context.source)));
});

suite('a backup cut off mid-stream leaves no snapshot and a repository restic check accepts, and the next backup succeeds', async (t) => {
  const repoPath = path.join(t.context.work, 'ours-interrupted');
  // Packs of 4 MiB: 18 MiB in, at least 10 MiB of it in finished chunks (8 MiB at most each), so a
  // pack is written before the cut whatever the random polynomial.
  const repo = await Repository.init(new LocalBackend(repoPath), PASSWORD, { packSize: 4 * 1024 * 1024 });
  const archive = execFileSync('tar', ['--format=posix', '-cf', '-', '-C', t.context.source, 'big'], { maxBuffer: 64 * 1024 * 1024 });
  async function* cutOff() {
    // Past the first 16 MiB pack, then the connection drops.
    yield archive.subarray(0, 18 * 1024 * 1024);
    throw new Error('connection lost');
  }
  await t.throwsAsync(archiveTar(repo, cutOff(), { path: '/data/data-pvc', hostname: 'shop' }), { message: 'connection lost' });
  // Beside the 256 directories, data/ may hold the file of the pack that was filling at the cut, as
  // after a crash: restic passes over it. Closing the repository removes it.
  const packDirs = () => fs.readdirSync(path.join(repoPath, 'data')).filter((name) => /^[0-9a-f]{2}$/.test(name));
  t.true(packDirs().some((dir) => fs.readdirSync(path.join(repoPath, 'data', dir)).length > 0), 'a pack was written before the cut');
  t.deepEqual(fs.readdirSync(path.join(repoPath, 'snapshots')), []);
  const check = await restic(repoPath, PASSWORD, ['check', '--read-data']);
  t.is(check.exitCode, 0, `${check.stdout}\n${check.stderr}`);
  // The pack no index lists yet: restic calls it non-critical, and prune removes it.
  t.regex(check.stdout + check.stderr, /[1-9]\d* additional files were found in the repo/);

  await repo.close();
  t.deepEqual(fs.readdirSync(path.join(repoPath, 'data')).filter((name) => !packDirs().includes(name)), [], 'no pack file left under a temporary name');

  const again = await Repository.open(new LocalBackend(repoPath), PASSWORD);
  await archiveSource(again, t.context.source, 'data-pvc');
  const after = await restic(repoPath, PASSWORD, ['check', '--read-data']);
  t.is(after.exitCode, 0, `${after.stdout}\n${after.stderr}`);
  t.is((JSON.parse((await restic(repoPath, PASSWORD, ['snapshots', '--json'])).stdout) as unknown[]).length, 1);
});
