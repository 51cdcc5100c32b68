/**
 * `kubectl nkvm verify`: reads artifacts back and checks them against the catalog. A backup is OK when
 * its file is there with the recorded size and sha256, and its tar stream is complete (end-of-archive
 * marker) with the recorded number of entries; a Block claim's image, when its raw bytes have the recorded
 * size and sha256; a backup into a repository, when its snapshot reads back whole with the recorded
 * entries. Nothing is changed; any problem makes the exit code 1.
 */
import chalk from 'chalk';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import { scanArtifact, type ArtifactScan } from '../../backup/archive.ts';
import { ExitCode, NotFoundError, UsageError } from '../../errors.ts';
import type { BackupRecord, Catalog } from '../../store/catalog.ts';
import { formatBytes } from '../format.ts';
import type { GlobalOptions } from '../global-options.ts';
import { interruptSignal } from '../interrupt.ts';
import { asList, OUTPUT_FORMATS, renderTable, toJson, toYaml, writeInfo, writeResult, type OutputFormat } from '../output.ts';
import { openCatalog, withStoreOptions, type StoreOptions } from '../store-options.ts';
import { chooseRepository, openRepository, withRepositoryOptions, type OpenedRepository, type RepositoryFlags } from '../repository-options.ts';
import type { CheckResult } from '../../repository/check.ts';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { listing } from './index.ts';

interface VerifyArgs extends GlobalOptions, StoreOptions, RepositoryFlags {
  readData: boolean;
  readDataSubset: string | undefined;
  id: string | undefined;
  all: boolean;
  pvc: string | undefined;
  output: OutputFormat;
}

export interface VerifyReport {
  id: string;
  namespace: string;
  pvc: string;
  artifactPath: string | null;
  ok: boolean;
  /** One line each; empty when ok. */
  problems: string[];
  /** What the file holds, as far as it could be read: tar entries, tar stream bytes, bytes on disk. */
  entries: number | null;
  tarBytes: number | null;
  bytes: number | null;
}

/**
 * Reads the backup's artifact (a second time only to hash one that cannot be decoded) and lists every
 * way it differs from its catalog row.
 */
async function verifyBackup(record: BackupRecord, repositories: RepositoryOpener, signal?: AbortSignal, readData?: ReadDataCheck): Promise<VerifyReport> {
  const report: VerifyReport = {
    id: record.id,
    namespace: record.namespace,
    pvc: record.pvc,
    artifactPath: record.artifactPath,
    ok: false,
    problems: [],
    entries: null,
    tarBytes: null,
    bytes: null,
  };
  if (record.snapshotId && record.status === 'succeeded') {
    if (readData) report.problems.push(...(await readData(record)));
    else await findSnapshotProblems(record, report, repositories, signal);
  } else {
    await findProblems(record, report, signal);
  }
  report.ok = report.problems.length === 0;
  return report;
}

