/**
 * prune's plan (src/repository/prune.ts), pure: which packs are deleted, repacked or kept for a given
 * use of their blobs and --max-unused, duplicates, the refusals, and restic's option parsing and
 * number formats. The whole prune against the real restic is test/integration/repository-prune.test.ts.
 */
import test from 'ava';
import crypto from 'node:crypto';
import { MAX_BLOBS_PER_PACK, packSize, type BlobType, type PackedBlob } from '../../src/repository/pack.ts';
import {
  blobKey,
  describePruneStats,
  formatBytes,
  formatPercent,
  maxUnusedBytes,
  parseBytes,
  parseMaxUnused,
  planPrune,
  PruneError,
  type PruneOptions,
} from '../../src/repository/prune.ts';

const MiB = 1024 * 1024;
const id = () => crypto.randomBytes(32).toString('hex');

interface Pack {
  id: string;
  blobs: PackedBlob[];
}

/** A pack of compressed blobs of these lengths. */
function pack(type: BlobType, lengths: number[], options: { uncompressed?: boolean; ids?: string[] } = {}): Pack {
  let offset = 0;
  const blobs = lengths.map((length, i) => {
    const blob: PackedBlob = { type, id: options.ids?.[i] ?? id(), offset, length };
    if (!options.uncompressed) blob.uncompressedLength = length * 2;
    offset += length;
    return blob;
  });
  return { id: id(), blobs };
}

/** Ten blobs of 1 MiB: a pack above restic's smallest target size (80% of 4 MiB). */
const bigData = () => pack('data', Array(10).fill(MiB));

function plan(packs: Pack[], usedBlobs: { type: BlobType; id: string }[], options: Partial<PruneOptions> = {}, onDisk?: Map<string, number>) {
  const disk = onDisk ?? new Map(packs.map((p) => [p.id, packSize(p.blobs)]));
  const used = new Map(usedBlobs.map((b) => [blobKey(b.type, b.id), 0]));
  return planPrune(packs, disk, used, { maxUnused: { kind: 'percent', percent: 5 }, repositoryVersion: 2, ...options });
}

const some = (p: Pack, n: number) => p.blobs.slice(0, n);

test('a pack with no blob in use is deleted, a fully used one kept, an unindexed pack file deleted first', (t) => {
  const unused = bigData();
  const full = bigData();
  const disk = new Map([[unused.id, packSize(unused.blobs)], [full.id, packSize(full.blobs)], ['ab'.repeat(32), 1234]]);
  const result = plan([unused, full], full.blobs, {}, disk);
  t.deepEqual(result.removePacks, [unused.id]);
  t.deepEqual(result.repackPacks, []);
  t.deepEqual(result.removePacksFirst, ['ab'.repeat(32)]);
  t.is(result.keepBlobs.size, 0, 'nothing to copy when nothing is repacked');
  const { blobs, bytes, packfiles } = result.stats;
  t.like(blobs, { used: 10, unused: 10, total: 20, remove: 10, remove_total: 10, remaining: 10 });
  t.like(bytes, { used: 10 * MiB, unused: 10 * MiB, unreferenced: 1234, remove: 10 * MiB, remove_total: 10 * MiB + 1234 });
  t.like(packfiles, { used: 1, unused: 1, partly_used: 0, unreferenced: 1, keep: 1, repack: 0, remove: 1, remove_total: 2, total: 3 });
});

