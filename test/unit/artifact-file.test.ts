import test from 'ava';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ArtifactFile } from '../../src/backup/artifact-file.ts';

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-artifact-file-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('writes every chunk in order, across background syncs, into a file only its owner can read', async (t) => {
  const file = path.join(tempDir(t), 'a.partial');
  // 100 MiB in odd-sized chunks crosses the 64 MiB background sync.
  const chunks = Array.from({ length: 100 }, (_, i) => randomBytes(1024 * 1024 + (i % 7)));
  await pipeline(Readable.from(chunks), new ArtifactFile(file));
  t.true(fs.readFileSync(file).equals(Buffer.concat(chunks)));
  t.is(fs.statSync(file).mode & 0o777, 0o600);
});

test('never overwrites an existing file', async (t) => {
  const file = path.join(tempDir(t), 'taken');
  fs.writeFileSync(file, 'keep me');
  const error = await t.throwsAsync(pipeline(Readable.from([Buffer.from('x')]), new ArtifactFile(file)));
  t.is((error as NodeJS.ErrnoException).code, 'EEXIST');
  t.is(fs.readFileSync(file, 'utf8'), 'keep me');
});

test('a failing source destroys it and releases the file', async (t) => {
  const file = path.join(tempDir(t), 'cut.partial');
  const source = Readable.from((async function* () {
    yield Buffer.alloc(1024, 1);
    throw new Error('cut');
  })());
  const artifact = new ArtifactFile(file);
  await t.throwsAsync(pipeline(source, artifact), { message: 'cut' });
  t.true(artifact.destroyed);
  fs.rmSync(file);
  t.false(fs.existsSync(file));
});
