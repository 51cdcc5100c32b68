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
  [['backup', 'a', '--toleration', 'x=y:Never'], /unknown effect "Never"/],
  [['backup', 'a', '--pod-ready-timeout', 'soon'], /invalid duration for --pod-ready-timeout/],
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
