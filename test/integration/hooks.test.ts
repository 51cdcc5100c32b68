/**
 * Hooks on a real cluster: Velero's pod annotations and the flags, run with exec in the pod that
 * mounts the claim, the pre-hook before the copy (what it writes is in the backup) and the post-hook
 * after it (what it writes is not), the post-hook also after a failed pre-hook; a failing pre-hook
 * fails the backup with exit 7 and copies nothing; each hook recorded in the result and the catalog.
 */
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { seedWorkload } from '../cluster/workload.ts';
import { assertNoHelperPods, clusterSuite, createNamespace, kubectlNkvm } from './support.ts';

const test = clusterSuite();

test('hooks: Velero\'s annotations and the flags run in the workload pod around the copy; a failing pre-hook stops the backup (exit 7) and the post-hook still runs', async (t) => {
  t.timeout(8 * 60_000);
  const { cluster } = t.context;
  const namespace = await createNamespace(cluster, 'hooks');
  t.context.diagnose = { namespace, sourcePod: 'app' };
  await seedWorkload(cluster, { namespace, claim: 'data', pod: 'app' }, 'echo running > /data/state');
  await cluster.kubectl(['annotate', 'pod', 'app', '-n', namespace,
    'pre.hook.backup.velero.io/command=["/bin/sh", "-c", "echo frozen > /data/state"]',
    'post.hook.backup.velero.io/command=["/bin/sh", "-c", "echo thawed > /data/state"]',
    'post.hook.backup.velero.io/timeout=20s']);
  const home = fs.mkdtempSync(path.join(t.context.workDir, 'hooks-'));
  const catalog = path.join(home, 'catalog.sqlite');
  const flags = ['-n', namespace, '--compression', 'none', '--output-dir', path.join(home, 'out'), '--catalog', catalog, '-o', 'json'];
  const state = async () => (await cluster.kubectl(['exec', 'app', '-n', namespace, '--', 'cat', '/data/state'])).trim();
  const inArtifact = async (file: string) => (await execa('tar', ['-xOf', file, './state'])).stdout.trim();

  const annotated = await kubectlNkvm(t.context, ['backup', 'data', ...flags]);
  t.is(annotated.exitCode, 0, String(annotated.stderr));
  const [first] = JSON.parse(String(annotated.stdout)).items;
  t.deepEqual(first.hooks.map((h: { phase: string; pod: string; container: string; source: string; exitCode: number; ok: boolean }) => [h.phase, h.pod, h.container, h.source, h.exitCode, h.ok]), [
    ['pre', 'app', 'app', 'annotation', 0, true],
    ['post', 'app', 'app', 'annotation', 0, true],
  ]);
  t.is(await inArtifact(first.artifact.path), 'frozen', 'the pre-hook ran before the copy');
  t.is(await state(), 'thawed', 'the post-hook ran after it');
  const row = JSON.parse((await execa('sqlite3', ['-json', catalog, `SELECT hooks FROM backups WHERE id = '${first.id}'`])).stdout);
  t.is(JSON.parse(row[0].hooks).length, 2);
  const shown = await kubectlNkvm(t.context, ['artifacts', 'show', first.id, '--catalog', catalog]);
  t.regex(String(shown.stdout), /Pre-hook: +in app\/app: \["\/bin\/sh","-c","echo frozen > \/data\/state"\] ok in /);

  // The flag wins over the annotation; the annotation's post-hook still runs.
  const flagged = await kubectlNkvm(t.context, ['backup', 'data', ...flags, '--pre-hook', 'echo flagged > /data/state']);
  t.is(flagged.exitCode, 0, String(flagged.stderr));
  const [second] = JSON.parse(String(flagged.stdout)).items;
  t.like(second.hooks[0], { phase: 'pre', source: 'flag', command: ['sh', '-c', 'echo flagged > /data/state'] });
  t.is(await inArtifact(second.artifact.path), 'flagged');

  // A failing pre-hook: exit 7, nothing copied, and the application is thawed all the same.
  const failing = await kubectlNkvm(t.context, ['backup', 'data', ...flags, '--pre-hook', 'echo cannot freeze >&2; exit 3']);
  t.is(failing.exitCode, 7, String(failing.stderr));
  const [third] = JSON.parse(String(failing.stdout)).items;
  t.like(third, { status: 'failed', stage: 'pre-hook', errorCode: 'HookFailedError' });
  t.regex(third.message, /pre-hook failed, nothing was copied: pre-hook in app\/app \[sh -c echo cannot freeze >&2; exit 3\]: exit code 3: cannot freeze/);
  t.is(third.artifact, undefined);
  t.deepEqual(third.hooks.map((h: { phase: string; ok: boolean }) => [h.phase, h.ok]), [['pre', false], ['post', true]]);
  t.is(await state(), 'thawed');
  t.regex(String(failing.stderr), /\[HookFailedError\]/);

  // A pre-hook that outlives its timeout fails the same way, in about that time.
  const slow = await kubectlNkvm(t.context, ['backup', 'data', ...flags, '--pre-hook', 'sleep 30', '--hook-timeout', '2s', '--hook-on-error', 'fail']);
  t.is(slow.exitCode, 7, String(slow.stderr) + String(slow.stdout));
  t.regex(JSON.parse(String(slow.stdout)).items[0].message, /timed out after 2s/);
  // With --hook-on-error continue the copy goes on.
  const continued = await kubectlNkvm(t.context, ['backup', 'data', ...flags, '--pre-hook', 'exit 1', '--hook-on-error', 'continue']);
  t.is(continued.exitCode, 0, String(continued.stderr));
  t.like(JSON.parse(String(continued.stdout)).items[0], { status: 'succeeded', hooks: [{ phase: 'pre', ok: false }, { phase: 'post', ok: true }] });
  await assertNoHelperPods(t, 10_000);
});

test('Ctrl-C during the copy: the post-hook still runs, so the application is not left frozen; the backup is recorded as interrupted (exit 130)', async (t) => {
  t.timeout(5 * 60_000);
  const { cluster } = t.context;
  const namespace = await createNamespace(cluster, 'hooksint');
  t.context.diagnose = { namespace, sourcePod: 'app' };
  await seedWorkload(cluster, { namespace, claim: 'data', pod: 'app' }, 'head -c 134217728 /dev/urandom > /data/big.bin');
  const home = fs.mkdtempSync(path.join(t.context.workDir, 'hooksint-'));
  const run = kubectlNkvm(t.context, ['backup', 'data', '-n', namespace, '--compression', 'gzip', '--output-dir', path.join(home, 'out'), '--catalog', path.join(home, 'catalog.sqlite'), '-o', 'json',
    '--pre-hook', 'touch /tmp/frozen', '--post-hook', 'rm /tmp/frozen']);
  const frozen = () => cluster.kubectl(['exec', 'app', '-n', namespace, '--', 'sh', '-c', 'test -e /tmp/frozen && echo frozen || echo thawed']).then((out) => out.trim());
  const deadline = Date.now() + 60_000;
  while ((await frozen()) !== 'frozen' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  run.kill('SIGINT');
  const finished = await run;
  t.is(finished.exitCode, 130, String(finished.stderr));
  const [result] = JSON.parse(String(finished.stdout)).items;
  t.like(result, { status: 'interrupted' });
  t.deepEqual(result.hooks.map((hook: { phase: string; ok: boolean }) => [hook.phase, hook.ok]), [['pre', true], ['post', true]]);
  t.is(await frozen(), 'thawed', 'the post-hook ran after Ctrl-C');
  await assertNoHelperPods(t, 10_000);
});
