import test from 'ava';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { data, gnuLong, header, pax } from './fixtures/tar-blocks.ts';
import { TarStreamCheck, type TarEntry, type TarSummary } from '../../src/backup/tar-stream.ts';

/** A real archive made by GNU tar from a small tree. */
function makeArchive(t: { teardown(fn: () => void): void }): Buffer {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-tar-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'a/b'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'a/b/file.bin'), Buffer.alloc(70_000, 7));
  fs.writeFileSync(path.join(dir, 'empty'), '');
  fs.writeFileSync(path.join(dir, `${'long-name-'.repeat(12)}.txt`), 'x');
  fs.symlinkSync('a/b/file.bin', path.join(dir, 'link'));
  return execFileSync('tar', ['-cf', '-', '-C', dir, '.'], { maxBuffer: 10 * 1024 * 1024 });
}

async function check(data: Buffer, chunkSize: number): Promise<{ summary: TarSummary; entries: TarEntry[] }> {
  const entries: TarEntry[] = [];
  const checker = new TarStreamCheck({ onEntry: (entry) => entries.push(entry) });
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += chunkSize) chunks.push(data.subarray(i, i + chunkSize));
  const passed: Buffer[] = [];
  await pipeline(Readable.from(chunks), checker, new Writable({ write: (chunk, _e, cb) => (passed.push(chunk), cb()) }));
  if (!Buffer.concat(passed).equals(data)) throw new Error('the checker changed the stream');
  return { summary: checker.summary, entries };
}

test('a complete archive is recognised, counted like `tar -t`, and passed through unchanged', async (t) => {
  const archive = makeArchive(t);
  const listed = execFileSync('tar', ['-tf', '-'], { input: archive }).toString().trim().split('\n');
  for (const chunkSize of [1, 100, 512, 4096, archive.length]) {
    const { summary } = await check(archive, chunkSize);
    t.true(summary.complete, `chunk size ${chunkSize}`);
    t.is(summary.entries, listed.length);
    t.is(summary.regularFiles, 3);
    t.is(summary.directories, 3);
    t.is(summary.contentBytes, 70_001);
    t.is(summary.bytes, archive.length);
  }
});

test('an archive cut short anywhere is not complete', async (t) => {
  const archive = makeArchive(t);
  // The last entry ends at the block after the last non-zero byte; one zero block after it is not
  // yet the end-of-archive marker.
  let lastNonZero = archive.length - 1;
  while (archive[lastNonZero] === 0) lastNonZero -= 1;
  const endOfEntries = Math.ceil((lastNonZero + 1) / 512) * 512;
  // Cut inside a header, inside data, at the end of the last entry, and after just one zero block.
  for (const cut of [600, 2048, 40_000, endOfEntries, endOfEntries + 512]) {
    const { summary } = await check(archive.subarray(0, cut), 777);
    t.false(summary.complete, `cut at ${cut}`);
  }
  t.true((await check(archive.subarray(0, endOfEntries + 1024), 777)).summary.complete);
});

test('a stream that is not tar fails loudly', async (t) => {
  const garbage = Buffer.alloc(2048, 0x41);
  await t.throwsAsync(check(garbage, 512), { message: /corrupt tar header at byte 0/ });
});

const LONG_NAME = `${'long-name-'.repeat(14)}1234567890`;
const DEEP_FILE = `nested/deeper/deepest/${'n'.repeat(90)}`;
/** 2001-02-03T04:05:06.789Z: a fractional mtime, which every format stores as whole seconds. */
const MTIME = 981173106.789;

/** Paths as bytes: names need not be UTF-8. */
function under(dir: Buffer, name: Buffer | string): Buffer {
  return Buffer.concat([dir, Buffer.from('/'), Buffer.from(name)]);
}

/**
 * A tree with every kind of entry a claim holds, awkward names, owners and modes. With `long`, also
 * a 150-character name and a symlink target over 100 bytes (which plain ustar cannot store).
 */
