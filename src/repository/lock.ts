/**
 * Repository locks as restic takes them (internal/repository/lock.go): an encrypted JSON file
 * `locks/<id>` holding {time, exclusive, hostname, username, pid, uid, gid}. Many shared locks may
 * coexist; an exclusive lock only alone. Taking one: look for conflicting locks, write ours, wait
 * 200 ms, look again, and remove ours if a conflict appeared meanwhile (two writers racing both see
 * the other). While held, the lock is refreshed every 5 minutes by writing a new file with the
 * current time and removing the old one, so it never looks stale to others.
 *
 * Stale (restic's rules): older than 30 minutes, or written on this host by a process that is gone.
 * A stale lock still conflicts, as in restic: only `unlock` removes it, so nobody deletes a lock of a
 * process that is merely slow to refresh without a person deciding so.
 *
 * restic checks a same-host holder by sending it SIGHUP (and ignores SIGHUP itself). Node's default
 * for SIGHUP is to exit, so while a lock is held we ignore SIGHUP too: otherwise a `restic unlock`
 * on this machine would kill our backup.
 */
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { BackendNotFoundError } from './backends/backend.ts';
import type { Repository } from './repository.ts';
import { formatTime, nowNs, parseTime } from './time.ts';

/** What a lock file holds, field for field as restic's Lock marshals it. */
export interface LockInfo {
  /** RFC3339Nano, as written. */
  time: string;
  exclusive: boolean;
  hostname: string;
  username: string;
  pid: number;
  uid?: number;
  gid?: number;
}

export interface LockFile extends LockInfo {
  /** The lock file's name (its storage ID). */
  id: string;
}

/** restic's timings. */
export const STALE_AFTER_MS = 30 * 60_000;
export const REFRESH_INTERVAL_MS = 5 * 60_000;
export const WAIT_BEFORE_CHECK_MS = 200;
/** A lock not refreshed for this long is about to look stale to others: stop using it (restic's refreshabilityTimeout). */
export const REFRESHABILITY_MS = STALE_AFTER_MS - (REFRESH_INTERVAL_MS * 3) / 2;

function age(lock: LockInfo, nowMs: number): number {
  return nowMs - Number(parseTime(lock.time) / 1_000_000n);
}

