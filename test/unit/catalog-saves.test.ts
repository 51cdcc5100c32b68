import test, { type ExecutionContext } from 'ava';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Catalog, LATEST_SCHEMA_VERSION, type BackupRecord } from '../../src/store/catalog.ts';
import { MIGRATIONS } from '../../src/store/schema.ts';
import { backupRecord as record } from './fixtures/backup-record.ts';
import { restoreRecord } from './fixtures/restore-record.ts';

const WRITER = fileURLToPath(new URL('fixtures/catalog-writer.ts', import.meta.url));

function catalogFile(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-catalog-saves-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'catalog.db');
}

/** The stock sqlite3 CLI, as a user inspecting the catalog would run it. */
function sqlite(file: string, sql: string): string {
  return execFileSync('/usr/bin/sqlite3', [file, sql], { encoding: 'utf8' }).trim();
}

function leftovers(file: string): string[] {
  return fs.readdirSync(path.dirname(file)).filter((name) => name !== path.basename(file));
}

/** The SQLite header's file change counter, which every save advances by one. */
function changeCounter(file: string): number {
  return fs.readFileSync(file).readUInt32BE(24);
}

/** Inserts `count` rows from another process (fixtures/catalog-writer.ts), ids `${prefix}-0`... */
async function writeFromAnotherProcess(file: string, prefix: string, count: number): Promise<void> {
  const child = spawn(process.execPath, [WRITER, file, prefix, String(count)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  if ((await lines.next()).value !== 'ready') throw new Error('the writer did not start');
  child.stdin.write('go\n');
  const [code] = await exited;
  if (code !== 0) throw new Error(`the writer exited with ${code}`);
}

const ids = (records: readonly { id: string }[]) => records.map((row) => row.id);

test('forgetBackups deletes the rows of backups without an artifact, and of their restores', async (t) => {
  const file = catalogFile(t);
  const catalog = await Catalog.open(file);
  const rows: BackupRecord[] = [
    record({ id: 'failed-1', status: 'failed', startedAt: '2025-01-01T00:00:00.000Z' }),
    record({ id: 'interrupted-1', status: 'interrupted', startedAt: '2025-01-02T00:00:00.000Z' }),
    record({ id: 'pruned-1', status: 'pruned', prunedAt: '2025-02-01T00:00:00.000Z', startedAt: '2025-01-03T00:00:00.000Z' }),
    record({ id: 'kept-1', status: 'succeeded', startedAt: '2025-01-04T00:00:00.000Z' }),
  ];
  for (const row of rows) await catalog.insertBackup(row);
  await catalog.insertRestore(restoreRecord({ id: 'restore-of-pruned', backupId: 'pruned-1' }));
  await catalog.insertRestore(restoreRecord({ id: 'restore-of-kept', backupId: 'kept-1' }));

  await catalog.forgetBackups(['failed-1', 'pruned-1', 'interrupted-1']);
  t.deepEqual(ids(await catalog.listBackups()), ['kept-1']);
  t.deepEqual(ids(await catalog.listRestores()), ['restore-of-kept']);
  t.is(sqlite(file, 'SELECT count(*) FROM backups; SELECT count(*) FROM restores;'), '1\n1');
  t.is(await (await Catalog.open(file)).getBackup('pruned-1'), undefined);
  await catalog.forgetBackups([]);
  t.deepEqual(leftovers(file), []);
});

test('forgetBackups forgets all the given backups or none: an unknown id, a running or a succeeded backup stops it', async (t) => {
  const file = catalogFile(t);
  const catalog = await Catalog.open(file);
  for (const [id, status] of [['old', 'failed'], ['busy', 'running'], ['good', 'succeeded']] as const) await catalog.insertBackup(record({ id, status }));
  const before = fs.readFileSync(file);

  const unknown = await t.throwsAsync(catalog.forgetBackups(['old', 'nope']));
  t.is(unknown!.name, 'NotFoundError');
  t.regex(unknown!.message, /no backup with id "nope"/);

  const running = await t.throwsAsync(catalog.forgetBackups(['old', 'busy']));
  t.is(running!.name, 'CatalogError');
  t.regex(running!.message, /backup busy is running: only the rows of backups without an artifact can be forgotten/);
  t.is((running as { hint?: string }).hint, 'wait for it to finish');

  const succeeded = await t.throwsAsync(catalog.forgetBackups(['good']));
  t.regex(succeeded!.message, /backup good is succeeded/);
  t.is((succeeded as { hint?: string }).hint, 'prune it first');

  t.deepEqual(fs.readFileSync(file), before, 'the file was not replaced');
  t.deepEqual(ids(await catalog.listBackups()).sort(), ['busy', 'good', 'old']);
});

test('forgetting most rows compacts the file, which stays a sound database', async (t) => {
  const file = catalogFile(t);
  const catalog = await Catalog.open(file);
  const forgotten: string[] = [];
  for (let i = 0; i < 300; i++) {
    const id = `row-${String(i).padStart(3, '0')}`;
    await catalog.insertBackup(record({ id, status: i < 250 ? 'pruned' : 'succeeded', message: 'x'.repeat(600) }));
    if (i < 250) forgotten.push(id);
  }
  const full = fs.statSync(file).size;

  await catalog.forgetBackups(forgotten);
  // 14 pages for the 50 rows, the tables and their indexes (the journal's table among them).
  t.true(fs.statSync(file).size < full / 2.5, `${fs.statSync(file).size} bytes after forgetting, ${full} before`);
  t.is(sqlite(file, 'PRAGMA integrity_check; PRAGMA freelist_count; PRAGMA page_size; SELECT count(*) FROM backups;'), 'ok\n0\n8192\n50');
  t.is((await catalog.listBackups()).length, 50);
});

test('a catalog kept open sees what other processes wrote since, and its writes keep their rows', async (t) => {
  const file = catalogFile(t);
  const catalog = await Catalog.open(file);
  await catalog.insertBackup(record({ id: 'mine-1', startedAt: '2030-01-01T00:00:00.000Z' }));

  await writeFromAnotherProcess(file, 'theirs', 3);
  t.deepEqual(ids(await catalog.listBackups({ pvc: 'theirs' })).sort(), ['theirs-0', 'theirs-1', 'theirs-2']);

  await writeFromAnotherProcess(file, 'again', 2);
  // Saved from the file as it is now, not from the image the catalog held before.
  await catalog.insertBackup(record({ id: 'mine-2' }));
  t.is(sqlite(file, 'SELECT count(*) FROM backups;'), '7');
});

test('a file rewritten in place with the same inode, size and mtime is still told apart by its change counter', async (t) => {
  const file = catalogFile(t);
  const catalog = await Catalog.open(file);
  await catalog.insertBackup(record({ id: 'b1', message: 'first' }));
  // A whole second, so that utimes can set it back exactly (to the nanosecond).
  const mtime = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000);
  fs.utimesSync(file, mtime, mtime);
  t.is((await catalog.getBackup('b1'))!.message, 'first');
  const { ino, size, mtimeNs } = fs.statSync(file, { bigint: true });

  // Another version of the file, the same size, changed by another process's save.
  const other = path.join(path.dirname(file), 'other.db');
  fs.copyFileSync(file, other);
  await (await Catalog.open(other)).updateBackup('b1', { message: 'other' });
  const bytes = fs.readFileSync(other);
  fs.rmSync(other);
  t.is(BigInt(bytes.length), size);
  fs.writeFileSync(file, bytes, { flag: 'r+' });
  fs.utimesSync(file, mtime, mtime);
  t.like(fs.statSync(file, { bigint: true }), { ino, size, mtimeNs });

  t.is((await catalog.getBackup('b1'))!.message, 'other');
});

test('writes made together are saved together; a write that fails is undone alone', async (t) => {
  const file = catalogFile(t);
  const catalog = await Catalog.open(file);
  await catalog.insertBackup(record({ id: 'existing' }));
  const before = changeCounter(file);

  const writes = [
    ...Array.from({ length: 10 }, (_, i) => catalog.insertBackup(record({ id: `together-${i}` }))),
    catalog.updateBackup('missing', { status: 'failed' }),
    catalog.insertBackup(record({ id: 'existing' })),
    catalog.updateBackup('existing', { status: 'succeeded' }),
  ];
  const results = await Promise.allSettled(writes);
  t.deepEqual(results.map((result) => result.status), [...Array(10).fill('fulfilled'), 'rejected', 'rejected', 'fulfilled']);
  t.regex(String((results[10] as PromiseRejectedResult).reason), /no backup with id "missing"/);
  t.regex(String((results[11] as PromiseRejectedResult).reason), /UNIQUE constraint failed: backups\.id/);

  const saves = changeCounter(file) - before;
  t.true(saves >= 1 && saves <= 2, `${saves} saves for 13 writes`);
  t.is(sqlite(file, "SELECT count(*) FROM backups; SELECT status FROM backups WHERE id = 'existing';"), '11\nsucceeded');
  t.deepEqual(leftovers(file), []);
});

test('a read waits for the writes before it, and every save advances the change counter the header vouches for', async (t) => {
  const file = catalogFile(t);
  const catalog = await Catalog.open(file);
  const first = changeCounter(file);
  const insert = catalog.insertBackup(record({ id: 'just-written' }));
  t.is((await catalog.getBackup('just-written'))?.id, 'just-written');
  await insert;
  await catalog.updateBackup('just-written', { status: 'failed' });
  await catalog.updateBackup('just-written', {}); // nothing to set: no save
  t.is(changeCounter(file), first + 2);

  // The version-valid-for number equals the counter, so SQLite trusts the header's page count: it must be right.
  const header = fs.readFileSync(file);
  t.is(header.readUInt32BE(92), header.readUInt32BE(24));
  t.is(header.readUInt32BE(28) * header.readUInt16BE(16), header.length);
  t.is(sqlite(file, 'PRAGMA integrity_check;'), 'ok');
});

test('a catalog at schema version 4 gains the index that lists backups newest first and the counts of paths that vanished or changed, keeping its rows', async (t) => {
  const file = catalogFile(t);
  sqlite(file, `${MIGRATIONS.slice(0, 4).join('\n')}
    INSERT INTO backups (id, namespace, pvc, started_at, status, plugin_version) VALUES ('v4-a', 'ns', 'data', '2025-01-01T00:00:00.000Z', 'succeeded', '0.1.0');
    INSERT INTO backups (id, namespace, pvc, started_at, status, plugin_version) VALUES ('v4-b', 'ns', 'data', '2025-01-02T00:00:00.000Z', 'failed', '0.1.0');
    PRAGMA user_version = 4;`);

  const catalog = await Catalog.open(file);
  t.is(LATEST_SCHEMA_VERSION, 11);
  t.is(sqlite(file, 'PRAGMA user_version;'), '11');
  t.deepEqual(ids(await catalog.listBackups()), ['v4-b', 'v4-a']);
  t.like(await catalog.findBackup('v4-a'), { vanished: null, changed: null, filesChanged: null, bytesSent: null });
  await catalog.updateBackup('v4-b', { filesChanged: 2, filesUnmodified: 5, bytesRead: 10, bytesSent: 20 });
  t.is(sqlite(file, "SELECT files_changed, files_unmodified, bytes_read, bytes_sent FROM backups WHERE id = 'v4-b';"), '2|5|10|20');
  await catalog.updateBackup('v4-a', { vanished: 3, changed: 1 });
  t.is(sqlite(file, "SELECT vanished, changed FROM backups WHERE id = 'v4-a';"), '3|1');
  t.regex(sqlite(file, 'EXPLAIN QUERY PLAN SELECT id FROM backups ORDER BY started_at DESC, id DESC LIMIT 50;'), /USING (COVERING )?INDEX backups_by_start/);
});

test('findBackup walks the ids a prefix starts, whatever their characters', async (t) => {
  const catalog = await Catalog.open(catalogFile(t));
  for (const id of ['abcd', 'abcdé1', 'abcdé2', 'abcdz', 'abce', 'abc_x']) await catalog.insertBackup(record({ id }));

  t.is((await catalog.findBackup('abcd')).id, 'abcd', 'an exact id wins over the ids it prefixes');
  t.is((await catalog.findBackup('abcdz')).id, 'abcdz');
  t.is((await catalog.findBackup('abcdé2')).id, 'abcdé2');
  t.is((await catalog.findBackup('abc_')).id, 'abc_x');
  const ambiguous = await t.throwsAsync(catalog.findBackup('abcdé'));
  t.regex(ambiguous!.message, /matches 2 backups: abcdé1, abcdé2/);
  const none = await t.throwsAsync(catalog.findBackup('abcdf'));
  t.is(none!.name, 'NotFoundError');
});
