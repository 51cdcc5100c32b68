import test from 'ava';
import chalk from 'chalk';
import { renderClaims } from '../../src/cli/commands/discover.ts';
import { renderResults } from '../../src/cli/commands/backup.ts';
import { renderRecords, renderRecordText } from '../../src/cli/commands/artifacts.ts';
import { formatBytes, formatDuration, shortAccessModes } from '../../src/cli/format.ts';
import type { DiscoveredClaim } from '../../src/backup/discovery.ts';
import type { BackupResult } from '../../src/backup/manager.ts';
import type { BackupRecord } from '../../src/store/catalog.ts';

chalk.level = 0;

const claims: DiscoveredClaim[] = [
  { namespace: 'shop', name: 'data', phase: 'Bound', capacity: '10Gi', storageClass: 'fast', accessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem', volume: 'pv-1', pods: [{ name: 'db-0', node: 'n1', phase: 'Running', identity: {} }] },
  { namespace: 'shop', name: 'scratch', phase: 'Pending', capacity: '1Gi', storageClass: null, accessModes: [], volumeMode: 'Filesystem', volume: null, pods: [] },
];

test('discover: kubectl-like table, namespace column only across namespaces', (t) => {
  t.is(
    renderClaims(claims, 'table', false),
    [
      'NAME      STATUS    CAPACITY   ACCESS MODES   STORAGECLASS   VOLUME   USED BY',
      'data      Bound     10Gi       RWO            fast           pv-1     db-0@n1',
      'scratch   Pending   1Gi        <none>         <none>         <none>   <none>',
      '',
    ].join('\n'),
  );
  t.regex(renderClaims(claims, 'table', true), /^NAMESPACE\s+NAME\s+STATUS/);
  t.regex(renderClaims(claims, 'wide', false), /^data\s+Bound\s+10Gi\s+RWO\s+fast\s+pv-1\s+Filesystem\s+db-0\(Running\)\s+n1$/m);
});

test('discover: name, json and yaml forms', (t) => {
  t.is(renderClaims(claims, 'name', false), 'shop/data\nshop/scratch\n');
  const list = JSON.parse(renderClaims(claims, 'json', false));
  t.is(list.kind, 'List');
  t.deepEqual(list.items, claims);
  t.regex(renderClaims(claims, 'yaml', false), /^apiVersion: v1\nkind: List\nitems:\n  - namespace: shop\n    name: data\n/);
});

const succeeded = {
  id: 'aaaaaaaaaaaa', namespace: 'shop', pvc: 'data', status: 'succeeded', stage: 'done', message: 'backed up to /b/x.tar.gz',
  artifact: { path: '/b/x.tar.gz', compression: 'gzip', bytes: 1536, sha256: 'f'.repeat(64), tarBytes: 10240, entries: 4 },
  durationMs: 2500, node: 'n1',
} as BackupResult;
const failed = { id: 'bbbbbbbbbbbb', namespace: 'shop', pvc: 'scratch', status: 'failed', stage: 'copy', message: 'copy stage failed: boom', durationMs: 300, node: null } as BackupResult;

test('backup results: one row each, the artifact or the reason; name prints artifact paths', (t) => {
  const table = renderResults([succeeded, failed], 'table');
  t.regex(table, /^NAMESPACE\s+PVC\s+STATUS\s+SIZE\s+ENTRIES\s+DURATION\s+ID\s+ARTIFACT \/ MESSAGE$/m);
  t.regex(table, /^shop\s+data\s+succeeded\s+1\.5 KiB\s+4\s+2\.5s\s+aaaaaaaaaaaa\s+\/b\/x\.tar\.gz$/m);
  t.regex(table, /^shop\s+scratch\s+failed\s+-\s+-\s+300ms\s+bbbbbbbbbbbb\s+copy stage failed: boom$/m);
  t.is(renderResults([succeeded, failed], 'name'), '/b/x.tar.gz\n');
  t.deepEqual(JSON.parse(renderResults([failed], 'json')).items, [failed]);
});

const record: BackupRecord = {
  id: 'aaaaaaaaaaaa', context: 'kind', cluster: 'https://127.0.0.1:6443', credentialSource: 'kubeconfig-env', namespace: 'shop', pvc: 'data',
  pv: 'pv-1', storageClass: 'fast', capacity: '10Gi', node: 'n1', helperPod: 'nkvm-backup-data-x', startedAt: '2026-11-24T10:00:00.000Z',
  finishedAt: '2026-11-24T10:01:05.000Z', status: 'succeeded', failedStage: null, message: 'backed up', artifactPath: '/b/x.tar.gz',
  compression: 'gzip', bytes: 2048, tarBytes: 4096, fileCount: 3, sha256: 'e'.repeat(64), attempts: 1, volumeMode: 'Filesystem', runAs: 'root', unreadable: null, vanished: 0, changed: 0, repository: null, snapshotId: null, filesNew: null, filesChanged: null, filesUnmodified: null, bytesRead: null, bytesSent: null, hooks: null, source: null, bytesAdded: null, contentSha256: null, pluginVersion: '0.1.0', prunedAt: null,
};

test('artifacts: list table and the detail view', (t) => {
  t.regex(renderRecords([record], 'table'), /^aaaaaaaaaaaa\s+shop\s+data\s+succeeded\s+2026-11-24T10:00:00Z\s+1m5s\s+2\.0 KiB\s+3\s+\/b\/x\.tar\.gz$/m);
  t.is(renderRecords([record], 'name'), 'aaaaaaaaaaaa\n');
  const text = renderRecordText(record);
  t.regex(text, /^SHA-256:\s+e{64}$/m);
  t.regex(text, /^Copy attempts:\s+1$/m);
  t.regex(text, /^Size:\s+2\.0 KiB \(2048 bytes; 4\.0 KiB uncompressed\)$/m);
  t.notRegex(text, /Failed stage/);
  t.regex(renderRecordText({ ...record, status: 'failed', failedStage: 'copy' }), /^Failed stage:\s+copy$/m);
});

test('formatting of sizes, durations and access modes', (t) => {
  t.is(formatBytes(0), '0 B');
  t.is(formatBytes(1023), '1023 B');
  t.is(formatBytes(1536), '1.5 KiB');
  t.is(formatBytes(1073741824 * 12), '12 GiB');
  t.is(formatBytes(null), '-');
  t.is(formatDuration(999), '999ms');
  t.is(formatDuration(61_000), '1m1s');
  t.is(shortAccessModes(['ReadWriteOnce', 'ReadWriteMany', 'ReadWriteOncePod']), 'RWO,RWX,RWOP');
});