/** "3m20s", "2h5m", like Go's rounded durations. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h}h${m ? `${m}m` : ''}`;
}

/** Whether a process exists on this host. EPERM means it exists under another user (restic counts that as gone; we do not). */
export function processExists(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface StaleContext {
  nowMs: number;
  hostname: string;
  processExists: (pid: number) => boolean;
}

/** restic's stale rule: older than 30 minutes, or on this host with its process gone. A lock from another host is trusted until it is old. */
export function isStale(lock: LockInfo, context: StaleContext = { nowMs: Date.now(), hostname: os.hostname(), processExists }): boolean {
  if (age(lock, context.nowMs) > STALE_AFTER_MS) return true;
  if (lock.hostname !== context.hostname) return false;
  return !context.processExists(lock.pid);
}

/** Someone else holds a lock that conflicts with the one asked for. `holder` says who. */
export class RepositoryLockedError extends Error {
  readonly code = 'REPOSITORY_LOCKED';
  readonly location: string;
  readonly holder: LockFile;
  /** How old the holder's lock was when seen, in milliseconds. */
  readonly ageMs: number;
  /** Whether the holder's lock is stale by restic's rules (then `unlock` may remove it). */
  readonly stale: boolean;
  constructor(location: string, holder: LockFile, ageMs: number, stale: boolean) {
    const user = holder.username || (holder.uid !== undefined ? `UID ${holder.uid}` : 'an unknown user');
    super(
      `repository ${location} is already locked ${holder.exclusive ? 'exclusively ' : ''}by PID ${holder.pid} on ${holder.hostname || 'an unknown host'} by ${user}, ` +
        `created ${formatAge(ageMs)} ago (lock ${holder.id.slice(0, 8)}${stale ? ', stale' : ''})`,
    );
    this.name = 'RepositoryLockedError';
    this.location = location;
    this.holder = holder;
    this.ageMs = ageMs;
    this.stale = stale;
  }
  /** The one-line hint for a user. */
  get hint(): string {
    return this.stale
      ? 'the lock is stale (its process is gone or it is over 30 minutes old): `repo unlock` removes stale locks'
      : 'wait until that operation ends; if it is gone, `repo unlock` removes the lock once it is stale (30 minutes, or at once on the same host)';
  }
}

/** A lock file that cannot be read or decoded: whether it conflicts is unknown. */
export class InvalidLockError extends Error {
  readonly code = 'INVALID_LOCK';
  readonly lockId: string;
  constructor(location: string, lockId: string, cause: unknown) {
    super(`invalid lock file ${lockId.slice(0, 8)} in repository ${location}: ${(cause as Error)?.message ?? cause}; \`repo unlock --remove-all\` removes it, once no other process uses the repository`, { cause });
    this.name = 'InvalidLockError';
    this.lockId = lockId;
  }
}

/** The lock could not be refreshed before it would look stale to others: the operation must stop. */
export class LockLostError extends Error {
  readonly code = 'LOCK_LOST';
  constructor(location: string, reason: string) {
    super(`lost the lock on repository ${location}: ${reason}`);
    this.name = 'LockLostError';
  }
}

/** Decodes a lock file's JSON leniently (missing strings empty, pid 0). */
export function decodeLock(id: string, plaintext: Buffer): LockFile {
  const json = JSON.parse(plaintext.toString('utf8')) as Partial<LockInfo>;
  if (typeof json.time !== 'string') throw new Error('lock has no time');
  parseTime(json.time);
  const lock: LockFile = {
    id,
    time: json.time,
    exclusive: json.exclusive === true,
    hostname: typeof json.hostname === 'string' ? json.hostname : '',
    username: typeof json.username === 'string' ? json.username : '',
    pid: typeof json.pid === 'number' ? json.pid : 0,
  };
  if (typeof json.uid === 'number') lock.uid = json.uid;
  if (typeof json.gid === 'number') lock.gid = json.gid;
  return lock;
}

/** restic's field order; uid and gid omitted when 0, as Go's omitempty does. */
export function encodeLock(lock: LockInfo): Buffer {
  const json: Record<string, unknown> = { time: lock.time, exclusive: lock.exclusive, hostname: lock.hostname, username: lock.username, pid: lock.pid };
  if (lock.uid) json.uid = lock.uid;
  if (lock.gid) json.gid = lock.gid;
  return Buffer.from(JSON.stringify(json));
}

function ourLockInfo(exclusive: boolean): LockInfo {
  const info: LockInfo = { time: formatTime(nowNs()), exclusive, hostname: os.hostname(), username: '', pid: process.pid };
  try {
    const user = os.userInfo();
    info.username = user.username;
    if (user.uid > 0) info.uid = user.uid;
    if (user.gid > 0) info.gid = user.gid;
  } catch {
    // No passwd entry (a container's random UID): restic leaves the user empty too.
  }
  return info;
}

export type LockEntry = { id: string; lock: LockFile } | { id: string; error: unknown };

/** Every lock file, read; empty files (an interrupted upload on some backends) are skipped, as restic does. */
export async function listLocks(repo: Repository, exclude: ReadonlySet<string> = new Set()): Promise<LockEntry[]> {
  const entries: LockEntry[] = [];
  for await (const file of repo.backend.list('locks')) {
    if (exclude.has(file.name) || file.size === 0) continue;
    try {
      entries.push({ id: file.name, lock: decodeLock(file.name, await repo.loadUnpacked('locks', file.name)) });
    } catch (error) {
      // Removed between list and read: it no longer conflicts.
      if (error instanceof BackendNotFoundError) continue;
      entries.push({ id: file.name, error });
    }
  }
  return entries;
}

export interface LockOptions {
  exclusive: boolean;
  /** Defaults to restic's 200 ms. */
  waitBeforeCheckMs?: number;
  /** Defaults to restic's 5 minutes. */
  refreshIntervalMs?: number;
  /** How often to re-read a lock file that failed to load before giving up (restic: 4 tries, 5 s doubling). */
  unreadableRetries?: number;
  unreadableDelayMs?: number;
  /** Called when a refresh fails (the lock is kept; it is given up only near staleness). */
  onRefreshError?: (error: unknown) => void;
  /**
   * Return as soon as our lock file is written, after a first look found no conflict; the wait and
   * the second look go on meanwhile, and `confirmed` tells how they went. For a caller with work
   * to do before it writes (a backup starting its helper pod): it must await `confirmed` first.
   */
  confirmLater?: boolean;
}

/** Throws when a lock in `entries` conflicts with taking one of the kind asked; returns the IDs of unreadable ones. */
function conflicts(repo: Repository, entries: LockEntry[], exclusive: boolean): string[] {
  const unreadable: string[] = [];
  const now = Date.now();
  for (const entry of entries) {
    if ('error' in entry) {
      unreadable.push(entry.id);
      continue;
    }
    if (exclusive || entry.lock.exclusive) throw new RepositoryLockedError(repo.backend.location, entry.lock, age(entry.lock, now), isStale(entry.lock));
  }
  return unreadable;
}

async function checkForOtherLocks(repo: Repository, own: ReadonlySet<string>, options: LockOptions): Promise<void> {
  const retries = options.unreadableRetries ?? 3;
  let delay = options.unreadableDelayMs ?? 5000;
  let entries = await listLocks(repo, own);
  for (let attempt = 0; ; attempt++) {
    const unreadable = conflicts(repo, entries, options.exclusive);
    if (unreadable.length === 0) return;
    if (attempt >= retries) {
      const bad = entries.find((e) => 'error' in e && e.id === unreadable[0]) as { id: string; error: unknown };
      throw new InvalidLockError(repo.backend.location, bad.id, bad.error);
    }
    await sleep(delay);
    delay *= 2;
    entries = await listLocks(repo, own);
  }
}

let sighupHolders = 0;
const ignoreSighup = () => {};

function holdSighup(): void {
  if (sighupHolders++ === 0) process.on('SIGHUP', ignoreSighup);
}

function releaseSighup(): void {
  if (--sighupHolders === 0) process.off('SIGHUP', ignoreSighup);
}

/** A lock we hold. `signal` aborts when the lock is lost (not refreshed in time); release it when done. */
export class RepositoryLock {
  readonly exclusive: boolean;
  private readonly repo: Repository;
  private readonly options: LockOptions;
  private readonly controller = new AbortController();
  private currentId: string;
  private info: LockInfo;
  private lastRefreshMs: number;
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private released = false;
  private releasing: Promise<void> | undefined;
  /**
   * Resolves once no conflicting lock appeared while ours was written (restic's wait and second
   * look); rejects with the RepositoryLockedError otherwise, the lock then released.
   */
  readonly confirmed: Promise<void>;

  constructor(repo: Repository, id: string, info: LockInfo, options: LockOptions, confirmed: Promise<void> = Promise.resolve()) {
    this.confirmed = confirmed;
    this.confirmed.catch(() => {}); // told to whoever awaits it
    this.repo = repo;
    this.currentId = id;
    this.info = info;
    this.exclusive = info.exclusive;
    this.options = options;
    this.lastRefreshMs = Date.now();
    this.timer = setInterval(() => void this.refresh().catch(() => {}), options.refreshIntervalMs ?? REFRESH_INTERVAL_MS);
    this.timer.unref();
  }

  /** The current lock file's name (it changes on every refresh). */
  get id(): string {
    return this.currentId;
  }

  get lock(): LockFile {
    return { ...this.info, id: this.currentId };
  }

  /** Aborts with a LockLostError when the lock could not be kept. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Throws the LockLostError if the lock was lost. */
  throwIfLost(): void {
    this.controller.signal.throwIfAborted();
  }

  /** Writes a new lock file with the current time, then removes the old one (restic's refresh). */
  refresh(): Promise<void> {
    if (this.released || this.controller.signal.aborted) return Promise.resolve();
    this.refreshing ??= this.doRefresh().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    try {
      if (Date.now() - this.lastRefreshMs > REFRESHABILITY_MS) {
        // Others may already have removed it as stale: only carry on if our file is still there.
        let present = false;
        for await (const file of this.repo.backend.list('locks')) if (file.name === this.currentId) present = true;
        if (!present) throw new LockLostError(this.repo.backend.location, `lock ${this.currentId.slice(0, 8)} was removed while not refreshed for ${formatAge(Date.now() - this.lastRefreshMs)}`);
      }
      const info: LockInfo = { ...this.info, time: formatTime(nowNs()) };
      const id = await this.repo.saveUnpacked('locks', encodeLock(info));
      const old = this.currentId;
      this.currentId = id;
      this.info = info;
      this.lastRefreshMs = Date.now();
      // Within the same millisecond the file is the same one: removing "the old" would remove ours.
      if (old !== id) await this.repo.backend.remove('locks', old);
      if (this.released) await this.repo.backend.remove('locks', id);
    } catch (error) {
      if (error instanceof LockLostError) this.lose(error);
      else if (Date.now() - this.lastRefreshMs > REFRESHABILITY_MS) this.lose(new LockLostError(this.repo.backend.location, `refresh failed for ${formatAge(Date.now() - this.lastRefreshMs)}: ${(error as Error).message}`));
      this.options.onRefreshError?.(error);
      throw error;
    }
  }

  private lose(error: LockLostError): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.controller.abort(error);
  }

  /** Stops refreshing and removes the lock file. Safe to call twice. */
  release(): Promise<void> {
    // A second call waits for the first: the file is gone when either returns.
    this.releasing ??= (async () => {
      this.released = true;
      if (this.timer) clearInterval(this.timer);
      this.timer = undefined;
      releaseSighup();
      await this.refreshing?.catch(() => {});
      await this.repo.backend.remove('locks', this.currentId);
    })();
    return this.releasing;
  }
}

