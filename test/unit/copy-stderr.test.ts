import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ArchivedFiles } from '../../src/backup/archived-files.ts';
import { CopyStderr, describeChanged, describeUnreadable, describeVanished, RECENT_FILES_BEGIN, RECENT_FILES_END } from '../../src/backup/copy-stderr.ts';

function read(text: string, chunkSize = text.length): CopyStderr {
  const stderr = new CopyStderr();
  for (let i = 0; i < text.length; i += chunkSize) stderr.push(Buffer.from(text.slice(i, i + chunkSize), 'latin1'));
  stderr.end();
  return stderr;
}

test("busybox tar's refusals are counted, their paths kept, however stderr is chunked", (t) => {
  const text = [
    'tar: ./locked: Permission denied',
    "tar: can't open './d/secret': Permission denied",
    "tar: can't open './a b/it''s': Permission denied",
    'tar: error exit delayed from previous errors',
    '',
  ].join('\n');
  for (const size of [1, 7, text.length]) {
    const stderr = read(text, size);
    t.deepEqual(stderr.unreadable.summary, { count: 3, sample: ['locked', 'd/secret', "a b/it''s"] });
    t.true(stderr.onlyPathComplaints);
  }
});

test('paths that vanished between the listing and the read, in busybox and GNU wording', (t) => {
  const busybox = read([
    'tar: ./z/.n: No such file or directory', // lstat of a listed entry
    "tar: can't open './z/.m': No such file or directory", // open of a listed file
    'tar: ./gone-dir: No such file or directory', // opendir of a listed directory
    'tar: ./was-dir: Not a directory', // a directory replaced by a file
    'tar: ./link: cannot read link: No such file or directory',
    'tar: error exit delayed from previous errors',
  ].join('\n'));
  t.deepEqual(busybox.vanished.summary, { count: 5, sample: ['z/.n', 'z/.m', 'gone-dir', 'was-dir', 'link'] });
  t.true(busybox.onlyPathComplaints);
  const gnu = read([
    'tar: ./a: Cannot stat: No such file or directory',
    'tar: ./b: File removed before we read it',
    'tar: ./c: Cannot open: No such file or directory',
    'tar: ./d: Cannot savedir: No such file or directory',
    'tar: ./log: file changed as we read it',
    'tar: ./db: File shrank by 4096 bytes; padding with zeros',
    'tar: Exiting with failure status due to previous errors',
  ].join('\n'));
  t.deepEqual(gnu.vanished.summary, { count: 4, sample: ['a', 'b', 'c', 'd'] });
  t.deepEqual(gnu.changed.summary, { count: 2, sample: ['log', 'db'] });
  t.deepEqual(gnu.changedByTar, ['./log', './db']);
  t.true(gnu.onlyPathComplaints);
});

test('anything unrecognised stays fatal, and so do lines about paths outside the claim', (t) => {
  const mixed = read("tar: ./a: No such file or directory\ntar: ./b: Input/output error\n");
  t.is(mixed.vanished.count, 1);
  t.false(mixed.onlyPathComplaints);
  t.deepEqual(mixed.otherErrors, ['tar: ./b: Input/output error']);
  // tar's own directory is not a path inside the claim: not a vanished file, not an unreadable one.
  for (const line of ["tar: can't change directory to '/data': No such file or directory", "tar: can't change directory to '/data': Permission denied", 'tar: /data: Cannot chdir: No such file or directory']) {
    const stderr = read(`${line}\n`);
    t.false(stderr.onlyPathComplaints, line);
    t.deepEqual(stderr.otherErrors, [line]);
  }
  t.false(read('sh: tar: not found\n').onlyPathComplaints);
  t.false(read('').onlyPathComplaints, 'a failure with no complaint is not explained by one');
  t.false(read('tar: write error: No space left on device\n').onlyPathComplaints);
});

test("busybox's short read (a file shrank under it) is fatal even beside path complaints", (t) => {
  const stderr = read('tar: ./a: No such file or directory\ntar: short read\n');
  t.true(stderr.shortRead);
  t.false(stderr.onlyPathComplaints);
  t.is(stderr.complaintText, 'tar: short read');
});

