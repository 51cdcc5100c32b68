/**
 * The copy command the helper runs, run here for real by sh with this machine's tar, find, stat and
 * awk: the tar stream on stdout, tar's exit status, and after it, on stderr, the regular files
 * modified since tar began (and only those), which the copy compares with the archive.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CopyStderr } from '../../src/backup/copy-stderr.ts';
import { copyScript } from '../../src/backup/copy.ts';

function run(root: string) {
  const done = spawnSync('sh', ['-c', copyScript(root)], { maxBuffer: 64 * 1024 * 1024 });
  const stderr = new CopyStderr();
  stderr.push(done.stderr);
  stderr.end();
  return { status: done.status, stdout: done.stdout, stderr };
}

test('tar of the root on stdout, its exit status, and the files modified since it began on stderr', (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-copy-script-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.mkdirSync(path.join(root, 'sub dir'));
  fs.writeFileSync(path.join(root, 'old.txt'), 'old');
  const anHourAgo = new Date(Date.now() - 3600_000);
  fs.utimesSync(path.join(root, 'old.txt'), anHourAgo, anHourAgo);
  fs.writeFileSync(path.join(root, 'sub dir', 'new file'), 'fresh!');
  // As if written while tar ran: a little ahead, so the second tar began in cannot be later.
  const soon = new Date(Date.now() + 30_000);
  fs.utimesSync(path.join(root, 'sub dir', 'new file'), soon, soon);

  const { status, stdout, stderr } = run(root);
  t.is(status, 0);
  t.is(stdout.length % 512, 0, 'a tar stream');
  t.true(stdout.includes('./sub dir/new file'));
  t.deepEqual(stderr.otherErrors, []);
  t.deepEqual(stderr.recentFiles.map((file) => [file.name.toString(), file.size]), [['./sub dir/new file', 6]], 'only what changed since tar began');
  t.is(stderr.recentFiles[0]!.mtime, Math.floor(soon.getTime() / 1000));
});

test("the script's status is tar's, not the listing's", (t) => {
  const { status, stdout, stderr } = run('/nonexistent-nkvm-root');
  t.not(status, 0);
  t.is(stdout.length, 0);
  t.false(stderr.onlyPathComplaints, 'a missing root is no path inside the claim');
  t.deepEqual(stderr.recentFiles, []);
});