/** Fills in what the file holds and its problems; stops early when there is nothing (more) to read. */
async function findProblems(record: BackupRecord, report: VerifyReport, signal: AbortSignal | undefined): Promise<void> {
  const { problems } = report;
  if (record.status !== 'succeeded') {
    problems.push(`not verifiable: the backup is ${record.status}${record.status === 'pruned' ? ', its artifact was deleted' : ', it has no complete artifact'}`);
    return;
  }
  const file = record.artifactPath;
  if (!file) {
    problems.push('not verifiable: the catalog records no artifact path');
    return;
  }
  try {
    report.bytes = fs.statSync(file).size;
  } catch (error) {
    problems.push((error as NodeJS.ErrnoException).code === 'ENOENT' ? `artifact file missing: ${file}` : `artifact file unreadable: ${(error as Error).message}`);
    return;
  }
  // Checked before reading: a file cut short usually fails decompression, and this says why.
  if (report.bytes !== record.bytes) problems.push(`size mismatch: catalog ${record.bytes ?? 'none'} bytes, file ${report.bytes} bytes`);

  let scan: ArtifactScan | Error;
  try {
    scan = await scanArtifact(file, undefined, signal);
  } catch (error) {
    if (signal?.aborted) throw error; // Ctrl-C, not a verdict on the artifact
    scan = error as Error;
  }
  // A file that cannot be decoded is hashed anyway: a sha256 mismatch says it changed since the backup.
  const sha256 = scan instanceof Error ? await sha256Of(file, signal) : scan.sha256;
  if (sha256 !== record.sha256) problems.push(`sha256 mismatch: catalog ${record.sha256 ?? 'none'}, file ${sha256}`);
  if (scan instanceof Error) {
    problems.push(`not a valid archive: ${scan.message}`);
    return;
  }
  report.tarBytes = scan.tar.bytes;
  if (scan.imageSha256 !== null) {
    // A Block claim's image: the raw bytes, their count and hash, are the whole check.
    if (scan.tar.bytes !== record.tarBytes) problems.push(`image size mismatch: catalog ${record.tarBytes ?? 'none'} bytes, image ${scan.tar.bytes} bytes`);
    if (record.contentSha256 && scan.imageSha256 !== record.contentSha256) problems.push(`image sha256 mismatch: catalog ${record.contentSha256}, image ${scan.imageSha256}`);
    return;
  }
  report.entries = scan.tar.entries;
  if (!scan.tar.complete) problems.push('truncated: the tar stream ends without its end-of-archive marker');
  if (scan.tar.entries !== record.fileCount) problems.push(`entry count mismatch: catalog ${record.fileCount ?? 'none'}, archive ${scan.tar.entries}`);
}

/** With --read-data: the problems of a repository backup, from one check of its repository (every pack its snapshots reach, or a subset, read whole). */
type ReadDataCheck = (record: BackupRecord) => Promise<string[]>;

/**
 * One check per repository, of the snapshots of the backups to verify in it (restic's `check
 * --read-data[-subset]` given snapshots): a problem that damages a snapshot is that backup's, named
 * with every snapshot it costs; one that damages none (a pack's header) is every backup's there.
 */
function readDataChecker(records: BackupRecord[], repositories: RepositoryOpener, subset: string | undefined, signal: AbortSignal | undefined): ReadDataCheck {
  const checks = new Map<string, Promise<CheckResult | Error>>();
  const run = async (location: string): Promise<CheckResult | Error> => {
    try {
      const opened = await repositories(location);
      const { checkRepository, parseReadDataSubset } = await import('../../repository/check.ts');
      const snapshots = records.filter((record) => record.repository === location && record.snapshotId).map((record) => record.snapshotId!);
      return await checkRepository(opened.repository, { readData: subset ? parseReadDataSubset(subset) : true, snapshots, ...(signal ? { signal } : {}) });
    } catch (error) {
      if (signal?.aborted) throw error;
      return error as Error;
    }
  };
  return async (record) => {
    const location = record.repository!;
    if (!checks.has(location)) checks.set(location, run(location));
    const result = await checks.get(location)!;
    if (result instanceof Error) return [`repository ${location} could not be checked: ${result.message}`];
    return result.problems
      .filter((problem) => problem.snapshots.length === 0 || problem.snapshots.includes(record.snapshotId!))
      .map((problem) => (problem.snapshots.length ? `${problem.message} (damages snapshots ${problem.snapshots.map((id) => id.slice(0, 8)).join(', ')})` : problem.message));
  };
}

/** Opens each repository once per run, on first need. */
type RepositoryOpener = (location: string) => Promise<OpenedRepository>;

/**
 * A backup into a repository: its snapshot read back whole, as a restore reads it (every blob
 * decrypted, authenticated and hashed to its ID), into a complete tar stream with the recorded
 * number of entries.
 */
