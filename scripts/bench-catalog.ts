/**
 * The catalog's figures at scale, each in a fresh process (the way every kubectl-nkvm command meets
 * the catalog: open, then one or two operations):
 *   - file size and bytes per row of catalogs of 0, 100,000 and 1,000,000 realistic rows;
 *   - a small backup's catalog work (open, insertBackup of the "running" row, NKVM_BENCH_GAP_MS
 *     (2000) standing in for the copy, updateBackup with the outcome, as BackupManager does it) at
 *     each size, side by side with the empty catalog: the ratio of the catalog work alone, and of a
 *     2.5 s small backup that includes it (goals: 1.05x at 100,000 rows, 1.2x at 1,000,000);
 *   - `artifacts list` (listBackups({limit: 50})) and `artifacts show` (findBackup by id and by an
 *     8-character prefix) at 100,000 and 1,000,000 rows, open included (goal: under 300 ms at 1,000,000);
 *   - where the catalog has a journal to fold (fold()), one fold of the backups' rows into the file.
 * Medians of NKVM_BENCH_REPEAT (5) processes. NKVM_BENCH_ROWS=0,100000,1000000 picks the sizes;
 * NKVM_BENCH_CATALOG=path/to/catalog.ts measures another catalog module with the same API (an older
 * copy, say). The catalogs are built in a temp dir, each by a child process (so the measured ones do
 * not inherit the builder's peak RSS): opened by the catalog (its schema), then filled by sql.js
 * directly, which is much faster than a million inserts through the API.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BackupRecord, Catalog } from '../src/store/catalog.ts';
import { sqlEngine } from '../src/store/sql-engine.ts';

const env = process.env;
const catalogModule = path.resolve(env.NKVM_BENCH_CATALOG ?? fileURLToPath(new URL('../src/store/catalog.ts', import.meta.url)));
const sizes = (env.NKVM_BENCH_ROWS ?? '0,100000,1000000').split(',').map(Number);
const repeat = Number(env.NKVM_BENCH_REPEAT ?? 5);
const gapMs = Number(env.NKVM_BENCH_GAP_MS ?? 2000);
const SMALL_BACKUP_MS = 2500;

type Measurement = { openMs: number; totalMs: number; maxRssMiB: number; detail?: string };

async function loadCatalog(): Promise<typeof Catalog> {
  return ((await import(pathToFileURL(catalogModule).href)) as { Catalog: typeof Catalog }).Catalog;
}

// ---- the child: one command's worth of catalog work, timed

async function measure(operation: string, file: string, id: string): Promise<Measurement> {
  const Catalog = await loadCatalog();
  const started = performance.now();
  const catalog = await Catalog.open(file);
  const openMs = performance.now() - started;
  if (operation === 'backup') {
    const running = smallBackup(id);
    await catalog.insertBackup(running);
    const inserted = performance.now();
    await sleep(gapMs); // the copy: not the catalog's time
    const updating = performance.now();
    await catalog.updateBackup(running.id, outcome(running));
    return { openMs, totalMs: inserted - started + (performance.now() - updating), maxRssMiB: maxRssMiB() };
  }
  if (operation === 'fold') {
    const fold = (catalog as unknown as { fold?: () => Promise<void> }).fold;
    if (!fold) return { openMs, totalMs: 0, maxRssMiB: maxRssMiB(), detail: 'no journal' };
    const journal = `${file}.journal`;
    const journalBytes = fs.existsSync(journal) ? fs.statSync(journal).size : 0;
    const folding = performance.now();
    await fold.call(catalog);
    return { openMs, totalMs: performance.now() - folding, maxRssMiB: maxRssMiB(), detail: String(journalBytes) };
  }
  if (operation !== 'list' && operation !== 'find') throw new Error(`unknown operation ${operation}`);
  const detail = operation === 'list' ? `${(await catalog.listBackups({ limit: 50 })).length} rows` : (await catalog.findBackup(id)).id;
  return { openMs, totalMs: performance.now() - started, maxRssMiB: maxRssMiB(), detail };
}

function maxRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** The row BackupManager inserts before discovery. */
function smallBackup(id: string): BackupRecord {
  return {
    id, context: 'prod-eu-west-1', cluster: 'https://api.prod-eu-west-1.example.com:6443', credentialSource: 'kubeconfig',
    namespace: 'team-7', pvc: 'data-postgres-42', pv: null, storageClass: null, capacity: null, node: null, helperPod: null,
    startedAt: new Date().toISOString(), finishedAt: null, status: 'running', prunedAt: null, failedStage: null, message: null,
    artifactPath: null, compression: 'zstd', bytes: null, tarBytes: null, fileCount: null, sha256: null, attempts: 0,
    volumeMode: null, runAs: null, unreadable: null, vanished: null, changed: null, repository: null, snapshotId: null, filesNew: null, filesChanged: null, filesUnmodified: null, bytesRead: null, bytesSent: null, hooks: null, source: null, bytesAdded: null, contentSha256: null, pluginVersion: '0.1.0',
  };
}

