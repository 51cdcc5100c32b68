import test from 'ava';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TarStreamCheck } from '../../src/backup/tar-stream.ts';

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

async function check(data: Buffer, chunkSize: number): Promise<TarStreamCheck> {
  const checker = new TarStreamCheck();
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += chunkSize) chunks.push(data.subarray(i, i + chunkSize));
  const passed: Buffer[] = [];
  await pipeline(Readable.from(chunks), checker, new Writable({ write: (chunk, _e, cb) => (passed.push(chunk), cb()) }));
  if (!Buffer.concat(passed).equals(data)) throw new Error('the checker changed the stream');
  return checker;
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
