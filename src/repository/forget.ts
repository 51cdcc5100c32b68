/**
 * Which snapshots `forget` keeps: restic's retention policy (internal/data/snapshot_policy.go),
 * its grouping (snapshot_group.go) and its option checks (cmd/restic/cmd_forget.go), ported from
 * restic v0.19.1 line for line so that a policy keeps exactly the snapshots restic would keep, for
 * the same reasons, worded as `restic forget --json` words them. Pure: it sees snapshot summaries,
 * never a repository.
 *
 * The rules, as restic applies them to each group, newest snapshot first:
 * - --keep-last/hourly/daily/weekly/monthly/yearly n: a snapshot is kept when its hour, day, ISO
 *   week, month or year (of its wall clock, in the zone its time was written with) differs from
 *   that of the previous kept one for that option, until n periods are kept (-1: no limit).
 *   Periods without snapshots do not count.
 * - "oldest": when an option still has periods left at the group's oldest snapshot, that snapshot
 *   is kept too, even though its period is already counted ("oldest daily snapshot").
 * - --keep-within d: everything newer than the newest snapshot minus d (calendar arithmetic for
 *   years, months and days, then exact hours). Snapshots in the future are not "the newest".
 * - --keep-within-hourly..yearly d: one per period among the snapshots within d, no count.
 * - --keep-tag a,b: every snapshot that has all of a and b; several lists are alternatives.
 */
import { UsageError } from '../errors.ts';
import { type Duration, formatDuration, goTrimSpace, isZeroDuration } from './duration.ts';
import {
  addDate,
  addHours,
  civil,
  compareTimes,
  fromDate,
  GO_ZERO_TIME,
  type GoTime,
  isoWeek,
  parseRFC3339,
} from './go-time.ts';

/** What the policy needs of a snapshot. */
export interface SnapshotSummary {
  /** The snapshot's ID (hex); the policy only carries it along. */
  readonly id: string;
  /** As written in the snapshot, nanoseconds and zone offset included. */
  readonly time: GoTime;
  readonly hostname: string;
  /** Absent where restic's JSON has null or nothing; an empty list is a different group key. */
  readonly paths?: readonly string[] | undefined;
  readonly tags?: readonly string[] | undefined;
}

/** The fields of a restic snapshot file (or `restic snapshots --json` entry) the policy reads. */
export interface SnapshotJson {
  time: string;
  hostname?: string;
  paths?: string[] | null;
  tags?: string[] | null;
}

export function snapshotSummary(id: string, json: SnapshotJson): SnapshotSummary {
  return {
    id,
    time: parseRFC3339(json.time),
    hostname: json.hostname ?? '',
    ...(json.paths ? { paths: json.paths } : {}),
    ...(json.tags ? { tags: json.tags } : {}),
  };
}

/** A count is n >= 0, or -1 for "unlimited"; 0 or absent: the option is off. */
export interface ForgetPolicy {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  keepWithin?: Duration;
  keepWithinHourly?: Duration;
  keepWithinDaily?: Duration;
  keepWithinWeekly?: Duration;
  keepWithinMonthly?: Duration;
  keepWithinYearly?: Duration;
  /** Each list is one --keep-tag: a snapshot with all of its tags is kept. */
  keepTags?: readonly (readonly string[])[];
}

export interface KeepCounters {
  last: number;
  hourly: number;
  daily: number;
  weekly: number;
  monthly: number;
  yearly: number;
}

export interface KeepReason<T extends SnapshotSummary = SnapshotSummary> {
  snapshot: T;
  /** restic's words: "last snapshot", "oldest daily snapshot", "within 7d", "has tags [a, b]", "daily within 1m". */
  matches: string[];
  /** What each counted option had left after this snapshot (-1: unlimited; 0 also for "off"). */
  counters: KeepCounters;
}

export interface PolicyResult<T extends SnapshotSummary = SnapshotSummary> {
  /** Newest first. */
  keep: T[];
  /** Newest first. */
  remove: T[];
  /** One per kept snapshot, in the order of keep. */
  reasons: KeepReason<T>[];
}

const MAX_INT64 = 2n ** 63n - 1n;

/**
 * A --keep-* value as restic reads it: "unlimited" is -1, otherwise a base-10 integer >= 0
 * (strconv.ParseInt's syntax and messages).
 */
export function parseKeepCount(text: string): number {
  if (text === 'unlimited') return -1;
  if (!/^[+-]?[0-9]+$/.test(text)) throw new UsageError(`strconv.ParseInt: parsing ${JSON.stringify(text)}: invalid syntax`);
  const value = BigInt(text);
  if (value > MAX_INT64 || value < -MAX_INT64 - 1n) {
    throw new UsageError(`strconv.ParseInt: parsing ${JSON.stringify(text)}: value out of range`);
  }
  if (value < 0n) throw new UsageError("negative values not allowed, use 'unlimited' instead");
  return Number(value);
}

