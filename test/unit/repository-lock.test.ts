/**
 * Locks without restic: the stale rules, the file's JSON, and conflicts between our own locks in a
 * local repository (against the real restic: test/integration/repository-locks.test.ts).
 */
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalBackend } from '../../src/repository/backends/local.ts';
import {
  acquireLock,
  decodeLock,
  encodeLock,
  InvalidLockError,
  isStale,
  listLocks,
  removeStaleLocks,
  RepositoryLockedError,
  STALE_AFTER_MS,
  type LockInfo,
} from '../../src/repository/lock.ts';
import { Repository } from '../../src/repository/repository.ts';
import { formatTime, parseTime } from '../../src/repository/time.ts';

const KDF = { N: 1024, r: 8, p: 1 };
const NOW = Date.UTC(2026, 11, 6, 12, 0, 0);
const at = (ms: number) => formatTime(BigInt(ms) * 1_000_000n);
const lock = (overrides: Partial<LockInfo> = {}): LockInfo => ({ time: at(NOW - 60_000), exclusive: false, hostname: 'here', username: 'u', pid: 42, ...overrides });
const alive = { nowMs: NOW, hostname: 'here', processExists: () => true };
const dead = { nowMs: NOW, hostname: 'here', processExists: () => false };

test('a fresh lock of a live process is not stale', (t) => {
  t.false(isStale(lock(), alive));
});

test('a lock older than 30 minutes is stale, whatever host wrote it', (t) => {
  t.true(isStale(lock({ time: at(NOW - STALE_AFTER_MS - 1000), hostname: 'elsewhere' }), alive));
  t.false(isStale(lock({ time: at(NOW - STALE_AFTER_MS + 1000), hostname: 'elsewhere' }), dead));
});

test('a fresh lock on this host whose process is gone is stale; on another host it is not', (t) => {
  t.true(isStale(lock(), dead));
  t.false(isStale(lock({ hostname: 'elsewhere' }), dead));
});

test('a time with an offset counts from the instant it names', (t) => {
  // 12:00+02:00 is 10:00Z: two hours old at NOW.
  t.true(isStale(lock({ time: '2026-12-06T12:00:00.123456789+02:00', hostname: 'elsewhere' }), alive));
  t.false(isStale(lock({ time: '2026-12-06T13:50:00+01:00', hostname: 'elsewhere' }), alive));
});

test('lock JSON: restic field order, uid and gid omitted when zero, read leniently', (t) => {
  t.is(encodeLock(lock({ uid: 1000, gid: 0 })).toString(), `{"time":"${at(NOW - 60_000)}","exclusive":false,"hostname":"here","username":"u","pid":42,"uid":1000}`);
  const read = decodeLock('ab'.repeat(32), Buffer.from('{"time":"2026-12-06T11:59:00.5+01:00","exclusive":true,"hostname":"h","pid":7}'));
  t.like(read, { exclusive: true, hostname: 'h', username: '', pid: 7 });
  t.throws(() => decodeLock('x', Buffer.from('{"exclusive":true}')));
});

async function repository(t: import('ava').ExecutionContext): Promise<Repository> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-lock-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return Repository.init(new LocalBackend(path.join(dir, 'repo')), 'pw', { kdf: KDF });
}

test('shared locks coexist; an exclusive one conflicts with them and names the holder', async (t) => {
  const repo = await repository(t);
  const a = await acquireLock(repo, { exclusive: false, waitBeforeCheckMs: 1 });
  const b = await acquireLock(repo, { exclusive: false, waitBeforeCheckMs: 1 });
  t.is((await listLocks(repo)).length, 2);
  const error = await t.throwsAsync(acquireLock(repo, { exclusive: true, waitBeforeCheckMs: 1 }), { instanceOf: RepositoryLockedError });
  t.is(error.holder.pid, process.pid);
  t.is(error.holder.hostname, os.hostname());
  t.false(error.stale);
  t.regex(error.message, new RegExp(`locked by PID ${process.pid} on ${os.hostname()} by .*, created \\d+s ago`));
  t.is((await listLocks(repo)).length, 2, 'the failed attempt leaves no lock behind');
  await a.release();
  await b.release();
  const x = await acquireLock(repo, { exclusive: true, waitBeforeCheckMs: 1 });
  const shared = await t.throwsAsync(acquireLock(repo, { exclusive: false, waitBeforeCheckMs: 1 }), { instanceOf: RepositoryLockedError });
  t.true(shared.holder.exclusive);
  t.regex(shared.message, /locked exclusively by/);
  await x.release();
  t.is((await listLocks(repo)).length, 0);
});

test('two exclusive lockers racing: whoever sees the other after writing backs off, and at most one wins', async (t) => {
  const repo = await repository(t);
  const results = await Promise.allSettled([acquireLock(repo, { exclusive: true, waitBeforeCheckMs: 50 }), acquireLock(repo, { exclusive: true, waitBeforeCheckMs: 50 })]);
  const won = results.filter((r) => r.status === 'fulfilled');
  t.true(won.length <= 1);
  for (const r of results) if (r.status === 'rejected') t.true(r.reason instanceof RepositoryLockedError);
  t.is((await listLocks(repo)).length, won.length);
  for (const r of won) await (r as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireLock>>>).value.release();
});

