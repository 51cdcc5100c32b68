import test, { type ExecutionContext } from 'ava';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Catalog, type CatalogOptions } from '../../src/store/catalog.ts';
import { sqlEngine } from '../../src/store/sql-engine.ts';
import { backupRecord as record } from './fixtures/backup-record.ts';

const WRITER = fileURLToPath(new URL('fixtures/catalog-writer.ts', import.meta.url));
/** Saves only append, as they do in a catalog too large to fold on every save. */
const JOURNAL_ONLY: CatalogOptions = { foldPolicy: { belowBytes: 0, journalFraction: 0 } };

function catalogFile(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-catalog-journal-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'catalog.db');
}

const journalOf = (file: string) => `${file}.journal`;

/**
 * The file alone, as a plain SQLite database: the stock sqlite3 CLI where there is one, else sql.js
 * given the file's bytes whole (the way the catalog read it before the journal).
 */
async function plainQuery(file: string, sql: string): Promise<string> {
  if (fs.existsSync('/usr/bin/sqlite3')) return execFileSync('/usr/bin/sqlite3', [file, sql], { encoding: 'utf8' }).trim();
  const SQL = await sqlEngine();
  const db = new SQL.Database(fs.readFileSync(file));
  try {
    return db.exec(sql).map((result) => result.values.map((row) => row.join('|')).join('\n')).join('\n');
  } finally {
    db.close();
  }
}

