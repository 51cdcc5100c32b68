/**
 * The command line as a user meets it before any cluster is involved: help, usage errors (exit 2,
 * one line of cause and a hint, no stack trace). Runs src/main.ts directly; no build needed.
 */
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { nkvm as runNkvm } from './fixtures/nkvm-cli.ts';

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-cli-'));
test.after.always(() => fs.rmSync(home, { recursive: true, force: true }));

const nkvm = (args: string[]) => runNkvm(args, home);

test('--help lists every command, the exit codes and examples', async (t) => {
  const help = await nkvm(['--help']);
  t.is(help.exitCode, 0);
  for (const command of ['discover', 'backup', 'restore', 'verify', 'artifacts', 'diagnose', 'version']) t.regex(help.stdout, new RegExp(`kubectl nkvm ${command}`));
  t.regex(help.stdout, /3 {2}authentication/);
  const backupHelp = await nkvm(['backup', '--help']);
  t.regex(backupHelp.stdout, /kubectl nkvm backup --all -A --parallel 3/);
});

for (const [args, message] of [
  [['backup'], /name at least one claim, or use --all/],
  [['backup', 'a', '--all'], /name claims or use --all, not both/],
  [['backup', 'a', '-A'], /-A\/--all-namespaces needs --all/],
  [['backup', 'Bad_Name'], /"Bad_Name" is not a valid claim name/],
  [['backup', 'a', '--parallel', '0'], /--parallel must be a whole number of at least 1/],
  // yargs reads a word that is no number as NaN: the error quotes the word, and an optional flag is not dropped.
  [['backup', 'a', '--parallel', 'abc'], /--parallel takes a number, not "abc"/],
  [['artifacts', 'list', '--limit', 'ten'], /--limit takes a number, not "ten"/],
  [['artifacts', 'list', '--limit=ten'], /--limit takes a number, not "ten"/],
  [['backup', 'a', '--toleration', 'x=y:Never'], /unknown effect "Never"/],
  [['backup', 'a', '--pod-ready-timeout', 'soon'], /invalid duration for --pod-ready-timeout/],
  [['backup', 'a', '--hook-timeout', 'soon'], /--hook-timeout soon is not a duration/],
  [['backup', 'a', '--snapshot-timeout', 'soon'], /--snapshot-timeout soon is not a duration/],
  [['backup', 'a', '--snapshot', 'never', '--snapshot-class', 'x'], /--snapshot-class needs a snapshot: it cannot go with --snapshot never/],
  [['backup', 'a', '--snapshot', 'sometimes'], /Invalid values:[\s\S]*snapshot/],
  [['backup', 'a', '--hook-on-error', 'ignore'], /Invalid values:[\s\S]*Argument: hook-on-error/],
  [['backup', 'a', '--max-per-node', '0'], /--max-per-node must be a whole number of at least 1/],
  [['backup', 'a', '--mover', 'pod'], /--mover pod writes into a repository: name one/],
  [['discover', '-o', 'xml'], /Invalid values:[\s\S]*Argument: output/],
  [['nonsense'], /unknown command "nonsense" for "kubectl nkvm"/],
  [['artifacts'], /Name an artifacts command/],
  [['restore', 'abcd'], /Missing required argument: to/],
  [['restore', 'abcd', '--to', 'x', '--size', '1Gi'], /--storage-class and --size need --create/],
  [['restore', 'abcd', '--to', 'Bad_Name'], /"Bad_Name" is not a valid claim name/],
  [['restore', 'abcd', '--to', 'x', '--mode', 'merge'], /Invalid values:[\s\S]*Argument: mode/],
  [['artifacts', 'prune'], /say what to keep: --keep-last N, --older-than DURATION, or both/],
  [['prune', '--max-unused', '100%'], /percentage for --max-unused must be below 100%/],
  [['forget', '--keep-last', '1', '--prune', '--max-repack-size', 'lots'], /strconv.ParseInt: parsing "lots": invalid syntax/],
  [['artifacts', 'fetch', 'abcd'], /fetch copies from the in-cluster store: pass --from-cluster/],
  [['backup', 'a', '--run-as-user', '-1'], /--run-as-user must be a user or group ID/],
  [['backup', 'a', '--fs-group', '1.5'], /--fs-group must be a user or group ID/],
  [['install', '--dry-run=client', '--store-claim', 'mine', '--storage-class', 'fast'], /--storage-class is for the claim install creates/],
  [['install', '--dry-run=client', '--older-than', '30'], /--older-than needs a unit: "30"/],
  // A repeatable flag takes one value, as kubectl's do: the next word is the claim, not a second value.
  [['backup', '--toleration', 'key:NoSchedule', '--node-selector', 'disk=ssd', 'Bad_Name'], /"Bad_Name" is not a valid claim name/],
  [['--as-group', 'ops', 'discover', '-o', 'xml'], /Invalid values:[\s\S]*Argument: output/],
] as const) {
  test(`usage error: ${args.join(' ')}`, async (t) => {
    const run = await nkvm([...args]);
    t.is(run.exitCode, 2, run.stderr);
    t.regex(run.stderr, message);
    t.notRegex(run.stderr, /\n\s+at /, 'no stack trace');
    t.is(run.stdout, '');
  });
}

test('artifacts show of an unknown id is a clear error with exit 1', async (t) => {
  const run = await nkvm(['artifacts', 'show', 'abcdef']);
  t.is(run.exitCode, 1);
  t.regex(run.stderr, /\[NotFoundError\] no backup with id or id prefix "abcdef"/);
});

test('an empty catalog lists nothing, and says so on stderr', async (t) => {
  const run = await nkvm(['artifacts', 'list']);
  t.is(run.exitCode, 0);
  t.is(run.stdout, '');
  t.regex(run.stderr, /No backups recorded in/);
  const json = await nkvm(['artifacts', 'list', '-o', 'json']);
  t.deepEqual(JSON.parse(json.stdout), { apiVersion: 'v1', kind: 'List', items: [] });
});

test('--mover pod needs a repository the cluster can reach: a directory of this machine is refused, for backup and restore', async (t) => {
  const repo = path.join(home, 'local-repo');
  const password = path.join(home, 'mover-password');
  fs.writeFileSync(password, 'pw\n');
  t.is((await nkvm(['repo', 'init', repo, '--password-file', password])).exitCode, 0);
  // A snapshot to restore, made as a mover makes one, from a directory here.
  const source = fs.mkdtempSync(path.join(home, 'source-'));
  fs.writeFileSync(path.join(source, 'f'), 'x');
  const moved = await nkvm(['mover', 'backup', '--repo', repo, '--password-file', password, '--source', source, '--path', '/data/x', '--host', 'ns']);
  t.is(moved.exitCode, 0, moved.stderr);
  const { snapshotId } = JSON.parse(moved.stdout) as { snapshotId: string };
  for (const args of [['backup', 'a', '--mover', 'pod'], ['restore', snapshotId.slice(0, 8), '--to', 'x', '--mover', 'pod']]) {
    const refused = await nkvm([...args, '--repo', repo, '--password-file', password]);
    t.is(refused.exitCode, 2, refused.stderr);
    t.regex(refused.stderr, /--mover pod (writes from the cluster, which cannot reach|restores a snapshot of an S3 repository)/);
    t.notRegex(refused.stderr, /at \w+ \(/, 'no stack trace');
  }
});