async function findSnapshotProblems(record: BackupRecord, report: VerifyReport, repositories: RepositoryOpener, signal: AbortSignal | undefined): Promise<void> {
  const { problems } = report;
  let opened: OpenedRepository;
  try {
    opened = await repositories(record.repository!);
  } catch (error) {
    problems.push(`repository ${record.repository} cannot be opened: ${(error as Error).message}`);
    return;
  }
  const [{ TarStreamCheck }, { restoreTar, imageNode, fileContent }] = await Promise.all([import('../../backup/tar-stream.ts'), import('../../repository/restorer.ts')]);
  const checker = new TarStreamCheck();
  const sink = new PassThrough();
  sink.resume();
  try {
    const snapshot = await opened.repository.loadSnapshot(record.snapshotId!);
    const image = await imageNode(opened.repository, snapshot);
    if (image) {
      // A Block claim's image: its bytes, their count and hash, are the whole check.
      const hash = createHash('sha256');
      let bytes = 0;
      for await (const chunk of fileContent(opened.repository, image)) {
        if (signal?.aborted) throw signal.reason;
        hash.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
      }
      const sha256 = hash.digest('hex');
      Object.assign(report, { tarBytes: bytes, entries: 0, bytes: record.bytesAdded });
      if (record.tarBytes !== null && bytes !== record.tarBytes) problems.push(`image size mismatch: catalog ${record.tarBytes ?? 'none'}, snapshot ${bytes}`);
      if (record.contentSha256 && sha256 !== record.contentSha256) problems.push(`image sha256 mismatch: catalog ${record.contentSha256}, snapshot ${sha256}`);
      return;
    }
    await pipeline([restoreTar(opened.repository, snapshot), checker, sink], signal ? { signal } : {});
  } catch (error) {
    if (signal?.aborted) throw error;
    problems.push(`snapshot ${record.snapshotId!.slice(0, 8)} cannot be read back: ${(error as Error).message}`);
    return;
  }
  report.tarBytes = checker.summary.bytes;
  report.entries = checker.summary.entries;
  report.bytes = record.bytesAdded;
  // A snapshot no backup of this catalog wrote has no recorded count: reading it back whole is the check.
  if (record.fileCount !== null && checker.summary.entries !== record.fileCount) problems.push(`entry count mismatch: catalog ${record.fileCount}, snapshot ${checker.summary.entries}`);
}

async function sha256Of(file: string, signal: AbortSignal | undefined): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file, signal ? { signal } : {})) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export function renderVerifyReports(reports: VerifyReport[], format: OutputFormat): string {
  switch (format) {
    case 'json':
      return toJson(asList(reports));
    case 'yaml':
      return toYaml(asList(reports));
    case 'name':
      return reports.filter((report) => report.ok).map((report) => `${report.id}\n`).join('');
    case 'table':
    case 'wide': {
      const wide = format === 'wide';
      const headers = ['id', 'namespace', 'pvc', 'result', 'size', 'entries', ...(wide ? ['tar size', 'artifact'] : []), 'problems'];
      const rows = reports.map((report) => [
        report.id,
        report.namespace,
        report.pvc,
        report.ok ? chalk.green('OK') : chalk.red('FAILED'),
        formatBytes(report.bytes),
        report.entries === null ? '-' : String(report.entries),
        ...(wide ? [formatBytes(report.tarBytes), report.artifactPath ?? '-'] : []),
        report.problems.join('; '),
      ]);
      return renderTable(headers, rows);
    }
  }
}

/**
 * The catalogued backup with this ID, or else a snapshot of the repository with it that no backup of
 * this catalog wrote (restic's, k8up's, another machine's), standing in as a backup record.
 */
async function findRecord(catalog: Catalog, id: string, args: VerifyArgs): Promise<BackupRecord> {
  try {
    return await catalog.findBackup(id);
  } catch (error) {
    if ((error as { code?: string }).code !== 'NotFoundError' || !chooseRepository(args)) throw error;
  }
  const opened = await openRepository(args, { lock: 'shared', loadIndex: false });
  try {
    const snapshot = await opened.repository.findSnapshot(id).catch((error: Error) => {
      if (error.name === 'BackendNotFoundError') throw new NotFoundError(`no backup in the catalog and no snapshot in ${opened.location} matches "${id}"`, 'list them with `kubectl nkvm artifacts list` and `kubectl nkvm snapshots`');
      throw new UsageError(error.message);
    });
    const { snapshotBackupRecord } = await import('../../backup/restore.ts');
    return snapshotBackupRecord(snapshot, opened.location);
  } finally {
    await opened.close();
  }
}

