import test from 'ava';
import { chooseSnapshotSource, type SnapshotFacts } from '../../src/backup/snapshot-choice.ts';

const DRIVER = 'hostpath.csi.example.com';
const classes = (...entries: [string, string, boolean?][]) => entries.map(([name, driver, isDefault]) => ({ name, driver, isDefault: Boolean(isDefault) }));
const facts = (overrides: Partial<SnapshotFacts> = {}): SnapshotFacts => ({ driver: DRIVER, classes: classes(['fast', DRIVER]), ...overrides });

test('auto takes the driver\'s only class, or the one marked default among several; classes of other drivers do not count', (t) => {
  t.like(chooseSnapshotSource(facts(), 'auto', undefined), { use: true, snapshotClass: 'fast' });
  const several = facts({ classes: classes(['a', DRIVER], ['b', DRIVER, true], ['c', 'other.csi', true]) });
  t.like(chooseSnapshotSource(several, 'auto', undefined), { use: true, snapshotClass: 'b', reason: 'a snapshot of class b, the default for driver hostpath.csi.example.com' });
  t.like(chooseSnapshotSource(facts({ classes: classes(['c', 'other.csi', true]) }), 'auto', undefined), {
    use: false,
    reason: 'read live: no VolumeSnapshotClass is for its CSI driver hostpath.csi.example.com',
  });
});

test('auto reads live and says why where no class fits; always refuses with the same reason', (t) => {
  const cases: [Partial<SnapshotFacts>, RegExp][] = [
    [{ driver: null }, /not a CSI volume/],
    [{ driver: { unknown: 'its PersistentVolume could not be read' } }, /could not be read/],
    [{ classes: { unknown: 'the cluster serves no VolumeSnapshot API (snapshot.storage.k8s.io/v1)' } }, /no VolumeSnapshot API/],
    [{ classes: classes(['a', DRIVER], ['b', DRIVER]) }, /has 2 VolumeSnapshotClasses \(a, b\) and none is the default: pick one with --snapshot-class/],
    [{ classes: classes(['a', DRIVER, true], ['b', DRIVER, true]) }, /several are the default/],
  ];
  for (const [overrides, reason] of cases) {
    const auto = chooseSnapshotSource(facts(overrides), 'auto', undefined);
    t.false(auto.use);
    t.false(!auto.use && Boolean(auto.refused), 'auto falls back');
    t.regex(auto.reason, /^read live: /);
    t.regex(auto.reason, reason);
    const always = chooseSnapshotSource(facts(overrides), 'always', undefined);
    t.like(always, { use: false, refused: true });
    t.regex(always.reason, /^--snapshot always: /);
    t.regex(always.reason, reason);
  }
});

test('--snapshot-class must exist; a claim of another driver is read live under auto and refused under always', (t) => {
  const several = facts({ classes: classes(['a', DRIVER], ['b', DRIVER], ['x', 'other.csi']) });
  t.like(chooseSnapshotSource(several, 'auto', 'b'), { use: true, snapshotClass: 'b', reason: 'a snapshot of class b (--snapshot-class)' });
  t.like(chooseSnapshotSource(several, 'auto', 'missing'), { use: false, refused: true, reason: 'there is no VolumeSnapshotClass missing (--snapshot-class)' });
  t.like(chooseSnapshotSource({ ...several, driver: null }, 'auto', 'missing'), { use: false, refused: true }, 'a typo is a typo on any claim');
  t.like(chooseSnapshotSource(several, 'auto', 'x'), { use: false, reason: 'read live: VolumeSnapshotClass x (--snapshot-class) is for driver other.csi, not hostpath.csi.example.com, the claim\'s' });
  t.false(Boolean((chooseSnapshotSource(several, 'auto', 'x') as { refused?: boolean }).refused));
  t.like(chooseSnapshotSource(several, 'always', 'x'), { use: false, refused: true });
  t.like(chooseSnapshotSource({ ...several, driver: null }, 'auto', 'b'), { use: false, reason: 'read live: its volume is not a CSI volume, so it cannot be snapshotted' });
  t.deepEqual(chooseSnapshotSource(several, 'never', 'b'), { use: false, reason: 'read live: --snapshot never' });
});
