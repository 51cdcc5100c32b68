/**
 * `kubectl-nkvm mover backup`: what a data mover pod runs where the claim is mounted (hidden: the
 * plugin starts it, a user does not). It reads the claim's directory in place (directory.ts: restic's
 * rule against the parent snapshot), writes the packs, index and snapshot straight into the
 * repository, and reports its result as one JSON line on stdout and as the pod's termination message,
 * which the plugin reads through the API server: the data never crosses it. The plugin starts the
 * pod with `mover wait` and runs `mover backup --credentials-stdin` in it over exec, the repository's
 * password and S3 credentials on stdin (MoverCredentials).
 */
import fs from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import { MOVER_HEARTBEAT_SECONDS } from '../../backup/defaults.ts';
import { ExitCode } from '../../errors.ts';
import { pluginVersion } from '../../version.ts';
import type { GlobalOptions } from '../global-options.ts';
import { toJson, writeResult } from '../output.ts';
import { openRepository, withRepositoryOptions, type RepositoryFlags } from '../repository-options.ts';
import { listing } from './index.ts';
import type { DirectoryProgress } from '../../repository/directory.ts';

interface MoverArgs extends GlobalOptions, RepositoryFlags {
  source: string;
  path: string;
  host: string;
  allowPartial: boolean;
  credentialsStdin: boolean;
}

/**
 * What the plugin hands a mover on its exec's stdin: the repository, its password, and the S3
 * credentials. Through stdin they are never in the pod spec, its arguments or its environment, nor
 * stored in the cluster (a Secret would be, in etcd, readable by whoever may read Secrets there).
 */
export interface MoverCredentials {
  repository: string;
  password: string;
  /** AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_DEFAULT_REGION, as the plugin has them. */
  env: Record<string, string>;
  /** A CA certificate (PEM) to trust for the S3 endpoint (--cacert). */
  cacert?: string;
}

/** Where a mover keeps what it must write (the CA file): its emptyDir, the root file system being read-only. */
export const MOVER_SCRATCH = '/tmp';

async function readCredentials(): Promise<MoverCredentials> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as MoverCredentials;
  if (typeof parsed.repository !== 'string' || typeof parsed.password !== 'string') throw new Error('the credentials on stdin name no repository or password');
  return parsed;
}

/** A line a mover prints while it works: files and bytes gone through so far (read or unchanged). */
export interface MoverProgressLine {
  progress: DirectoryProgress;
}

/** What the mover reports: the plugin's BackupSnapshot figures, and what it could not read. */
export interface MoverResult {
  ok: boolean;
  message: string;
  snapshotId?: string;
  parent?: string;
  files?: number;
  filesNew?: number;
  filesChanged?: number;
  filesUnmodified?: number;
  entries?: number;
  bytesRead?: number;
  bytesTotal?: number;
  bytesAdded?: number;
  vanished?: { count: number; sample: string[] };
  unreadable?: { count: number; sample: string[] };
  /** The repository could not be reached from the pod (refused, no such host, no route): nothing was read. */
  unreachable?: boolean;
  /** The mover process's peak resident set, in bytes: what its pod's memory limit must allow. */
  peakRssBytes?: number;
}

/** Whether an error, or one it was caused by, is an S3 server that could not be reached. */
function unreachable(error: unknown): boolean {
  for (let cause = error; cause; cause = (cause as { cause?: unknown }).cause) {
    if ((cause as { reason?: string }).reason === 'unreachable') return true;
  }
  return false;
}

/** Opens the repository, or reports why it could not (a repository out of the pod's reach says so) and exits 1. */
async function openOrReport(args: RepositoryFlags): Promise<Awaited<ReturnType<typeof openRepository>> | undefined> {
  try {
    return await openRepository(args, { lock: 'shared' });
  } catch (error) {
    report({ ok: false, message: (error as Error).message, ...(unreachable(error) ? { unreachable: true } : {}) });
    process.exitCode = ExitCode.failed;
    return undefined;
  }
}

/** Where the kubelet reads a container's termination message (at most 4 KiB of it). */
const TERMINATION_LOG = '/dev/termination-log';

/** The credentials on stdin become the environment restic's names are read from; a CA goes to the scratch directory. */
async function useCredentials(args: RepositoryFlags): Promise<void> {
  const credentials = await readCredentials();
  Object.assign(process.env, credentials.env, { RESTIC_REPOSITORY: credentials.repository, RESTIC_PASSWORD: credentials.password });
  delete process.env.RESTIC_PASSWORD_FILE;
  delete process.env.RESTIC_PASSWORD_COMMAND;
  if (credentials.cacert) {
    args.cacert = `${MOVER_SCRATCH}/repository-ca.pem`;
    fs.writeFileSync(args.cacert, credentials.cacert, { mode: 0o600 });
  }
}

