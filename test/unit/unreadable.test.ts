import test from 'ava';
import { describeUnreadable, UnreadablePaths } from '../../src/backup/unreadable.ts';

test("busybox tar's refusals are counted, their paths kept, however stderr is chunked", (t) => {
  const stderr = [
    "tar: ./locked: Permission denied",
    "tar: can't open './d/secret': Permission denied",
    "tar: can't open './a b/it''s': Permission denied",
    'tar: error exit delayed from previous errors',
    '',
  ].join('\n');
  for (const size of [1, 7, stderr.length]) {
    const paths = new UnreadablePaths();
    for (let i = 0; i < stderr.length; i += size) paths.push(stderr.slice(i, i + size));
    paths.end();
    t.deepEqual(paths.summary, { count: 3, sample: ['locked', 'd/secret', "a b/it''s"] });
    t.true(paths.onlyRefusals);
  }
});

test("GNU tar's wording too; any other complaint makes the failure real", (t) => {
  const gnu = new UnreadablePaths();
  gnu.push('tar: ./x: Cannot open: Permission denied\ntar: Exiting with failure status due to previous errors\n');
  gnu.end();
  t.true(gnu.onlyRefusals);
  const mixed = new UnreadablePaths();
  mixed.push("tar: can't open './a': Permission denied\ntar: ./b: Input/output error\n");
  mixed.end();
  t.is(mixed.count, 1);
  t.false(mixed.onlyRefusals);
  t.deepEqual(mixed.otherErrors, ['tar: ./b: Input/output error']);
  const none = new UnreadablePaths();
  none.end();
  t.false(none.onlyRefusals, 'a failure with no refusal is not a partial backup');
});

test('the report names the first few paths and how many more', (t) => {
  const paths = new UnreadablePaths();
  for (let i = 0; i < 8; i++) paths.push(`tar: can't open './f${i}': Permission denied\n`);
  t.is(describeUnreadable(paths.summary, 'uid 1000 (pod web-0)'), '8 paths could not be read as uid 1000 (pod web-0): f0, f1, f2, f3, f4 (and 3 more)');
});
