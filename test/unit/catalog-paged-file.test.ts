import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { SqlJsStatic } from 'sql.js';
import { openPaged } from '../../src/store/lazy-file.ts';
import { sqlEngine } from '../../src/store/sql-engine.ts';

let SQL: SqlJsStatic;
test.before(async () => {
  SQL = await sqlEngine();
});

/** A 20,000-row database of about 9 MiB in 8 KiB pages, written to a file. */
function bigFile(t: { teardown: (fn: () => void) => void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-paged-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'big.db');
  const db = new SQL.Database();
  db.exec(`PRAGMA page_size = 8192;
    CREATE TABLE t (id TEXT PRIMARY KEY, v TEXT);
    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 19999)
    INSERT INTO t SELECT printf('%08x', (i * 2654435761) % 4294967296), hex(randomblob(200)) FROM n;`);
  fs.writeFileSync(file, db.export());
  db.close();
  return file;
}

function openFile(file: string) {
  const fd = fs.openSync(file, 'r');
  const header = Buffer.alloc(100);
  fs.readSync(fd, header, 0, 100, 0);
  return { fd, ...openPaged(SQL, fd, fs.fstatSync(fd).size, header) };
}

test('sql.js reads only the pages a lookup needs, and keeps what it writes in memory, page by page', (t) => {
  const file = bigFile(t);
  const before = fs.readFileSync(file);
  const { fd, db, file: paged } = openFile(file);
  t.teardown(() => fs.closeSync(fd));
  let bytesRead = 0;
  const subarray = paged.subarray.bind(paged);
  paged.subarray = (start, end) => {
    bytesRead += end - start;
    return subarray(start, end);
  };

  const id = db.exec('SELECT id FROM t WHERE id >= ? ORDER BY id LIMIT 1', ['80000000'])[0]!.values[0]![0];
  t.true(typeof id === 'string');
  t.true(bytesRead <= 8 * 8192, `${bytesRead} bytes read of ${before.length}`);

  db.exec("BEGIN; INSERT INTO t VALUES ('zzzzzzzz', 'new'); UPDATE t SET v = 'changed' WHERE id = (SELECT min(id) FROM t); COMMIT;");
  t.true(paged.writtenPages.has(0), 'the header page, whose change counter SQLite advances');
  t.true(paged.writtenPages.size < 10, `${paged.writtenPages.size} pages written`);
  t.deepEqual(fs.readFileSync(file), before, 'the file itself is untouched');

  // The file with the written pages over it is the database with the changes in it.
  const merged = Buffer.alloc(paged.size);
  before.copy(merged);
  for (const [page, bytes] of paged.writtenPages) merged.set(bytes.subarray(0, Math.min(paged.pageSize, paged.size - page * paged.pageSize)), page * paged.pageSize);
  db.close();
  const check = new SQL.Database(merged);
  t.is(check.exec('PRAGMA integrity_check')[0]!.values[0]![0], 'ok');
  t.deepEqual(check.exec("SELECT count(*), sum(v = 'changed'), sum(id = 'zzzzzzzz') FROM t")[0]!.values[0], [20001, 1, 1]);
  check.close();
});