const COUNTS = ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly'] as const;
const WITHINS = ['keepWithin', 'keepWithinHourly', 'keepWithinDaily', 'keepWithinWeekly', 'keepWithinMonthly', 'keepWithinYearly'] as const;

/**
 * A --keep-tag value as restic reads it (splitTagList): tags separated by commas, spaces around each
 * trimmed; "" is one empty tag, which matches the snapshots without tags.
 */
export function parseTagList(text: string): string[] {
  return text.split(',').map(goTrimSpace);
}

/** restic's verifyForgetOptions. */
export function validatePolicy(policy: ForgetPolicy): void {
  for (const name of COUNTS) {
    const n = policy[name] ?? 0;
    if (!Number.isInteger(n)) throw new UsageError(`--keep-* counts are whole numbers, not ${n}`);
    if (n < -1) throw new UsageError('negative values other than -1 are not allowed for --keep-*');
  }
  for (const name of WITHINS) {
    const d = policy[name];
    if (d && (d.hours < 0 || d.days < 0 || d.months < 0 || d.years < 0)) {
      throw new UsageError('durations containing negative values are not allowed for --keep-within*');
    }
  }
}

/** restic's ExpirePolicy.Empty(): no option set at all (an empty --keep-tag list counts as unset). */
export function isEmptyPolicy(policy: ForgetPolicy): boolean {
  if ((policy.keepTags?.length ?? 0) !== 0) return false;
  return COUNTS.every((name) => (policy[name] ?? 0) === 0) && WITHINS.every((name) => isZeroDuration(policy[name] ?? { years: 0, months: 0, days: 0, hours: 0 }));
}

const tagListString = (tags: readonly string[]): string => `[${tags.join(', ')}]`;

