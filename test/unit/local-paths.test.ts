import test from 'ava';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureCatalogLocation, ensureWritableDirectory } from '../../src/cli/local-paths.ts';

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-paths-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('missing directories are created level by level and proven writable, leaving no probe behind', (t) => {
  const dir = path.join(tempDir(t), 'a', 'b', 'c');
  ensureWritableDirectory(dir, '--output-dir');
  t.true(fs.statSync(dir).isDirectory());
  t.deepEqual(fs.readdirSync(dir), []);
});

test('procfs is refused at once with the path and the cause, where a recursive mkdir would spin forever', (t) => {
  const started = Date.now();
  const error = t.throws(() => ensureWritableDirectory('/proc/nkvm-no/deeper', '--output-dir'));
  t.regex(error!.message, /^--output-dir \/proc\/nkvm-no\/deeper: cannot create \/proc\/nkvm-no \(ENOENT/);
  t.true(Date.now() - started < 1000);
});

test('a file where a directory should be, and a directory that cannot be written, are usage errors', (t) => {
  const root = tempDir(t);
  fs.writeFileSync(path.join(root, 'file'), '');
  t.throws(() => ensureWritableDirectory(path.join(root, 'file', 'sub'), '--output-dir'), { message: /cannot use .*file\/sub \(ENOTDIR/ });
  fs.chmodSync(root, 0o755);
  const locked = path.join(root, 'locked');
  fs.mkdirSync(locked, { mode: 0o555 });
  // root ignores modes: drop to nobody to see the refusal a normal user would.
  const script = `import { ensureWritableDirectory } from ${JSON.stringify(path.resolve('src/cli/local-paths.ts'))}; try { ensureWritableDirectory(${JSON.stringify(locked)}, '--output-dir'); console.log('ok'); } catch (e) { console.log(e.message); }`;
  const asNobody = process.getuid?.() === 0 ? ['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath] : [process.execPath];
  const out = execFileSync(asNobody[0]!, [...asNobody.slice(1), '--input-type=module', '-e', script]).toString();
  t.regex(out, /the directory is not writable \(EACCES/);
});

test('a catalog path that is a FIFO is refused before anything reads it', (t) => {
  const fifo = path.join(tempDir(t), 'catalog.sqlite');
  execFileSync('mkfifo', [fifo]);
  t.throws(() => ensureCatalogLocation(fifo, '--catalog'), { message: /--catalog .*catalog\.sqlite: not a regular file/ });
});
