import test from 'ava';
import chalk from 'chalk';
import { doneText, progressEnabled, ProgressBars, stageLabel, truncate } from '../../src/cli/progress.ts';

// Plain text unless a test says otherwise; chalk is a no-op at level 0.
chalk.level = 0;

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** A stream that records writes, and a clock the test moves. */
function setup(columns?: number) {
  const writes: string[] = [];
  const stream = { columns, write: (text: string) => (writes.push(text), true) };
  const clock = { t: 0 };
  const bars = new ProgressBars(stream, { now: () => clock.t });
  return { bars, writes, clock };
}

/**
 * What a terminal shows after these writes: enough of one to follow \n, \r, cursor up (A), erase line
 * (2K), erase below (0J) and colour codes (m). The row the cursor ends on is dropped when empty.
 */
function screen(writes: string[]): string[] {
  const rows = [''];
  let row = 0;
  let col = 0;
  const text = writes.join('');
  for (let i = 0; i < text.length; ) {
    const code = /^\u001b\[(\d*)([A-Za-z])/.exec(text.slice(i));
    if (code) {
      const n = Number(code[1] || 1);
      if (code[2] === 'A') row = Math.max(0, row - n);
      else if (code[2] === 'K') rows[row] = '';
      else if (code[2] === 'J') rows.splice(row + 1), (rows[row] = rows[row]!.slice(0, col));
      i += code[0].length;
      continue;
    }
    const char = text[i++]!;
    if (char === '\n') {
      row += 1;
      col = 0;
      if (rows.length <= row) rows.push('');
    } else if (char === '\r') col = 0;
    else {
      const line = rows[row]!.padEnd(col);
      rows[row] = line.slice(0, col) + char + line.slice(col + 1);
      col += 1;
    }
  }
  if (rows.at(-1) === '') rows.pop();
  return rows;
}

const cursorUps = (text: string) => [...text.matchAll(/\u001b\[(\d+)A/g)].map((match) => Number(match[1]));

test('a bar with a known total shows bytes of the total, percentage, rate and ETA', (t) => {
  const { bars, writes, clock } = setup();
  bars.update('shop/data', { stage: 'copy', tarBytes: 0, attempt: 1, totalBytes: GiB });
  clock.t = 2000;
  bars.update('shop/data', { stage: 'copy', tarBytes: 256 * MiB, attempt: 1 });
  const [line] = screen(writes);
  t.regex(line!, /^shop\/data {2}copying {6}█{2}░{6} {2} 25% {2}256 MiB \/ 1\.0 GiB {2}128 MiB\/s {2}ETA 6\.0s$/);
});

test('an unknown total shows bytes and rate only, and the bar appears once du reports', (t) => {
  const { bars, writes, clock } = setup();
  bars.update('shop/data', { stage: 'copy', tarBytes: 0, attempt: 1 });
  clock.t = 1000;
  bars.update('shop/data', { stage: 'copy', tarBytes: 50 * MiB, attempt: 1 });
  t.deepEqual(screen(writes), ['shop/data  copying      50 MiB  50 MiB/s']);
  clock.t = 2000;
  bars.update('shop/data', { stage: 'copy', tarBytes: 100 * MiB, totalBytes: 200 * MiB });
  t.regex(screen(writes)[0]!, / 50% {2}100 MiB \/ 200 MiB {2}50 MiB\/s {2}ETA 2\.0s$/);
});

test('the approximate total never shows more than 99% or a negative ETA before the claim is done', (t) => {
  const { bars, writes, clock } = setup();
  bars.update('a', { stage: 'copy', tarBytes: 0, attempt: 1, totalBytes: 100 * MiB });
  clock.t = 1000;
  bars.update('a', { stage: 'copy', tarBytes: 100 * MiB });
  t.regex(screen(writes)[0]!, / 99% {2}100 MiB \/ 100 MiB {2}100 MiB\/s {2}ETA 1\.0s$/);
  clock.t = 2000;
  bars.update('a', { stage: 'copy', tarBytes: 150 * MiB });
  t.is(screen(writes)[0], 'a  copying      150 MiB  75 MiB/s', 'more than the total: the total is unknown');
  bars.update('a', { stage: 'finalize' });
  t.is(screen(writes)[0], 'a  finalizing   150 MiB');
  bars.update('a', { stage: 'done', tarBytes: 100 * MiB });
  t.regex(screen(writes)[0]!, /^a {2}done {9}█{30} {2}100% {2}100 MiB \/ 100 MiB$/);
});

test('stages have words; copy attempt 2 of 3 is "retry 1/2", and a retry restarts the rate', (t) => {
  t.is(stageLabel({ stage: 'discovery' }), 'discovering');
  t.is(stageLabel({ stage: 'helper-pod' }), 'scheduling helper');
  t.is(stageLabel({ stage: 'copy', attempt: 1, maxAttempts: 3 }), 'copying');
  t.is(stageLabel({ stage: 'copy', attempt: 2, maxAttempts: 3 }), 'retry 1/2');
  t.is(stageLabel({ stage: 'copy', attempt: 3 }), 'retry 2');
  t.is(stageLabel({ stage: 'finalize' }), 'finalizing');

  const { bars, writes, clock } = setup();
  bars.update('a', { stage: 'copy', tarBytes: 0, attempt: 1, maxAttempts: 3 });
  clock.t = 1000;
  bars.update('a', { stage: 'copy', tarBytes: 90 * MiB, attempt: 1 });
  clock.t = 1200;
  bars.update('a', { stage: 'copy', tarBytes: 0, attempt: 2 });
  t.is(screen(writes)[0], 'a  retry 1/2    0 B', 'no rate until the new attempt has one');
  clock.t = 2200;
  bars.update('a', { stage: 'copy', tarBytes: 10 * MiB, attempt: 2 });
  t.is(screen(writes)[0], 'a  retry 1/2    10 MiB  10 MiB/s');
});

test('the rate is a moving average of the last seconds, not since the start', (t) => {
  const { bars, writes, clock } = setup();
  let bytes = 0;
  for (clock.t = 0; clock.t <= 20_000; clock.t += 50) {
    bars.update('a', { stage: 'copy', tarBytes: bytes, attempt: 1 });
    bytes += clock.t < 10_000 ? 5 * MiB : MiB / 2; // 100 MiB/s, then 10 MiB/s
  }
  t.regex(screen(writes)[0]!, / 10 MiB\/s$/);
});

test('several bars are redrawn in place: the cursor goes up by the number of live lines', (t) => {
  const { bars, writes, clock } = setup();
  bars.update('shop/a', { stage: 'discovery' });
  bars.update('shop/bb', { stage: 'discovery' });
  bars.update('shop/c', { stage: 'helper-pod' });
  t.deepEqual(cursorUps(writes.join('')), [1, 2]);
  writes.length = 0;
  clock.t = 500;
  bars.update('shop/a', { stage: 'copy', tarBytes: 0, attempt: 1 });
  t.deepEqual(cursorUps(writes.join('')), [3]);
  t.is(writes.length, 1, 'one write per redraw, so a frame is never half drawn');
  clock.t = 1500;
  bars.update('shop/a', { stage: 'copy', tarBytes: 20 * MiB, attempt: 1 });
  t.deepEqual(screen(writes), ['shop/a   copying      20 MiB  20 MiB/s', 'shop/bb  discovering', 'shop/c   scheduling helper']);
});

test('finished claims become permanent lines above the live bars; close clears only the bars', (t) => {
  const { bars, writes, clock } = setup();
  bars.update('shop/a', { stage: 'copy', tarBytes: 0, attempt: 1 });
  bars.update('shop/b', { stage: 'copy', tarBytes: 0, attempt: 1 });
  clock.t = 12_300;
  bars.finish('shop/a', { ok: true, text: doneText(GiB, 12_300) });
  t.deepEqual(screen(writes), ['✔ shop/a  1.0 GiB in 12.3s (83 MiB/s)', 'shop/b  copying      0 B']);
  bars.log('warning: something to know');
  bars.finish('shop/b', { ok: false, text: 'copy stage failed: stream cut' });
  t.deepEqual(screen(writes), ['✔ shop/a  1.0 GiB in 12.3s (83 MiB/s)', 'warning: something to know', '✖ shop/b  copy stage failed: stream cut']);
  bars.update('shop/c', { stage: 'discovery' });
  bars.close();
  t.deepEqual(screen(writes), ['✔ shop/a  1.0 GiB in 12.3s (83 MiB/s)', 'warning: something to know', '✖ shop/b  copy stage failed: stream cut']);
});

test('redraws are throttled to about ten a second, but a new stage is drawn at once', (t) => {
  const { bars, writes, clock } = setup();
  bars.update('a', { stage: 'copy', tarBytes: 0, attempt: 1 });
  t.is(writes.length, 1);
  for (clock.t = 10; clock.t < 100; clock.t += 10) bars.update('a', { stage: 'copy', tarBytes: clock.t, attempt: 1 });
  t.is(writes.length, 1);
  clock.t = 100;
  bars.update('a', { stage: 'copy', tarBytes: 100, attempt: 1 });
  t.is(writes.length, 2);
  clock.t = 110;
  bars.update('a', { stage: 'copy', tarBytes: 110, attempt: 2 });
  t.is(writes.length, 3, 'a retry is a new stage');
  clock.t = 120;
  bars.update('a', { stage: 'finalize' });
  t.is(writes.length, 4);
  bars.update('b', { stage: 'discovery' });
  t.is(writes.length, 5, 'a new claim');
});

test('lines are cut to the width of the terminal, so nothing wraps; colour codes do not count', (t) => {
  const level = chalk.level;
  try {
    for (const colour of [0, 1] as const) {
      chalk.level = colour;
      const { bars, writes, clock } = setup(40);
      bars.update('a-namespace-with-a-long-name/data', { stage: 'copy', tarBytes: 0, attempt: 1, totalBytes: GiB });
      bars.update('shop/b', { stage: 'helper-pod' });
      clock.t = 1000;
      bars.update('a-namespace-with-a-long-name/data', { stage: 'copy', tarBytes: 300 * MiB, attempt: 1 });
      const rows = screen(writes).map((row) => row.replace(/\u001b\[[0-9;]*m/g, ''));
      t.is(rows.length, 2);
      for (const row of rows) t.true(row.length <= 39, row);
      t.is(rows[0], 'a-namespace-with-a-long-name/data  copy');
    }
  } finally {
    chalk.level = level;
  }
  t.is(truncate('\u001b[2mabcdef\u001b[22m', 3), '\u001b[2mabc\u001b[0m');
  t.is(truncate('abc', 3), 'abc');
});

test('a wide terminal gets a wide bar, the same width on every line', (t) => {
  const { bars, writes, clock } = setup(200);
  bars.update('shop/a', { stage: 'copy', tarBytes: 0, attempt: 1, totalBytes: GiB });
  bars.update('shop/b', { stage: 'copy', tarBytes: 0, attempt: 1, totalBytes: 2 * GiB });
  clock.t = 1000;
  bars.update('shop/a', { stage: 'copy', tarBytes: GiB / 2, attempt: 1 });
  const rows = screen(writes);
  t.is(rows[0]!.match(/[█░]+/)![0].length, 30);
  t.is(rows[1]!.match(/[█░]+/)![0].length, 30);
  t.is(rows[0]!.indexOf('█'), rows[1]!.indexOf('░'));
});

test('progressEnabled: auto only on a terminal and never beside -o json|yaml; always and never decide alone', (t) => {
  for (const tty of [true, false]) {
    for (const machine of [true, false]) {
      t.true(progressEnabled('always', tty, machine));
      t.false(progressEnabled('never', tty, machine));
      t.is(progressEnabled('auto', tty, machine), tty && !machine);
    }
  }
});

test('close is safe twice, and nothing is written after it', (t) => {
  const { bars, writes } = setup();
  bars.update('a', { stage: 'discovery' });
  bars.close();
  const written = writes.length;
  bars.close();
  bars.update('a', { stage: 'copy', tarBytes: 1, attempt: 1 });
  bars.finish('a', { ok: true, text: 'x' });
  t.is(writes.length, written);
  t.deepEqual(screen(writes), []);
  const untouched = setup();
  untouched.bars.close();
  untouched.bars.close();
  t.deepEqual(untouched.writes, [], 'no bar was ever drawn: nothing to clear');
});
