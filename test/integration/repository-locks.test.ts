/**
 * Our locks against the real restic (v0.19.1), no cluster: each side sees the other's locks, honours
 * them, and removes only stale ones.
 */
import anyTest, { type TestFn } from 'ava';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalBackend } from '../../src/repository/backends/local.ts';
import { acquireLock, encodeLock, listLocks, removeStaleLocks, RepositoryLockedError, STALE_AFTER_MS, type LockFile } from '../../src/repository/lock.ts';
import { Repository } from '../../src/repository/repository.ts';
import { formatTime } from '../../src/repository/time.ts';
import { findRestic, restic } from '../cluster/restic.ts';
import { integrationEnabled } from './support.ts';

interface Context {
  work: string;
}

const test = anyTest as TestFn<Context>;
const suite = integrationEnabled ? test.serial : test.serial.skip;
const PASSWORD = 'correct horse battery staple';
const timeAgo = (ms: number) => formatTime(BigInt(Date.now() - ms) * 1_000_000n);

if (integrationEnabled) {
  test.before((t) => {
    findRestic();
    t.context.work = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-repo-locks-'));
  });
  test.after.always((t) => {
    if (t.context.work) fs.rmSync(t.context.work, { recursive: true, force: true });
  });
}

async function newRepository(t: { context: Context; title: string }): Promise<{ repo: Repository; repoPath: string }> {
  const repoPath = fs.mkdtempSync(path.join(t.context.work, 'repo-'));
  fs.rmdirSync(repoPath);
  const repo = await Repository.init(new LocalBackend(repoPath), PASSWORD);
  return { repo, repoPath };
}

async function locksOnDisk(repo: Repository): Promise<LockFile[]> {
  return (await listLocks(repo)).flatMap((entry) => ('lock' in entry ? [entry.lock] : []));
}

suite('a lock we hold stops restic prune, and restic unlock leaves it (our process survives its SIGHUP)', async (t) => {
  const { repo, repoPath } = await newRepository(t);
  const held = await acquireLock(repo, { exclusive: false });
  try {
    const prune = await restic(repoPath, PASSWORD, ['prune']);
    t.not(prune.exitCode, 0, prune.stdout);
    t.regex(prune.stderr, /repository is already locked by PID (\d+) on (\S+)/);
    t.true(prune.stderr.includes(`PID ${process.pid} on ${os.hostname()}`), prune.stderr);
    t.is(prune.exitCode, 11, 'restic exits 11 when the repository is locked');

    // Same host: restic probes our PID with SIGHUP before deciding the lock is not stale.
    const unlock = await restic(repoPath, PASSWORD, ['unlock']);
    t.is(unlock.exitCode, 0, unlock.stderr);
    t.deepEqual((await locksOnDisk(repo)).map((l) => l.id), [held.id]);
    t.log(`restic prune: ${prune.stderr.split('\n')[0]}`);
  } finally {
    await held.release();
  }
  t.deepEqual(await locksOnDisk(repo), []);
  const prune = await restic(repoPath, PASSWORD, ['prune']);
  t.is(prune.exitCode, 0, prune.stderr);
});

suite('a lock restic holds (backup --stdin, kept open) makes our exclusive lock fail naming it, while our shared lock sits beside it', async (t) => {
  const { repo, repoPath } = await newRepository(t);
  const backup = spawn(findRestic(), ['--repo', repoPath, '--no-cache', 'backup', '--stdin', '--stdin-filename', 'held'], {
    env: { ...process.env, RESTIC_PASSWORD: PASSWORD },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  backup.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  backup.stdout.resume();
  const exited = new Promise<number | null>((resolve) => backup.on('close', resolve));
  try {
    backup.stdin.write(Buffer.alloc(1024, 1));
    let theirs: LockFile | undefined;
    for (let i = 0; i < 200 && !theirs; i++) {
      theirs = (await locksOnDisk(repo)).find((l) => l.pid === backup.pid);
      if (!theirs) await sleep(100);
    }
    t.truthy(theirs, `restic's lock did not appear: ${stderr}`);
    t.false(theirs!.exclusive);
    t.is(theirs!.hostname, os.hostname());

    const error = await t.throwsAsync(acquireLock(repo, { exclusive: true }), { instanceOf: RepositoryLockedError });
    t.is(error.holder.pid, backup.pid!);
    t.is(error.holder.id, theirs!.id);
    t.false(error.stale);
    t.true(error.message.includes(`by PID ${backup.pid} on ${os.hostname()} by ${os.userInfo().username}`), error.message);
    t.log(error.message);

    const shared = await acquireLock(repo, { exclusive: false });
    t.is((await locksOnDisk(repo)).length, 2);
    // Our stale-lock removal leaves restic's live lock alone.
    t.deepEqual((await removeStaleLocks(repo)).removed, []);
    await shared.release();
  } finally {
    backup.stdin.end();
  }
  t.is(await exited, 0, stderr);
  t.deepEqual(await locksOnDisk(repo), []);
});

suite('stale locks (old, or of a dead process on this host) are removed by our unlock and by restic unlock; fresh ones by neither', async (t) => {
  const { repo, repoPath } = await newRepository(t);
  const base = { exclusive: true, username: 'someone', uid: 1234, gid: 1234 };
  const writeLocks = async () => ({
    old: await repo.saveUnpacked('locks', encodeLock({ ...base, time: timeAgo(STALE_AFTER_MS + 5 * 60_000), hostname: 'another-host', pid: 1 })),
    // A PID above any pid_max: no such process.
    dead: await repo.saveUnpacked('locks', encodeLock({ ...base, time: timeAgo(1000), hostname: os.hostname(), pid: 2 ** 30 })),
    fresh: await repo.saveUnpacked('locks', encodeLock({ ...base, time: timeAgo(1000), hostname: 'another-host', pid: 2 ** 30 })),
  });

  let ids = await writeLocks();
  // restic sees the exclusive locks we wrote and refuses to start.
  const blocked = await restic(repoPath, PASSWORD, ['backup', '--stdin', '--stdin-filename', 'x'], {});
  t.is(blocked.exitCode, 11, blocked.stderr);
  const ours = await removeStaleLocks(repo);
  t.deepEqual(ours.removed.map((l) => l.id).sort(), [ids.old, ids.dead].sort());
  t.deepEqual((await locksOnDisk(repo)).map((l) => l.id), [ids.fresh]);
  await repo.backend.remove('locks', ids.fresh);

  ids = await writeLocks();
  const unlock = await restic(repoPath, PASSWORD, ['unlock']);
  t.is(unlock.exitCode, 0, unlock.stderr);
  t.regex(unlock.stdout, /successfully removed 2 locks/);
  t.deepEqual((await locksOnDisk(repo)).map((l) => l.id), [ids.fresh]);

  // --remove-all, both ways.
  const all = await removeStaleLocks(repo, { all: true });
  t.is(all.removed.length, 1);
  await writeLocks();
  t.is((await restic(repoPath, PASSWORD, ['unlock', '--remove-all'])).exitCode, 0);
  t.deepEqual(await locksOnDisk(repo), []);
});
