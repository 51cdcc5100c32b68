/**
 * Checks of the local paths a command writes, made before any cluster work so that a run that
 * cannot write never starts a helper pod. Directories are created one level at a time from the
 * nearest existing ancestor: Node's recursive mkdir spins forever on procfs and the like (it reads
 * ENOENT as "parent missing" and retries), and a synchronous loop cannot even be interrupted.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../errors.ts';

/** NKVM_HOME holds the catalog and the artifacts; by default ~/.local/share/nkvm. */
export function nkvmHome(env: Record<string, string | undefined> = process.env): string {
  return env.NKVM_HOME || path.join(os.homedir(), '.local', 'share', 'nkvm');
}

function describeErrno(error: unknown): string {
  const { code, message } = error as NodeJS.ErrnoException;
  return code ? `${code}: ${message.replace(/^\w+: /, '').replace(/, \w+ '.*'$/, '')}` : String(message);
}

/** Creates `dir` (and missing parents) and proves it writable by creating and removing a file in it. */
export function ensureWritableDirectory(dir: string, flag: string): void {
  const missing: string[] = [];
  let existing = path.resolve(dir);
  for (;;) {
    let stat: fs.Stats | undefined;
    try {
      stat = fs.statSync(existing);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new UsageError(`${flag} ${dir}: cannot use ${existing} (${describeErrno(error)})`);
    }
    if (stat) {
      if (!stat.isDirectory()) throw new UsageError(`${flag} ${dir}: ${existing} is not a directory`);
      break;
    }
    missing.unshift(existing);
    const parent = path.dirname(existing);
    if (parent === existing) break;
    existing = parent;
  }
  for (const component of missing) {
    try {
      fs.mkdirSync(component);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw new UsageError(`${flag} ${dir}: cannot create ${component} (${describeErrno(error)})`);
    }
  }
  const probe = path.join(dir, `.nkvm-write-test-${process.pid}`);
  try {
    fs.writeFileSync(probe, '', { flag: 'wx' });
    fs.rmSync(probe, { force: true });
  } catch (error) {
    throw new UsageError(`${flag} ${dir}: the directory is not writable (${describeErrno(error)})`);
  }
}

/** A catalog file may not exist yet; if it does, it must be a regular file (a FIFO would block its read). */
export function ensureCatalogLocation(file: string, flag: string): void {
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) throw new UsageError(`${flag} ${file}: not a regular file`);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new UsageError(`${flag} ${file}: cannot use it (${describeErrno(error)})`);
  }
  ensureWritableDirectory(path.dirname(file), flag);
}
