/**
 * `kubectl nkvm verify` on real artifacts (GNU tar) and a real catalog, run as src/main.ts.
 */
import test, { type ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Catalog, type BackupRecord } from '../../src/store/catalog.ts';
import { writeArtifact } from './fixtures/artifact.ts';
import { backupRecord } from './fixtures/backup-record.ts';
import { nkvm } from './fixtures/nkvm-cli.ts';

const FILES = { 'hello.txt': 'hello\n', 'reports/random.bin': Buffer.alloc(64 * 1024, 7), 'reports/empty': '' };

/** A temp NKVM_HOME with a catalog; `add` writes an artifact and records it as a succeeded backup. */
async function setup(t: ExecutionContext) {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-verify-'));
  t.teardown(() => fs.rmSync(home, { recursive: true, force: true }));
  const catalogFile = path.join(home, 'catalog.sqlite');
  const catalog = await Catalog.open(catalogFile);
  return {
    home,
    catalog,
    run: (...args: string[]) => nkvm([...args, '--catalog', catalogFile], home),
    async add(id: string, overrides: Partial<BackupRecord> = {}, name = `${id}.tar.gz`): Promise<BackupRecord> {
      const artifact = writeArtifact(path.join(home, 'artifacts', 'shop', 'data', name), FILES);
      const record = backupRecord({ id, namespace: 'shop', pvc: 'data', status: 'succeeded', finishedAt: '2025-01-01T00:00:05.000Z', ...artifact, ...overrides });
      await catalog.insertBackup(record);
      return record;
    },
  };
}

test('an intact artifact passes: exit 0, OK in the table, its id with -o name', async (t) => {
  const { run, add } = await setup(t);
  await add('aaaa1111');
  const table = await run('verify', 'aaaa');
  t.is(table.exitCode, 0, table.stderr);
  t.regex(table.stdout, /^ID\s+NAMESPACE\s+PVC\s+RESULT\s+SIZE\s+ENTRIES\s+PROBLEMS$/m);
  t.regex(table.stdout, /^aaaa1111\s+shop\s+data\s+OK\s+\S+ \S+\s+5$/m);
  t.is(table.stderr, '');
  t.is((await run('verify', 'aaaa1111', '-o', 'name')).stdout, 'aaaa1111');
});

test('-o json is a List of reports with what the file holds', async (t) => {
  const { run, add } = await setup(t);
  const record = await add('bbbb2222');
  const json = await run('verify', 'bbbb2222', '-o', 'json');
  t.is(json.exitCode, 0, json.stderr);
  t.deepEqual(JSON.parse(json.stdout), {
    apiVersion: 'v1',
    kind: 'List',
    items: [{ id: 'bbbb2222', namespace: 'shop', pvc: 'data', artifactPath: record.artifactPath, ok: true, problems: [], entries: 5, tarBytes: record.tarBytes, bytes: record.bytes }],
  });
});

test('a flipped byte is a sha256 mismatch: exit 1', async (t) => {
  const { run, add } = await setup(t);
  const record = await add('cccc3333');
  const bytes = fs.readFileSync(record.artifactPath!);
  bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
  fs.writeFileSync(record.artifactPath!, bytes);

  const json = await run('verify', 'cccc3333', '-o', 'json');
  t.is(json.exitCode, 1, json.stderr);
  const [report] = JSON.parse(json.stdout).items;
  t.false(report.ok);
  t.true(report.problems.includes(`sha256 mismatch: catalog ${record.sha256}, file ${createHash('sha256').update(bytes).digest('hex')}`), report.problems.join('\n'));
  t.regex(json.stderr, /1 of 1 backups failed verification/);
  t.regex((await run('verify', 'cccc3333')).stdout, /^cccc3333\s+shop\s+data\s+FAILED\s+.*sha256 mismatch: catalog /m);
});

