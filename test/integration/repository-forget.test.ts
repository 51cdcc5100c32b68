/**
 * forget's policy against the real restic v0.19.1: a local repository with snapshots made by
 * `restic backup --time` at chosen times (ISO week and year boundaries, month ends, both daylight
 * saving changes in Europe/Berlin, other zones, one snapshot in the future), then, for each policy,
 * `restic forget --dry-run --json` next to our planForget on the list `restic snapshots --json`
 * gives. No cluster. The forget runs inherit this process's TZ, since restic's calendar arithmetic
 * depends on it as ours does: run the suite under TZ=UTC and TZ=Europe/Berlin.
 */
import anyTest, { type TestFn } from 'ava';
import { execa } from 'execa';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseDuration } from '../../src/repository/duration.ts';
import {
  describePolicy,
  type ForgetPolicy,
  parseGroupBy,
  parseKeepCount,
  parseTagList,
  planForget,
  type SnapshotJson,
  snapshotSummary,
} from '../../src/repository/forget.ts';
import { resticBinary } from '../cluster/restic-binary.ts';
import { integrationEnabled } from './support.ts';

interface Context {
  restic: string;
  workDir: string;
  repoArgs: string[];
  snapshots: (SnapshotJson & { id: string })[];
}

const test = anyTest as TestFn<Context>;
const suite = integrationEnabled ? test.serial : test.skip;

