/**
 * Pruning: the pure selection, and `kubectl nkvm artifacts prune` end to end on real files and a real
 * catalog, run as src/main.ts.
 */
import test, { type ExecutionContext } from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { applyPrune, planPrune, selectForPruning, type PrunePolicy } from '../../src/backup/prune.ts';
import { Catalog, type BackupRecord } from '../../src/store/catalog.ts';
import { writeArtifact } from './fixtures/artifact.ts';
import { backupRecord } from './fixtures/backup-record.ts';
import { nkvm } from './fixtures/nkvm-cli.ts';

// ---- the selection

/** A succeeded backup of shop/data started on the given day of January 2025. */
function backupOn(day: number, overrides: Partial<BackupRecord> = {}): BackupRecord {
  const date = `2025-01-${String(day).padStart(2, '0')}`;
  return backupRecord({ id: `${overrides.namespace ?? 'shop'}-${overrides.pvc ?? 'data'}-${date}`, namespace: 'shop', pvc: 'data', status: 'succeeded', startedAt: `${date}T00:00:00.000Z`, ...overrides });
}

const days = (...numbers: number[]) => numbers.map((day) => backupOn(day));
const selected = (records: BackupRecord[], policy: PrunePolicy) => selectForPruning(records, policy).map((record) => record.id);
const ids = (records: BackupRecord[]) => records.map((record) => record.id);

test('--keep-last keeps the N newest and selects the rest, newest first, whatever the input order', (t) => {
  const records = days(3, 1, 5, 2, 4);
  t.deepEqual(selected(records, { keepLast: 2 }), ids(days(3, 2, 1)));
  t.deepEqual(selected(records, { keepLast: 5 }), []);
  t.deepEqual(selected(records, { keepLast: 9 }), []);
});

test('--older-than selects only backups started before the cutoff', (t) => {
  const records = days(1, 2, 3, 4);
  t.deepEqual(selected(records, { startedBefore: new Date('2025-01-03T00:00:00.000Z') }), ids(days(2, 1)), 'a backup started exactly at the cutoff is not older');
  t.deepEqual(selected(records, { startedBefore: new Date('2024-12-31T00:00:00.000Z') }), []);
});

test('with both, a backup is pruned only if it is outside the kept N and older', (t) => {
  const records = days(1, 2, 3, 4, 5);
  // Kept: 5, 4. Older than the 4th: 3, 2, 1.
  t.deepEqual(selected(records, { keepLast: 2, startedBefore: new Date('2025-01-04T00:00:00.000Z') }), ids(days(3, 2, 1)));
  // Kept: 5..2. Older than the 3rd: 2, 1; only 1 is outside the kept.
  t.deepEqual(selected(records, { keepLast: 4, startedBefore: new Date('2025-01-03T00:00:00.000Z') }), ids(days(1)));
});

test('each claim (cluster, namespace, pvc) keeps its own N', (t) => {
  const records = [
    ...days(1, 2, 3),
    backupOn(1, { pvc: 'logs' }),
    backupOn(2, { pvc: 'logs' }),
    backupOn(1, { namespace: 'other' }),
    backupOn(1, { id: 'shop-data-elsewhere-1', cluster: 'https://elsewhere:6443' }),
    backupOn(2, { id: 'shop-data-elsewhere-2', cluster: 'https://elsewhere:6443' }),
  ];
  t.deepEqual(selected(records, { keepLast: 1 }), ['shop-data-2025-01-02', 'shop-logs-2025-01-01', 'shop-data-elsewhere-1', 'shop-data-2025-01-01']);
});

test('only succeeded backups are candidates, and other outcomes do not count among the kept', (t) => {
  const records = [
    backupOn(6, { id: 'failed', status: 'failed' }),
    backupOn(5, { id: 'running', status: 'running' }),
    backupOn(4, { id: 'pruned', status: 'pruned' }),
    backupOn(3, { id: 'interrupted', status: 'interrupted' }),
    ...days(2, 1),
  ];
  t.deepEqual(selected(records, { keepLast: 1 }), ids(days(1)));
  t.deepEqual(selected(records, { startedBefore: new Date('2025-02-01T00:00:00.000Z') }), ids(days(2, 1)));
});

test('-n and --pvc narrow the candidates', (t) => {
  const records = [...days(1, 2), backupOn(1, { pvc: 'logs' }), backupOn(1, { namespace: 'other' }), backupOn(1, { namespace: 'other', pvc: 'logs' })];
  const everything = { startedBefore: new Date('2026-01-01T00:00:00.000Z') };
  t.deepEqual(selected(records, { ...everything, namespace: 'shop' }), ['shop-data-2025-01-02', 'shop-logs-2025-01-01', 'shop-data-2025-01-01']);
  t.deepEqual(selected(records, { ...everything, pvc: 'logs' }), ['shop-logs-2025-01-01', 'other-logs-2025-01-01']);
  t.deepEqual(selected(records, { ...everything, namespace: 'other', pvc: 'data' }), ['other-data-2025-01-01']);
  t.deepEqual(selected(records, { ...everything, namespace: 'nowhere' }), []);
});