/**
 * Takes a shared or exclusive lock, restic's way: check, write, wait, check again. Throws
 * RepositoryLockedError naming the holder of a conflicting lock (and leaves nothing behind).
 */
export async function acquireLock(repo: Repository, options: LockOptions): Promise<RepositoryLock> {
  await checkForOtherLocks(repo, new Set(), options);
  const info = ourLockInfo(options.exclusive);
  // From the moment our file may exist, a restic on this host may probe our PID with SIGHUP.
  holdSighup();
  let id: string;
  try {
    id = await repo.saveUnpacked('locks', encodeLock(info));
  } catch (error) {
    releaseSighup();
    throw error;
  }
  const confirmation = (async () => {
    await sleep(options.waitBeforeCheckMs ?? WAIT_BEFORE_CHECK_MS);
    await checkForOtherLocks(repo, new Set([id]), options);
  })();
  if (options.confirmLater) {
    const lock = new RepositoryLock(repo, id, info, options, confirmation);
    confirmation.catch(() => lock.release().catch(() => {}));
    return lock;
  }
  try {
    await confirmation;
  } catch (error) {
    await repo.backend.remove('locks', id).catch(() => {});
    releaseSighup();
    throw error;
  }
  return new RepositoryLock(repo, id, info, options);
}

/** Runs `fn` holding a lock, released afterwards whatever happens. */
export async function withLock<T>(repo: Repository, options: LockOptions, fn: (lock: RepositoryLock) => Promise<T>): Promise<T> {
  const lock = await acquireLock(repo, options);
  try {
    return await fn(lock);
  } finally {
    await lock.release();
  }
}