function makeTree(t: { teardown(fn: () => void): void }, long: boolean): Buffer {
  const dir = Buffer.from(fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-tree-')));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const at = (name: Buffer | string) => under(dir, name);
  fs.mkdirSync(at('nested/deeper/deepest'), { recursive: true });
  fs.mkdirSync(at('empty-dir'));
  fs.writeFileSync(at('nested/deeper/deepest/file.txt'), 'deep\n');
  fs.writeFileSync(at(DEEP_FILE), 'a path over 100 bytes\n');
  fs.writeFileSync(at('zero'), '');
  for (const name of ['with space', 'new\nline', Buffer.from('bad-\xff-byte', 'latin1'), '-leading-dash']) fs.writeFileSync(at(name), 'named\n');
  for (const [name, mode, owner] of [['private', 0o600, 1000], ['nobody', 0o755, 65534], ['setuid', 0o4755, 0]] as const) {
    fs.writeFileSync(at(name), `${name}\n`);
    fs.chownSync(at(name), owner, owner);
    fs.chmodSync(at(name), mode);
  }
  fs.writeFileSync(at('hard-a'), 'linked\n');
  fs.linkSync(at('hard-a'), at('hard-b'));
  fs.symlinkSync('nested/deeper/deepest/file.txt', at('relative-link'));
  fs.symlinkSync('/etc/hostname', at('nested/absolute-link'));
  fs.lchownSync(at('nested/absolute-link'), 1000, 65534);
  execFileSync('mkfifo', [at('fifo').toString()]);
  if (long) {
    fs.writeFileSync(at(LONG_NAME), 'long\n');
    fs.symlinkSync(`./${DEEP_FILE}`, at('long-target-link'));
  }
  walk(dir).forEach((name, i) => fs.lutimesSync(at(name), MTIME + i, MTIME + i));
  return dir;
}

/** Every path in the tree, "." first, as bytes relative to it. */
function walk(dir: Buffer, relative: Buffer = Buffer.from('.')): Buffer[] {
  const paths = [relative];
  if (fs.lstatSync(under(dir, relative)).isDirectory()) {
    for (const child of fs.readdirSync(under(dir, relative), { encoding: 'buffer' })) paths.push(...walk(dir, under(relative, child)));
  }
  return paths;
}

/** What each entry should say, from the source tree: the first name of a hard-linked file is the file, later ones link to it. */
function expectedEntries(dir: Buffer, entries: TarEntry[], nanoseconds: boolean): TarEntry[] {
  const firstName = new Map<bigint, Buffer>();
  return entries.map(({ name }) => {
    const file = under(dir, name);
    const stat = fs.lstatSync(file, { bigint: true });
    const linkedTo = stat.isFile() ? firstName.get(stat.ino) : undefined;
    if (stat.isFile() && !linkedTo) firstName.set(stat.ino, name);
    const type = stat.isDirectory() ? 'directory' : stat.isSymbolicLink() ? 'symlink' : stat.isFIFO() ? 'fifo' : linkedTo ? 'hardlink' : 'file';
    return {
      name,
      linkName: stat.isSymbolicLink() ? fs.readlinkSync(file, { encoding: 'buffer' }) : (linkedTo ?? Buffer.alloc(0)),
      type,
      mode: Number(stat.mode & 0o7777n),
      uid: Number(stat.uid),
      gid: Number(stat.gid),
      size: type === 'file' ? Number(stat.size) : 0,
      mtime: Number(stat.mtimeNs / 1_000_000_000n),
      // Only pax keeps the fraction of a second.
      mtimeNs: nanoseconds ? stat.mtimeNs : (stat.mtimeNs / 1_000_000_000n) * 1_000_000_000n,
      devMajor: 0,
      devMinor: 0,
    };
  });
}

/** A name as GNU tar lists it with --quoting-style=escape in the C locale. */
function gnuEscaped(name: Buffer): string {
  let text = '';
  for (const byte of name) {
    if (byte === 0x5c) text += '\\\\';
    else if (byte === 0x0a) text += '\\n';
    else text += byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : `\\${byte.toString(8).padStart(3, '0')}`;
  }
  return text;
}

const ARCHIVERS = [
  { format: 'GNU tar --format=gnu', long: true, create: (dir: string) => execFileSync('tar', ['--format=gnu', '-cf', '-', '-C', dir, '.']) },
  { format: 'GNU tar --format=pax', long: true, create: (dir: string) => execFileSync('tar', ['--format=pax', '-cf', '-', '-C', dir, '.']) },
  { format: 'GNU tar --format=ustar', long: false, create: (dir: string) => execFileSync('tar', ['--format=ustar', '-cf', '-', '-C', dir, '.']) },
  // What a backup is made with.
  { format: 'busybox tar', long: true, create: (dir: string) => execFileSync('/bin/busybox', ['tar', '-c', '-f', '-', '-C', dir, '.']) },
];

for (const { format, long, create } of ARCHIVERS) {
  test(`entries of a ${format} archive match the source files, in archive order, whatever the chunking`, async (t) => {
    const dir = makeTree(t, long);
    const archive = create(dir.toString());
    const { entries } = await check(archive, archive.length);
    const listed = execFileSync('tar', ['-t', '--quoting-style=escape', '-f', '-'], { input: archive, env: { ...process.env, LC_ALL: 'C' } }).toString().split('\n').slice(0, -1);
    t.deepEqual(entries.map((entry) => gnuEscaped(entry.name)), listed);
    // Every path of the tree, once.
    const normalized = (name: Buffer) => path.normalize(name.toString('latin1')).replace(/(.)\/$/, '$1');
    t.deepEqual(entries.map(({ name }) => normalized(name)).sort(), walk(dir).map(normalized).sort());
    t.deepEqual(entries, expectedEntries(dir, entries, format.includes('pax')));
    for (const chunkSize of [1, 511, 512, 4096]) t.deepEqual((await check(archive, chunkSize)).entries, entries, `chunk size ${chunkSize}`);
  });
}

test('plain ustar stores a path over 100 bytes with its prefix field', (t) => {
  const archive = ARCHIVERS[2]!.create(makeTree(t, false).toString());
  const headers = Array.from({ length: archive.length / 512 }, (_, i) => archive.subarray(i * 512, (i + 1) * 512));
  t.true(headers.some((header) => header.toString('latin1', 257, 263) === 'ustar\0' && header[345] !== 0));
});

const END = Buffer.alloc(1024);

test('metadata entries describe the next entry only; the last long name wins; any prefix is joined', async (t) => {
  const archive = Buffer.concat([
    pax({ path: 'ignored-global', uid: '7' }, 'g'),
    pax({ path: 'renamed', uid: '3000000', gid: '3000001', mtime: '1234567890.75', size: '3', atime: '1' }),
    header({ name: 'original', size: 3 }),
    data('abc'),
    header({ name: 'plain', uid: 42 }),
    gnuLong('L', 'from-L'),
    pax({ path: 'from-pax' }),
    header({ name: 'short' }),
    pax({ path: 'from-pax' }),
    gnuLong('L', 'from-L'),
    header({ name: 'short' }),
    gnuLong('K', 'long/target'),
    header({ name: 'link', type: '2', linkName: 'long/tar' }),
    pax({ linkpath: 'a/longer/target' }),
    header({ name: 'hard', type: '1', linkName: 'a/longer' }),
    header({ name: 'name', prefix: 'pre/fix' }),
    header({ name: 'name', prefix: 'gnu-magic', magic: 'ustar  \0' }),
    END,
  ]);
  for (const chunkSize of [1, 511, 512, archive.length]) {
    const { entries, summary } = await check(archive, chunkSize);
    t.deepEqual(
      entries.map(({ name, linkName, type, uid, gid, size, mtime }) => ({ name: name.toString(), linkName: linkName.toString(), type, uid, gid, size, mtime })),
      [
        { name: 'renamed', linkName: '', type: 'file', uid: 3000000, gid: 3000001, size: 3, mtime: 1234567890 },
        { name: 'plain', linkName: '', type: 'file', uid: 42, gid: 0, size: 0, mtime: 1_000_000_000 },
        { name: 'from-pax', linkName: '', type: 'file', uid: 0, gid: 0, size: 0, mtime: 1_000_000_000 },
        { name: 'from-L', linkName: '', type: 'file', uid: 0, gid: 0, size: 0, mtime: 1_000_000_000 },
        { name: 'link', linkName: 'long/target', type: 'symlink', uid: 0, gid: 0, size: 0, mtime: 1_000_000_000 },
        { name: 'hard', linkName: 'a/longer/target', type: 'hardlink', uid: 0, gid: 0, size: 0, mtime: 1_000_000_000 },
        { name: 'pre/fix/name', linkName: '', type: 'file', uid: 0, gid: 0, size: 0, mtime: 1_000_000_000 },
        // As busybox tar, which restores, reads it.
        { name: 'gnu-magic/name', linkName: '', type: 'file', uid: 0, gid: 0, size: 0, mtime: 1_000_000_000 },
      ],
      `chunk size ${chunkSize}`,
    );
    t.is(summary.entries, 8);
    t.true(summary.complete);
  }
});

test('headers that tar readers (busybox tar above all) would read differently are refused', async (t) => {
  const refused: Array<[string, Buffer, RegExp]> = [
    ['nameless', Buffer.concat([header({ name: '', size: 512 }), header({ name: 'hidden' }), END]), /tar header at byte 0 refused: it has no name/],
    ['pax size', Buffer.concat([pax({ size: '0' }), header({ name: 'file', size: 512 }), data('x'.repeat(512)), END]), /tar header at byte 1024 refused: its pax size disagrees/],
    ['pax linkpath', Buffer.concat([pax({ linkpath: 'elsewhere' }), header({ name: 'l', type: '2', linkName: '../../etc' }), END]), /its pax linkpath disagrees with its link name/],
    ['file with a link name', Buffer.concat([header({ name: 'f', linkName: 'target' }), END]), /a regular file with a link name, which busybox tar extracts as a hard link/],
    ['file named like a directory', Buffer.concat([header({ name: 'dir/', size: 512 }), data('x'), END]), /a regular file whose name ends in "\/"/],
    ['huge metadata', Buffer.concat([header({ name: 'PaxHeaders/x', type: 'x', size: 0x100000 }), END]), /its 'x' metadata of 1048576 bytes is over the limit of 1048575/],
    ['malformed pax', Buffer.concat([header({ name: 'PaxHeaders/x', type: 'x', size: 12 }), data('99 path=x\n\n'), header({ name: 'f' }), END]), /pax header at byte 0 refused: malformed pax record/],
    ['bad number', Buffer.concat([header({ name: 'f', uid: '-1' }), END]), /tar header at byte 0 refused: bad number "-1" as its uid/],
  ];
  for (const [what, archive, message] of refused) {
    for (const chunkSize of [1, archive.length]) await t.throwsAsync(check(archive, chunkSize), { message }, `${what}, chunk size ${chunkSize}`);
  }
});

test('feed() reports entries and file contents (padding left out) synchronously, with pax mtimes to the nanosecond', (t) => {
  const archive = Buffer.concat([
    pax({ mtime: '1234567890.123456789' }),
    header({ name: 'a', size: 5 }),
    data('hello'),
    header({ name: 'd/', type: '5' }),
    header({ name: 'b', size: 600 }),
    data('x'.repeat(600)),
    Buffer.alloc(1024),
  ]);
  for (const piece of [1, 7, 512, archive.length]) {
    const events: string[] = [];
    const checker = new TarStreamCheck({
      onEntry: (entry) => events.push(`entry ${entry.name.toString()} ${entry.mtimeNs}`),
      onData: (bytes) => events.push(`data ${bytes.length}`),
    });
    for (let offset = 0; offset < archive.length; offset += piece) checker.feed(archive.subarray(offset, offset + piece));
    t.true(checker.summary.complete);
    const merged = events.reduce<string[]>((out, event) => {
      const last = out.at(-1);
      if (last?.startsWith('data ') && event.startsWith('data ')) out[out.length - 1] = `data ${Number(last.slice(5)) + Number(event.slice(5))}`;
      else out.push(event);
      return out;
    }, []);
    t.deepEqual(merged, ['entry a 1234567890123456789', 'data 5', 'entry d/ 1000000000000000000', 'entry b 1000000000000000000', 'data 600'], `pieces of ${piece}`);
  }
});