test('a partly used data pack is kept while the unused bytes stay within --max-unused, repacked beyond it', (t) => {
  const a = bigData();
  const b = bigData();
  // 19 MiB used, 1 MiB unused: 5% of the total.
  const used = [...a.blobs, ...some(b, 9)];
  t.deepEqual(plan([a, b], used, { maxUnused: { kind: 'percent', percent: 10 } }).repackPacks, [], '1 MiB < 10/90 of 19 MiB');
  t.deepEqual(plan([a, b], used, { maxUnused: { kind: 'unlimited' } }).repackPacks, []);
  t.deepEqual(plan([a, b], used, { maxUnused: { kind: 'bytes', bytes: 2 * MiB } }).repackPacks, []);
  // The limit is "below": exactly 1 MiB tolerated is not enough.
  t.deepEqual(plan([a, b], used, { maxUnused: { kind: 'bytes', bytes: MiB } }).repackPacks, [b.id]);
  const none = plan([a, b], used, { maxUnused: { kind: 'bytes', bytes: 0 } });
  t.deepEqual(none.repackPacks, [b.id]);
  t.deepEqual(none.removePacks, []);
  t.deepEqual([...none.keepBlobs.keys()].sort(), some(b, 9).map((x) => blobKey('data', x.id)).sort(), 'the used blobs of the repacked pack are copied');
  t.like(none.stats.blobs, { repack: 10, repack_remove: 1, remove_total: 1, remaining: 19 });
  // A pack's header counts as used.
  t.like(none.stats.bytes, { repack: packSize(b.blobs), repack_remove: MiB, remaining_unused: 0 });
  t.like(none.stats.packfiles, { keep: 1, repack: 1, partly_used: 1, used: 1 });
});

test('the packs with the largest share of unused bytes are repacked first, until the limit is met', (t) => {
  const full = bigData();
  const mostlyUnused = bigData();
  const slightlyUnused = bigData();
  const used = [...full.blobs, ...some(mostlyUnused, 2), ...some(slightlyUnused, 8)];
  // 20 MiB used; unused 8 + 2 MiB. 10% tolerates 2.22 MiB: repacking the 8 MiB waste leaves 2 MiB.
  const result = plan([full, slightlyUnused, mostlyUnused], used, { maxUnused: { kind: 'percent', percent: 10 } });
  t.deepEqual(result.repackPacks, [mostlyUnused.id]);
  t.like(result.stats.bytes, { remaining_unused: 2 * MiB });
  const all = plan([full, slightlyUnused, mostlyUnused], used, { maxUnused: { kind: 'bytes', bytes: 0 } });
  t.deepEqual(all.repackPacks, [mostlyUnused.id, slightlyUnused.id]);
});

test('--max-repack-size stops repacking (0: none at all)', (t) => {
  const a = bigData();
  const b = bigData();
  const used = [...some(a, 5), ...some(b, 5)];
  t.deepEqual(plan([a, b], used, { maxUnused: { kind: 'bytes', bytes: 0 }, maxRepackBytes: 0 }).repackPacks, []);
  t.is(plan([a, b], used, { maxUnused: { kind: 'bytes', bytes: 0 }, maxRepackBytes: 15 * MiB }).repackPacks.length, 1);
  t.is(plan([a, b], used, { maxUnused: { kind: 'bytes', bytes: 0 } }).repackPacks.length, 2);
});

test('tree packs with unused blobs are repacked whatever --max-unused says; uncompressed tree packs in version 2 too', (t) => {
  const data = bigData();
  // Large enough that a data pack like it would be kept.
  const trees = pack('tree', Array(10).fill(MiB));
  const result = plan([data, trees], [...data.blobs, ...some(trees, 9)], { maxUnused: { kind: 'unlimited' } });
  t.deepEqual(result.repackPacks, [trees.id]);
  t.deepEqual([...result.keepBlobs.keys()].sort(), some(trees, 9).map((x) => blobKey('tree', x.id)).sort());
  const likeIt = bigData();
  t.deepEqual(plan([data, likeIt], [...data.blobs, ...some(likeIt, 9)], { maxUnused: { kind: 'unlimited' } }).repackPacks, []);

  const plainTrees = pack('tree', Array(10).fill(MiB), { uncompressed: true });
  t.deepEqual(plan([data, plainTrees], [...data.blobs, ...plainTrees.blobs], { maxUnused: { kind: 'unlimited' } }).repackPacks, [plainTrees.id]);
  t.deepEqual(plan([data, plainTrees], [...data.blobs, ...plainTrees.blobs], { maxUnused: { kind: 'unlimited' }, repositoryVersion: 1 }).repackPacks, [], 'version 1 has no compression');
});