/** The fields BackupManager sets when the backup is done. */
function outcome(running: BackupRecord): Partial<BackupRecord> {
  const artifactPath = `/home/operator/.local/share/nkvm/artifacts/team-7/data-postgres-42/20260101T000000Z-${running.id}.tar.zst`;
  return {
    pv: 'pvc-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', storageClass: 'standard-rwo', capacity: '20Gi', node: 'worker-3',
    helperPod: 'nkvm-backup-data-postgres-42-a1b2c3', attempts: 1, volumeMode: 'Filesystem', runAs: 'root', unreadable: null, vanished: 0, changed: 0, repository: null, snapshotId: null, filesNew: null, filesChanged: null, filesUnmodified: null, bytesRead: null, bytesSent: null, hooks: null, bytesAdded: null,
    contentSha256: null, finishedAt: new Date().toISOString(), status: 'succeeded', failedStage: null, message: `backed up to ${artifactPath}`,
    artifactPath, bytes: 1_234_567, tarBytes: 9_876_543, fileCount: 321, sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  };
}

// ---- the parent: build the catalogs, run the children, print the figures

const COLUMNS = [
  'id', 'context', 'cluster', 'credential_source', 'namespace', 'pvc', 'pv', 'storage_class', 'capacity', 'node', 'helper_pod', 'started_at',
  'finished_at', 'status', 'message', 'artifact_path', 'compression', 'bytes', 'tar_bytes', 'file_count', 'sha256', 'attempts', 'volume_mode',
  'run_as', 'plugin_version',
];

/**
 * Rows as BackupManager leaves them after a successful backup, one a minute from 2020 on, over 23
 * namespaces and 211 claims. Ids are 12 hex digits like newBackupId's, unique (an odd multiplier is a
 * bijection modulo 2^48) but in no particular order.
 */
const FILL_SQL = `
  WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 - 1),
  row AS (
    SELECT i, printf('%012x', (i * 2654435761 + 12345) % 281474976710656) AS id, 'team-' || (i % 23) AS ns, 'data-postgres-' || (i % 211) AS pvc,
      1577836800 + i * 60 AS t FROM n
  ),
  named AS (
    SELECT *, '/home/operator/.local/share/nkvm/artifacts/' || ns || '/' || pvc || '/' || strftime('%Y%m%dT%H%M%SZ', t, 'unixepoch') || '-' || id || '.tar.zst' AS artifact
    FROM row
  )
  INSERT INTO backups (${COLUMNS.join(', ')})
  SELECT id, 'prod-eu-west-1', 'https://api.prod-eu-west-1.example.com:6443', 'kubeconfig', ns, pvc,
    'pvc-' || lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-' || lower(hex(randomblob(2))) || '-' || lower(hex(randomblob(2))) || '-' || lower(hex(randomblob(6))),
    'standard-rwo', '20Gi', 'worker-' || (i % 9), 'nkvm-backup-' || pvc || '-' || lower(hex(randomblob(3))),
    strftime('%Y-%m-%dT%H:%M:%fZ', t, 'unixepoch'), strftime('%Y-%m-%dT%H:%M:%fZ', t + 4 + i % 7, 'unixepoch'), 'succeeded',
    'backed up to ' || artifact, artifact, 'zstd', 100000000 + i, 900000000 + i, 1000 + i % 100, lower(hex(randomblob(32))), 1, 'Filesystem', 'root', '0.1.0'
  FROM named`;

async function buildCatalog(file: string, rows: number): Promise<void> {
  const Catalog = await loadCatalog();
  await Catalog.open(file);
  if (rows === 0) return;
  const SQL = await sqlEngine();
  const db = new SQL.Database(fs.readFileSync(file));
  try {
    db.run(FILL_SQL, [rows]);
    fs.writeFileSync(file, db.export());
  } finally {
    db.close();
  }
}

/** The id FILL_SQL gave the row in the middle of the catalog. */
function sampleId(rows: number): string {
  const i = Math.floor(rows / 2);
  return ((BigInt(i) * 2654435761n + 12345n) % 281474976710656n).toString(16).padStart(12, '0');
}