/** restic's ExpirePolicy.String(), which `forget` prints as "Applying Policy: ...". */
export function describePolicy(policy: ForgetPolicy): string {
  const keeps: string[] = [];
  const keepWithin: string[] = [];
  const words = ['latest', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'];
  COUNTS.forEach((name, i) => {
    const n = policy[name] ?? 0;
    if (n > 0) keeps.push(`${n} ${words[i]}`);
    else if (n === -1) keeps.push(`all ${words[i]}`);
  });
  WITHINS.slice(1).forEach((name, i) => {
    const d = policy[name];
    if (d && !isZeroDuration(d)) keepWithin.push(`${words[i + 1]} snapshots within ${formatDuration(d)}`);
  });
  let s = '';
  if (keeps.length > 0) s = `${keeps.join(', ')} snapshots`;
  if (keepWithin.length > 0) s += (s ? ', ' : '') + keepWithin.join(', ');
  const tags = policy.keepTags ?? [];
  if (tags.length > 0) s += `${s ? ' and ' : ''}all snapshots with tags [${tags.map(tagListString).join(' ')}]`;
  if (policy.keepWithin && !isZeroDuration(policy.keepWithin)) {
    s += `${s ? ' and ' : ''}all snapshots within ${formatDuration(policy.keepWithin)} of the newest`;
  }
  return s === '' ? 'remove' : `keep ${s}`;
}

type Bucker = (t: GoTime, nr: number) => number;

const always: Bucker = (_t, nr) => nr;
const ymdh: Bucker = (t) => {
  const c = civil(t);
  return c.year * 1_000_000 + c.month * 10_000 + c.day * 100 + c.hour;
};
const ymd: Bucker = (t) => {
  const c = civil(t);
  return c.year * 10_000 + c.month * 100 + c.day;
};
const yw: Bucker = (t) => {
  const w = isoWeek(t);
  return w.year * 100 + w.week;
};
const ym: Bucker = (t) => {
  const c = civil(t);
  return c.year * 100 + c.month;
};
const y: Bucker = (t) => civil(t).year;

/** restic's HasTags: the snapshot has every tag of the list; "" matches a snapshot without tags. */
function hasTags(snapshot: SnapshotSummary, list: readonly string[]): boolean {
  const tags = snapshot.tags ?? [];
  for (const tag of list) {
    if (tag === '' && tags.length === 0) return true;
    if (!tags.includes(tag)) return false;
  }
  return true;
}

/** The newest snapshot time that is not after now (Go's zero time when there is none). */
function latestTimestamp(list: readonly SnapshotSummary[], now: GoTime): GoTime {
  let latest = GO_ZERO_TIME;
  for (const sn of list) {
    if (compareTimes(sn.time, latest) > 0 && compareTimes(sn.time, now) < 0) latest = sn.time;
  }
  return latest;
}

function withinThreshold(latest: GoTime, d: Duration): GoTime {
  return addHours(addDate(latest, -d.years, -d.months, -d.days), -d.hours);
}

/**
 * restic's ApplyPolicy on one group: which snapshots to keep and why. `now` only decides which
 * snapshots are in the future (restic uses the clock).
 */
export function applyPolicy<T extends SnapshotSummary>(snapshots: readonly T[], policy: ForgetPolicy, now: Date | GoTime = new Date()): PolicyResult<T> {
  // Newest first; equal times keep their order (sort.Stable).
  const list = [...snapshots].sort((a, b) => compareTimes(b.time, a.time));
  const result: PolicyResult<T> = { keep: [], remove: [], reasons: [] };
  if (list.length === 0) return result;

  const buckets = [
    { count: policy.keepLast ?? 0, bucker: always, last: -1, reason: 'last snapshot' },
    { count: policy.keepHourly ?? 0, bucker: ymdh, last: -1, reason: 'hourly snapshot' },
    { count: policy.keepDaily ?? 0, bucker: ymd, last: -1, reason: 'daily snapshot' },
    { count: policy.keepWeekly ?? 0, bucker: yw, last: -1, reason: 'weekly snapshot' },
    { count: policy.keepMonthly ?? 0, bucker: ym, last: -1, reason: 'monthly snapshot' },
    { count: policy.keepYearly ?? 0, bucker: y, last: -1, reason: 'yearly snapshot' },
  ];
  const bucketsWithin = [
    { within: policy.keepWithinHourly, bucker: ymdh, last: -1, reason: 'hourly within' },
    { within: policy.keepWithinDaily, bucker: ymd, last: -1, reason: 'daily within' },
    { within: policy.keepWithinWeekly, bucker: yw, last: -1, reason: 'weekly within' },
    { within: policy.keepWithinMonthly, bucker: ym, last: -1, reason: 'monthly within' },
    { within: policy.keepWithinYearly, bucker: y, last: -1, reason: 'yearly within' },
  ];

  const latest = latestTimestamp(list, now instanceof Date ? fromDate(now) : now);
  const oldest = list.length - 1;

  list.forEach((cur, nr) => {
    let keepSnap = false;
    const matches: string[] = [];

    // Tags are not counted.
    for (const tags of policy.keepTags ?? []) {
      if (hasTags(cur, tags)) {
        keepSnap = true;
        matches.push(`has tags ${tagListString(tags)}`);
      }
    }

    if (policy.keepWithin && !isZeroDuration(policy.keepWithin)) {
      if (compareTimes(cur.time, withinThreshold(latest, policy.keepWithin)) > 0) {
        keepSnap = true;
        matches.push(`within ${formatDuration(policy.keepWithin)}`);
      }
    }

    for (const b of buckets) {
      if (b.count > 0 || b.count === -1) {
        const val = b.bucker(cur.time, nr);
        // The oldest snapshot is kept too while the option has periods left: the longest history.
        if (val !== b.last || nr === oldest) {
          keepSnap = true;
          matches.push(val === b.last && nr === oldest ? `oldest ${b.reason}` : b.reason);
          b.last = val;
          if (b.count > 0) b.count--;
        }
      }
    }

    for (const b of bucketsWithin) {
      if (b.within && !isZeroDuration(b.within) && compareTimes(cur.time, withinThreshold(latest, b.within)) > 0) {
        const val = b.bucker(cur.time, nr);
        if (val !== b.last || nr === oldest) {
          keepSnap = true;
          const reason = val === b.last && nr === oldest ? `oldest ${b.reason}` : b.reason;
          matches.push(`${reason} ${formatDuration(b.within)}`);
          b.last = val;
        }
      }
    }

    if (keepSnap) {
      result.keep.push(cur);
      const [last, hourly, daily, weekly, monthly, yearly] = buckets.map((b) => b.count) as [number, number, number, number, number, number];
      result.reasons.push({ snapshot: cur, matches, counters: { last, hourly, daily, weekly, monthly, yearly } });
    } else {
      result.remove.push(cur);
    }
  });
  return result;
}

/** restic's --group-by: any of host, paths, tags; none means one group of everything. */
export interface GroupBy {
  host: boolean;
  paths: boolean;
  tags: boolean;
}

/** restic's default --group-by. */
export const DEFAULT_GROUP_BY: GroupBy = { host: true, paths: true, tags: false };

/** A --group-by value as restic reads it: "host,paths"; singular or plural; "" for no grouping. */
export function parseGroupBy(text: string): GroupBy {
  const g: GroupBy = { host: false, paths: false, tags: false };
  for (const option of text.split(',')) {
    switch (option) {
      case 'host':
      case 'hosts':
        g.host = true;
        break;
      case 'path':
      case 'paths':
        g.paths = true;
        break;
      case 'tag':
      case 'tags':
        g.tags = true;
        break;
      case '':
        break;
      default:
        throw new UsageError(`unknown grouping option: ${JSON.stringify(option)}`);
    }
  }
  return g;
}

/** restic's normalised form: "host,paths,tags". */
export function formatGroupBy(g: GroupBy): string {
  return [g.host ? 'host' : '', g.paths ? 'paths' : '', g.tags ? 'tags' : ''].filter(Boolean).join(',');
}

/** What a group shares; restic's forget --json prints it as the group's host, paths and tags. */
export interface GroupKey {
  /** "" unless grouping by host. */
  hostname: string;
  /** Sorted; null unless grouping by paths (or when the snapshots have none). */
  paths: string[] | null;
  /** Sorted; null unless grouping by tags (or when the snapshots have none). */
  tags: string[] | null;
}

export interface SnapshotGroup<T extends SnapshotSummary = SnapshotSummary> {
  key: GroupKey;
  /** In the order given. */
  snapshots: T[];
}

/** Go's sort.Strings: by UTF-8 bytes, which JavaScript's default sort (UTF-16 units) is not. */
function sortedAsGo(list: readonly string[]): string[] {
  return [...list].sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
}

/**
 * restic's GroupSnapshots. restic returns a map and walks it in random order; here the groups come
 * sorted by their key, so the output is the same every time. restic also sorts each snapshot's
 * paths in place; the snapshots given here are left as they are.
 */
export function groupSnapshots<T extends SnapshotSummary>(snapshots: readonly T[], groupBy: GroupBy): SnapshotGroup<T>[] {
  const groups = new Map<string, SnapshotGroup<T>>();
  for (const sn of snapshots) {
    const key: GroupKey = {
      hostname: groupBy.host ? sn.hostname : '',
      paths: groupBy.paths && sn.paths ? sortedAsGo(sn.paths) : null,
      tags: groupBy.tags && sn.tags ? sortedAsGo(sn.tags) : null,
    };
    const k = JSON.stringify(key);
    const group = groups.get(k);
    if (group) group.snapshots.push(sn);
    else groups.set(k, { key, snapshots: [sn] });
  }
  return [...groups.entries()]
    .sort(([a], [b]) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')))
    .map(([, group]) => group);
}

/** restic's SnapshotGroupKey.String(): "host h, path [/a /b], tags [x]". */
export function describeGroupKey(key: GroupKey): string {
  const parts: string[] = [];
  if (key.hostname !== '') parts.push(`host ${key.hostname}`);
  if (key.paths && key.paths.length > 0) parts.push(`path [${key.paths.join(' ')}]`);
  if (key.tags && key.tags.length > 0) parts.push(`tags [${key.tags.join(' ')}]`);
  return parts.join(', ');
}

export interface ForgetOptions {
  /** restic's default: host and paths. */
  groupBy?: GroupBy;
  /** Decides which snapshots are in the future; the clock by default. */
  now?: Date | GoTime;
  /** --unsafe-allow-remove-all: an empty policy removes every snapshot the filter selected. */
  unsafeAllowRemoveAll?: boolean;
  /** Whether the snapshots were narrowed by --host, --path or --tag (required for remove-all). */
  snapshotFilterGiven?: boolean;
}

export interface ForgetGroup<T extends SnapshotSummary = SnapshotSummary> extends PolicyResult<T> {
  key: GroupKey;
}

/**
 * restic forget's decision without its side effects: the policy checked, the snapshots grouped, the
 * policy applied to each group. Throws restic's errors: an empty policy is refused ("no policy was
 * specified, no snapshots will be removed") unless --unsafe-allow-remove-all is given together with
 * a snapshot filter, and a policy that would leave a group with no snapshot at all is refused as a
 * whole, before anything is removed.
 */
export function planForget<T extends SnapshotSummary>(snapshots: readonly T[], policy: ForgetPolicy, options: ForgetOptions = {}): ForgetGroup<T>[] {
  validatePolicy(policy);
  const empty = isEmptyPolicy(policy);
  if (empty) {
    if (!options.unsafeAllowRemoveAll) throw new UsageError('no policy was specified, no snapshots will be removed');
    if (!options.snapshotFilterGiven) {
      throw new UsageError('--unsafe-allow-remove-all is not allowed unless a snapshot filter option is specified');
    }
  }
  return groupSnapshots(snapshots, options.groupBy ?? DEFAULT_GROUP_BY).map((group) => {
    const result = applyPolicy(group.snapshots, policy, options.now);
    if (!empty && result.keep.length === 0) {
      throw new UsageError(`refusing to delete last snapshot of snapshot group "${describeGroupKey(group.key)}"`);
    }
    return { key: group.key, ...result };
  });
}
