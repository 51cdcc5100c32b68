/**
 * forget's policy against restic's own golden cases (fixtures/forget, restic v0.19.1), restic's
 * duration and --group-by cases, and the calendar corners (ISO weeks, month ends, DST).
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Duration, formatDuration, nextNumber, parseDuration } from '../../src/repository/duration.ts';
import {
  applyPolicy,
  describeGroupKey,
  describePolicy,
  type ForgetPolicy,
  formatGroupBy,
  groupSnapshots,
  isEmptyPolicy,
  parseGroupBy,
  parseKeepCount,
  parseTagList,
  planForget,
  type SnapshotSummary,
  snapshotSummary,
} from '../../src/repository/forget.ts';
import { addDate, formatRFC3339Nano, isoWeek, parseRFC3339 } from '../../src/repository/go-time.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.join(here, 'fixtures', 'forget');
const goTest = fs.readFileSync(path.join(fixtures, 'snapshot_policy_test.go'), 'utf8');

/** Go's `[]string{"a", "b"}` literal. */
const goStrings = (literal: string): string[] => [...literal.matchAll(/"([^"]*)"/g)].map((m) => m[1]!);

/** The input list of TestApplyPolicy, read from restic's test file as it is. */
function goldenInput(): SnapshotSummary[] {
  const block = /var testExpireSnapshots = data\.Snapshots\{\n([\s\S]*?)\n\t\}\n/.exec(goTest)?.[1];
  if (!block) throw new Error('testExpireSnapshots not found in snapshot_policy_test.go');
  return block.split('\n').map((line, i) => {
    const m = /^\s*\{Time: parseTimeUTC\("([^"]+)"\)(?:, Tags: \[\]string\{([^}]*)\})?(?:, Paths: \[\]string\{([^}]*)\})?\},$/.exec(line);
    if (!m) throw new Error(`unexpected input line: ${line}`);
    // parseTimeUTC reads "2006-01-02 15:04:05" (a fraction allowed) as UTC.
    return {
      id: `input-${i}`,
      time: parseRFC3339(`${m[1]!.replace(' ', 'T')}Z`),
      hostname: '',
      ...(m[2] !== undefined ? { tags: goStrings(m[2]) } : {}),
      ...(m[3] !== undefined ? { paths: goStrings(m[3]) } : {}),
    };
  });
}