// ---- the command

const FILES = { 'hello.txt': 'hello\n', 'data.bin': Buffer.alloc(32 * 1024, 1) };

/**
 * NKVM_HOME with a catalog and real artifacts in its output directory: shop/data on days 1-4, shop/logs
 * on day 1, one row whose artifact is outside the output directory, and one whose file is gone.
 */
async function setup(t: ExecutionContext) {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-prune-'));
  t.teardown(() => fs.rmSync(home, { recursive: true, force: true }));
  const outputDir = path.join(home, 'artifacts');
  const catalogFile = path.join(home, 'catalog.sqlite');
  const catalog = await Catalog.open(catalogFile);
  const add = async (record: BackupRecord, file: string) => {
    const full = { ...record, ...writeArtifact(file, FILES) };
    await catalog.insertBackup(full);
    return full;
  };
  const data = [];
  for (const day of [1, 2, 3, 4]) data.push(await add(backupOn(day), path.join(outputDir, 'shop', 'data', `day${day}.tar.gz`)));
  const logs = await add(backupOn(1, { pvc: 'logs' }), path.join(outputDir, 'shop', 'logs', 'day1.tar.gz'));
  const outside = await add(backupOn(1, { pvc: 'elsewhere' }), path.join(home, 'not-artifacts', 'day1.tar.gz'));
  const missing = await add(backupOn(1, { pvc: 'missing' }), path.join(outputDir, 'shop', 'missing', 'day1.tar.gz'));
  fs.rmSync(missing.artifactPath!);
  const statuses = async () => Object.fromEntries((await catalog.listBackups()).map((row) => [row.id, row.status]));
  return {
    catalog,
    outputDir,
    data,
    logs,
    outside,
    missing,
    statuses,
    run: (...args: string[]) => nkvm(['artifacts', 'prune', ...args, '--catalog', catalogFile, '--output-dir', outputDir], home),
  };
}

test('prune deletes the selected files and marks their rows pruned; kept ones are untouched', async (t) => {
  const { catalog, data, logs, run } = await setup(t);
  const result = await run('--keep-last', '2', '-n', 'shop', '--pvc', 'data');
  t.is(result.exitCode, 0, result.stderr);
  t.regex(result.stdout, /^ID\s+NAMESPACE\s+PVC\s+STARTED\s+SIZE\s+ACTION\s+ARTIFACT$/m);
  t.regex(result.stdout, new RegExp(`^${data[1]!.id}\\s+shop\\s+data\\s+2025-01-02T00:00:00Z\\s+\\d+ B\\s+pruned\\s+${data[1]!.artifactPath}$`, 'm'));
  t.regex(result.stderr, /Pruned 2 backups, freeing /);

  t.deepEqual(data.map((record) => fs.existsSync(record.artifactPath!)), [false, false, true, true]);
  t.true(fs.existsSync(logs.artifactPath!));
  t.deepEqual(fs.readdirSync(path.dirname(data[0]!.artifactPath!)).sort(), ['day3.tar.gz', 'day4.tar.gz'], 'no .pruning- files left');

  const pruned = await catalog.getBackup(data[0]!.id);
  t.is(pruned!.status, 'pruned');
  t.truthy(pruned!.prunedAt);
  t.is(pruned!.artifactPath, data[0]!.artifactPath, 'the row keeps its artifact path for the record');
  t.deepEqual(await catalog.getBackup(data[3]!.id), data[3]);
  t.deepEqual(await catalog.getBackup(logs.id), logs);
});

test('a row pointing outside the output directory is skipped and its file kept; a missing file is still marked pruned', async (t) => {
  const { catalog, outputDir, outside, missing, statuses, run } = await setup(t);
  const before = await statuses();
  const result = await run('--older-than', '1d', '-o', 'json');
  t.is(result.exitCode, 0, result.stderr);
  const outcomes = Object.fromEntries(JSON.parse(result.stdout).items.map((item: { id: string; action: string; reason: string | null }) => [item.id, [item.action, item.reason]]));
  t.deepEqual(outcomes[outside.id], ['skipped', `not inside the output directory ${fs.realpathSync(outputDir)}`]);
  t.deepEqual(outcomes[missing.id], ['pruned', 'the artifact file was already missing']);
  t.is(Object.keys(outcomes).length, 7);

  t.true(fs.existsSync(outside.artifactPath!));
  t.deepEqual(await catalog.getBackup(outside.id), outside);
  t.is((await catalog.getBackup(missing.id))!.status, 'pruned');
  t.deepEqual(await statuses(), Object.fromEntries(Object.keys(before).map((id) => [id, id === outside.id ? 'succeeded' : 'pruned'])));
});

