/**
 * Locks and check on S3 (a real versitygw server) against the real restic: the same files by the
 * same rules, only the backend differs. No cluster.
 */
import anyTest, { type TestFn } from 'ava';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { archiveTar } from '../../src/repository/archiver.ts';
import { S3Backend } from '../../src/repository/backends/s3.ts';
import { checkRepository } from '../../src/repository/check.ts';
import { acquireLock, encodeLock, listLocks, removeStaleLocks, RepositoryLockedError, STALE_AFTER_MS } from '../../src/repository/lock.ts';
import { Repository } from '../../src/repository/repository.ts';
import { formatTime } from '../../src/repository/time.ts';
import { findRestic, restic } from '../cluster/restic.ts';
import { type S3Server, startS3Server } from '../cluster/s3-server.ts';
import { integrationEnabled } from './support.ts';

interface Context {
  server: S3Server;
  work: string;
}

const test = anyTest as TestFn<Context>;
const suite = integrationEnabled ? test.serial : test.serial.skip;
const PASSWORD = 'correct horse battery staple';

if (integrationEnabled) {
  test.before(async (t) => {
    findRestic();
    t.context.server = await startS3Server();
    t.context.work = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-s3-locks-'));
  });
  test.afterEach.always((t) => {
    if (!t.passed && t.context.server) t.log(`versitygw log:\n${t.context.server.log().slice(-4000)}`);
  });
  test.after.always(async (t) => {
    await t.context.server?.dispose();
    if (t.context.work) fs.rmSync(t.context.work, { recursive: true, force: true });
  });
}

function s3(t: { context: Context; teardown(fn: () => Promise<void>): void }, prefix: string): S3Backend {
  const b = new S3Backend(t.context.server.location(prefix), { env: t.context.server.env });
  t.teardown(() => b.close());
  return b;
}

suite('on S3: restic and we honour each other\'s locks, and both unlocks remove only stale ones', async (t) => {
  const { server } = t.context;
  const location = server.location('locks');
  const repo = await Repository.init(s3(t, 'locks'), PASSWORD);

  const held = await acquireLock(repo, { exclusive: false });
  const prune = await restic(location, PASSWORD, ['prune'], { env: server.env });
  t.is(prune.exitCode, 11, prune.stderr);
  t.true(prune.stderr.includes(`repository is already locked by PID ${process.pid} on ${os.hostname()}`), prune.stderr);
  t.is((await restic(location, PASSWORD, ['unlock'], { env: server.env })).exitCode, 0);
  t.deepEqual((await listLocks(repo)).map((l) => l.id), [held.id]);
  await held.release();

  const backup = spawn(findRestic(), ['--repo', location, '--no-cache', 'backup', '--stdin'], { env: { ...process.env, ...server.env, RESTIC_PASSWORD: PASSWORD }, stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  backup.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => backup.on('close', resolve));
  try {
    backup.stdin.write(Buffer.alloc(512, 7));
    let seen = false;
    for (let i = 0; i < 200 && !seen; i++) {
      seen = (await listLocks(repo)).some((e) => 'lock' in e && e.lock.pid === backup.pid);
      if (!seen) await sleep(100);
    }
    t.true(seen, stderr);
    const error = await t.throwsAsync(acquireLock(repo, { exclusive: true }), { instanceOf: RepositoryLockedError });
    t.is(error.holder.pid, backup.pid!);
    const shared = await acquireLock(repo, { exclusive: false });
    await shared.release();
  } finally {
    backup.stdin.end();
  }
  t.is(await exited, 0, stderr);

  const old = formatTime(BigInt(Date.now() - STALE_AFTER_MS - 60_000) * 1_000_000n);
  const stale = { time: old, exclusive: true, hostname: 'another-host', username: 'x', pid: 1 };
  await repo.saveUnpacked('locks', encodeLock(stale));
  t.is((await removeStaleLocks(repo)).removed.length, 1);
  await repo.saveUnpacked('locks', encodeLock({ ...stale, pid: 2 }));
  const unlock = await restic(location, PASSWORD, ['unlock'], { env: server.env });
  t.regex(unlock.stdout, /successfully removed 1 locks/);
  t.deepEqual(await listLocks(repo), []);
});

suite('on S3: a flipped byte in a pack is found by our read-data check, naming the snapshot, and by restic\'s', async (t) => {
  const { server } = t.context;
  const location = server.location('check');
  const backend = s3(t, 'check');
  const repo = await Repository.init(backend, PASSWORD);
  const source = path.join(t.context.work, 'source');
  fs.mkdirSync(source);
  fs.writeFileSync(path.join(source, 'db'), crypto.randomBytes(300 * 1024));
  const tar = spawn('tar', ['-c', '-f', '-', '-C', source, '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const tarExited = new Promise<number | null>((resolve) => tar.on('close', resolve));
  const { snapshotId } = await archiveTar(repo, tar.stdout, { path: '/data/db', hostname: 'shop' });
  t.is(await tarExited, 0);

  const open = async () => checkRepository(await Repository.open(backend, PASSWORD, { loadIndex: false }), { readData: true });
  t.true((await open()).ok);
  t.is((await restic(location, PASSWORD, ['check', '--read-data'], { env: server.env })).exitCode, 0);

  // The data pack is the larger one.
  const sizes = await Promise.all([...repo.index.packs()].map(async (p) => [p, (await backend.stat('data', p)).size] as const));
  const [pack] = sizes.sort((a, b) => b[1] - a[1])[0]!;
  const bytes = await backend.read('data', pack);
  bytes[1000]! ^= 0x01;
  await backend.remove('data', pack);
  await backend.write('data', pack, bytes);

  const ours = await open();
  t.is(ours.problems.length, 1, JSON.stringify(ours.problems));
  t.like(ours.problems[0], { kind: 'pack-damaged', pack, snapshots: [snapshotId] });
  const theirs = await restic(location, PASSWORD, ['check', '--read-data'], { env: server.env });
  t.not(theirs.exitCode, 0);
  t.true(`${theirs.stdout}${theirs.stderr}`.includes(pack.slice(0, 8)));
});