/**
 * The mover's progress lines, and its heartbeat: the last one written again whenever the mover has
 * said nothing for MOVER_HEARTBEAT_SECONDS (opening the repository, a large file, saving the index),
 * since the plugin counts a mover that stays silent lost (its node down). Stopped by the report.
 */
export class ProgressLines {
  private last: DirectoryProgress = { files: 0, bytes: 0 };
  private wroteAt = Date.now();
  private readonly timer: NodeJS.Timeout;
  private readonly write: (line: string) => void;

  constructor(write: (line: string) => void = writeResult, heartbeatMs = MOVER_HEARTBEAT_SECONDS * 1000) {
    this.write = write;
    this.timer = setInterval(() => {
      if (Date.now() - this.wroteAt >= heartbeatMs) this.progress(this.last);
    }, Math.min(1000, heartbeatMs / 5)).unref();
  }

  progress(progress: DirectoryProgress): void {
    this.last = progress;
    this.wroteAt = Date.now();
    this.write(`${JSON.stringify({ progress } satisfies MoverProgressLine)}\n`);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

let progressLines: ProgressLines | undefined;

/** The last line the mover writes: nothing (no heartbeat) comes after it. */
function report(result: MoverResult | MoverRestoreResult): void {
  progressLines?.stop();
  const line = JSON.stringify(result);
  writeResult(`${line}\n`);
  try {
    fs.writeFileSync(TERMINATION_LOG, line.slice(0, 4096));
  } catch {
    // Run outside a pod: stdout is the report.
  }
}

const sample = (paths: string[]) => ({ count: paths.length, sample: paths.slice(0, 5).map((p) => p.replace(/^\.\//, '')) });

const backupCommand: CommandModule<GlobalOptions, MoverArgs> = {
  command: 'backup',
  describe: 'Back up a mounted claim into the repository, in place (run by a data mover pod)',
  builder: (argv) =>
    withRepositoryOptions(argv)
      .option('source', { type: 'string', default: '/data', description: 'The mounted claim' })
      .option('path', { type: 'string', demandOption: true, description: 'The snapshot\'s path, /data/<pvc>' })
      .option('host', { type: 'string', demandOption: true, description: 'The snapshot\'s host: the claim\'s namespace' })
      .option('allow-partial', { type: 'boolean', default: false, description: 'Keep a snapshot that lacks paths the mover could not read' })
      .option('credentials-stdin', { type: 'boolean', default: false, description: 'Read the repository, its password and S3 credentials as JSON on stdin' }) as unknown as Argv<MoverArgs>,
  handler: async (args) => {
    const lines = (progressLines = new ProgressLines());
    if (args.credentialsStdin) await useCredentials(args);
    const opened = await openOrReport(args);
    if (!opened) return;
    try {
      const [{ archiveDirectory }, { findParentSnapshot, parentTreesAtPath }, { saveArchiveSnapshot }] = await Promise.all([
        import('../../repository/directory.ts'),
        import('../../repository/incremental.ts'),
        import('../../repository/archiver.ts'),
      ]);
      const repository = opened.repository;
      const parent = await findParentSnapshot(repository, args.host, args.path);
      const parentTrees = parent ? await parentTreesAtPath(repository, parent.tree, args.path) : undefined;
      // Progress as JSON lines before the result (the last line), which the plugin shows as it copies.
      const archived = await archiveDirectory(repository, args.source, parentTrees, { path: args.path, onProgress: (progress) => lines.progress(progress) });
      const unreadable = sample(archived.problems.unreadable);
      if (unreadable.count > 0 && !args.allowPartial) {
        report({ ok: false, message: `${unreadable.count} paths could not be read; no snapshot was written`, unreadable });
        process.exitCode = ExitCode.failed;
        return;
      }
      const saved = await saveArchiveSnapshot(repository, archived, {
        path: args.path,
        hostname: args.host,
        programVersion: `kubectl-nkvm ${pluginVersion}`,
        ...(parent ? { parent: parent.id } : {}),
      });
      report({
        ok: true,
        message: `snapshot ${saved.snapshotId.slice(0, 8)} saved`,
        snapshotId: saved.snapshotId,
        ...(parent ? { parent: parent.id } : {}),
        files: archived.files,
        filesNew: archived.changes?.filesNew ?? archived.files,
        filesChanged: archived.changes?.filesChanged ?? 0,
        filesUnmodified: archived.changes?.filesUnmodified ?? 0,
        entries: archived.entries ?? 0,
        bytesRead: archived.read ?? archived.bytes,
        bytesTotal: archived.bytes,
        bytesAdded: archived.added.dataAddedPacked,
        vanished: sample(archived.problems.vanished),
        unreadable,
        peakRssBytes: process.resourceUsage().maxRSS * 1024,
      });
    } catch (error) {
      report({ ok: false, message: (error as Error).message });
      throw error;
    } finally {
      await opened.close();
    }
  },
};

interface RestoreArgs extends GlobalOptions, RepositoryFlags {
  snapshot: string;
  target: string;
  mode: 'empty-only' | 'overwrite';
  credentialsStdin: boolean;
}

/** What `mover restore` reports. */
export interface MoverRestoreResult {
  ok: boolean;
  message: string;
  entries?: number;
  files?: number;
  bytes?: number;
  /** Fifos, devices and sockets, which a process without mknod cannot make. */
  skipped?: { count: number; sample: string[] };
  /** The repository is out of the pod's reach: nothing was written. */
  unreachable?: boolean;
}

/** The claim's root holds nothing a restore must keep (a new file system's lost+found aside). */
async function entriesOf(target: string): Promise<string[]> {
  return (await fs.promises.readdir(target)).filter((name) => name !== 'lost+found');
}

const restoreCommand: CommandModule<GlobalOptions, RestoreArgs> = {
  command: 'restore',
  describe: 'Write a snapshot into a mounted claim, in place (run by a data mover pod)',
  builder: (argv) =>
    withRepositoryOptions(argv)
      .option('snapshot', { type: 'string', demandOption: true, description: 'The snapshot (ID or unique prefix)' })
      .option('target', { type: 'string', default: '/data', description: 'The mounted claim' })
      .option('mode', { choices: ['empty-only', 'overwrite'] as const, default: 'empty-only' as const, description: 'Refuse a claim that holds anything, or replace what it holds' })
      .option('credentials-stdin', { type: 'boolean', default: false, description: 'Read the repository, its password and S3 credentials as JSON on stdin' }) as unknown as Argv<RestoreArgs>,
  handler: async (args) => {
    progressLines = new ProgressLines();
    if (args.credentialsStdin) await useCredentials(args);
    const opened = await openOrReport(args);
    if (!opened) return;
    try {
      const [{ directoryAtPath }, { restoreDirectory }] = await Promise.all([import('../../repository/incremental.ts'), import('../../repository/directory.ts')]);
      const repository = opened.repository;
      const snapshot = await repository.findSnapshot(args.snapshot);
      const at = await directoryAtPath(repository, snapshot.tree, snapshot.paths.length === 1 ? snapshot.paths[0]! : '/');
      if (!at) throw new Error(`snapshot ${snapshot.id.slice(0, 8)} holds no directory at ${snapshot.paths.join(', ')}`);
      const present = await entriesOf(args.target);
      if (present.length > 0) {
        if (args.mode === 'empty-only') {
          report({ ok: false, message: `the claim is not empty (it holds ${JSON.stringify(present[0])}, among others); nothing was changed. Pass --mode overwrite to replace its contents` });
          process.exitCode = ExitCode.failed;
          return;
        }
        for (const name of present) await fs.promises.rm(`${args.target}/${name}`, { recursive: true, force: true });
      }
      const restored = await restoreDirectory(repository, at.nodes, at.self, args.target, { owners: process.getuid?.() === 0 });
      report({ ok: true, message: `restored ${restored.entries} entries`, entries: restored.entries, files: restored.files, bytes: restored.bytes, skipped: sample(restored.skipped) });
    } catch (error) {
      report({ ok: false, message: (error as Error).message });
      throw error;
    } finally {
      await opened.close();
    }
  },
};

interface WaitArgs extends GlobalOptions {
  seconds: number;
}

/** The mover pod's own process: it waits (the image has no shell, no sleep) while `mover backup` runs over exec. */
const waitCommand: CommandModule<GlobalOptions, WaitArgs> = {
  command: 'wait',
  describe: 'Wait, so that a mover pod stays up for its exec (its deadline ends it)',
  builder: (argv) => argv.option('seconds', { type: 'number', default: 21600, description: 'How long' }) as unknown as Argv<WaitArgs>,
  handler: async (args) => {
    // A pod's deletion sends SIGTERM: leave at once.
    process.once('SIGTERM', () => process.exit(0));
    await new Promise((resolve) => setTimeout(resolve, args.seconds * 1000));
  },
};

export const moverCommand: CommandModule<GlobalOptions, GlobalOptions> = {
  ...listing('mover'),
  builder: (argv) =>
    argv
      .command(backupCommand as unknown as CommandModule<GlobalOptions, GlobalOptions>)
      .command(restoreCommand as unknown as CommandModule<GlobalOptions, GlobalOptions>)
      .command(waitCommand as unknown as CommandModule<GlobalOptions, GlobalOptions>)
      .demandCommand(1) as unknown as Argv<GlobalOptions>,
  handler: () => {},
};