/** When, in which zone, from which host, of which directory, with which tags. */
const plan: { time: string; zone: string; host: string; dir: 'a' | 'b'; tags?: string[] }[] = [
  // ISO weeks across a year end: 2015-W52, 2015-W53 (into January 2016), 2016-W01.
  { time: '2015-12-20 10:00:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  { time: '2015-12-27 23:30:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  { time: '2015-12-28 00:30:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  { time: '2016-01-01 12:00:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a', tags: ['keep'] },
  { time: '2016-01-03 23:59:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  { time: '2016-01-04 00:01:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  // Month ends and a leap day.
  { time: '2024-01-31 12:00:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  { time: '2024-02-29 12:00:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a', tags: ['a', 'b'] },
  { time: '2024-03-01 12:00:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  // Spring forward: 02:30 does not exist that night (Go makes it 03:30 CEST).
  { time: '2024-03-31 01:30:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  { time: '2024-03-31 02:30:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  { time: '2024-03-31 04:30:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  // Fall back: 02:30 happens twice.
  { time: '2024-10-26 04:30:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  { time: '2024-10-27 01:30:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  { time: '2024-10-27 02:30:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a', tags: ['c'] },
  { time: '2024-10-27 02:45:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  { time: '2024-10-27 03:30:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  // A busy November.
  { time: '2024-11-01 08:00:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  { time: '2024-11-01 20:00:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  { time: '2024-11-03 10:00:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  { time: '2024-11-10 10:00:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a', tags: ['keep'] },
  { time: '2024-11-17 10:00:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  { time: '2024-11-24 10:00:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  { time: '2024-11-25 09:00:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  { time: '2024-11-25 09:30:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  { time: '2024-11-25 10:15:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a', tags: ['b', 'a'] },
  { time: '2024-11-30 23:00:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  // The newest that is not in the future, written in Berlin's winter time.
  { time: '2024-12-01 12:00:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  // Other zones: New York's Saturday evening is Sunday in Berlin; Kolkata's half hour.
  { time: '2024-11-30 20:30:00', zone: 'America/New_York', host: 'shop', dir: 'a' },
  { time: '2024-03-10 02:30:00', zone: 'America/New_York', host: 'shop', dir: 'a' },
  { time: '2024-11-28 05:00:00', zone: 'Asia/Kolkata', host: 'shop', dir: 'a' },
  { time: '2024-11-28 23:59:59', zone: 'UTC', host: 'shop', dir: 'a' },
  // In the future: never "the newest".
  { time: '2099-01-01 00:00:00', zone: 'Europe/Berlin', host: 'shop', dir: 'a' },
  // Another host and another directory.
  { time: '2023-06-01 10:00:00', zone: 'Europe/Berlin', host: 'blog', dir: 'a', tags: ['keep'] },
  { time: '2023-06-15 10:00:00', zone: 'Europe/Berlin', host: 'blog', dir: 'a' },
  { time: '2024-11-29 10:00:00', zone: 'Europe/Berlin', host: 'blog', dir: 'a', tags: ['c'] },
  { time: '2024-11-29 11:00:00', zone: 'Europe/Berlin', host: 'blog', dir: 'b' },
  { time: '2024-11-28 10:00:00', zone: 'Europe/Berlin', host: 'shop', dir: 'b' },
  { time: '2024-11-29 10:05:00', zone: 'Europe/Berlin', host: 'shop', dir: 'b', tags: ['keep'] }, // no two at one instant: restic's order for those is random
  { time: '2024-06-29 10:00:00', zone: 'Europe/Berlin', host: 'shop', dir: 'b' },
];

/** restic's forget flags, read into our policy with our parsers. */
function policyFromFlags(flags: string[]): ForgetPolicy {
  const policy: Record<string, unknown> = {};
  const counts: Record<string, string> = {
    '--keep-last': 'keepLast', '--keep-hourly': 'keepHourly', '--keep-daily': 'keepDaily',
    '--keep-weekly': 'keepWeekly', '--keep-monthly': 'keepMonthly', '--keep-yearly': 'keepYearly',
  };
  const durations: Record<string, string> = {
    '--keep-within': 'keepWithin', '--keep-within-hourly': 'keepWithinHourly', '--keep-within-daily': 'keepWithinDaily',
    '--keep-within-weekly': 'keepWithinWeekly', '--keep-within-monthly': 'keepWithinMonthly', '--keep-within-yearly': 'keepWithinYearly',
  };
  for (let i = 0; i < flags.length; i += 2) {
    const [flag, value] = [flags[i]!, flags[i + 1]!];
    if (counts[flag]) policy[counts[flag]] = parseKeepCount(value);
    else if (durations[flag]) policy[durations[flag]] = parseDuration(value);
    else if (flag === '--keep-tag') policy.keepTags = [...((policy.keepTags as string[][]) ?? []), parseTagList(value)];
    else throw new Error(`flag not handled here: ${flag}`);
  }
  return policy as ForgetPolicy;
}

interface ResticForgetGroup {
  tags: string[] | null;
  host: string;
  paths: string[] | null;
  keep: { id: string }[] | null;
  remove: { id: string }[] | null;
  reasons: { snapshot: { id: string }; matches: string[] }[] | null;
}

async function restic(t: { context: Context }, args: string[], env: Record<string, string> = {}) {
  return execa(t.context.restic, [...t.context.repoArgs, ...args], { env, reject: false, all: true });
}

if (integrationEnabled) {
  test.before(async (t) => {
    t.timeout(5 * 60_000, 'making the snapshots');
    t.context.restic = resticBinary();
    const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-forget-'));
    t.context.workDir = workDir;
    for (const dir of ['a', 'b']) {
      fs.mkdirSync(path.join(workDir, dir));
      fs.writeFileSync(path.join(workDir, dir, 'file'), `${dir}\n`);
    }
    fs.writeFileSync(path.join(workDir, 'password'), 'forget-oracle\n');
    t.context.repoArgs = ['--repo', path.join(workDir, 'repo'), '--password-file', path.join(workDir, 'password'), '--no-cache'];
    const init = await restic(t, ['init']);
    if (init.exitCode !== 0) throw new Error(`restic init failed: ${init.all}`);
    // Backups take shared locks: a few at a time.
    for (let i = 0; i < plan.length; i += 8) {
      await Promise.all(
        plan.slice(i, i + 8).map(async (s) => {
          const tags = (s.tags ?? []).flatMap((tag) => ['--tag', tag]);
          const r = await restic(t, ['backup', '-q', '--time', s.time, '--host', s.host, ...tags, path.join(workDir, s.dir)], { TZ: s.zone });
          if (r.exitCode !== 0) throw new Error(`restic backup --time ${s.time} failed: ${r.all}`);
        }),
      );
    }
    const listed = await restic(t, ['snapshots', '--json']);
    if (listed.exitCode !== 0) throw new Error(`restic snapshots failed: ${listed.all}`);
    t.context.snapshots = JSON.parse(listed.stdout);
  });

  test.after.always((t) => {
    if (t.context.workDir) fs.rmSync(t.context.workDir, { recursive: true, force: true });
  });
}

suite('the snapshots carry the offsets restic wrote, DST and other zones included', (t) => {
  t.is(t.context.snapshots.length, plan.length);
  const times = t.context.snapshots.map((s) => s.time);
  for (const time of [
    '2024-03-31T03:30:00+02:00', // Berlin's missing 02:30
    '2024-10-27T02:30:00+01:00', // the second 02:30, as Go resolves it
    '2024-10-27T01:30:00+02:00',
    '2024-11-30T20:30:00-05:00',
    '2024-11-28T05:00:00+05:30',
    '2024-11-28T23:59:59Z',
  ]) {
    t.true(times.includes(time), time);
  }
});

const cases: { flags: string[]; groupBy?: string }[] = [
  { flags: ['--keep-daily', '3', '--keep-weekly', '2', '--keep-monthly', 'unlimited'] },
  { flags: ['--keep-last', '4', '--keep-hourly', '3'], groupBy: '' },
  { flags: ['--keep-within', '1m6d8h'], groupBy: '' },
  { flags: ['--keep-within', '1m6d8h'] },
  { flags: ['--keep-within-hourly', '1m6d8h', '--keep-within', '1h'], groupBy: '' },
  { flags: ['--keep-within-daily', '7d', '--keep-within-weekly', '1m', '--keep-within-monthly', '1y', '--keep-within-yearly', '10y'] },
  { flags: ['--keep-weekly', '10', '--keep-yearly', '3'], groupBy: 'host' },
  { flags: ['--keep-weekly', 'unlimited'], groupBy: '' },
  { flags: ['--keep-tag', 'keep', '--keep-daily', '1'], groupBy: 'tags' },
  { flags: ['--keep-hourly', 'unlimited'], groupBy: 'host,paths,tags' },
  { flags: ['--keep-within', '2d', '--keep-last', '1', '--keep-tag', 'a, b', '--keep-tag', 'c'] },
  { flags: ['--keep-monthly', '5', '--keep-within', '1y'], groupBy: 'paths' },
  { flags: ['--keep-yearly', '20', '--keep-monthly', '2', '--keep-daily', '2', '--keep-hourly', '2', '--keep-last', '2'], groupBy: 'hosts' },
];

for (const c of cases) {
  const groupArgs = c.groupBy === undefined ? [] : ['--group-by', c.groupBy];
  suite(`restic forget ${[...c.flags, ...groupArgs].map((a) => (/^[\w,.-]+$/.test(a) ? a : `'${a}'`)).join(' ')}`, async (t) => {
    const r = await restic(t, ['forget', '--dry-run', '--no-lock', '--json', ...c.flags, ...groupArgs]);
    t.is(r.exitCode, 0, r.all);
    const theirs = (JSON.parse(r.stdout) as ResticForgetGroup[]).map((g) => ({
      key: JSON.stringify({ hostname: g.host, paths: g.paths, tags: g.tags }),
      keep: (g.keep ?? []).map((s) => s.id),
      remove: (g.remove ?? []).map((s) => s.id),
      reasons: (g.reasons ?? []).map((k) => [k.snapshot.id, k.matches]),
    }));
    const summaries = t.context.snapshots.map((s) => snapshotSummary(s.id, s));
    const groupBy = c.groupBy === undefined ? undefined : parseGroupBy(c.groupBy);
    const ours = planForget(summaries, policyFromFlags(c.flags), groupBy ? { groupBy } : {}).map((g) => ({
      key: JSON.stringify(g.key),
      keep: g.keep.map((s) => s.id),
      remove: g.remove.map((s) => s.id),
      reasons: g.reasons.map((k) => [k.snapshot.id, k.matches]),
    }));
    // restic prints its groups in map order, which is random.
    const byKey = (a: { key: string }, b: { key: string }) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
    t.deepEqual(ours.sort(byKey), theirs.sort(byKey));
    t.true(ours.some((g) => g.remove.length > 0) || c.flags.includes('unlimited'), 'a policy that removes nothing would prove little');
  });
}

suite('restic\'s refusals are ours', async (t) => {
  const summaries = t.context.snapshots.map((s) => snapshotSummary(s.id, s));
  const none = await restic(t, ['forget', '--dry-run', '--no-lock']);
  t.is(none.exitCode, 1);
  const noPolicy = t.throws(() => planForget(summaries, {}));
  t.true(none.all.includes(noPolicy.message), none.all);

  // Narrowed to one group (restic names the first group it meets, in random order).
  const dirB = path.join(t.context.workDir, 'b');
  const lastOne = await restic(t, ['forget', '--dry-run', '--no-lock', '--keep-tag', 'nothing-has-this', '--host', 'blog', '--path', dirB]);
  t.is(lastOne.exitCode, 1);
  const blogB = t.context.snapshots.filter((s) => s.hostname === 'blog' && s.paths?.[0] === dirB).map((s) => snapshotSummary(s.id, s));
  const refused = t.throws(() => planForget(blogB, { keepTags: [['nothing-has-this']] }));
  t.is(refused.message, `refusing to delete last snapshot of snapshot group "host blog, path [${dirB}]"`);
  t.true(lastOne.all.includes(refused.message), lastOne.all);

  for (const [flag, value, parse] of [
    ['--keep-within', '2w', parseDuration],
    ['--keep-within-daily', '5', parseDuration],
    ['--keep-daily', '-1', parseKeepCount],
    ['--keep-daily', 'seven', parseKeepCount],
    ['--group-by', 'host,pvc', parseGroupBy],
  ] as const) {
    const r = await restic(t, ['forget', '--dry-run', '--no-lock', flag, value]);
    t.not(r.exitCode, 0);
    const ourError = t.throws(() => (parse as (s: string) => unknown)(value));
    t.true(r.all.includes(ourError.message), `${flag} ${value}: restic said ${r.all}, we say ${ourError.message}`);
  }
});

suite('restic\'s "Applying Policy" line is describePolicy\'s', async (t) => {
  await Promise.all(
    cases.map(async (c) => {
      const r = await restic(t, ['forget', '--dry-run', '--no-lock', ...c.flags]);
      t.is(r.exitCode, 0, r.all);
      t.is(r.stdout.split('\n')[0], `Applying Policy: ${describePolicy(policyFromFlags(c.flags))}`);
    }),
  );
});