test("the helper's listing of recent files is read apart, names with newlines and bytes that are not UTF-8 included", (t) => {
  const odd = Buffer.from('./caf\xe9', 'latin1');
  const text = Buffer.concat([
    Buffer.from(`tar: ./x: No such file or directory\n${RECENT_FILES_BEGIN}\n1700000000 12 ./log\n1700000001 3 ./two\nlines\n1700000002 5 `),
    odd,
    Buffer.from(`\n${RECENT_FILES_END}\n`),
  ]).toString('latin1');
  for (const size of [1, 5, text.length]) {
    const stderr = read(text, size);
    t.deepEqual(stderr.otherErrors, [], 'the listing is no complaint');
    t.is(stderr.vanished.count, 1);
    t.deepEqual(stderr.recentFiles.map((file) => [file.mtime, file.size, file.name.toString('latin1')]), [
      [1700000000, 12, './log'],
      [1700000001, 3, './two\nlines'],
      [1700000002, 5, odd.toString('latin1')],
    ]);
  }
});

test('archived files: a recent file with the size and mtime of its header is the same, another is changed, an unknown one absent', (t) => {
  const archived = new ArchivedFiles();
  for (let i = 0; i < 5000; i++) archived.add(Buffer.from(`./dir/file-${i}`), i, 1_700_000_000 + i);
  t.is(archived.count, 5000);
  const file = (name: string, size: number, mtime: number) => ({ name: Buffer.from(name), size, mtime });
  t.deepEqual(
    archived.compare([file('./dir/file-42', 42, 1_700_000_042), file('./dir/file-42', 43, 1_700_000_042), file('./dir/file-42', 42, 1_700_000_050), file('./dir/file-5000', 1, 1)]),
    ['same', 'changed', 'changed', 'absent'],
    'the same; another size; another mtime; created behind tar',
  );
  archived.add(Buffer.from('./dir/file-42'), 99, 1);
  t.deepEqual(archived.compare([file('./dir/file-42', 99, 1)]), ['same'], 'a name added again: its last state counts');
  archived.dispose();
});

test('archived files: a claim of many files goes to a scratch file, removed at once, and is compared from it', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-archived-test-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const archived = new ArchivedFiles(dir);
  const files = 50_000;
  for (let i = 0; i < files; i++) archived.add(Buffer.from(`./d/f${i}`), i, 1_700_000_000 + i);
  // Added again after its first state went to the file: the later one, still in memory, counts.
  archived.add(Buffer.from('./d/f7'), 1, 1);
  t.is(archived.count, files + 1);
  t.deepEqual(fs.readdirSync(dir), [], 'no file is left behind, even before dispose');
  const file = (i: number, size = i, mtime = 1_700_000_000 + i) => ({ name: Buffer.from(`./d/f${i}`), size, mtime });
  t.deepEqual(
    archived.compare([file(0), file(12_345), file(12_345, 5), file(files - 1), file(7), file(7, 1, 1), file(files)]),
    ['same', 'same', 'changed', 'same', 'changed', 'same', 'absent'],
  );
  archived.dispose();
  archived.dispose();
  // No writable directory for the scratch file: the batches stay in memory, and the answers are the same.
  const inMemory = new ArchivedFiles(path.join(dir, 'missing'));
  for (let i = 0; i < files; i++) inMemory.add(Buffer.from(`./d/f${i}`), i, 1_700_000_000 + i);
  inMemory.add(Buffer.from('./d/f7'), 1, 1);
  t.is(inMemory.count, files + 1);
  t.deepEqual(
    inMemory.compare([file(0), file(12_345), file(12_345, 5), file(files - 1), file(7), file(7, 1, 1), file(files)]),
    ['same', 'same', 'changed', 'same', 'changed', 'same', 'absent'],
  );
  inMemory.dispose();
});

test('the reports name the first few paths and how many more', (t) => {
  const stderr = read(Array.from({ length: 8 }, (_, i) => `tar: can't open './f${i}': Permission denied\n`).join(''));
  t.is(describeUnreadable(stderr.unreadable.summary, 'uid 1000 (pod web-0)'), '8 paths could not be read as uid 1000 (pod web-0): f0, f1, f2, f3, f4 (and 3 more)');
  t.is(describeVanished({ count: 1, sample: ['z/.n'] }), '1 path vanished while the backup ran, so are not in it: z/.n');
  t.is(describeChanged({ count: 2, sample: ['log', 'db'] }), '2 paths changed while the backup ran, kept as tar read it: log, db');
});
