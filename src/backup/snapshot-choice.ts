/**
 * Whether a backup reads a CSI VolumeSnapshot of the claim or the live claim, and why: a pure choice
 * from what the cluster told (volume-snapshot.ts reads it), so it is tested without a cluster and
 * the backup command's flags need none of the cluster client.
 */
export const SNAPSHOT_MODES = ['auto', 'always', 'never'] as const;
export type SnapshotMode = (typeof SNAPSHOT_MODES)[number];

export interface SnapshotClassInfo {
  name: string;
  driver: string;
  isDefault: boolean;
}

/** Where a backup reads from, and why: the result and the catalog carry it. */
export interface BackupSource {
  kind: 'snapshot' | 'live';
  reason: string;
  /** With a snapshot: its VolumeSnapshotClass, the VolumeSnapshot and the temporary claim made from it. */
  snapshotClass?: string | undefined;
  volumeSnapshot?: string | undefined;
  claim?: string | undefined;
  /** --keep-snapshot: the VolumeSnapshot was left in place. */
  kept?: boolean | undefined;
}

/** What the cluster told about the claim's volume and the snapshot classes. */
export interface SnapshotFacts {
  /** The CSI driver behind the claim's volume; null when it is not a CSI volume; a string reason when it could not be told. */
  driver: string | null | { unknown: string };
  /** The classes the cluster has; a string when they could not be listed (no API, no permission). */
  classes: SnapshotClassInfo[] | { unknown: string };
}

export type SnapshotChoice = { use: true; snapshotClass: string; reason: string } | { use: false; reason: string; refused?: boolean };

/**
 * The snapshot class for a claim, or why none: --snapshot-class names one (it must exist; a claim
 * of another driver is read live under auto); else the driver's class marked default; else its only class. `always` turns
 * every "why none" into a refusal; `auto` reads the claim live and says why.
 */
export function chooseSnapshotSource(facts: SnapshotFacts, mode: SnapshotMode, requestedClass: string | undefined): SnapshotChoice {
  if (mode === 'never') return { use: false, reason: 'read live: --snapshot never' };
  const none = (why: string): SnapshotChoice =>
    mode === 'always' ? { use: false, refused: true, reason: `--snapshot always: ${why}` } : { use: false, reason: `read live: ${why}` };
  const { driver, classes } = facts;
  // A class that does not exist is a typo in any mode; one of another driver leaves this claim live under auto (backup --all).
  const named = requestedClass && Array.isArray(classes) ? classes.find((entry) => entry.name === requestedClass) : undefined;
  if (requestedClass && Array.isArray(classes) && !named) return { use: false, refused: true, reason: `there is no VolumeSnapshotClass ${requestedClass} (--snapshot-class)` };
  if (driver === null) return none('its volume is not a CSI volume, so it cannot be snapshotted');
  if (typeof driver === 'object') return none(driver.unknown);
  if (!Array.isArray(classes)) return none(classes.unknown);
  if (named) {
    if (named.driver !== driver) return none(`VolumeSnapshotClass ${named.name} (--snapshot-class) is for driver ${named.driver}, not ${driver}, the claim's`);
    return { use: true, snapshotClass: named.name, reason: `a snapshot of class ${named.name} (--snapshot-class)` };
  }
  const fitting = classes.filter((entry) => entry.driver === driver);
  if (fitting.length === 0) return none(`no VolumeSnapshotClass is for its CSI driver ${driver}`);
  const defaults = fitting.filter((entry) => entry.isDefault);
  if (defaults.length === 1) return { use: true, snapshotClass: defaults[0]!.name, reason: `a snapshot of class ${defaults[0]!.name}, the default for driver ${driver}` };
  if (fitting.length === 1) return { use: true, snapshotClass: fitting[0]!.name, reason: `a snapshot of class ${fitting[0]!.name}, the only one for driver ${driver}` };
  return none(`driver ${driver} has ${fitting.length} VolumeSnapshotClasses (${fitting.map((entry) => entry.name).join(', ')}) and ${defaults.length ? 'several are' : 'none is'} the default: pick one with --snapshot-class`);
}