/** A fixtures/catalog-writer.ts process, driven line by line. */
function startWriter(file: string, prefix: string, count: number, mode = 'journal') {
  const child: ChildProcess = spawn(process.execPath, [WRITER, file, prefix, String(count), mode], { stdio: ['pipe', 'pipe', 'pipe'] });
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

const ids = (records: readonly { id: string }[]) => records.map((row) => row.id).sort();

test('saves append to the journal, every reader sees them, and a fold puts them in the file that sqlite3 reads', async (t) => {
  const file = catalogFile(t);
  const catalog = await Catalog.open(file, JOURNAL_ONLY);
  const empty = fs.readFileSync(file);
  await catalog.insertBackup(record({ id: 'j1', startedAt: '2025-01-01T00:00:00.000Z' }));
  await catalog.insertBackup(record({ id: 'j2', startedAt: '2025-01-02T00:00:00.000Z' }));
  await catalog.updateBackup('j1', { status: 'succeeded', bytes: 42 });

  t.deepEqual(fs.readFileSync(file), empty, 'the file is not rewritten by a save');
  t.true(fs.existsSync(journalOf(file)));
  t.is(await plainQuery(file, 'SELECT count(*) FROM backups;'), '0');
  const other = await Catalog.open(file);
  t.deepEqual((await other.listBackups()).map((row) => row.id), ['j2', 'j1']);
  t.like(await other.findBackup('j1'), { status: 'succeeded', bytes: 42 });

  await other.fold();
  t.false(fs.existsSync(journalOf(file)));
  t.is(
    await plainQuery(file, "PRAGMA integrity_check; SELECT count(*) FROM backups; SELECT status, bytes FROM backups WHERE id = 'j1'; SELECT folded_seq FROM catalog_journal;"),
    'ok\n2\nsucceeded|42\n3',
  );
  // After the fold, saves go on from it.
  await catalog.insertBackup(record({ id: 'j3' }));
  t.deepEqual(ids(await other.listBackups()), ['j1', 'j2', 'j3']);
  await catalog.fold();
  t.is(await plainQuery(file, 'SELECT count(*) FROM backups; SELECT folded_seq FROM catalog_journal;'), '3\n4');
});

test('a writer killed between its appends and a fold loses none of the rows it was told were saved', async (t) => {
  const file = catalogFile(t);
  const writer = startWriter(file, 'killed', 0);
  t.is(await writer.nextLine(), 'ready', writer.stderr());
  writer.go();
  const saved: string[] = [];
  while (saved.length < 5) saved.push((await writer.nextLine()).replace(/^inserted /, ''));
  writer.child.kill('SIGKILL');
  t.deepEqual(await writer.exited, [null, 'SIGKILL']);

  t.is(await plainQuery(file, 'SELECT count(*) FROM backups;'), '0', 'nothing folded yet');
  const catalog = await Catalog.open(file);
  const rows = ids(await catalog.listBackups());
  for (const id of saved) t.true(rows.includes(id), id);
  await catalog.fold();
  t.is(await plainQuery(file, 'PRAGMA integrity_check; SELECT count(*) FROM backups;'), `ok\n${rows.length}`);
  t.deepEqual(fs.readdirSync(path.dirname(file)).sort(), ['catalog.db']);
});

test('a journal left behind by a fold cut short is not applied twice', async (t) => {
  const file = catalogFile(t);
  const catalog = await Catalog.open(file, JOURNAL_ONLY);
  for (const id of ['f1', 'f2']) await catalog.insertBackup(record({ id }));
  const journal = fs.readFileSync(journalOf(file));
  await catalog.fold();
  // The crash: the file renamed with the rows in it, the journal not yet removed.
  fs.writeFileSync(journalOf(file), journal);

  t.deepEqual(ids(await (await Catalog.open(file)).listBackups()), ['f1', 'f2']);
  await catalog.insertBackup(record({ id: 'f3' })); // appends after the folded records, which it skips
  await catalog.updateBackup('f1', { status: 'failed' });
  t.deepEqual(ids(await catalog.listBackups()), ['f1', 'f2', 'f3']);
  await catalog.fold();
  t.is(await plainQuery(file, "SELECT count(*) FROM backups; SELECT status FROM backups WHERE id = 'f1';"), '3\nfailed');
});

test('a torn last record is ignored by readers and cut off by the next save', async (t) => {
  const file = catalogFile(t);
  const catalog = await Catalog.open(file, JOURNAL_ONLY);
  await catalog.insertBackup(record({ id: 't1' }));
  const intact = fs.statSync(journalOf(file)).size;
  await catalog.insertBackup(record({ id: 't2' }));
  const whole = fs.readFileSync(journalOf(file));

  // The append of t2 cut short: only part of its record reached the journal.
  fs.writeFileSync(journalOf(file), whole.subarray(0, intact + Math.floor((whole.length - intact) / 2)));
  t.deepEqual(ids(await catalog.listBackups()), ['t1']);
  // Its length intact but its bytes not: the checksum tells.
  const flipped = Buffer.from(whole);
  flipped[flipped.length - 3]! ^= 0xff;
  fs.writeFileSync(journalOf(file), flipped);
  t.deepEqual(ids(await catalog.listBackups()), ['t1']);

  await catalog.insertBackup(record({ id: 't3' }));
  t.deepEqual(ids(await (await Catalog.open(file)).listBackups()), ['t1', 't3']);
  t.true(fs.statSync(journalOf(file)).size < whole.length + 100, 'the torn record was cut off, not kept before the new one');
  await catalog.fold();
  t.is(await plainQuery(file, 'PRAGMA integrity_check; SELECT group_concat(id) FROM (SELECT id FROM backups ORDER BY id);'), 'ok\nt1,t3');
});

test('two processes appending at the same time both land', async (t) => {
  const file = catalogFile(t);
  await Catalog.open(file);
  const writers = ['a', 'b'].map((prefix) => startWriter(file, prefix, 30));
  for (const writer of writers) t.is(await writer.nextLine(), 'ready', writer.stderr());
  for (const writer of writers) writer.go();
  for (const writer of writers) t.deepEqual(await writer.exited, [0, null], writer.stderr());

  t.true(fs.existsSync(journalOf(file)));
  const catalog = await Catalog.open(file);
  const rows = new Set(ids(await catalog.listBackups()));
  t.is(rows.size, 60);
  for (const prefix of ['a', 'b']) for (let i = 0; i < 30; i++) t.true(rows.has(`${prefix}-${i}`), `${prefix}-${i}`);
  await catalog.fold();
  t.is(await plainQuery(file, 'PRAGMA integrity_check; SELECT count(*) FROM backups;'), 'ok\n60');
});

test('readers that meet folds under way still see every row saved before they began', async (t) => {
  const file = catalogFile(t);
  const writer = await Catalog.open(file, { foldPolicy: { belowBytes: Number.MAX_SAFE_INTEGER, journalFraction: 0 } });
  const reader = await Catalog.open(file);
  let saved = 0;
  let done = false;
  const writing = (async () => {
    for (let i = 0; i < 60; i++) {
      await writer.insertBackup(record({ id: `r-${String(i).padStart(3, '0')}` }));
      saved = i + 1;
    }
    done = true;
  })();
  while (!done) {
    const before = saved;
    const seen = (await reader.listBackups()).length;
    t.true(seen >= before, `${seen} rows seen, ${before} saved before the read`);
    await sleep(1);
  }
  await writing;
  t.is((await reader.listBackups()).length, 60);
});

test('the journal of another file (one moved aside) is not applied to a new one', async (t) => {
  const file = catalogFile(t);
  const catalog = await Catalog.open(file, JOURNAL_ONLY);
  await catalog.insertBackup(record({ id: 'old-file' }));
  const foreign = fs.readFileSync(journalOf(file));
  fs.rmSync(file);
  fs.rmSync(journalOf(file));

  // A new file (a new id) beside the journal of the one that was moved aside.
  const fresh = await Catalog.open(file, JOURNAL_ONLY);
  fs.writeFileSync(journalOf(file), foreign);
  t.deepEqual(await fresh.listBackups(), []);
  await fresh.insertBackup(record({ id: 'new-file' }));
  t.deepEqual(ids(await fresh.listBackups()), ['new-file']);
});

test('the save that takes the journal past its bound folds it, whatever the policy', async (t) => {
  const file = catalogFile(t);
  const catalog = await Catalog.open(file, JOURNAL_ONLY);
  let saves = 0;
  while (fs.existsSync(journalOf(file)) || saves === 0) {
    await catalog.insertBackup(record({ id: `big-${saves}`, message: 'x'.repeat(40_000) }));
    saves++;
    t.true(saves < 20, 'still no fold after 800 KB of records');
  }
  t.true(saves > 3, `folded after ${saves} saves`);
  t.is(await plainQuery(file, 'SELECT count(*) FROM backups;'), String(saves));
});

test('a writer killed at any moment of a catalog that folds every few saves loses no row it was told was saved', async (t) => {
  const file = catalogFile(t);
  // Past 1 MiB: saves append, and fold when the journal reaches 1/256 of the file (every few saves).
  const catalog = await Catalog.open(file);
  for (let i = 0; i < 30; i++) await catalog.insertBackup(record({ id: `filler-${i}`, message: 'x'.repeat(40_000) }));
  t.true(fs.statSync(file).size > 1024 * 1024);
  const saved: string[] = [];
  for (let round = 0; round < 4; round++) {
    const writer = startWriter(file, `round${round}`, 0, 'default');
    t.is(await writer.nextLine(), 'ready', writer.stderr());
    writer.go();
    const deadline = Date.now() + 50 + Math.random() * 150;
    while (Date.now() < deadline) saved.push((await writer.nextLine()).replace(/^inserted /, ''));
    writer.child.kill('SIGKILL');
    t.deepEqual(await writer.exited, [null, 'SIGKILL']);

    t.is(await plainQuery(file, 'PRAGMA integrity_check;'), 'ok', `round ${round}`);
    const rows = new Set(ids(await (await Catalog.open(file)).listBackups()));
    for (const id of saved) t.true(rows.has(id), `round ${round}: ${id}`);
  }
  await catalog.fold();
  t.is(Number(await plainQuery(file, "SELECT count(*) FROM backups WHERE id LIKE 'round%';")) >= saved.length, true);
  t.deepEqual(fs.readdirSync(path.dirname(file)).sort(), ['catalog.db']);
});