test('small fully used packs are repacked only when there are ten or more of them', (t) => {
  const big = bigData();
  const small = (n: number) => Array.from({ length: n }, () => pack('data', [1000, 1000]));
  const nine = small(9);
  t.deepEqual(plan([big, ...nine], [...big.blobs, ...nine.flatMap((p) => p.blobs)]).repackPacks, []);
  const ten = small(10);
  const result = plan([big, ...ten], [...big.blobs, ...ten.flatMap((p) => p.blobs)]);
  t.deepEqual(result.repackPacks.sort(), ten.map((p) => p.id).sort());
  t.is(result.stats.packfiles.keep, 1);
});

test('fully used packs of as many blobs as a pack of ours holds are not small, however few bytes: a repack would give the same', (t) => {
  const big = bigData();
  const full = Array.from({ length: 10 }, () => pack('data', Array(MAX_BLOBS_PER_PACK).fill(60)));
  const result = plan([big, ...full], [...big.blobs, ...full.flatMap((p) => p.blobs)]);
  t.deepEqual(result.repackPacks, []);
  t.is(result.stats.packfiles.keep, 11);
  const short = Array.from({ length: 10 }, () => pack('data', Array(MAX_BLOBS_PER_PACK - 1).fill(60)));
  t.is(plan([big, ...short], [...big.blobs, ...short.flatMap((p) => p.blobs)]).repackPacks.length, 10, 'one blob fewer: small, repacked');
});

test('a blob stored twice keeps the copy in a pack that is used anyway; the other copy goes with its pack', (t) => {
  const shared = id();
  const a = pack('data', [MiB, MiB, MiB, MiB, MiB], { ids: [shared, id(), id(), id(), id()] });
  const b = pack('data', [MiB, MiB, MiB, MiB, MiB], { ids: [shared, id(), id(), id(), id()] });
  // Only the shared blob and a's others are used: b holds nothing else in use.
  const result = plan([a, b], [...a.blobs], { maxUnused: { kind: 'bytes', bytes: 0 } });
  t.deepEqual(result.removePacks, [b.id]);
  t.deepEqual(result.repackPacks, []);
  // restic counts the spare copy as a duplicate, not as unused.
  t.like(result.stats.blobs, { used: 5, duplicate: 1, unused: 4, remove: 5 });
  t.like(result.stats.packfiles, { used: 1, unused: 1 });

  // Both packs otherwise used: one copy stays counted as a duplicate, unused.
  const both = plan([a, b], [...a.blobs, ...b.blobs], { maxUnused: { kind: 'unlimited' } });
  t.like(both.stats.blobs, { used: 9, duplicate: 1, unused: 0 });
  t.deepEqual(both.repackPacks, [], 'tolerated: a small waste in large packs');
  const tidy = plan([a, b], [...a.blobs, ...b.blobs], { maxUnused: { kind: 'bytes', bytes: 0 } });
  t.is(tidy.repackPacks.length, 1, 'with nothing tolerated the pack holding the spare copy is repacked');
  t.false(tidy.keepBlobs.has(blobKey('data', shared)), 'the copy in the kept pack is enough');
});

test('a pack of nothing but copies (what an interrupted prune left) is the one kept', (t) => {
  const ids = [id(), id(), id(), id(), id()];
  // Repacked for its two unused blobs; the copy of its used ones was written, the pack not yet deleted.
  const original = pack('data', Array(7).fill(MiB), { ids });
  const other = pack('data', Array(5).fill(MiB));
  const copy = pack('data', Array(5).fill(MiB), { ids });
  const result = plan([original, other, copy], [...copy.blobs, ...other.blobs]);
  t.deepEqual(result.removePacks, [original.id]);
  t.deepEqual(result.repackPacks, []);
  t.like(result.stats.blobs, { used: 10, duplicate: 5, unused: 2, remove: 7 });
});