test('a lock confirmed later: returned once written; an exclusive lock that appears in the wait fails the confirmation and releases ours', async (t) => {
  const repo = await repository(t);
  const started = Date.now();
  const shared = await acquireLock(repo, { exclusive: false, waitBeforeCheckMs: 300, confirmLater: true });
  t.true(Date.now() - started < 300, 'not held up by the wait');
  t.is((await listLocks(repo)).length, 1, 'our file is written before it returns');
  // A prune's exclusive lock written in our wait (as one that did not see ours yet would).
  await repo.saveUnpacked('locks', encodeLock(lock({ exclusive: true, hostname: 'elsewhere', time: at(Date.now()) })));
  const error = await t.throwsAsync(shared.confirmed, { instanceOf: RepositoryLockedError });
  t.true(error.holder.exclusive);
  t.is(error.holder.hostname, 'elsewhere');
  await shared.release(); // as a caller's cleanup does: nothing left to remove
  t.deepEqual((await listLocks(repo)).map((entry) => 'lock' in entry && entry.lock.hostname), ['elsewhere'], 'ours was removed');

  const clear = await repository(t);
  const confirmed = await acquireLock(clear, { exclusive: false, waitBeforeCheckMs: 50, confirmLater: true });
  await t.notThrowsAsync(confirmed.confirmed);
  await confirmed.release();
  t.is((await listLocks(clear)).length, 0);
});

test('refresh writes a new lock file with a newer time and removes the old one', async (t) => {
  const repo = await repository(t);
  const held = await acquireLock(repo, { exclusive: false, waitBeforeCheckMs: 1 });
  const first = held.lock;
  await new Promise((resolve) => setTimeout(resolve, 5));
  await held.refresh();
  const locks = await listLocks(repo);
  t.is(locks.length, 1);
  t.not(locks[0]!.id, first.id);
  t.is(locks[0]!.id, held.id);
  // As times, not text: formatTime drops a fraction's trailing zeros, so ".12Z" sorts after ".125Z".
  t.true('lock' in locks[0]! && parseTime(locks[0].lock.time) > parseTime(first.time));
  await held.release();
  t.is((await listLocks(repo)).length, 0);
});

test('the refresh timer runs while the lock is held', async (t) => {
  const repo = await repository(t);
  const held = await acquireLock(repo, { exclusive: false, waitBeforeCheckMs: 1, refreshIntervalMs: 40 });
  const first = held.id;
  for (let i = 0; i < 100 && held.id === first; i++) await new Promise((resolve) => setTimeout(resolve, 50));
  await held.refresh();
  t.not(held.id, first);
  t.deepEqual((await listLocks(repo)).map((l) => l.id), [held.id]);
  await held.release();
  t.is((await listLocks(repo)).length, 0);
});

test('unlock removes stale locks only; --remove-all removes every lock', async (t) => {
  const repo = await repository(t);
  const fresh = await acquireLock(repo, { exclusive: false, waitBeforeCheckMs: 1 });
  await repo.saveUnpacked('locks', encodeLock(lock({ time: at(Date.now() - STALE_AFTER_MS - 60_000), hostname: 'elsewhere' })));
  // A pid far above any pid_max: the process cannot exist.
  await repo.saveUnpacked('locks', encodeLock(lock({ time: at(Date.now()), hostname: os.hostname(), pid: 2 ** 30 })));
  await repo.saveUnpacked('locks', encodeLock(lock({ time: at(Date.now()), hostname: 'elsewhere', pid: 2 ** 30 })));
  const result = await removeStaleLocks(repo);
  t.is(result.removed.length, 2);
  t.deepEqual(result.kept.map((l) => l.hostname).sort(), [os.hostname(), 'elsewhere'].sort());
  const stale = await t.throwsAsync(acquireLock(repo, { exclusive: true, waitBeforeCheckMs: 1 }), { instanceOf: RepositoryLockedError });
  t.truthy(stale.hint);
  const all = await removeStaleLocks(repo, { all: true });
  t.is(all.removed.length, 2);
  t.is((await listLocks(repo)).length, 0);
  await fresh.release();
});

test('a lock file that does not decode blocks locking (whether it conflicts is unknown) until unlock --remove-all', async (t) => {
  const repo = await repository(t);
  const bad = 'ab'.repeat(32);
  await repo.backend.write('locks', bad, Buffer.from('not a lock'));
  const error = await t.throwsAsync(acquireLock(repo, { exclusive: false, waitBeforeCheckMs: 1, unreadableRetries: 2, unreadableDelayMs: 5 }), { instanceOf: InvalidLockError });
  t.is(error.lockId, bad);
  t.regex(error.message, /--remove-all/);
  t.deepEqual((await listLocks(repo)).map((l) => l.id), [bad], 'nothing of ours is left behind');
  t.deepEqual(await removeStaleLocks(repo), { removed: [], kept: [], unreadable: [bad] });
  t.deepEqual((await removeStaleLocks(repo, { all: true })).unreadable, [bad]);
  t.deepEqual(await listLocks(repo), []);
  // An empty lock file (an interrupted upload) is ignored, as restic ignores it.
  await repo.backend.write('locks', bad, Buffer.alloc(0));
  const held = await acquireLock(repo, { exclusive: true, waitBeforeCheckMs: 1 });
  await held.release();
});

test.serial('SIGHUP is ignored from writing the lock file until release, also when taking it fails', async (t) => {
  const repo = await repository(t);
  const before = process.listenerCount('SIGHUP');
  const held = await acquireLock(repo, { exclusive: true, waitBeforeCheckMs: 1 });
  t.is(process.listenerCount('SIGHUP'), before + 1);
  await t.throwsAsync(acquireLock(repo, { exclusive: true, waitBeforeCheckMs: 1 }), { instanceOf: RepositoryLockedError });
  t.is(process.listenerCount('SIGHUP'), before + 1);
  await held.release();
  await held.release();
  t.is(process.listenerCount('SIGHUP'), before);
});
