import test from 'ava';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ArchiveSafety, displayName, UnsafeArchiveError } from '../../src/backup/archive-safety.ts';
import { TarStreamCheck } from '../../src/backup/tar-stream.ts';
import { header as tarHeader } from './fixtures/tar-blocks.ts';

/** A header in the short form these tests use. */
function header(name: string, type = '0', linkName = '', size = 0): Buffer {
  return tarHeader({ name, type, linkName, size });
}

/** A regular file with its content. */
function file(name: string, content = 'data'): Buffer {
  return Buffer.concat([header(name, '0', '', content.length), Buffer.from(content), Buffer.alloc(-content.length & 511)]);
}

function archive(...parts: Buffer[]): Buffer {
  return Buffer.concat([...parts, Buffer.alloc(1024)]);
}

/** Walks the archive as a restore does; the names of the entries seen, and what was thrown. */
async function walk(data: Buffer): Promise<{ seen: string[]; error: unknown }> {
  const safety = new ArchiveSafety();
  const seen: string[] = [];
  const checker = new TarStreamCheck({
    onEntry: (entry) => {
      seen.push(entry.name.toString('latin1'));
      safety.check(entry);
    },
  });
  try {
    await pipeline(Readable.from([data]), checker, new Writable({ write: (_chunk, _e, cb) => cb() }));
    return { seen, error: undefined };
  } catch (error) {
    return { seen, error };
  }
}

test('names are shown on one line, with what is not printable UTF-8 escaped', (t) => {
  const shown = (bytes: string) => displayName(Buffer.from(bytes, 'latin1'));
  t.is(shown('plain/name with space'), 'plain/name with space');
  t.is(shown('new\nline\ttab\r'), 'new\\nline\\ttab\\r');
  t.is(shown('quote" backslash\\'), 'quote\\" backslash\\\\');
  t.is(shown('bad-\xff-byte'), 'bad-\\xff-byte');
  t.is(shown('\x01\x7f'), '\\u0001\\u007f');
  t.is(displayName(Buffer.from('café 😀 日本')), 'café 😀 日本');
  // A line separator and a right-to-left override would break or disguise the message.
  t.is(displayName(Buffer.from('a\u2028b\u202ec')), 'a\\u2028b\\u202ec');
  // Not UTF-8: a cut sequence, an overlong "/" and an encoded surrogate.
  t.is(shown('caf\xc3'), 'caf\\xc3');
  t.is(shown('\xc0\xaf'), '\\xc0\\xaf');
  t.is(shown('\xed\xa0\x80'), '\\xed\\xa0\\x80');
});