test('refusals: a used blob in no index, a used pack missing, a used pack of the wrong size', (t) => {
  const a = bigData();
  const missingBlob = t.throws(() => plan([a], [...a.blobs, { type: 'tree', id: 'cd'.repeat(32) }]), { instanceOf: PruneError });
  t.regex(missingBlob.message, /1 blob in use is in no index \(tree blob cdcdcdcd\).*data seems to be missing/);

  const gone = t.throws(() => plan([a], a.blobs, {}, new Map()), { instanceOf: PruneError });
  t.regex(gone.message, /the index lists 1 pack in use that is missing from the repository/);

  const wrongSize = t.throws(() => plan([a], a.blobs, {}, new Map([[a.id, packSize(a.blobs) - 1]])), { instanceOf: PruneError });
  t.regex(wrongSize.message, /its size by the index is \d+ bytes, on disk \d+/);
  t.regex(wrongSize.hint!, /restic repair index/);
});

test('an unused pack the index lists but the disk lacks is dropped from the index, not an error', (t) => {
  const a = bigData();
  const lost = bigData();
  const result = plan([a, lost], a.blobs, {}, new Map([[a.id, packSize(a.blobs)]]));
  t.deepEqual(result.ignorePacks, [lost.id]);
  t.deepEqual(result.removePacks, []);
  t.like(result.stats.blobs, { remove: 10 });
});

test('--max-unused and sizes are read as restic reads them', (t) => {
  t.deepEqual(parseMaxUnused('5%'), { kind: 'percent', percent: 5 });
  t.deepEqual(parseMaxUnused(' 2.5% '), { kind: 'percent', percent: 2.5 });
  t.deepEqual(parseMaxUnused('0'), { kind: 'bytes', bytes: 0 });
  t.deepEqual(parseMaxUnused('200M'), { kind: 'bytes', bytes: 200 * MiB });
  t.deepEqual(parseMaxUnused('unlimited'), { kind: 'unlimited' });
  t.throws(() => parseMaxUnused('100%'), { message: 'percentage for --max-unused must be below 100%' });
  t.throws(() => parseMaxUnused('-1%'), { message: 'percentage for --max-unused must be positive' });
  t.throws(() => parseMaxUnused(''), { message: 'invalid value for --max-unused: ""' });
  t.throws(() => parseMaxUnused('lots'), { message: /^invalid number of bytes "lots" for --max-unused: strconv.ParseInt: parsing "lots": invalid syntax$/ });
  t.throws(() => parseMaxUnused('x%'), { message: /^invalid percentage "x%" passed for --max-unused/ });
  t.is(parseBytes('1k'), 1024);
  t.is(parseBytes('3G'), 3 * 1024 ** 3);
  t.is(parseBytes('12b'), 12);
  t.throws(() => parseBytes('-1'), { message: /value out of range/ });
  // p/(100-p) of the used bytes: p% of what remains.
  t.is(maxUnusedBytes({ kind: 'percent', percent: 10 }, 900), 100);
  t.is(maxUnusedBytes({ kind: 'percent', percent: 0 }, 900), 0);
  t.is(maxUnusedBytes({ kind: 'unlimited' }, 900), Infinity);
});

test("restic's number formats and summary lines", (t) => {
  t.is(formatBytes(0), '0 B');
  t.is(formatBytes(1023), '1023 B');
  t.is(formatBytes(1536), '1.500 KiB');
  t.is(formatBytes(2.5 * MiB), '2.500 MiB');
  t.is(formatBytes(3 * 1024 ** 3), '3.000 GiB');
  t.is(formatPercent(1, 3), '33.33%');
  t.is(formatPercent(0, 0), '');
  const a = bigData();
  const text = describePruneStats(plan([a, bigData()], a.blobs).stats);
  t.true(text.includes('to delete:            10 blobs / 10.000 MiB\n'), text);
  t.true(text.includes('unused size after prune: 0 B (0.00% of remaining size)\n'), text);
});
