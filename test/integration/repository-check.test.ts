/**
 * Our check against restic's, no cluster: a repository we wrote checks clean by both; a flipped byte
 * in a pack and a deleted pack are found by both, and ours names the snapshots they cost; a
 * repository restic wrote checks clean by ours.
 */
import anyTest, { type TestFn } from 'ava';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { archiveTar } from '../../src/repository/archiver.ts';
import { LocalBackend } from '../../src/repository/backends/local.ts';
import { checkRepository, type CheckResult } from '../../src/repository/check.ts';
import { Repository } from '../../src/repository/repository.ts';
import { findRestic, restic } from '../cluster/restic.ts';
import { integrationEnabled } from './support.ts';

interface Context {
  work: string;
  /** Our repository: snapshot A of a source, then B of it with a file added. */
  ours: string;
  a: string;
  b: string;
  /** The data pack only B's new file is in, and one A's data is in (B reaches it too). */
  packOnlyB: string;
  packOfA: string;
}

const test = anyTest as TestFn<Context>;
const suite = integrationEnabled ? test.serial : test.serial.skip;
const PASSWORD = 'correct horse battery staple';

async function archiveDir(repo: Repository, source: string, parent?: string) {
  const tar = spawn('tar', ['--format=posix', '-c', '-f', '-', '-C', source, '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => tar.on('close', resolve));
  const result = await archiveTar(repo, tar.stdout, { path: '/data/shop-db', hostname: 'shop', ...(parent ? { parent } : {}) });
  if ((await exited) !== 0) throw new Error('tar failed');
  return result.snapshotId;
}

async function packsWithData(repoPath: string): Promise<Set<string>> {
  const repo = await Repository.open(new LocalBackend(repoPath), PASSWORD);
  const result = new Set<string>();
  for (const pack of repo.index.packs()) if ((await repo.readPackHeader(pack)).some((b) => b.type === 'data')) result.add(pack);
  return result;
}

const packFile = (repoPath: string, pack: string) => path.join(repoPath, 'data', pack.slice(0, 2), pack);

function copyRepository(t: { context: Context }, name: string): string {
  const target = path.join(t.context.work, name);
  fs.cpSync(t.context.ours, target, { recursive: true });
  return target;
}

async function ourCheck(repoPath: string, readData: boolean): Promise<CheckResult> {
  return checkRepository(await Repository.open(new LocalBackend(repoPath), PASSWORD, { loadIndex: false }), { readData });
}

if (integrationEnabled) {
  test.before(async (t) => {
    findRestic();
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-repo-check-'));
    t.context.work = work;
    const source = path.join(work, 'source');
    fs.mkdirSync(path.join(source, 'tables'), { recursive: true });
    fs.writeFileSync(path.join(source, 'tables', 'orders'), crypto.randomBytes(1024 * 1024));
    fs.writeFileSync(path.join(source, 'README'), 'small\n');
    t.context.ours = path.join(work, 'ours');
    const repo = await Repository.init(new LocalBackend(t.context.ours), PASSWORD);
    t.context.a = await archiveDir(repo, source);
    const afterA = await packsWithData(t.context.ours);
    fs.writeFileSync(path.join(source, 'tables', 'customers'), crypto.randomBytes(700 * 1024));
    t.context.b = await archiveDir(repo, source, t.context.a);
    const afterB = await packsWithData(t.context.ours);
    const onlyB = [...afterB].filter((p) => !afterA.has(p));
    if (afterA.size !== 1 || onlyB.length !== 1) throw new Error(`expected one data pack per backup, got ${afterA.size} and ${onlyB.length}`);
    t.context.packOfA = [...afterA][0]!;
    t.context.packOnlyB = onlyB[0]!;
  });
  test.after.always((t) => {
    if (t.context.work) fs.rmSync(t.context.work, { recursive: true, force: true });
  });
}

suite('a repository we wrote checks clean by restic check --read-data and by ours', async (t) => {
  const theirs = await restic(t.context.ours, PASSWORD, ['check', '--read-data']);
  t.is(theirs.exitCode, 0, `${theirs.stdout}\n${theirs.stderr}`);
  t.regex(theirs.stdout, /no errors were found/);
  const ours = await ourCheck(t.context.ours, true);
  t.true(ours.ok, JSON.stringify(ours.problems));
  t.deepEqual(ours.problems, []);
  t.is(ours.stats.snapshots, 2);
  t.is(ours.stats.packsRead, ours.stats.packs);
  t.true(ours.stats.packs >= 4, 'a data and a tree pack per backup');
  t.log(`ours: ${JSON.stringify(ours.stats)}`);

  // --read-data-subset n/t: the same group of packs as restic's.
  for (const n of [1, 2, 3]) {
    const group = await restic(t.context.ours, PASSWORD, ['check', `--read-data-subset=${n}/3`]);
    t.is(group.exitCode, 0, group.stderr);
    const [, count, total] = /read group #\d+ of (\d+) data packs \(out of total (\d+) packs/.exec(group.stdout) ?? [];
    const subset = await checkRepository(await Repository.open(new LocalBackend(t.context.ours), PASSWORD, { loadIndex: false }), { readData: { kind: 'group', n, t: 3 } });
    t.is(subset.stats.packsRead, Number(count), group.stdout);
    t.is(subset.stats.packs, Number(total));
  }
});

suite('a flipped byte in a pack: our read-data check finds it and names the one snapshot it costs; restic check --read-data agrees', async (t) => {
  const repoPath = copyRepository(t, 'flipped');
  const file = packFile(repoPath, t.context.packOnlyB);
  fs.chmodSync(file, 0o600);
  const fd = fs.openSync(file, 'r+');
  const byte = Buffer.alloc(1);
  fs.readSync(fd, byte, 0, 1, 4096);
  byte[0]! ^= 0x40;
  fs.writeSync(fd, byte, 0, 1, 4096);
  fs.closeSync(fd);

  t.true((await ourCheck(repoPath, false)).ok, 'the structure is intact; only reading the data shows it');
  const ours = await ourCheck(repoPath, true);
  t.false(ours.ok);
  t.is(ours.problems.length, 1, JSON.stringify(ours.problems));
  t.like(ours.problems[0], { kind: 'pack-damaged', pack: t.context.packOnlyB, snapshots: [t.context.b] });
  t.deepEqual(ours.damagedSnapshots, [t.context.b]);
  t.log(ours.problems[0]!.message);

  const theirs = await restic(repoPath, PASSWORD, ['check', '--read-data']);
  t.not(theirs.exitCode, 0);
  t.true(`${theirs.stdout}\n${theirs.stderr}`.includes(t.context.packOnlyB.slice(0, 8)), `${theirs.stdout}\n${theirs.stderr}`);
  t.regex(theirs.stderr, /Fatal: repository contains errors/);
});

suite('a deleted pack: both checks find it, ours without reading data, naming both snapshots that reach it', async (t) => {
  const repoPath = copyRepository(t, 'deleted');
  fs.rmSync(packFile(repoPath, t.context.packOfA));
  const ours = await ourCheck(repoPath, false);
  t.is(ours.problems.length, 1, JSON.stringify(ours.problems));
  t.like(ours.problems[0], { kind: 'pack-missing', pack: t.context.packOfA, snapshots: [t.context.a, t.context.b] });
  t.log(ours.problems[0]!.message);

  const theirs = await restic(repoPath, PASSWORD, ['check']);
  t.not(theirs.exitCode, 0);
  t.true(`${theirs.stdout}\n${theirs.stderr}`.includes(t.context.packOfA.slice(0, 8)), `${theirs.stdout}\n${theirs.stderr}`);
});

suite('repositories restic wrote (compressed and not) check clean by ours, read-data included', async (t) => {
  const source = path.join(t.context.work, 'restic-source');
  fs.mkdirSync(path.join(source, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(source, 'sub', 'blob'), crypto.randomBytes(600 * 1024));
  fs.writeFileSync(path.join(source, 'text'), 'hello\n'.repeat(10_000));
  for (const compression of ['auto', 'off']) {
    const repoPath = path.join(t.context.work, `restic-${compression}`);
    t.is((await restic(repoPath, PASSWORD, ['init'])).exitCode, 0);
    for (let i = 0; i < 2; i++) {
      fs.writeFileSync(path.join(source, `run-${i}`), crypto.randomBytes(1000));
      const backup = await restic(repoPath, PASSWORD, ['backup', '--host', 'shop', '--compression', compression, source]);
      t.is(backup.exitCode, 0, backup.stderr);
    }
    const ours = await ourCheck(repoPath, true);
    t.true(ours.ok, `${compression}: ${JSON.stringify(ours.problems)}`);
    t.is(ours.stats.snapshots, 2);
    t.true(ours.stats.packsRead > 0);
  }
});