function validate(args: VerifyArgs): void {
  if (args.id !== undefined && args.all) throw new UsageError('give a backup ID or --all, not both');
  if (args.id === undefined && !args.all) {
    throw new UsageError('name a backup ID, or use --all', 'e.g. `kubectl nkvm verify 3f9c2a` or `kubectl nkvm verify --all -n shop`');
  }
  if (args.pvc !== undefined && !args.all) throw new UsageError('--pvc needs --all', 'a backup ID names one backup already');
}

export const verifyCommand: CommandModule<GlobalOptions, VerifyArgs> = {
  ...listing('verify'),
  builder: (argv) =>
    withRepositoryOptions(withStoreOptions(argv))
      .positional('id', { type: 'string', description: 'Backup ID, or a unique prefix of at least 4 characters; or the ID of a snapshot in the repository that no catalogued backup wrote' })
      .option('all', { type: 'boolean', default: false, description: 'Every succeeded backup (in the namespace of -n, if given)' })
      .option('pvc', { type: 'string', description: 'With --all: only backups of this claim' })
      .option('read-data', { type: 'boolean', default: false, description: "Backups into a repository: check the repository as `restic check --read-data` does, reading every pack their snapshots reach, and name the snapshots any damage costs" })
      .option('read-data-subset', { type: 'string', description: 'With --read-data: only n/t of the packs, x% or a size (restic\'s --read-data-subset)' })
      .option('output', { alias: 'o', choices: OUTPUT_FORMATS, default: 'table' as OutputFormat, description: 'Output format (name: IDs of the intact backups)' })
      .example('kubectl nkvm verify 3f9c2a', 'Check one backup')
      .example('kubectl nkvm verify --all -n shop', 'Check every good backup in namespace shop')
      .example('kubectl nkvm verify 50464567 --repo s3:https://s3.example/backups', 'Read back a snapshot that restic or k8up wrote')
      .example('kubectl nkvm verify --all -o json', 'A report per backup with its problems, for scripts')
      .example('kubectl nkvm verify --all --read-data-subset 10%', 'Read a tenth of the repository\'s packs, as restic check does') as unknown as Argv<VerifyArgs>,
  handler: async (args) => {
    validate(args);
    if (args.readDataSubset) {
      const { parseReadDataSubset } = await import('../../repository/check.ts');
      try {
        parseReadDataSubset(args.readDataSubset);
      } catch (error) {
        throw new UsageError(`--read-data-subset ${args.readDataSubset}: ${(error as Error).message}`, 'e.g. 1/5, 10% or 500M');
      }
    }
    const catalog = await openCatalog(args);
    const records = args.all
      ? await catalog.listBackups({
          status: 'succeeded',
          ...(args.namespace ? { namespace: args.namespace } : {}),
          ...(args.pvc ? { pvc: args.pvc } : {}),
        })
      : [await findRecord(catalog, String(args.id), args)];
    if (records.length === 0 && (args.output === 'table' || args.output === 'wide')) {
      writeInfo(`No succeeded backups to verify in ${catalog.file}.`);
      return;
    }
    const opened = new Map<string, Promise<OpenedRepository>>();
    const repositories: RepositoryOpener = (location) => {
      if (!opened.has(location)) opened.set(location, openRepository({ ...args, repo: location }, { lock: 'shared' }));
      return opened.get(location)!;
    };
    const readData = args.readData || args.readDataSubset ? readDataChecker(records, repositories, args.readDataSubset, interruptSignal) : undefined;
    const reports: VerifyReport[] = [];
    try {
      for (const record of records) reports.push(await verifyBackup(record, repositories, interruptSignal, readData));
    } finally {
      for (const repository of opened.values()) await repository.then((r) => r.close(), () => {});
    }
    writeResult(renderVerifyReports(reports, args.output));
    const failed = reports.filter((report) => !report.ok).length;
    if (failed > 0) writeInfo(`${failed} of ${reports.length} backups failed verification.`);
    process.exitCode = failed > 0 ? ExitCode.failed : ExitCode.ok;
  },
};
