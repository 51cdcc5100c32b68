/** A mover's stdout as the plugin reads it: progress lines as they come, split wherever the stream splits them; its heartbeat, and the plugin's watch for its silence. */
import test from 'ava';
import { lineSplitter, MoverSilentError, progressBytes, SilenceWatch } from '../../src/backup/mover.ts';
import { ProgressLines } from '../../src/cli/commands/mover.ts';

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

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('a mover repeats its last progress line while it says nothing else, and stops at its report', async (t) => {
  const lines: string[] = [];
  const progress = new ProgressLines((line) => lines.push(line), 100);
  progress.progress({ files: 3, bytes: 12288 });
  // Three beats take 300 ms; a loaded machine (the suite's other files beside this one) may delay timers.
  for (const deadline = Date.now() + 3000; lines.length < 4 && Date.now() < deadline; ) await pause(50);
  const beats = lines.length;
  t.true(beats >= 4, `${beats - 1} beats at a 100 ms heartbeat, within 3 s`);
  t.true(lines.every((line) => progressBytes(line.trim()) === 12288), lines.join(''));
  progress.stop();
  await pause(250);
  t.is(lines.length, beats, 'nothing after stop()');
});

test('the plugin counts a mover lost once it says nothing for the silence limit, and not while it speaks', async (t) => {
  // Heard every 80 ms for longer than the limit: alive, however late a loaded machine runs the timers (up to 12 times late).
  const watch = new SilenceWatch(1000, 'the mover in pod ns/mover-1');
  for (let i = 0; i < 15; i++) {
    await pause(80);
    watch.heard();
  }
  t.false(watch.signal.aborted, 'heard every 80 ms: alive after 1.2 s');
  const error = await t.throwsAsync(watch.lost, { instanceOf: MoverSilentError });
  t.true(watch.signal.aborted);
  t.regex(error!.message, /^the mover in pod ns\/mover-1 sent nothing for 1s .*its node is down, frozen or cut off/);
  t.false((error as MoverSilentError).retryable);
  watch.stop();
});
