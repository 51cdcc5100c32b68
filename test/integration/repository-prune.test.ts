/**
 * `kubectl nkvm forget --prune` and `kubectl nkvm prune`, run as a user runs them (the built plugin
 * through kubectl), against the real restic v0.19.1 as the judge. No cluster: the snapshots are made
 * with our archiver (a tar of a directory, as a backup streams one) and with `restic backup`.
 * - after our prune `restic check --read-data` passes and `restic restore` of every remaining
 *   snapshot gives back the bytes it was made of;
 * - the repository shrank by what the forgotten snapshots alone used, and restic finds nothing left
 *   to prune;
 * - our --dry-run figures are `restic prune --dry-run -v`'s (and `forget --prune --dry-run -v`'s),
 *   line for line, and a dry run changes nothing;
 * - a prune stopped at any step (packs written, index rebuilt, old files half removed) leaves every
 *   snapshot whole by restic's check and restore, and the next prune finishes the job;
 * - the same on S3 (a versitygw server);
 * - beside a running `restic backup` (its shared lock, fresh), prune refuses with exit 11.
 */
import anyTest, { type TestFn } from 'ava';
import { execa } from 'execa';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { archiveTar } from '../../src/repository/archiver.ts';
import type { FileType, SpoolFile } from '../../src/repository/backends/backend.ts';
import { LocalBackend } from '../../src/repository/backends/local.ts';
import { acquireLock, listLocks, type LockFile } from '../../src/repository/lock.ts';
import { prune } from '../../src/repository/prune.ts';
import { Repository } from '../../src/repository/repository.ts';
import { findRestic, restic } from '../cluster/restic.ts';
import { startS3Server } from '../cluster/s3-server.ts';
import { integrationEnabled, pluginWorkDir } from './support.ts';

interface Context {
  work: string;
  pluginPath: string;
  passwordFile: string;
}

const test = anyTest as TestFn<Context>;
const suite = integrationEnabled ? test.serial : test.serial.skip;
const PASSWORD = 'correct horse battery staple';
/** The summary lines restic prints at -v, which ours prints always. */
const SUMMARY = /^(used|duplicates|unused|unreferenced|total|unused size|to repack|this removes|to delete|total prune|not yet compressed|remaining|unused size after prune|totally used packs|partly used packs|unused packs|to keep):/;

if (integrationEnabled) {
  test.before((t) => {
    findRestic();
    const { workDir: work, pluginPath } = pluginWorkDir('nkvm-repo-prune-');
    t.context.work = work;
    t.context.pluginPath = pluginPath;
    t.context.passwordFile = path.join(work, 'password');
    fs.writeFileSync(t.context.passwordFile, `${PASSWORD}\n`);
  });
  test.after.always((t) => {
    if (t.context.work) fs.rmSync(t.context.work, { recursive: true, force: true });
  });
}

/** `kubectl nkvm ...` on a repository, as a user would run it; never throws on the exit code. */
function nkvm(t: { context: Context }, repoPath: string, args: string[], env: Record<string, string> = {}) {
  return execa('kubectl', ['nkvm', ...args, '--repo', repoPath, '--password-file', t.context.passwordFile], {
    reject: false,
    env: { PATH: t.context.pluginPath, HOME: t.context.work, NKVM_HOME: path.join(t.context.work, 'nkvm-home'), ...env },
    extendEnv: false,
    timeout: 5 * 60_000,
  });
}

function summaryLines(text: string): string[] {
  return text.split('\n').filter((line) => SUMMARY.test(line));
}

function writeRandom(file: string, bytes: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, crypto.randomBytes(bytes));
}

/** Every file under a directory: relative path -> contents. */
function readTree(dir: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = path.join(entry.parentPath, entry.name);
    files.set(path.relative(dir, full), fs.readFileSync(full));
  }
  return files;
}

/** Every file of the repository with its size: what a dry run must leave as it was. */
function repositoryFiles(repoPath: string): Map<string, number> {
  const files = new Map<string, number>();
  for (const entry of fs.readdirSync(repoPath, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) files.set(path.relative(repoPath, path.join(entry.parentPath, entry.name)), fs.statSync(path.join(entry.parentPath, entry.name)).size);
  }
  return files;
}