/** The policies of TestApplyPolicy, in order: policy i belongs to policy_keep_snapshots_i. */
function goldenPolicies(): ForgetPolicy[] {
  const block = /var tests = \[\]data\.ExpirePolicy\{\n([\s\S]*?)\n\t\}\n/.exec(goTest)?.[1];
  if (!block) throw new Error('the policy list was not found in snapshot_policy_test.go');
  // Top-level {...} entries; they may span lines and nest braces.
  const entries: string[] = [];
  let depth = 0;
  let start = -1;
  for (let i = 0; i < block.length; i++) {
    if (block[i] === '{') {
      if (depth === 0) start = i;
      depth++;
    } else if (block[i] === '}') {
      depth--;
      if (depth === 0) entries.push(block.slice(start + 1, i));
    }
  }
  const names: Record<string, keyof ForgetPolicy> = {
    Last: 'keepLast', Hourly: 'keepHourly', Daily: 'keepDaily', Weekly: 'keepWeekly', Monthly: 'keepMonthly', Yearly: 'keepYearly',
    Within: 'keepWithin', WithinHourly: 'keepWithinHourly', WithinDaily: 'keepWithinDaily', WithinWeekly: 'keepWithinWeekly',
    WithinMonthly: 'keepWithinMonthly', WithinYearly: 'keepWithinYearly',
  };
  return entries.map((entry) => {
    const policy: Record<string, unknown> = {};
    let rest = entry;
    const tags = /Tags: \[\]data\.TagList\{(.*)\}/.exec(rest);
    if (tags) {
      policy.keepTags = [...tags[1]!.matchAll(/\{([^}]*)\}/g)].map((m) => goStrings(m[1]!));
      rest = rest.replace(tags[0], '');
    }
    for (const m of rest.matchAll(/(\w+):\s*(?:data\.ParseDurationOrPanic\("([^"]*)"\)|(-?\d+))/g)) {
      const name = names[m[1]!];
      if (!name) throw new Error(`unknown policy field ${m[1]}`);
      policy[name] = m[2] !== undefined ? parseDuration(m[2]) : Number(m[3]);
    }
    const leftover = rest.replace(/(\w+):\s*(?:data\.ParseDurationOrPanic\("([^"]*)"\)|(-?\d+))/g, '').replace(/[\s,]|\/\/.*$/gm, '');
    if (leftover !== '') throw new Error(`policy entry not understood: ${entry}`);
    return policy as ForgetPolicy;
  });
}

/** A snapshot as restic's golden files write one (data.Snapshot's JSON, no ID). */
function goldenSnapshot(sn: SnapshotSummary): unknown {
  return {
    time: formatRFC3339Nano(sn.time),
    tree: null,
    paths: sn.paths ?? null,
    ...(sn.tags && sn.tags.length > 0 ? { tags: sn.tags } : {}),
  };
}

interface Golden {
  keep: unknown[] | null;
  reasons?: { snapshot: unknown; matches: string[]; counters: Record<string, number> }[];
}

const input = goldenInput();
const policies = goldenPolicies();
const goldenFiles = fs.readdirSync(fixtures).filter((f) => f.startsWith('policy_keep_snapshots_'));

test('the golden input and policies are read whole from restic\'s test', (t) => {
  t.is(input.length, goTest.match(/\{Time: parseTimeUTC/g)?.length ?? 0);
  t.is(input.length, 103);
  t.is(policies.length, goldenFiles.length);
  t.is(policies.length, 40);
  t.deepEqual(policies[17], { keepDaily: 7, keepWeekly: 2, keepMonthly: 3, keepYearly: 10 });
  t.deepEqual(policies[20], { keepTags: [['foo'], ['bar']] });
  t.deepEqual(policies[35]?.keepWithinYearly, { years: 9999, months: 0, days: 0, hours: 0 });
  t.is(formatRFC3339Nano(input[14]!.time), '2014-08-13T10:20:30.1Z');
});

for (const [i, policy] of policies.entries()) {
  test(`golden case policy_keep_snapshots_${i}: ${describePolicy(policy)}`, (t) => {
    const golden = JSON.parse(fs.readFileSync(path.join(fixtures, `policy_keep_snapshots_${i}`), 'utf8')) as Golden;
    const { keep, remove, reasons } = applyPolicy(input, policy);

    t.deepEqual(keep.map(goldenSnapshot), golden.keep ?? []);
    t.deepEqual(
      reasons.map((r) => ({
        snapshot: goldenSnapshot(r.snapshot),
        matches: r.matches,
        // restic's counters are `omitempty`.
        counters: Object.fromEntries(Object.entries(r.counters).filter(([, n]) => n !== 0)),
      })),
      golden.reasons ?? [],
    );
    t.deepEqual(reasons.map((r) => r.snapshot), keep);

    // Everything else is removed, newest first, each snapshot once.
    const kept = new Set(keep.map((sn) => sn.id));
    const byTime = [...input].sort((a, b) => (a.time.unix !== b.time.unix ? b.time.unix - a.time.unix : b.time.nanos - a.time.nanos));
    t.deepEqual(remove.map((sn) => sn.id), byTime.filter((sn) => !kept.has(sn.id)).map((sn) => sn.id));
    t.is(kept.size, keep.length);
  });
}

test('restic\'s ExpirePolicy.Empty and String', (t) => {
  t.true(isEmptyPolicy({}));
  t.true(isEmptyPolicy({ keepTags: [] }));
  t.true(isEmptyPolicy({ keepLast: 0, keepWithin: { years: 0, months: 0, days: 0, hours: 0 } }));
  t.false(isEmptyPolicy({ keepDaily: 7, keepWeekly: 2, keepMonthly: 3, keepYearly: 10 }));
  t.false(isEmptyPolicy({ keepTags: [['']] }));
  t.is(describePolicy({}), 'remove');
  t.is(describePolicy({ keepDaily: 7, keepWeekly: 2, keepMonthly: -1 }), 'keep 7 daily, 2 weekly, all monthly snapshots');
  t.is(
    describePolicy({ keepLast: 3, keepWithinDaily: parseDuration('7d'), keepTags: [['a', 'b'], ['c']], keepWithin: parseDuration('1y2h') }),
    'keep 3 latest snapshots, daily snapshots within 7d and all snapshots with tags [[a, b] [c]] and all snapshots within 1y2h of the newest',
  );
});

// restic's internal/data/duration_test.go, TestNextNumber and TestParseDuration.
const nextNumberCases: { input: string; num: number; rest: string; err?: boolean }[] = [
  { input: '12h', num: 12, rest: 'h' },
  { input: '3d', num: 3, rest: 'd' },
  { input: '4d9h', num: 4, rest: 'd9h' },
  { input: '7m5d', num: 7, rest: 'm5d' },
  { input: '-23y7m5d', num: -23, rest: 'y7m5d' },
  { input: '-13y5m11d12h', num: -13, rest: 'y5m11d12h' },
  { input: '  5d', num: 0, rest: '  5d', err: true },
  { input: '5d  ', num: 5, rest: 'd  ' },
  { input: '5', num: 5, rest: '' },
];

test('restic\'s nextNumber cases', (t) => {
  for (const c of nextNumberCases) {
    const bytes = Buffer.from(c.input, 'utf8');
    if (c.err) {
      t.throws(() => nextNumber(bytes), { message: 'no number found' }, c.input);
      continue;
    }
    const { num, rest } = nextNumber(bytes);
    t.is(num, c.num, c.input);
    t.is(Buffer.from(rest).toString('utf8'), c.rest, c.input);
  }
});

const d = (years: number, months: number, days: number, hours: number): Duration => ({ years, months, days, hours });
const parseDurationCases: { input: string; d?: Duration; output?: string }[] = [
  { input: '9h', d: d(0, 0, 0, 9), output: '9h' },
  { input: '3d', d: d(0, 0, 3, 0), output: '3d' },
  { input: '4d2h', d: d(0, 0, 4, 2), output: '4d2h' },
  { input: '7m5d', d: d(0, 7, 5, 0), output: '7m5d' },
  { input: '6m4d8h', d: d(0, 6, 4, 8), output: '6m4d8h' },
  { input: '5d7m', d: d(0, 7, 5, 0), output: '7m5d' },
  { input: '4h3d9m', d: d(0, 9, 3, 4), output: '9m3d4h' },
  { input: '-7m5d', d: d(0, -7, 5, 0), output: '-7m5d' },
  { input: '1y4m-5d-3h', d: d(1, 4, -5, -3), output: '1y4m-5d-3h' },
  { input: '2y7m-5d', d: d(2, 7, -5, 0), output: '2y7m-5d' },
  { input: '2w' },
  { input: '1y4m3w1d' },
  { input: 's' },
  { input: '\xdf\x80' }, // restic's "NKO DIGIT ZERO": ASCII digits only
];

test('restic\'s ParseDuration cases', (t) => {
  for (const c of parseDurationCases) {
    if (!c.d) {
      t.throws(() => parseDuration(c.input), undefined, c.input);
      continue;
    }
    const parsed = parseDuration(c.input);
    t.deepEqual(parsed, c.d, c.input);
    t.is(formatDuration(parsed), c.output!, c.input);
  }
});

test('duration errors read as restic\'s', (t) => {
  t.throws(() => parseDuration('2w'), { message: "invalid unit 'w' found after number 2" });
  t.throws(() => parseDuration('1y4m3w1d'), { message: "invalid unit 'w' found after number 3" });
  t.throws(() => parseDuration('s'), { message: 'no number found' });
  t.throws(() => parseDuration('5'), { message: 'no unit found after number 5' });
  t.throws(() => parseDuration('-'), { message: 'no number found' });
  t.throws(() => parseDuration('\u07c0'), { message: 'no number found' });
  // Go's %q of the byte: 0xdf is U+00DF as a rune, 0x80 a C1 control.
  t.throws(() => parseDuration('5\u07c0'), { message: "invalid unit 'ß' found after number 5" });
  // U+0080 is C2 80 in UTF-8: restic quotes the first byte, 0xC2, as the rune U+00C2.
  t.throws(() => parseDuration('5\u0080'), { message: "invalid unit 'Â' found after number 5" });
  t.throws(() => parseDuration('5\u00a0d'), { message: "invalid unit 'Â' found after number 5" });
  t.throws(() => parseDuration('5\t'), { message: 'no unit found after number 5' });
  t.throws(() => parseDuration('5 d'), { message: "invalid unit ' ' found after number 5" });
  t.throws(() => parseDuration("5'"), { message: "invalid unit '\\'' found after number 5" });
  t.throws(() => parseDuration('5\x01'), { message: "invalid unit '\\x01' found after number 5" });
  // Spaces around are trimmed as Go trims them; a unit given twice: the last one counts.
  t.deepEqual(parseDuration(' \u00857d\u00a0'), d(0, 0, 7, 0));
  t.deepEqual(parseDuration('1d2d'), d(0, 0, 2, 0));
  t.deepEqual(parseDuration(''), d(0, 0, 0, 0));
  t.is(formatDuration(parseDuration('1y1d1m')), '1y1m1d');
});

test('keep counts as restic reads them', (t) => {
  t.is(parseKeepCount('7'), 7);
  t.is(parseKeepCount('+7'), 7);
  t.is(parseKeepCount('0'), 0);
  t.is(parseKeepCount('unlimited'), -1);
  t.throws(() => parseKeepCount('-1'), { message: "negative values not allowed, use 'unlimited' instead" });
  t.throws(() => parseKeepCount('seven'), { message: 'strconv.ParseInt: parsing "seven": invalid syntax' });
  t.throws(() => parseKeepCount(''), { message: 'strconv.ParseInt: parsing "": invalid syntax' });
  t.throws(() => parseKeepCount('9223372036854775808'), { message: 'strconv.ParseInt: parsing "9223372036854775808": value out of range' });
});

// restic's internal/data/snapshot_group_test.go, TestGroupByOptions.
test('restic\'s --group-by cases', (t) => {
  const cases: [string, ReturnType<typeof parseGroupBy>, string][] = [
    ['', { host: false, paths: false, tags: false }, ''],
    ['host,paths', { host: true, paths: true, tags: false }, 'host,paths'],
    ['host,path,tag', { host: true, paths: true, tags: true }, 'host,paths,tags'],
    ['hosts,paths,tags', { host: true, paths: true, tags: true }, 'host,paths,tags'],
  ];
  for (const [from, opts, normalized] of cases) {
    t.deepEqual(parseGroupBy(from), opts, from);
    t.is(formatGroupBy(parseGroupBy(from)), normalized, from);
  }
  t.throws(() => parseGroupBy('tags,invalid'), { message: 'unknown grouping option: "invalid"' });
});

const sn = (id: string, time: string, hostname: string, paths?: string[], tags?: string[]): SnapshotSummary =>
  snapshotSummary(id, { time, hostname, ...(paths ? { paths } : {}), ...(tags ? { tags } : {}) });

const mixed = [
  sn('a', '2024-01-01T10:00:00Z', 'shop', ['/data/db', '/data/app'], ['nightly']),
  sn('b', '2024-01-02T10:00:00Z', 'shop', ['/data/app', '/data/db'], ['weekly', 'nightly']),
  sn('c', '2024-01-03T10:00:00Z', 'shop', ['/data/db']),
  sn('d', '2024-01-04T10:00:00Z', 'blog', ['/data/db', '/data/app'], ['nightly', 'weekly']),
  sn('e', '2024-01-05T10:00:00Z', 'blog', ['/data/db'], []),
];

test('grouping by host and paths (restic\'s default), paths in any order', (t) => {
  const groups = groupSnapshots(mixed, parseGroupBy('host,paths'));
  t.deepEqual(
    groups.map((g) => [g.key, g.snapshots.map((s) => s.id)]),
    [
      [{ hostname: 'blog', paths: ['/data/app', '/data/db'], tags: null }, ['d']],
      [{ hostname: 'blog', paths: ['/data/db'], tags: null }, ['e']],
      [{ hostname: 'shop', paths: ['/data/app', '/data/db'], tags: null }, ['a', 'b']],
      [{ hostname: 'shop', paths: ['/data/db'], tags: null }, ['c']],
    ],
  );
  // The snapshots themselves are not reordered.
  t.deepEqual(mixed[0]!.paths, ['/data/db', '/data/app']);
});

test('grouping by tags: sorted tags are the key; no tags and an empty list differ, as in restic\'s JSON key', (t) => {
  const groups = groupSnapshots(mixed, parseGroupBy('tags'));
  t.deepEqual(
    groups.map((g) => [g.key.tags, g.snapshots.map((s) => s.id)]),
    [
      [['nightly', 'weekly'], ['b', 'd']],
      [['nightly'], ['a']],
      [[], ['e']],
      [null, ['c']],
    ],
  );
  t.true(groups.every((g) => g.key.hostname === '' && g.key.paths === null));
});

test('grouping by nothing, by host, and by all three', (t) => {
  t.deepEqual(groupSnapshots(mixed, parseGroupBy('')).map((g) => g.snapshots.map((s) => s.id)), [['a', 'b', 'c', 'd', 'e']]);
  t.deepEqual(groupSnapshots(mixed, parseGroupBy('host')).map((g) => [g.key.hostname, g.snapshots.length]), [['blog', 2], ['shop', 3]]);
  t.is(groupSnapshots(mixed, parseGroupBy('host,paths,tags')).length, 5);
  t.is(
    describeGroupKey({ hostname: 'shop', paths: ['/data/app', '/data/db'], tags: ['a', 'b'] }),
    'host shop, path [/data/app /data/db], tags [a b]',
  );
});

test('sorting as Go sorts strings: by UTF-8 bytes', (t) => {
  // U+FF21 (3 UTF-8 bytes, starting 0xEF) sorts before U+1F600 (4 bytes, 0xF0); in UTF-16 units it is after.
  const groups = groupSnapshots([sn('x', '2024-01-01T00:00:00Z', 'h', ['/\u{1F600}', '/\uFF21'])], parseGroupBy('paths'));
  t.deepEqual(groups[0]!.key.paths, ['/\uFF21', '/\u{1F600}']);
});

test('planForget refuses what restic refuses', (t) => {
  t.throws(() => planForget(mixed, {}), { message: 'no policy was specified, no snapshots will be removed' });
  t.throws(() => planForget(mixed, {}, { unsafeAllowRemoveAll: true }), {
    message: '--unsafe-allow-remove-all is not allowed unless a snapshot filter option is specified',
  });
  const all = planForget(mixed, {}, { unsafeAllowRemoveAll: true, snapshotFilterGiven: true });
  t.deepEqual(all.flatMap((g) => g.keep), []);
  t.is(all.flatMap((g) => g.remove).length, mixed.length);
  t.throws(() => planForget(mixed, { keepLast: -2 }), { message: 'negative values other than -1 are not allowed for --keep-*' });
  t.throws(() => planForget(mixed, { keepWithin: parseDuration('1y-1d') }), {
    message: 'durations containing negative values are not allowed for --keep-within*',
  });
  // A tag no snapshot of a group has would remove the whole group: refused, nothing removed.
  t.throws(() => planForget(mixed, { keepTags: [['weekly']] }), {
    message: 'refusing to delete last snapshot of snapshot group "host blog, path [/data/db]"',
  });
});

test('planForget applies the policy per group', (t) => {
  const groups = planForget(mixed, { keepLast: 1 }, { groupBy: parseGroupBy('host') });
  t.deepEqual(
    groups.map((g) => [g.key.hostname, g.keep.map((s) => s.id), g.remove.map((s) => s.id), g.reasons.map((r) => r.matches)]),
    [
      ['blog', ['e'], ['d'], [['last snapshot']]],
      ['shop', ['c'], ['b', 'a'], [['last snapshot']]],
    ],
  );
});

test('ISO weeks: the week\'s year is the year of its Thursday', (t) => {
  const cases: [string, number, number][] = [
    ['2014-12-29T00:00:00Z', 2015, 1],
    ['2016-01-01T12:00:00Z', 2015, 53],
    ['2016-01-03T23:59:59Z', 2015, 53],
    ['2016-01-04T00:00:00Z', 2016, 1],
    ['2020-12-31T00:00:00Z', 2020, 53],
    ['2021-01-03T00:00:00Z', 2020, 53],
    ['2024-12-30T00:00:00Z', 2025, 1],
    ['2027-01-01T00:00:00Z', 2026, 53],
    // The wall clock as written decides: Sunday evening in New York is Monday in UTC.
    ['2024-01-07T23:30:00-05:00', 2024, 1],
    ['2024-01-08T04:30:00Z', 2024, 2],
  ];
  for (const [time, year, week] of cases) t.deepEqual(isoWeek(parseRFC3339(time)), { year, week }, time);
});

test('weekly buckets across a year boundary follow ISO weeks', (t) => {
  const list = [
    sn('w52', '2015-12-27T10:00:00Z', 'h'), // 2015-W52 (Sunday)
    sn('w53a', '2015-12-28T10:00:00Z', 'h'), // 2015-W53
    sn('w53b', '2016-01-03T10:00:00Z', 'h'), // still 2015-W53
    sn('w1', '2016-01-04T10:00:00Z', 'h'), // 2016-W01
  ];
  const { keep, reasons } = applyPolicy(list, { keepWeekly: 5 });
  t.deepEqual(keep.map((s) => s.id), ['w1', 'w53b', 'w52']);
  t.deepEqual(reasons.map((r) => r.matches), [['weekly snapshot'], ['weekly snapshot'], ['weekly snapshot']]);
});

test('buckets use the wall clock each time was written with', (t) => {
  // The same instant, 23:30 in New York and 04:30 the next day in UTC: two different days.
  const list = [sn('ny', '2024-03-01T23:30:00-05:00', 'h'), sn('utc', '2024-03-02T04:29:00Z', 'h')];
  t.deepEqual(applyPolicy(list, { keepDaily: 2 }).keep.map((s) => s.id), ['ny', 'utc']);
  t.deepEqual(applyPolicy(list, { keepDaily: 1 }).keep.map((s) => s.id), ['ny']);
});

test('"oldest": a bucket with counts left keeps the oldest snapshot too', (t) => {
  const list = [sn('1', '2024-05-01T08:00:00Z', 'h'), sn('2', '2024-05-01T09:00:00Z', 'h'), sn('3', '2024-05-01T10:00:00Z', 'h')];
  const { keep, reasons } = applyPolicy(list, { keepDaily: 3, keepWithinMonthly: parseDuration('1m') });
  t.deepEqual(keep.map((s) => s.id), ['3', '1']);
  t.deepEqual(reasons.map((r) => r.matches), [['daily snapshot', 'monthly within 1m'], ['oldest daily snapshot', 'oldest monthly within 1m']]);
  t.deepEqual(reasons.map((r) => r.counters.daily), [2, 1]);
  // Used up: no oldest.
  t.deepEqual(applyPolicy(list, { keepDaily: 1 }).keep.map((s) => s.id), ['3']);
});

test('keep-within is relative to the newest snapshot that is not in the future, to the nanosecond', (t) => {
  const list = [
    sn('future', '2100-01-01T00:00:00Z', 'h'),
    sn('newest', '2024-03-31T12:00:00.000000002Z', 'h'),
    sn('edge', '2024-03-01T12:00:00.000000002Z', 'h'), // 2024-03-31 minus a month is 2024-03-02 (February 31st)
    sn('inside', '2024-03-02T12:00:00.000000003Z', 'h'),
  ];
  const now = new Date('2030-01-01T00:00:00Z');
  const { keep, remove } = applyPolicy(list, { keepWithin: parseDuration('1m') }, now);
  t.deepEqual(keep.map((s) => s.id), ['future', 'newest', 'inside']);
  t.deepEqual(remove.map((s) => s.id), ['edge']);
  // Exactly at the threshold is not "after" it.
  const atEdge = [sn('n', '2024-03-31T12:00:00.5Z', 'h'), sn('e', '2024-03-02T12:00:00.5Z', 'h'), sn('i', '2024-03-02T12:00:00.500000001Z', 'h')];
  t.deepEqual(applyPolicy(atEdge, { keepWithin: parseDuration('1m') }, now).keep.map((s) => s.id), ['n', 'i']);
  // All in the future: restic's zero time is the newest, so everything is within.
  t.deepEqual(applyPolicy(list, { keepWithin: parseDuration('1d') }, new Date('2000-01-01T00:00:00Z')).keep.length, 4);
});

test('AddDate normalises like Go: month ends roll over, leap days too', (t) => {
  const cases: [string, number, number, number, string][] = [
    ['2016-03-31T10:00:00Z', 0, -1, 0, '2016-03-02T10:00:00Z'],
    ['2016-02-29T10:00:00Z', -1, 0, 0, '2015-03-01T10:00:00Z'],
    ['2016-01-01T00:00:00Z', 0, 0, -1, '2015-12-31T00:00:00Z'],
    ['2016-01-18T12:02:03Z', -1, -2, -3, '2014-11-15T12:02:03Z'],
    ['0001-01-01T00:00:00Z', -9999, 0, 0, '-9998-01-01T00:00:00Z'],
    ['2024-05-10T10:00:00.123456789+05:30', 0, -13, 0, '2023-04-10T10:00:00.123456789+05:30'],
  ];
  for (const [from, years, months, days, to] of cases) t.is(formatRFC3339Nano(addDate(parseRFC3339(from), years, months, days)), to, from);
});

test('RFC 3339 times keep their nanoseconds and offset', (t) => {
  for (const time of ['2024-10-27T02:30:00.123456789+02:00', '2024-10-27T02:30:00.1+01:00', '1969-12-31T23:59:59.999999999Z', '2024-01-01T00:00:00-09:30']) {
    t.is(formatRFC3339Nano(parseRFC3339(time)), time);
  }
  t.is(formatRFC3339Nano(parseRFC3339('2024-01-01T00:00:00+00:00')), '2024-01-01T00:00:00Z');
  t.is(formatRFC3339Nano(parseRFC3339('2024-01-01T00:00:00.1234567891Z')), '2024-01-01T00:00:00.123456789Z');
  t.throws(() => parseRFC3339('2024-02-30T00:00:00Z'));
  t.throws(() => parseRFC3339('2024-01-01 00:00:00Z'));
});

test('--keep-tag "" keeps the snapshots without tags; several lists are alternatives', (t) => {
  const list = [sn('none', '2024-01-03T00:00:00Z', 'h'), sn('empty', '2024-01-02T00:00:00Z', 'h', undefined, []), sn('x', '2024-01-01T00:00:00Z', 'h', undefined, ['x', 'y'])];
  t.deepEqual(applyPolicy(list, { keepTags: [['']] }).keep.map((s) => s.id), ['none', 'empty']);
  const both = applyPolicy(list, { keepTags: [[''], ['y', 'x']] });
  t.deepEqual(both.reasons.map((r) => [r.snapshot.id, r.matches]), [['none', ['has tags []']], ['empty', ['has tags []']], ['x', ['has tags [y, x]']]]);
  t.deepEqual(applyPolicy(list, { keepTags: [['x', 'z']] }).keep, []);
});

// Go's output for the same cases (fixtures/forget/go-adddate.go), under two zones. Each zone runs in
// its own Node process, since a time written with the local zone's offset takes that zone's rules.
for (const zone of ['Europe/Berlin', 'UTC']) {
  test(`AddDate and Add(hours) across daylight saving changes match Go's, TZ=${zone}`, (t) => {
    const want = JSON.parse(fs.readFileSync(path.join(fixtures, `go-adddate-${zone.replace('/', '-')}.json`), 'utf8')) as unknown[];
    const goSource = fs.readFileSync(path.join(fixtures, 'go-adddate.go'), 'utf8');
    const cases = [...goSource.matchAll(/\{"([^"]+)", (-?\d+), (-?\d+), (-?\d+), (-?\d+)\}/g)].map((m) => [m[1], ...m.slice(2, 6).map(Number)]);
    t.is(cases.length, want.length);
    const probe = `
      import { addDate, addHours, formatRFC3339Nano, parseRFC3339 } from ${JSON.stringify(path.resolve(here, '../../src/repository/go-time.ts'))};
      const cases = ${JSON.stringify(cases)};
      console.log(JSON.stringify(cases.map(([t, y, m, d, h]) => {
        const p = parseRFC3339(t);
        const r = addHours(addDate(p, y, m, d), h);
        return { in: t, loc: p.location, out: formatRFC3339Nano(r), unix: r.unix };
      })));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', probe], { env: { ...process.env, TZ: zone }, encoding: 'utf8' });
    t.deepEqual(JSON.parse(out), want);
  });
}

test('--keep-tag values as restic splits them', (t) => {
  t.deepEqual(parseTagList('a, b'), ['a', 'b']);
  t.deepEqual(parseTagList(''), ['']);
  t.deepEqual(parseTagList(' a ,,b\u0085'), ['a', '', 'b']);
  t.deepEqual(parseTagList('\ufeffa'), ['\ufeffa']);
});