function child(...args: string[]): string {
  return execFileSync(process.execPath, [fileURLToPath(import.meta.url), ...args], {
    encoding: 'utf8',
    env: { ...env, NKVM_BENCH_CATALOG: catalogModule },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

function timed(operation: string, file: string, ids: () => string): { median: Measurement; all: Measurement[] } {
  const all = Array.from({ length: repeat }, () => JSON.parse(child('measure', operation, file, ids())) as Measurement);
  const total = median(all.map((m) => m.totalMs));
  return { median: all.find((m) => m.totalMs === total)!, all };
}

const ms = (value: number) => `${value.toFixed(0)} ms`;
const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;
const log = (text: string) => process.stderr.write(`[bench-catalog] ${text}\n`);

async function main(): Promise<void> {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-bench-catalog-'));
  try {
    console.log(`catalog module: ${path.relative(process.cwd(), catalogModule) || catalogModule}`);
    const backupAt = new Map<number, Measurement>();
    const readsAtMillion: string[] = [];
    let counter = 0;
    for (const rows of sizes) {
      const file = path.join(workDir, `catalog-${rows}.sqlite`);
      const building = performance.now();
      child('build', file, String(rows));
      const bytes = fs.statSync(file).size;
      log(`built ${rows} rows in ${ms(performance.now() - building)}`);
      console.log(`\n${rows.toLocaleString('en')} rows: ${rows > 0 ? `${mib(bytes)}, ${(bytes / rows).toFixed(0)} bytes per row` : `${(bytes / 1024).toFixed(0)} KiB`}`);

      const backup = timed('backup', file, () => `bench${String(counter++).padStart(7, '0')}`);
      backupAt.set(rows, backup.median);
      console.log(`  small backup's catalog work (open + insert + update): ${ms(backup.median.totalMs)} (open ${ms(backup.median.openMs)}; runs: ${backup.all.map((m) => m.totalMs.toFixed(0)).join(', ')} ms), peak RSS ${backup.median.maxRssMiB.toFixed(0)} MiB`);
      if (rows >= 100_000) {
        const id = sampleId(rows);
        for (const [label, operation, key] of [['list --limit 50', 'list', id], ['show ID', 'find', id], ['show PREFIX (8)', 'find', id.slice(0, 8)]] as const) {
          const result = timed(operation, file, () => key);
          if (rows === 1_000_000) readsAtMillion.push(`${label} ${ms(result.median.totalMs)}`);
          console.log(`  ${label}: ${ms(result.median.totalMs)} (open ${ms(result.median.openMs)}; runs: ${result.all.map((m) => m.totalMs.toFixed(0)).join(', ')} ms), peak RSS ${result.median.maxRssMiB.toFixed(0)} MiB`);
        }
      }
      // Once, after the backups above: what folding their rows into the file costs at this size.
      const fold = JSON.parse(child('measure', 'fold', file, '-')) as Measurement;
      if (fold.detail !== 'no journal') {
        const saves = repeat * 2;
        const journalBytes = Number(fold.detail);
        console.log(`  fold into the file: ${ms(fold.totalMs)}, peak RSS ${fold.maxRssMiB.toFixed(0)} MiB; ${journalBytes > 0 ? `the journal held ${saves} saves, ${(journalBytes / saves).toFixed(0)} bytes a save` : 'no journal: every save folded'}`);
        // When saves fold by themselves (catalog.ts, FoldPolicy): at a 256 KiB journal, or 1/256 of the file if that is less.
        if (journalBytes > 0) {
          const everySaves = Math.min(256 * 1024, bytes / 256) / (journalBytes / saves);
          console.log(`    a fold every ~${everySaves.toFixed(0)} saves: ${ms((2 * fold.totalMs) / everySaves)} a small backup on average`);
        }
      }
      fs.rmSync(file);
    }
    const empty = backupAt.get(0);
    if (empty) {
      console.log(`\nsmall backup, side by side with an empty catalog (catalog work alone; a ${SMALL_BACKUP_MS / 1000} s small backup that includes it):`);
      for (const [rows, goal] of [[100_000, 1.05], [1_000_000, 1.2]] as const) {
        const large = backupAt.get(rows);
        if (!large) continue;
        const whole = (SMALL_BACKUP_MS + large.totalMs - empty.totalMs) / SMALL_BACKUP_MS;
        console.log(`  ${rows.toLocaleString('en')} rows: ${ms(large.totalMs)} vs ${ms(empty.totalMs)}: catalog work x${(large.totalMs / empty.totalMs).toFixed(2)}, small backup x${whole.toFixed(3)} (goal: x${goal})`);
      }
    }
    if (readsAtMillion.length > 0) console.log(`\nat 1,000,000 rows: ${readsAtMillion.join(', ')} (goal: each under 300 ms)`);
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'measure') process.stdout.write(`${JSON.stringify(await measure(args[0]!, args[1]!, args[2]!))}\n`);
else if (mode === 'build') await buildCatalog(args[0]!, Number(args[1]));
else await main();