/** Pack files and their sizes. */
function packFiles(repoPath: string): Map<string, number> {
  const packs = new Map<string, number>();
  for (const [file, size] of repositoryFiles(repoPath)) if (file.startsWith(`data${path.sep}`)) packs.set(path.basename(file), size);
  return packs;
}

const sum = (values: Iterable<number>) => [...values].reduce((a, b) => a + b, 0);

async function archiveDir(repo: Repository, source: string) {
  const tar = spawn('tar', ['--format=posix', '-c', '-f', '-', '-C', source, '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => tar.on('close', resolve));
  const result = await archiveTar(repo, tar.stdout, { path: '/data/shop-db', hostname: 'shop' });
  if ((await exited) !== 0) throw new Error('tar failed');
  return result.snapshotId;
}

/** Restores a snapshot with restic and compares every file with what it was made of. */
async function assertRestores(t: { context: Context; is: (a: unknown, b: unknown, m?: string) => void; deepEqual: (a: unknown, b: unknown, m?: string) => void }, repoPath: string, snapshot: string, expected: Map<string, Buffer>, root: string) {
  const target = fs.mkdtempSync(path.join(t.context.work, 'restore-'));
  const restored = await restic(repoPath, PASSWORD, ['restore', snapshot, '--target', target]);
  t.is(restored.exitCode, 0, restored.stderr);
  const files = readTree(path.join(target, root));
  t.deepEqual([...files.keys()].sort(), [...expected.keys()].sort(), `the files of ${snapshot.slice(0, 8)}`);
  for (const [name, bytes] of expected) t.is(Buffer.compare(files.get(name) ?? Buffer.alloc(0), bytes), 0, `${name} of ${snapshot.slice(0, 8)} restores byte for byte`);
  fs.rmSync(target, { recursive: true, force: true });
}

/** restic's count of the blobs some snapshots use: bytes as stored, and as plaintext. */
async function rawData(repoPath: string, snapshots: string[]): Promise<{ stored: number; plain: number }> {
  const r = await restic(repoPath, PASSWORD, ['stats', '--json', '--mode', 'raw-data', ...snapshots]);
  if (r.exitCode !== 0) throw new Error(`restic stats failed: ${r.stderr}`);
  const json = JSON.parse(r.stdout) as { total_size: number; total_uncompressed_size: number };
  return { stored: json.total_size, plain: json.total_uncompressed_size };
}

/**
 * A repository we wrote with three snapshots of one claim: the first holds shared data and twenty
 * small files in one data pack; the second keeps five of them and adds others; the third one more.
 * Forgetting the first leaves its data pack partly used.
 */
async function ourRepository(t: { context: Context }, name: string): Promise<{ repoPath: string; ids: string[]; expected: Map<string, Buffer>[] }> {
  const repoPath = path.join(t.context.work, name);
  const repo = await Repository.init(new LocalBackend(repoPath), PASSWORD);
  const source = path.join(t.context.work, `source-${name}`);
  for (let i = 0; i < 3; i++) writeRandom(path.join(source, 'shared', `big-${i}`), 1024 * 1024);
  for (let i = 0; i < 20; i++) writeRandom(path.join(source, 'old', `small-${i}`), 100 * 1024);
  const expected: Map<string, Buffer>[] = [readTree(source)];
  const ids = [await archiveDir(repo, source)];
  for (let i = 5; i < 20; i++) fs.rmSync(path.join(source, 'old', `small-${i}`));
  for (let i = 0; i < 5; i++) writeRandom(path.join(source, 'new', `small-${i}`), 100 * 1024);
  expected.push(readTree(source));
  ids.push(await archiveDir(repo, source));
  writeRandom(path.join(source, 'new', 'last'), 300 * 1024);
  expected.push(readTree(source));
  ids.push(await archiveDir(repo, source));
  return { repoPath, ids, expected };
}

suite('forget --prune on a repository we wrote: repacks the partly used pack, restic checks it, every kept snapshot restores, nothing unused is left', async (t) => {
  const { repoPath, ids, expected } = await ourRepository(t, 'ours');
  const rawKept = await rawData(repoPath, ids.slice(1));
  const rawAll = await rawData(repoPath, ids);

  // The dry run: restic's figures, and not a byte changed.
  const copy = path.join(t.context.work, 'ours-copy');
  fs.cpSync(repoPath, copy, { recursive: true });
  const theirs = await restic(copy, PASSWORD, ['forget', '--keep-last', '2', '--prune', '--dry-run', '-v']);
  t.is(theirs.exitCode, 0, theirs.stderr);
  const before = repositoryFiles(repoPath);
  const dry = await nkvm(t, repoPath, ['forget', '--keep-last', '2', '--prune', '--dry-run']);
  t.is(dry.exitCode, 0, dry.stderr);
  t.deepEqual(summaryLines(dry.stdout), summaryLines(theirs.stdout));
  t.true(summaryLines(dry.stdout).some((line) => /^to repack:\s+[1-9]\d* packs$/.test(line)), dry.stdout);
  t.deepEqual(repositoryFiles(repoPath), before, 'a dry run writes and removes nothing');
  t.log(summaryLines(dry.stdout).join('\n'));

  const run = await nkvm(t, repoPath, ['forget', '--keep-last', '2', '--prune', '-o', 'json']);
  t.is(run.exitCode, 0, run.stderr);
  const result = JSON.parse(run.stdout) as { groups: { remove: string[] }[]; prune: { stats: { packfiles: { repack: number; remove: number } }; packs: { written: number }; packBytesBefore: number; packBytesAfter: number } };
  t.deepEqual(result.groups.flatMap((g) => g.remove), [ids[0]]);
  t.true(result.prune.stats.packfiles.repack >= 1);
  t.true(result.prune.packs.written >= 1);
  t.is(result.prune.packBytesAfter, sum(packFiles(repoPath).values()), 'the bytes reported are the bytes on disk');

  const check = await restic(repoPath, PASSWORD, ['check', '--read-data']);
  t.is(check.exitCode, 0, `${check.stdout}\n${check.stderr}`);
  const listed = JSON.parse((await restic(repoPath, PASSWORD, ['snapshots', '--json'])).stdout) as { id: string }[];
  t.deepEqual(listed.map((s) => s.id).sort(), ids.slice(1).sort());
  for (const i of [1, 2]) await assertRestores(t, repoPath, ids[i]!, expected[i]!, path.join('data', 'shop-db'));

  // Nothing the kept snapshots use is lost (the same plaintext); the repacked blobs are stored
  // compressed now, as restic stores every blob it writes, so their stored bytes differ a little.
  const rawAfter = await rawData(repoPath, ids.slice(1));
  t.is(rawAfter.plain, rawKept.plain);
  // What the forgotten snapshot alone used is gone, all of it.
  const shrank = result.prune.packBytesBefore - result.prune.packBytesAfter;
  const aloneUsed = rawAll.stored - rawKept.stored;
  t.true(shrank >= aloneUsed - (rawAfter.stored - rawKept.stored), `shrank by ${shrank}, the forgotten snapshot alone used ${aloneUsed}, recompression added ${rawAfter.stored - rawKept.stored}`);
  t.log(`packs: ${result.prune.packBytesBefore} -> ${result.prune.packBytesAfter} bytes; the forgotten snapshot alone used ${aloneUsed}`);
  const again = await restic(repoPath, PASSWORD, ['prune', '--dry-run', '-v', '--max-unused', '0']);
  t.is(again.exitCode, 0, again.stderr);
  t.true(again.stdout.includes('unused:                0 blobs / 0 B'), again.stdout);
  t.regex(again.stdout, /total prune:\s+0 blobs \/ 0 B/);
});

suite('prune on a repository restic wrote: restic prune --dry-run\'s figures; shrinks by exactly the packs only the forgotten snapshot used', async (t) => {
  const repoPath = path.join(t.context.work, 'theirs');
  t.is((await restic(repoPath, PASSWORD, ['init'])).exitCode, 0);
  const a = path.join(t.context.work, 'source-a');
  const b = path.join(t.context.work, 'source-b');
  writeRandom(path.join(a, 'one'), 3 * 1024 * 1024);
  writeRandom(path.join(a, 'two'), 200 * 1024);
  writeRandom(path.join(b, 'three'), 2 * 1024 * 1024);
  const backup = async (dir: string) => {
    const r = await restic(repoPath, PASSWORD, ['backup', '--json', '--host', 'shop', dir]);
    t.is(r.exitCode, 0, r.stderr);
    return (JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { snapshot_id: string }).snapshot_id;
  };
  const packsBefore = packFiles(repoPath);
  const snapA = await backup(a);
  const packsOfA = [...packFiles(repoPath)].filter(([id]) => !packsBefore.has(id));
  const snapB = await backup(b);
  t.is((await restic(repoPath, PASSWORD, ['forget', snapA])).exitCode, 0);

  const copy = path.join(t.context.work, 'theirs-copy');
  fs.cpSync(repoPath, copy, { recursive: true });
  for (const maxUnused of ['5%', '0', 'unlimited']) {
    const theirs = await restic(copy, PASSWORD, ['prune', '--dry-run', '-v', '--max-unused', maxUnused]);
    t.is(theirs.exitCode, 0, theirs.stderr);
    const ours = await nkvm(t, repoPath, ['prune', '--dry-run', '--max-unused', maxUnused]);
    t.is(ours.exitCode, 0, ours.stderr);
    t.deepEqual(summaryLines(ours.stdout), summaryLines(theirs.stdout), `--max-unused ${maxUnused}`);
  }

  const dataBefore = sum(packFiles(repoPath).values());
  const run = await nkvm(t, repoPath, ['prune', '-o', 'json']);
  t.is(run.exitCode, 0, run.stderr);
  const result = JSON.parse(run.stdout) as { stats: { packfiles: { remove: number } } };
  t.is(result.stats.packfiles.remove, packsOfA.length);
  t.is(dataBefore - sum(packFiles(repoPath).values()), sum(packsOfA.map(([, size]) => size)), 'exactly the packs only the forgotten snapshot used');
  for (const [id] of packsOfA) t.false(packFiles(repoPath).has(id));

  const check = await restic(repoPath, PASSWORD, ['check', '--read-data']);
  t.is(check.exitCode, 0, `${check.stdout}\n${check.stderr}`);
  await assertRestores(t, repoPath, snapB, readTree(b), b.slice(1));
  const again = await restic(repoPath, PASSWORD, ['prune', '--dry-run']);
  t.regex(again.stdout, /total prune:\s+0 blobs \/ 0 B/);
});

/** A local backend that fails the n-th operation `matches` picks: a prune stopped at that point. */
class FailingBackend extends LocalBackend {
  private left: number;
  private readonly matches: (op: 'write' | 'remove', type: FileType) => boolean;
  constructor(root: string, matches: (op: 'write' | 'remove', type: FileType) => boolean, n: number) {
    super(root);
    this.matches = matches;
    this.left = n;
  }
  private maybeFail(op: 'write' | 'remove', type: FileType) {
    if (this.matches(op, type) && --this.left === 0) throw new Error(`stopped at ${op} of ${type}`);
  }
  override async write(type: FileType, name: string, data: Uint8Array): Promise<void> {
    this.maybeFail('write', type);
    return super.write(type, name, data);
  }
  /** A pack built in its file is written when it is committed under its name. */
  override async spool(): Promise<SpoolFile> {
    const file = await super.spool();
    const commit = file.commit.bind(file);
    return Object.assign(file, { commit: async (name: string) => (this.maybeFail('write', 'data'), commit(name)) });
  }
  override async remove(type: FileType, name: string): Promise<void> {
    this.maybeFail('remove', type);
    return super.remove(type, name);
  }
}

suite('a prune stopped at any step leaves every snapshot whole (restic check --read-data, restic restore), and the next prune finishes the job', async (t) => {
  const base = await ourRepository(t, 'interrupted');
  const forgot = await restic(base.repoPath, PASSWORD, ['forget', base.ids[0]!]);
  t.is(forgot.exitCode, 0, forgot.stderr);
  const points: [string, (op: 'write' | 'remove', type: FileType) => boolean, number][] = [
    ['after the first new pack', (op, type) => op === 'write' && type === 'data', 2],
    ["before the repacked packs' index file", (op, type) => op === 'write' && type === 'index', 1],
    ['before the rebuilt index', (op, type) => op === 'write' && type === 'index', 2],
    ['with one old index file removed', (op, type) => op === 'remove' && type === 'index', 2],
    ['with one pack removed', (op, type) => op === 'remove' && type === 'data', 2],
    ['with one pack left', (op, type) => op === 'remove' && type === 'data', 1],
  ];
  for (const [where, matches, n] of points) {
    const repoPath = path.join(t.context.work, `interrupted-${points.findIndex((p) => p[0] === where)}`);
    fs.cpSync(base.repoPath, repoPath, { recursive: true });
    const repo = await Repository.open(new FailingBackend(repoPath, matches, n), PASSWORD);
    const stopped = prune(repo, undefined, { maxUnused: { kind: 'bytes', bytes: 0 }, repositoryVersion: 2 });
    if (where.startsWith('with one pack')) {
      // As restic: a pack that fails to go is left (no index lists it any more), the prune carries on.
      const run = await stopped;
      t.is(run.packsNotRemoved.length, 1);
      t.regex(run.packsNotRemoved[0]!, /stopped at remove of data/);
      t.is(run.packBytesAfter, sum(packFiles(repoPath).values()), 'the bytes reported are the bytes on disk');
    } else {
      await t.throwsAsync(stopped, { message: /^stopped at / }, where);
    }
    const check = await restic(repoPath, PASSWORD, ['check', '--read-data']);
    t.is(check.exitCode, 0, `${where}: ${check.stdout}\n${check.stderr}`);
    for (const i of [1, 2]) await assertRestores(t, repoPath, base.ids[i]!, base.expected[i]!, path.join('data', 'shop-db'));

    const next = await nkvm(t, repoPath, ['prune', '--max-unused', '0']);
    t.is(next.exitCode, 0, `${where}: ${next.stderr}`);
    const again = await restic(repoPath, PASSWORD, ['check', '--read-data']);
    t.is(again.exitCode, 0, `${where}, after the next prune: ${again.stdout}\n${again.stderr}`);
    const left = await restic(repoPath, PASSWORD, ['prune', '--dry-run', '-v', '--max-unused', '0']);
    t.regex(left.stdout, /total prune:\s+0 blobs \/ 0 B/, `${where}: ${left.stdout}`);
    t.false(left.stdout.includes('duplicates:'), `${where}: no blob is stored twice any more`);
    for (const i of [1, 2]) await assertRestores(t, repoPath, base.ids[i]!, base.expected[i]!, path.join('data', 'shop-db'));
  }
});

suite('on S3 (versitygw): restic prune --dry-run\'s figures, then our prune leaves a repository restic checks and restores, with nothing unused', async (t) => {
  const server = await startS3Server();
  try {
    const location = server.location('prune');
    const r = (args: string[]) => restic(location, PASSWORD, args, { env: server.env });
    t.is((await r(['init'])).exitCode, 0);
    const dir = path.join(t.context.work, 'source-s3');
    for (let i = 0; i < 10; i++) writeRandom(path.join(dir, `small-${i}`), 100 * 1024);
    const first = JSON.parse((await r(['backup', '--json', '--host', 'shop', dir])).stdout.trim().split('\n').at(-1)!) as { snapshot_id: string };
    for (let i = 3; i < 10; i++) fs.rmSync(path.join(dir, `small-${i}`));
    writeRandom(path.join(dir, 'other'), 200 * 1024);
    t.is((await r(['backup', '--host', 'shop', dir])).exitCode, 0);
    t.is((await r(['forget', first.snapshot_id])).exitCode, 0);

    const theirs = await r(['prune', '--dry-run', '-v', '--max-unused', '0']);
    t.is(theirs.exitCode, 0, theirs.stderr);
    const dry = await nkvm(t, location, ['prune', '--dry-run', '--max-unused', '0'], server.env);
    t.is(dry.exitCode, 0, dry.stderr);
    t.deepEqual(summaryLines(dry.stdout), summaryLines(theirs.stdout));

    const run = await nkvm(t, location, ['prune', '--max-unused', '0', '-o', 'json'], server.env);
    t.is(run.exitCode, 0, run.stderr);
    t.true((JSON.parse(run.stdout) as { stats: { packfiles: { repack: number } } }).stats.packfiles.repack >= 1, run.stdout);
    const check = await r(['check', '--read-data']);
    t.is(check.exitCode, 0, `${check.stdout}\n${check.stderr}`);
    const target = fs.mkdtempSync(path.join(t.context.work, 'restore-s3-'));
    t.is((await r(['restore', 'latest', '--target', target])).exitCode, 0);
    const restored = readTree(path.join(target, dir.slice(1)));
    const expected = readTree(dir);
    t.deepEqual([...restored.keys()].sort(), [...expected.keys()].sort());
    for (const [name, bytes] of expected) t.is(Buffer.compare(restored.get(name)!, bytes), 0, name);
    t.regex((await r(['prune', '--dry-run', '--max-unused', '0'])).stdout, /total prune:\s+0 blobs \/ 0 B/);
  } finally {
    await server.dispose();
  }
});

suite('beside a running restic backup (its shared lock, fresh), or ours, prune and forget --prune refuse with exit 11 and change nothing', async (t) => {
  const repoPath = path.join(t.context.work, 'locked');
  t.is((await restic(repoPath, PASSWORD, ['init'])).exitCode, 0);
  const dir = path.join(t.context.work, 'source-locked');
  writeRandom(path.join(dir, 'file'), 100 * 1024);
  for (let i = 0; i < 2; i++) t.is((await restic(repoPath, PASSWORD, ['backup', '--host', 'shop', dir])).exitCode, 0);

  const backup = spawn(findRestic(), ['--repo', repoPath, '--no-cache', 'backup', '--stdin', '--stdin-filename', 'held'], {
    env: { ...process.env, RESTIC_PASSWORD: PASSWORD },
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let stderr = '';
  backup.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => backup.on('close', resolve));
  try {
    backup.stdin.write(Buffer.alloc(1024, 1));
    // Its lock file, read and decoded (a file still being written under a temporary name is not it).
    const repo = await Repository.open(new LocalBackend(repoPath), PASSWORD);
    let theirs: LockFile | undefined;
    for (let i = 0; i < 200 && !theirs; i++) {
      theirs = (await listLocks(repo)).flatMap((entry) => ('lock' in entry ? [entry.lock] : [])).find((lock) => lock.pid === backup.pid);
      if (!theirs) await sleep(100);
    }
    t.truthy(theirs, `restic's lock did not appear: ${stderr}`);
    t.false(theirs!.exclusive);
    const before = repositoryFiles(repoPath);
    for (const args of [['prune'], ['prune', '--dry-run'], ['forget', '--keep-last', '1', '--prune']]) {
      const r = await nkvm(t, repoPath, args);
      t.is(r.exitCode, 11, `${args.join(' ')}: ${r.stderr}`);
      t.true(r.stderr.includes(`by PID ${backup.pid} on ${os.hostname()}`), r.stderr);
      t.deepEqual(repositoryFiles(repoPath), before, `${args.join(' ')} changed nothing`);
    }
  } finally {
    backup.stdin.end();
  }
  t.is(await exited, 0, stderr);

  // Our own backup's lock (shared, this process) stops it the same way.
  const repo = await Repository.open(new LocalBackend(repoPath), PASSWORD);
  const ours = await acquireLock(repo, { exclusive: false });
  try {
    const r = await nkvm(t, repoPath, ['prune']);
    t.is(r.exitCode, 11, r.stderr);
    t.true(r.stderr.includes(`by PID ${process.pid} on ${os.hostname()}`), r.stderr);
  } finally {
    await ours.release();
  }
  t.is((await nkvm(t, repoPath, ['prune'])).exitCode, 0, 'once the locks are gone, it runs');
});

suite('a --max-unused restic refuses is a usage error (exit 2), before the repository is touched', async (t) => {
  const r = await nkvm(t, path.join(t.context.work, 'nowhere'), ['prune', '--max-unused', '100%']);
  t.is(r.exitCode, 2, r.stderr);
  t.true(r.stderr.includes('percentage for --max-unused must be below 100%'), r.stderr);
});
