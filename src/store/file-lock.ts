/**
 * The catalog's lock: a file created exclusively (O_EXCL) beside the catalog, holding the pid, host
 * and a token of its holder. Only writers take it. A lock whose holder died on this host is broken;
 * one held by another host is always waited for, since its holder cannot be checked from here.
 * node:crypto (the token, a name to move a stale lock to) is loaded on use: readers take no lock,
 * and loading it at the top cost every command that reads the catalog ~7 ms.
 */
import { closeSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { link, open, rename, rm, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { CatalogError } from '../errors.ts';

interface LockHolder {
  pid: number;
  hostname: string;
  since: string;
  /** Tells this acquisition apart from any other, even by the same process. */
  token: string;
}

export interface HeldLock {
  path: string;
  content: string;
}

interface ObservedLock {
  content: string;
  /** Undefined while the holder has created the file but not yet written it, or if it died in between. */
  holder: LockHolder | undefined;
  inode: number;
  ageMs: number;
}

/** A holder writes the file right after creating it; one still empty after this long was left by a crash. */
const INCOMPLETE_LOCK_GRACE_MS = 5_000;
const MAX_BACKOFF_MS = 250;

export async function acquireLock(lockPath: string, timeoutMs: number): Promise<HeldLock> {
  const holder: LockHolder = { pid: process.pid, hostname: os.hostname(), since: new Date().toISOString(), token: process.getBuiltinModule('node:crypto').randomUUID() };
  const content = `${JSON.stringify(holder)}\n`;
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    if (tryCreateLock(lockPath, content)) return { path: lockPath, content };
    const observed = await inspectLock(lockPath);
    if (!observed) continue; // released since we tried
    if (isStale(observed)) {
      await breakStaleLock(lockPath, observed);
      continue;
    }
    const remainingMs = deadline - Date.now();
    if (remainingMs <= 0) throw lockTimeout(lockPath, timeoutMs, observed.holder);
    // Exponential backoff with jitter, so waiting writers do not retry in lockstep.
    const backoffMs = Math.min(MAX_BACKOFF_MS, 5 * 2 ** attempt) * (0.5 + Math.random());
    await sleep(Math.min(backoffMs, remainingMs));
  }
}

/** Synchronous from create to write, so the file is empty only if the process dies in between. */
function tryCreateLock(lockPath: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(lockPath, 'wx');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new CatalogError(`cannot create the catalog lock ${lockPath}: ${(error as Error).message}`, { cause: error });
  }
  try {
    writeSync(fd, content);
  } catch (error) {
    unlinkSync(lockPath);
    throw new CatalogError(`cannot write the catalog lock ${lockPath}: ${(error as Error).message}`, { cause: error });
  } finally {
    closeSync(fd);
  }
  return true;
}

async function inspectLock(lockPath: string): Promise<ObservedLock | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(lockPath, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CatalogError(`cannot read the catalog lock ${lockPath}: ${(error as Error).message}`, { cause: error });
  }
  try {
    const stats = await handle.stat();
    const content = await handle.readFile('utf8');
    return { content, holder: parseHolder(content), inode: stats.ino, ageMs: Date.now() - stats.mtimeMs };
  } finally {
    await handle.close();
  }
}

function parseHolder(content: string): LockHolder | undefined {
  try {
    const parsed = JSON.parse(content) as Partial<LockHolder>;
    // pid 0 or below would address process groups, which always look alive.
    return Number.isInteger(parsed.pid) && parsed.pid! > 0 && typeof parsed.hostname === 'string' ? (parsed as LockHolder) : undefined;
  } catch {
    return undefined;
  }
}

/** Only a holder on this host can be known dead; a lock from another host is always respected. */
function isStale(observed: ObservedLock): boolean {
  if (!observed.holder) return observed.ageMs > INCOMPLETE_LOCK_GRACE_MS;
  return observed.holder.hostname === os.hostname() && !isProcessAlive(observed.holder.pid);
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // exists, but is not ours to signal
  }
}

/**
 * Moves the lock aside and checks that what moved is the stale lock we looked at. Another waiter may
 * have broken it first and a new holder taken the lock since; then that live lock is put back. (If yet
 * another process took the lock in that instant, the put-back fails and two writers overlap once: it
 * takes a crashed holder and three writers racing within microseconds.)
 */
async function breakStaleLock(lockPath: string, observed: ObservedLock): Promise<void> {
  const aside = `${lockPath}.${process.pid}.${process.getBuiltinModule('node:crypto').randomBytes(6).toString('hex')}.stale`;
  try {
    await rename(lockPath, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new CatalogError(`cannot remove the stale catalog lock ${lockPath}: ${(error as Error).message}`, { cause: error });
  }
  try {
    const moved = await inspectLock(aside);
    if (moved && (moved.inode !== observed.inode || moved.content !== observed.content)) {
      await link(aside, lockPath).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
      });
    }
  } finally {
    await rm(aside, { force: true });
  }
}

/** Removes the lock only if it is still ours. */
export async function releaseLock(lock: HeldLock): Promise<void> {
  const current = await inspectLock(lock.path);
  if (current?.content === lock.content) await rm(lock.path, { force: true });
}

function lockTimeout(lockPath: string, timeoutMs: number, holder: LockHolder | undefined): CatalogError {
  const waited = `timed out after ${timeoutMs / 1000}s waiting for the catalog lock ${lockPath}`;
  if (!holder) {
    return new CatalogError(`${waited}, held by a process that has not written its pid into it yet`, {
      hint: `if no kubectl-nkvm is running, remove ${lockPath}`,
    });
  }
  return new CatalogError(`${waited}, held by pid ${holder.pid} on ${holder.hostname} since ${holder.since}`, {
    hint: `another kubectl-nkvm is writing the catalog; if pid ${holder.pid} is not a kubectl-nkvm, remove ${lockPath}`,
  });
}
