/** A mover's stdout as the plugin reads it: progress lines as they come, split wherever the stream splits them. */
import test from 'ava';
import { lineSplitter, progressBytes } from '../../src/backup/mover.ts';

test('progress lines give their bytes, across chunk boundaries; the report and anything else give none', (t) => {
  const seen: number[] = [];
  const feed = lineSplitter((line) => {
    const bytes = progressBytes(line);
    if (bytes !== undefined) seen.push(bytes);
  });
  const text = '{"progress":{"files":1,"bytes":4096}}\n{"progress":{"files":9,"bytes":1048576}}\n{"ok":true,"message":"snapshot 1 saved"}\n';
  for (let i = 0; i < text.length; i += 5) feed(Buffer.from(text.slice(i, i + 5)));
  t.deepEqual(seen, [4096, 1048576]);
  t.is(progressBytes('{"ok":true,"message":"snapshot 1 saved","bytesRead":5}'), undefined);
  t.is(progressBytes('{"progress":'), undefined, 'a cut line is not progress');
});
