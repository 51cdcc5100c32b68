import test, { type ExecutionContext } from 'ava';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { userVersionOf } from '../../src/store/catalog-file.ts';
import { Catalog, LATEST_SCHEMA_VERSION, type BackupRecord } from '../../src/store/catalog.ts';
import { backupRecord } from './fixtures/backup-record.ts';
import { restoreRecord } from './fixtures/restore-record.ts';

const WRITER = fileURLToPath(new URL('fixtures/catalog-writer.ts', import.meta.url));
const CATALOG_V1_SQL = fileURLToPath(new URL('fixtures/catalog-v1.sql', import.meta.url));

function catalogFile(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-catalog-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'state', 'catalog.db');
}

const record = backupRecord;

/** The stock sqlite3 CLI, as a user inspecting the catalog would run it. */
function sqlite(file: string, sql: string): string {
  return execFileSync('/usr/bin/sqlite3', [file, sql], { encoding: 'utf8' }).trim();
}

/** Everything beside the catalog file: lock files, temp files, stale locks moved aside. */
function leftovers(file: string): string[] {
  return fs.readdirSync(path.dirname(file)).filter((name) => name !== path.basename(file));
}

/** A fixtures/catalog-writer.ts process, driven line by line. */
function startWriter(file: string, prefix: string, count: number) {
  const child: ChildProcess = spawn(process.execPath, [WRITER, file, prefix, String(count)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return {
    child,
    exited,
    stderr: () => stderr,
    async nextLine(): Promise<string> {
      const { value, done } = await lines.next();
      if (done) throw new Error(`the writer ${prefix} exited early: ${stderr}`);
      return value;
    },
    go: () => child.stdin!.write('go\n'),
  };
}

/** A pid that no process has any more: a child that has exited and been reaped. */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  await once(child, 'exit');
  return child.pid!;
}

function writeLock(file: string, holder: { pid: number; hostname: string }): void {
  const since = new Date().toISOString();
  fs.writeFileSync(`${file}.lock`, `${JSON.stringify({ ...holder, since, token: 'held-by-the-test' })}\n`);
}

const complete = record({
  id: 'f3a9c2d4-0000-4000-8000-000000000001',
  context: 'kind-dev',
  cluster: 'https://127.0.0.1:6443',
  credentialSource: 'kubeconfig-env',
  namespace: 'shop',
  pvc: 'postgres-data',
  pv: 'pvc-1234',
  storageClass: 'standard',
  capacity: '20Gi',
  node: 'worker-1',
  helperPod: 'nkvm-backup-abcde',
  startedAt: '2025-03-04T05:06:07.089Z',
  finishedAt: '2025-03-04T05:08:00.000Z',
  status: 'succeeded',
  failedStage: null,
  message: 'ok, with "quotes" and ünïcode',
  artifactPath: '/backups/shop/postgres-data.tar.zst',
  compression: 'zstd',
  bytes: 5 * 1024 ** 3,
  tarBytes: 12 * 1024 ** 3,
  fileCount: 123_456,
  sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  pluginVersion: '0.1.0',
});

test('open creates the directory and a file at the latest schema; a full record round-trips', async (t) => {
  const file = catalogFile(t);
  const catalog = await Catalog.open(file);
  t.is(catalog.file, file);
  t.true(fs.existsSync(file));
  t.is(await catalog.schemaVersion(), LATEST_SCHEMA_VERSION);

  await catalog.insertBackup(complete);
  const sparse = record({ id: 'sparse-1' });
  await catalog.insertBackup(sparse);
  t.deepEqual(await catalog.getBackup(complete.id), complete);
  t.deepEqual(await (await Catalog.open(file)).getBackup(sparse.id), sparse);
  t.is(await catalog.getBackup('nope'), undefined);
  t.deepEqual(leftovers(file), []);
});

test('updateBackup changes only the given fields; an unknown id is a NotFoundError', async (t) => {
  const catalog = await Catalog.open(catalogFile(t));
  await catalog.insertBackup(record({ id: 'b1', message: 'starting' }));
  await catalog.updateBackup('b1', { status: 'failed', failedStage: 'stream', message: null, finishedAt: '2025-01-01T00:01:00.000Z', bytes: 42 });
  t.deepEqual(
    await catalog.getBackup('b1'),
    record({ id: 'b1', status: 'failed', failedStage: 'stream', message: null, finishedAt: '2025-01-01T00:01:00.000Z', bytes: 42 }),
  );

  for (const changes of [{ status: 'succeeded' as const }, {}]) {
    const error = await t.throwsAsync(catalog.updateBackup('missing', changes));
    t.is(error!.name, 'NotFoundError');
    t.regex(error!.message, /no backup with id "missing" in the catalog /);
  }
  t.is((await catalog.listBackups()).length, 1);
});

test('listBackups filters by namespace, PVC and status, newest first, with a limit', async (t) => {
  const catalog = await Catalog.open(catalogFile(t));
  const rows = [
    record({ id: 'r1', namespace: 'a', pvc: 'x', status: 'succeeded', startedAt: '2025-01-01T00:00:00.000Z' }),
    record({ id: 'r2', namespace: 'a', pvc: 'x', status: 'failed', startedAt: '2025-01-03T00:00:00.000Z' }),
    record({ id: 'r3', namespace: 'a', pvc: 'y', status: 'succeeded', startedAt: '2025-01-02T00:00:00.000Z' }),
    record({ id: 'r4', namespace: 'b', pvc: 'x', status: 'interrupted', startedAt: '2025-01-04T00:00:00.000Z' }),
  ];
  for (const row of rows) await catalog.insertBackup(row);
  const ids = async (filter?: Parameters<Catalog['listBackups']>[0]) => (await catalog.listBackups(filter)).map((row) => row.id);

  t.deepEqual(await ids(), ['r4', 'r2', 'r3', 'r1']);
  t.deepEqual(await ids({ namespace: 'a' }), ['r2', 'r3', 'r1']);
  t.deepEqual(await ids({ namespace: 'a', pvc: 'x' }), ['r2', 'r1']);
  t.deepEqual(await ids({ status: 'succeeded' }), ['r3', 'r1']);
  t.deepEqual(await ids({ namespace: 'a', limit: 2 }), ['r2', 'r3']);
  t.deepEqual(await ids({ namespace: 'c' }), []);
  t.deepEqual((await catalog.listBackups({ pvc: 'y' }))[0], rows[2]);
});

test('findBackup takes an exact id or a unique prefix of at least 4 characters', async (t) => {
  const catalog = await Catalog.open(catalogFile(t));
  for (const id of ['abc12345', 'abc12399', 'abd00000', 'ab']) await catalog.insertBackup(record({ id }));

  t.is((await catalog.findBackup('abc12345')).id, 'abc12345');
  t.is((await catalog.findBackup('ab')).id, 'ab', 'an exact id may be short');
  t.is((await catalog.findBackup('abd0')).id, 'abd00000');

  const ambiguous = await t.throwsAsync(catalog.findBackup('abc123'));
  t.is(ambiguous!.name, 'CatalogError');
  t.regex(ambiguous!.message, /the id prefix "abc123" matches 2 backups: abc12345, abc12399/);

  const tooShort = await t.throwsAsync(catalog.findBackup('abc'));
  t.is(tooShort!.name, 'NotFoundError');
  t.regex((tooShort as { hint?: string }).hint!, /at least 4 characters/);

  for (const absent of ['zzzz', 'abc1%', 'ABC12345']) {
    const error = await t.throwsAsync(catalog.findBackup(absent), undefined, absent);
    t.is(error!.name, 'NotFoundError', absent);
  }
});

test('the stock sqlite3 CLI opens the file and sees the rows', async (t) => {
  const file = catalogFile(t);
  const catalog = await Catalog.open(file);
  await catalog.insertBackup(complete);
  await catalog.insertBackup(record({ id: 'second', namespace: 'other', bytes: 7 }));

  t.is(sqlite(file, 'PRAGMA integrity_check; PRAGMA user_version; SELECT count(*) FROM backups;'), `ok\n${LATEST_SCHEMA_VERSION}\n2`);
  t.is(
    sqlite(file, "SELECT id, namespace, pvc, status, bytes, typeof(bytes) FROM backups ORDER BY started_at DESC;"),
    `${complete.id}|shop|postgres-data|succeeded|5368709120|integer\nsecond|other|data|running|7|integer`,
  );
  t.regex(sqlite(file, '.indexes backups'), /backups_by_pvc/);
});

test('a file at schema version 0 without tables is upgraded when opened', async (t) => {
  const file = catalogFile(t);
  fs.mkdirSync(path.dirname(file));
  sqlite(file, 'CREATE TABLE t(x); DROP TABLE t;');
  t.is(sqlite(file, 'PRAGMA user_version; SELECT count(*) FROM sqlite_schema;'), '0\n0');

  const catalog = await Catalog.open(file);
  t.is(await catalog.schemaVersion(), LATEST_SCHEMA_VERSION);
  t.is(sqlite(file, 'PRAGMA user_version;'), String(LATEST_SCHEMA_VERSION));
  t.is(sqlite(file, "SELECT group_concat(name) FROM (SELECT name FROM sqlite_schema WHERE name LIKE 'backups%' ORDER BY name);"), 'backups,backups_by_pvc,backups_by_start');
  await catalog.insertBackup(record({ id: 'x1' }));
  t.is((await catalog.listBackups()).length, 1);
});

test('a file at schema version 1 is upgraded in place and keeps its rows', async (t) => {
  const file = catalogFile(t);
  fs.mkdirSync(path.dirname(file));
  sqlite(file, fs.readFileSync(CATALOG_V1_SQL, 'utf8'));
  t.is(sqlite(file, 'PRAGMA user_version; SELECT count(*) FROM backups;'), '1\n2');

  const catalog = await Catalog.open(file);
  t.is(sqlite(file, 'PRAGMA user_version;'), String(LATEST_SCHEMA_VERSION));
  t.deepEqual(
    await catalog.getBackup('v1-ok'),
    record({
      id: 'v1-ok', context: 'kind-dev', cluster: 'https://127.0.0.1:6443', credentialSource: 'kubeconfig-env', namespace: 'shop', pvc: 'data',
      pv: 'pv-1', storageClass: 'standard', capacity: '1Gi', node: 'worker-1', helperPod: 'nkvm-backup-data-x', startedAt: '2025-01-01T00:00:00.000Z',
      finishedAt: '2025-01-01T00:00:05.000Z', status: 'succeeded', message: 'backed up', artifactPath: '/backups/shop/data/20250101T000000Z-v1-ok.tar.gz',
      compression: 'gzip', bytes: 1024, tarBytes: 10240, fileCount: 3, sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    }),
  );
  t.deepEqual((await catalog.listBackups()).map((row) => [row.id, row.status, row.prunedAt]), [['v1-failed', 'failed', null], ['v1-ok', 'succeeded', null]]);
  t.regex(sqlite(file, '.indexes restores'), /restores_by_pvc/);
  await catalog.insertRestore(restoreRecord({ id: 'after-upgrade', backupId: 'v1-ok' }));
  t.is(sqlite(file, 'PRAGMA integrity_check; SELECT count(*) FROM backups; SELECT count(*) FROM restores;'), 'ok\n2\n1');
});

test('a failing migration is rolled back and leaves the file as it was', async (t) => {
  const file = catalogFile(t);
  fs.mkdirSync(path.dirname(file));
  sqlite(file, 'CREATE TABLE backups(something_else); INSERT INTO backups VALUES (1);');
  const before = fs.readFileSync(file);

  const error = await t.throwsAsync(Catalog.open(file));
  t.is(error!.name, 'CatalogError');
  t.regex(error!.message, /cannot upgrade the catalog .*catalog\.db from schema version 0: table backups already exists/);
  t.deepEqual(fs.readFileSync(file), before);
  t.deepEqual(leftovers(file), []);
});

test('a damaged or foreign file is a CatalogError that names it and says to move it aside', async (t) => {
  const file = catalogFile(t);
  const catalog = await Catalog.open(file);
  for (let i = 0; i < 200; i++) await catalog.insertBackup(record({ id: `row-${i}`, message: 'x'.repeat(200) }));
  const valid = fs.readFileSync(file);

  const damaged = {
    garbage: Buffer.from('this is not a database\n'.repeat(300)),
    truncated: valid.subarray(0, Math.floor(valid.length / 2)),
  };
  for (const [name, bytes] of Object.entries(damaged)) {
    fs.writeFileSync(file, bytes);
    const error = await t.throwsAsync(Catalog.open(file), undefined, name);
    t.is(error!.name, 'CatalogError', name);
    t.true(error!.message.includes(file), name);
    t.regex((error as { hint?: string }).hint!, /move it aside/, name);
  }

  fs.rmSync(file);
  sqlite(file, 'PRAGMA user_version = 99;');
  const newer = await t.throwsAsync(Catalog.open(file));
  t.regex(newer!.message, new RegExp(`has schema version 99, newer than kubectl-nkvm .* understands \\(${LATEST_SCHEMA_VERSION}\\)`));
});

test('two processes writing at the same time keep every row', async (t) => {
  const file = catalogFile(t);
  // Neither finds the file: they also race to create it.
  const writers = ['a', 'b'].map((prefix) => startWriter(file, prefix, 40));
  for (const writer of writers) t.is(await writer.nextLine(), 'ready', writer.stderr());
  for (const writer of writers) writer.go();
  for (const writer of writers) t.deepEqual(await writer.exited, [0, null], writer.stderr());

  t.is(sqlite(file, 'PRAGMA integrity_check; SELECT count(*) FROM backups;'), 'ok\n80');
  const ids = new Set((await (await Catalog.open(file)).listBackups()).map((row) => row.id));
  for (const prefix of ['a', 'b']) for (let i = 0; i < 40; i++) t.true(ids.has(`${prefix}-${i}`), `${prefix}-${i}`);
  t.deepEqual(leftovers(file), []);
});

test('a writer killed at any moment never damages the file, and leaves nothing the next save keeps', async (t) => {
  const file = catalogFile(t);
  let rows = 0;
  for (let round = 0; round < 5; round++) {
    const writer = startWriter(file, `round${round}`, 0);
    t.is(await writer.nextLine(), 'ready', writer.stderr());
    writer.go();
    t.regex(await writer.nextLine(), /^inserted /, writer.stderr());
    await sleep(Math.random() * 40);
    writer.child.kill('SIGKILL');
    t.deepEqual(await writer.exited, [null, 'SIGKILL']); // reaped: its pid is gone, as a stale lock's holder is

    t.is(sqlite(file, 'PRAGMA integrity_check;'), 'ok', `round ${round}`);
    const count = Number(sqlite(file, 'SELECT count(*) FROM backups;'));
    t.true(count > rows, `round ${round}: ${count} rows after ${rows}`);

    // The killed writer may have left its lock and a temp file; the next writer is not blocked and cleans up.
    const catalog = await Catalog.open(file);
    await catalog.insertBackup(record({ id: `after-round${round}` }));
    t.deepEqual(leftovers(file), [], `round ${round}`);
    rows = count + 1;
    t.is((await catalog.listBackups()).length, rows);
  }
});

test('a temp file left by a killed writer is removed when the catalog is next opened', async (t) => {
  const file = catalogFile(t);
  await Catalog.open(file);
  const orphan = `${file}.${await deadPid()}.0a1b2c3d.tmp`;
  fs.writeFileSync(orphan, 'half a database');
  await Catalog.open(file);
  t.false(fs.existsSync(orphan));
  t.deepEqual(leftovers(file), []);
});

test('a lock whose holder died on this host is broken; one held by a live process times out naming it', async (t) => {
  const file = catalogFile(t);
  const catalog = await Catalog.open(file, { lockTimeoutMs: 200 });
  const lockPath = `${file}.lock`;

  writeLock(file, { pid: await deadPid(), hostname: os.hostname() });
  await catalog.insertBackup(record({ id: 'after-stale-lock' }));
  t.false(fs.existsSync(lockPath));

  const sleeper = spawn('sleep', ['600']);
  t.teardown(() => sleeper.kill());
  writeLock(file, { pid: sleeper.pid!, hostname: os.hostname() });
  const error = await t.throwsAsync(catalog.insertBackup(record({ id: 'blocked' })));
  t.is(error!.name, 'CatalogError');
  t.true(error!.message.includes(`timed out after 0.2s waiting for the catalog lock ${lockPath}, held by pid ${sleeper.pid} on ${os.hostname()}`), error!.message);
  t.true((error as { hint?: string }).hint!.includes(lockPath));

  // A holder on another host cannot be checked, so even a pid that is dead here is waited for.
  writeLock(file, { pid: await deadPid(), hostname: 'elsewhere.example' });
  const remote = await t.throwsAsync(catalog.updateBackup('after-stale-lock', { status: 'succeeded' }));
  t.regex(remote!.message, /held by pid \d+ on elsewhere\.example/);

  t.true(fs.existsSync(lockPath), 'a lock that is not ours is left alone');

  // An empty lock long after its creation: its creator died before writing its pid into it.
  fs.writeFileSync(lockPath, '');
  const longAgo = new Date(Date.now() - 60_000);
  fs.utimesSync(lockPath, longAgo, longAgo);
  await catalog.insertBackup(record({ id: 'after-empty-lock', startedAt: '2024-01-01T00:00:00.000Z' }));
  t.false(fs.existsSync(lockPath));

  t.deepEqual((await catalog.listBackups()).map((row) => [row.id, row.status]), [['after-stale-lock', 'running'], ['after-empty-lock', 'running']]);
});

test('restores round-trip, update like backups, and list newest first by claim or backup', async (t) => {
  const file = catalogFile(t);
  const catalog = await Catalog.open(file);
  const full = restoreRecord({
    id: 'r-full', backupId: 'b1', context: 'kind-dev', cluster: 'https://127.0.0.1:6443', namespace: 'shop', pvc: 'data-copy',
    createdClaim: true, mode: 'overwrite', dryRun: true, node: 'worker-1', helperPod: 'nkvm-restore-x', startedAt: '2025-01-02T00:00:00.000Z',
    finishedAt: '2025-01-02T00:00:09.000Z', status: 'succeeded', message: 'restored 3 entries', bytes: 10240, entries: 3,
  });
  await catalog.insertRestore(full);
  await catalog.insertRestore(restoreRecord({ id: 'r-old', backupId: 'b2', namespace: 'shop', pvc: 'data-copy' }));
  await catalog.insertRestore(restoreRecord({ id: 'r-other', backupId: 'b1', startedAt: '2025-01-03T00:00:00.000Z' }));
  t.deepEqual(await catalog.getRestore('r-full'), full);
  t.is(await catalog.getRestore('nope'), undefined);
  // Booleans are 0/1 integers in the file, for the sqlite3 CLI.
  t.is(sqlite(file, "SELECT created_claim, dry_run, typeof(dry_run) FROM restores WHERE id = 'r-full';"), '1|1|integer');

  await catalog.updateRestore('r-old', { status: 'failed', failedStage: 'prepare', message: 'claim is not empty', createdClaim: true });
  t.deepEqual(await catalog.getRestore('r-old'), restoreRecord({ id: 'r-old', backupId: 'b2', namespace: 'shop', pvc: 'data-copy', status: 'failed', failedStage: 'prepare', message: 'claim is not empty', createdClaim: true }));
  for (const changes of [{ status: 'succeeded' as const }, {}]) {
    const error = await t.throwsAsync(catalog.updateRestore('missing', changes));
    t.is(error!.name, 'NotFoundError');
    t.regex(error!.message, /no restore with id "missing" in the catalog /);
  }

  const ids = async (filter?: Parameters<Catalog['listRestores']>[0]) => (await catalog.listRestores(filter)).map((row) => row.id);
  t.deepEqual(await ids(), ['r-other', 'r-full', 'r-old']);
  t.deepEqual(await ids({ namespace: 'shop', pvc: 'data-copy' }), ['r-full', 'r-old']);
  t.deepEqual(await ids({ backupId: 'b1' }), ['r-other', 'r-full']);
  t.deepEqual(await ids({ limit: 1 }), ['r-other']);
  t.deepEqual(await catalog.listBackups(), [], 'restores are not backups');
});

test('markPruned marks every given backup in one save, or none when an id is unknown', async (t) => {
  const file = catalogFile(t);
  const catalog = await Catalog.open(file);
  for (const id of ['p1', 'p2', 'p3']) await catalog.insertBackup(record({ id, status: 'succeeded', artifactPath: `/a/${id}.tar.gz` }));
  const before = fs.readFileSync(file);

  const error = await t.throwsAsync(catalog.markPruned(['p1', 'unknown', 'p2'], '2025-02-01T00:00:00.000Z'));
  t.is(error!.name, 'NotFoundError');
  t.regex(error!.message, /no backup with id "unknown"/);
  t.deepEqual(fs.readFileSync(file), before, 'the file was not replaced');
  t.deepEqual((await catalog.listBackups()).map((row) => [row.id, row.status, row.prunedAt]), [['p3', 'succeeded', null], ['p2', 'succeeded', null], ['p1', 'succeeded', null]]);

  await catalog.markPruned(['p1', 'p3'], '2025-02-01T00:00:00.000Z');
  t.deepEqual(await catalog.getBackup('p1'), record({ id: 'p1', status: 'pruned', prunedAt: '2025-02-01T00:00:00.000Z', artifactPath: '/a/p1.tar.gz' }));
  t.deepEqual((await catalog.listBackups({ status: 'pruned' })).map((row) => row.id), ['p3', 'p1']);
  t.is((await catalog.getBackup('p2'))!.status, 'succeeded');
  t.deepEqual(leftovers(file), []);
});

test('the schema version is read from the header where it vouches for the whole file, as sqlite3 reads it; otherwise left to SQLite', async (t) => {
  const file = catalogFile(t);
  const catalog = await Catalog.open(file);
  for (let i = 0; i < 50; i++) await catalog.insertBackup(record({ id: `row-${i}`, message: 'x'.repeat(500) }));
  await catalog.fold();
  const header = (bytes: Buffer) => bytes.subarray(0, 100);
  const ours = fs.readFileSync(file);
  t.is(userVersionOf(header(ours), ours.length), Number(sqlite(file, 'PRAGMA user_version')));
  sqlite(file, 'PRAGMA user_version = 7; VACUUM;'); // written by SQLite itself
  const theirs = fs.readFileSync(file);
  t.is(userVersionOf(header(theirs), theirs.length), 7);
  t.is(userVersionOf(header(theirs), theirs.length - 4096), undefined, 'a file of another size than its header says');
  t.is(userVersionOf(Buffer.from('this is not a database\n'.repeat(10)).subarray(0, 100), 230), undefined);
});