test('each kind of unsafe entry is rejected with a one-line reason', async (t) => {
  const cases: Array<[string, Buffer, string]> = [
    ['absolute', archive(file('/etc/cron.d/evil')), 'entry "/etc/cron.d/evil" has an absolute path'],
    ['dot-dot', archive(file('../evil')), 'entry "../evil" has a ".." path segment'],
    ['dot-dot inside', archive(file('./a/./../../evil')), 'entry "./a/./../../evil" has a ".." path segment'],
    ['through an absolute symlink', archive(header('link', '2', '/etc'), file('link/passwd')), 'entry "link/passwd" would be written through the symlink "link"'],
    ['through a symlink that stays inside', archive(header('./a', '5'), header('b', '2', 'a'), file('./b//c/d')), 'entry "./b//c/d" would be written through the symlink "b"'],
    ['directory through a symlink', archive(header('d/l', '2', '/'), header('d/l/etc/', '5')), 'entry "d/l/etc/" would be written through the symlink "d/l"'],
    [
      'through a hard link to a symlink',
      archive(header('link', '2', '/etc'), header('alias', '1', 'link'), file('alias/passwd')),
      'entry "alias/passwd" would be written through the symlink "alias"',
    ],
    ['hard link to an absolute path', archive(header('h', '1', '/etc/shadow')), 'hard link "h" points to an absolute path ("/etc/shadow")'],
    ['hard link with ..', archive(header('h', '1', 'a/../../x')), 'hard link "h" points to "a/../../x", which has a ".." path segment'],
    ['hard link through a symlink', archive(header('link', '2', '/etc'), header('h', '1', 'link/shadow')), 'hard link "h" points to "link/shadow" through the symlink "link"'],
    ['escaping symlink', archive(header('a/', '5'), header('a/l', '2', '../../etc')), 'symlink "a/l" points outside the archive root ("../../etc")'],
    ['escaping symlink at the root', archive(header('./up', '2', 'x/../..')), 'symlink "./up" points outside the archive root ("x/../..")'],
    ['character device', archive(header('dev/null', '3')), 'entry "dev/null" is a character device: restoring device nodes needs privileges the restore helper does not have'],
    ['block device', archive(header('sda', '4')), 'entry "sda" is a block device: restoring device nodes needs privileges the restore helper does not have'],
    ['GNU sparse file', archive(header('sparse', 'S')), 'entry "sparse" is of a tar entry type busybox tar cannot restore'],
    ['awkward name', archive(file('evil\n/../\xff')), 'entry "evil\\n/../\\xff" has a ".." path segment'],
  ];
  for (const [what, data, message] of cases) {
    const { error } = await walk(data);
    t.true(error instanceof UnsafeArchiveError, what);
    t.is((error as UnsafeArchiveError).message, message, what);
  }
});

test('check rejects at the first unsafe entry', async (t) => {
  const { seen, error } = await walk(archive(header('./', '5'), file('./ok'), header('./link', '2', '/etc'), file('./link/passwd'), file('../evil')));
  t.deepEqual(seen, ['./', './ok', './link', './link/passwd']);
  t.is((error as UnsafeArchiveError).entryName, './link/passwd');
});

test('a safe archive passes: the root, symlinks inside the tree and absolute ones, hard links, names that merely contain ".."', async (t) => {
  const { seen, error } = await walk(
    archive(
      header('.', '5'),
      header('./', '5'),
      header('./a/b/', '5'),
      file('./a/b/file'),
      header('./a/b/up', '2', '../../a/./b/file'),
      header('./a/sibling', '2', '../x'),
      header('./a/abs', '2', '/var/lib/data'),
      header('./a/hard', '1', './a/b/file'),
      header('./a/hard-to-link', '1', 'a/abs'),
      file('./..hidden'),
      file('./a..b/c..'),
      header('./fifo', '6'),
      // A path that ends at a symlink, not through it: busybox tar replaces the symlink.
      file('./a/abs'),
    ),
  );
  t.is(error, undefined);
  t.is(seen.length, 13);
});

test('archives made by GNU tar: absolute names (-P) and ".." (--transform) are rejected, an ordinary tree passes', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-safety-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'tree/sub'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'tree/sub/file'), 'content\n');
  fs.linkSync(path.join(dir, 'tree/sub/file'), path.join(dir, 'tree/hard'));
  fs.symlinkSync('sub/file', path.join(dir, 'tree/relative'));
  fs.symlinkSync('/etc/hostname', path.join(dir, 'tree/sub/absolute'));
  const tar = (...args: string[]) => execFileSync('tar', ['-cf', '-', ...args], { stdio: ['ignore', 'pipe', 'ignore'] });

  const absolute = await walk(tar('-P', path.join(dir, 'tree/sub/file')));
  t.regex(String(absolute.error), /has an absolute path/);
  const dotDot = await walk(tar('-C', path.join(dir, 'tree'), '--transform', 's,^sub/file$,../escaped,', 'sub/file'));
  t.is((dotDot.error as UnsafeArchiveError).message, 'entry "../escaped" has a ".." path segment');
  const ordinary = await walk(tar('-C', path.join(dir, 'tree'), '.'));
  t.is(ordinary.error, undefined);
  t.deepEqual(ordinary.seen.sort(), ['./', './hard', './relative', './sub/', './sub/absolute', './sub/file']);
});