test('a symlink out of the output directory is not followed', async (t) => {
  const { catalog, data, outside, run } = await setup(t);
  // The catalog row of day 1 now names a link, inside the directory, to a file outside it.
  fs.rmSync(data[0]!.artifactPath!);
  fs.symlinkSync(outside.artifactPath!, data[0]!.artifactPath!);
  const result = await run('--older-than', '1d', '--pvc', 'data', '-o', 'json');
  t.is(result.exitCode, 0, result.stderr);
  t.is(JSON.parse(result.stdout).items.find((item: { id: string }) => item.id === data[0]!.id).action, 'skipped');
  t.true(fs.existsSync(outside.artifactPath!));
  t.true(fs.lstatSync(data[0]!.artifactPath!).isSymbolicLink());
  t.is((await catalog.getBackup(data[0]!.id))!.status, 'succeeded');
});

test('--dry-run lists what would be pruned and changes nothing', async (t) => {
  const { data, logs, statuses, run } = await setup(t);
  const filesBefore = [...data, logs].map((record) => fs.existsSync(record.artifactPath!));
  const before = await statuses();
  const result = await run('--keep-last', '1', '--dry-run');
  t.is(result.exitCode, 0, result.stderr);
  t.regex(result.stdout, new RegExp(`^${data[0]!.id}\\s+.*would prune\\s+`, 'm'));
  t.regex(result.stderr, /Dry run: 3 backups would be pruned, freeing .*; nothing was changed/);
  t.deepEqual([...data, logs].map((record) => fs.existsSync(record.artifactPath!)), filesBefore);
  t.deepEqual(await statuses(), before);

  const names = await run('--keep-last', '1', '--dry-run', '-o', 'name');
  t.deepEqual(names.stdout.split('\n'), [data[2]!.id, data[1]!.id, data[0]!.id]);
});

test('when the catalog save fails, every file is moved back and no row is marked', async (t) => {
  const { catalog, outputDir, data, statuses } = await setup(t);
  const before = await statuses();
  // A row the catalog does not have makes the one save fail, after every file was moved aside.
  const ghost = { ...data[0]!, id: 'not-in-the-catalog' };
  const steps = planPrune([data[3]!, data[2]!, ghost], outputDir);
  const error = await t.throwsAsync(applyPrune(catalog, steps, new Date().toISOString()));
  t.is(error!.name, 'NotFoundError');
  t.true(data.every((record) => fs.existsSync(record.artifactPath!)));
  t.deepEqual(fs.readdirSync(path.dirname(data[0]!.artifactPath!)).sort(), ['day1.tar.gz', 'day2.tar.gz', 'day3.tar.gz', 'day4.tar.gz']);
  t.deepEqual(await statuses(), before);
});

for (const [args, message] of [
  [[], /say what to keep: --keep-last N, --older-than DURATION, or both/],
  [['--older-than', 'soon'], /invalid duration for --older-than: "soon"/],
  [['--older-than', '30'], /--older-than needs a unit: "30"/],
  [['--keep-last', '0'], /--keep-last must be a whole number of at least 1/],
] as const) {
  test(`usage error, nothing changed: artifacts prune ${args.join(' ')}`, async (t) => {
    const { data, statuses, run } = await setup(t);
    const before = await statuses();
    const result = await run(...args);
    t.is(result.exitCode, 2, result.stderr);
    t.regex(result.stderr, message);
    t.is(result.stdout, '');
    t.deepEqual(await statuses(), before);
    t.true(data.every((record) => fs.existsSync(record.artifactPath!)));
  });
}

test('help has the examples', async (t) => {
  const { run } = await setup(t);
  const help = await run('--help');
  t.is(help.exitCode, 0);
  t.regex(help.stdout, /kubectl nkvm artifacts prune --keep-last 7/);
  t.regex(help.stdout, /--older-than/);
});

test('--forget deletes the old rows that have no artifact, with their restores; --dry-run only counts them', async (t) => {
  const { catalog, data, logs, run, statuses } = await setup(t);
  await catalog.insertBackup(backupOn(1, { id: 'old-failed', status: 'failed', pvc: 'data' }));
  await catalog.insertBackup(backupOn(9, { id: 'new-failed', status: 'failed', pvc: 'data' }));
  t.is((await run('--keep-last', '1', '--forget')).exitCode, 2, '--forget needs --older-than');
  const dry = await run('--older-than', '3650d', '--keep-last', '2', '--pvc', 'data', '--forget', '--dry-run');
  t.regex(dry.stderr, /Dry run: 0 catalog rows would be forgotten/, 'nothing is pruned in a dry run, so only rows already without artifact count');
  const cutoff = `${Math.ceil((Date.now() - Date.parse('2025-01-05T00:00:00Z')) / 86_400_000)}d`;
  const result = await run('--older-than', cutoff, '--keep-last', '2', '--pvc', 'data', '--forget');
  t.is(result.exitCode, 0, result.stderr);
  t.regex(result.stderr, /Pruned 2 backups, freeing .*\nForgot 3 catalog rows/);
  const left = await statuses();
  t.deepEqual(Object.keys(left).sort(), [data[2]!.id, data[3]!.id, logs.id, 'new-failed', 'shop-elsewhere-2025-01-01', 'shop-missing-2025-01-01'].sort());
});