test('a truncated file is reported: a cut gzip stream, and a plain tar without its end-of-archive marker', async (t) => {
  const { run, add } = await setup(t);
  const gzipped = await add('dddd4444');
  fs.truncateSync(gzipped.artifactPath!, Math.floor(gzipped.bytes! / 2));
  const cutGzip = await run('verify', 'dddd4444', '-o', 'json');
  t.is(cutGzip.exitCode, 1, cutGzip.stderr);
  const gzipProblems: string[] = JSON.parse(cutGzip.stdout).items[0].problems;
  t.true(gzipProblems.includes(`size mismatch: catalog ${gzipped.bytes} bytes, file ${Math.floor(gzipped.bytes! / 2)} bytes`), gzipProblems.join('\n'));
  t.true(gzipProblems.some((problem) => /^not a valid archive: unexpected end of file/.test(problem)), gzipProblems.join('\n'));

  // Cut after the first three entries' headers and data, where a reader finds no end marker.
  const plain = await add('eeee5555', {}, 'eeee5555.tar');
  fs.truncateSync(plain.artifactPath!, 3 * 512);
  const cutTar = await run('verify', 'eeee5555', '-o', 'json');
  t.is(cutTar.exitCode, 1, cutTar.stderr);
  const tarProblems: string[] = JSON.parse(cutTar.stdout).items[0].problems;
  t.true(tarProblems.includes('truncated: the tar stream ends without its end-of-archive marker'), tarProblems.join('\n'));
  t.true(tarProblems.some((problem) => problem.startsWith('entry count mismatch: catalog 5, archive ')), tarProblems.join('\n'));
});

test('a missing file: exit 1, named in the problems', async (t) => {
  const { run, add } = await setup(t);
  const record = await add('ffff6666');
  fs.rmSync(record.artifactPath!);
  const run1 = await run('verify', 'ffff6666', '-o', 'json');
  t.is(run1.exitCode, 1);
  t.deepEqual(JSON.parse(run1.stdout).items[0].problems, [`artifact file missing: ${record.artifactPath}`]);
});

test('--all checks every succeeded backup, filtered by -n and --pvc; -o name lists the intact ones', async (t) => {
  const { run, add } = await setup(t);
  await add('good0001');
  const broken = await add('bad00001');
  fs.rmSync(broken.artifactPath!);
  await add('other001', { namespace: 'other' });
  await add('failed01', { status: 'failed' });

  const all = await run('verify', '--all', '-o', 'name');
  t.is(all.exitCode, 1);
  t.deepEqual(all.stdout.split('\n').sort(), ['good0001', 'other001']);
  t.regex(all.stderr, /1 of 3 backups failed verification/);

  const other = await run('verify', '--all', '-n', 'other', '-o', 'json');
  t.is(other.exitCode, 0, other.stderr);
  t.deepEqual(JSON.parse(other.stdout).items.map((report: { id: string }) => report.id), ['other001']);
  t.is((await run('verify', '--all', '-n', 'shop', '--pvc', 'nothing-here', '-o', 'json')).stdout.trim(), '{\n  "apiVersion": "v1",\n  "kind": "List",\n  "items": []\n}');
  const none = await run('verify', '--all', '--pvc', 'nothing-here');
  t.is(none.exitCode, 0);
  t.regex(none.stderr, /No succeeded backups to verify/);
});

test('a backup that did not succeed, named by ID, is reported as not verifiable', async (t) => {
  const { run, catalog } = await setup(t);
  await catalog.insertBackup(backupRecord({ id: 'gggg7777', status: 'failed' }));
  await catalog.insertBackup(backupRecord({ id: 'hhhh8888', status: 'pruned', artifactPath: '/gone.tar.gz', prunedAt: '2025-02-01T00:00:00.000Z' }));
  const failed = await run('verify', 'gggg7777');
  t.is(failed.exitCode, 1);
  t.regex(failed.stdout, /FAILED\s+-\s+-\s+not verifiable: the backup is failed, it has no complete artifact$/m);
  t.regex((await run('verify', 'hhhh8888')).stdout, /not verifiable: the backup is pruned, its artifact was deleted$/m);
});

for (const [args, message] of [
  [['verify'], /name a backup ID, or use --all/],
  [['verify', 'abcd', '--all'], /give a backup ID or --all, not both/],
  [['verify', 'abcd', '--pvc', 'data'], /--pvc needs --all/],
] as const) {
  test(`usage error: ${args.join(' ')}`, async (t) => {
    const { run } = await setup(t);
    const result = await run(...args);
    t.is(result.exitCode, 2, result.stderr);
    t.regex(result.stderr, message);
    t.is(result.stdout, '');
  });
}

test('help has the examples', async (t) => {
  const { run } = await setup(t);
  const help = await run('verify', '--help');
  t.is(help.exitCode, 0);
  t.regex(help.stdout, /kubectl nkvm verify 3f9c2a/);
  t.regex(help.stdout, /kubectl nkvm verify --all -n shop/);
});
