import test from 'ava';
import { artifactKindOf, compressionOf } from '../../src/backup/archive.ts';
import { artifactPath } from '../../src/backup/artifacts.ts';

test('a Block claim\'s image is named .img.<compression>, a tar .tar.<compression>, and both read back', (t) => {
  const at = new Date('2026-11-25T10:00:00.123Z');
  const image = artifactPath('/b', 'vm', 'disk', at, 'abc', 'zstd', 'image');
  t.is(image, '/b/vm/disk/20261125T100000Z-abc.img.zst');
  t.is(artifactPath('/b', 'vm', 'disk', at, 'abc', 'gzip'), '/b/vm/disk/20261125T100000Z-abc.tar.gz');
  t.is(artifactPath('/b', 'vm', 'disk', at, 'abc', 'none', 'image'), '/b/vm/disk/20261125T100000Z-abc.img');
  for (const [file, compression, kind] of [
    ['x.img.zst', 'zstd', 'image'],
    ['x.img.gz', 'gzip', 'image'],
    ['x.img', 'none', 'image'],
    ['x.tar.zst', 'zstd', 'tar'],
    ['x.tar', 'none', 'tar'],
  ] as const) {
    t.is(compressionOf(file), compression, file);
    t.is(artifactKindOf(file), kind, file);
  }
  t.throws(() => compressionOf('x.zip'), { message: /cannot tell the compression/ });
});