export interface UnlockResult {
  removed: LockFile[];
  /** Locks left because they are not stale (only without `all`). */
  kept: LockFile[];
  /** Lock files that could not be read: kept, or with `all` removed. */
  unreadable: string[];
}

/** `repo unlock`: removes stale locks (restic's RemoveStaleLocks), or with `all` every lock (RemoveAllLocks). */
export async function removeStaleLocks(repo: Repository, options: { all?: boolean; staleContext?: StaleContext } = {}): Promise<UnlockResult> {
  const result: UnlockResult = { removed: [], kept: [], unreadable: [] };
  if (options.all) {
    // Every file, read or not, empty or not, as restic's RemoveAllLocks.
    const names: string[] = [];
    for await (const file of repo.backend.list('locks')) names.push(file.name);
    for (const name of names) {
      const lock = await repo.loadUnpacked('locks', name).then((plaintext) => decodeLock(name, plaintext)).catch(() => undefined);
      await repo.backend.remove('locks', name);
      if (lock) result.removed.push(lock);
      else result.unreadable.push(name);
    }
    return result;
  }
  for (const entry of await listLocks(repo)) {
    if ('error' in entry) {
      result.unreadable.push(entry.id);
      continue;
    }
    if (isStale(entry.lock, options.staleContext)) {
      await repo.backend.remove('locks', entry.id);
      result.removed.push(entry.lock);
    } else {
      result.kept.push(entry.lock);
    }
  }
  return result;
}

/**
 * Removes the locks a host held: a data mover pod that was deleted (or whose node went away) could
 * not remove its own, and restic would count them as live for 30 minutes. Only for a host known to
 * be gone: a pod name is never reused while the pod exists.
 */
export async function removeLocksOfHost(repo: Repository, hostname: string): Promise<LockFile[]> {
  const removed: LockFile[] = [];
  for (const entry of await listLocks(repo)) {
    if ('error' in entry || entry.lock.hostname !== hostname) continue;
    await repo.backend.remove('locks', entry.id);
    removed.push(entry.lock);
  }
  return removed;
}
