import test from 'ava';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { metadataFixupScript, shellQuoteBytes } from '../../src/backup/restore.ts';
import { helperPodManifest } from '../../src/backup/helper-pod.ts';
import type { TarEntry } from '../../src/backup/tar-stream.ts';
import type { DiscoveredClaim } from '../../src/backup/discovery.ts';

function entry(name: Buffer | string, type: TarEntry['type'], extra: Partial<TarEntry> = {}): TarEntry {
  return { name: Buffer.isBuffer(name) ? name : Buffer.from(name), linkName: Buffer.alloc(0), type, mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 0, ...extra };
}

test('any bytes become one shell word that busybox sh reads back exactly', (t) => {
  const awkward = Buffer.concat([Buffer.from("it's a \\ \"name\"\n with $(x) `y` "), Buffer.from([0xff, 0x01, 0x7f]), Buffer.from('-end')]);
  const word = shellQuoteBytes(awkward);
  t.false(word.includes('\n'));
  const echoed = execFileSync('/bin/busybox', ['sh', '-c', `printf '%s' ${word}`]);
  t.true(echoed.equals(awkward));
});

test('the fix-up script restores symlink owners and times, then directory times deepest first', (t) => {
  const script = metadataFixupScript([
    entry('./', 'directory', { mtime: 100 }),
    entry('./a/', 'directory', { mtime: 200 }),
    entry('./a/b/c/', 'directory', { mtime: 300 }),
    entry('./a/link', 'symlink', { uid: 1000, gid: 2000, mtime: 400, linkName: Buffer.from('x') }),
    entry('./file', 'file', { mtime: 500 }),
  ]);
  t.is(
    script,
    [
      'cd /data || exit 1',
      "chown -h 1000:2000 -- $'./a/link' || exit 1",
      "touch -h -d @400 -- $'./a/link' || exit 1",
      "touch -d @300 -- $'./a/b/c/' || exit 1",
      "touch -d @200 -- $'./a/' || exit 1",
      "touch -d @100 -- $'./' || exit 1",
      '',
    ].join('\n'),
  );
});

test('the fix-up script really sets what busybox tar leaves behind', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-fixup-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'data', 'd'), { recursive: true });
  fs.symlinkSync('target', path.join(dir, 'data', oddName()));
  const script = metadataFixupScript([entry(`./${oddName()}`, 'symlink', { uid: 1234, gid: 5678, mtime: 1500000000 }), entry('./d/', 'directory', { mtime: 1400000000 })])
    .replace('cd /data', `cd ${dir}/data`);
  execFileSync('/bin/busybox', ['sh', '-s'], { input: script });
  const link = fs.lstatSync(path.join(dir, 'data', oddName()));
  t.is(link.uid, 1234);
  t.is(link.gid, 5678);
  t.is(Math.floor(link.mtimeMs / 1000), 1500000000);
  t.is(Math.floor(fs.statSync(path.join(dir, 'data', 'd')).mtimeMs / 1000), 1400000000);
});

function oddName(): string {
  return 'odd name\nwith newline';
}

test('a restore helper mounts the claim read-write with only the capabilities to set owners and modes', (t) => {
  const claim: DiscoveredClaim = { namespace: 'a', name: 'data', phase: 'Bound', capacity: '1Gi', storageClass: null, accessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem', volume: 'pv', pods: [] };
  const pod = helperPodManifest(claim, { image: 'busybox', runId: 'r', deadlineSeconds: 60 }, 'restore');
  t.is(pod.metadata!.generateName, 'nkvm-restore-data-');
  t.like(pod.metadata!.labels, { 'app.kubernetes.io/component': 'backup-helper', 'nkvm.dev/purpose': 'restore' });
  t.deepEqual(pod.spec!.volumes, [{ name: 'data', persistentVolumeClaim: { claimName: 'data', readOnly: false } }]);
  t.deepEqual(pod.spec!.containers[0]!.volumeMounts, [{ name: 'data', mountPath: '/data', readOnly: false }]);
  t.deepEqual(pod.spec!.containers[0]!.securityContext?.capabilities, { drop: ['ALL'], add: ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID'] });
  t.false(pod.spec!.automountServiceAccountToken);
});

test('a helper running as the workload user gives nothing away: no chown in its fix-up script, times still set', (t) => {
  const script = metadataFixupScript([entry('./a/link', 'symlink', { uid: 1000, gid: 2000, mtime: 400 })], { owners: false });
  t.is(script, ["cd /data || exit 1", "touch -h -d @400 -- $'./a/link' || exit 1", ''].join('\n'));
});
