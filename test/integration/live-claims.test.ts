/**
 * Backups of a claim whose application keeps working while tar reads it: files written to a temporary
 * name, renamed into place, deleted and made again, a log appended to. A path that vanishes between
 * tar's listing and its read, and a file that changes after tar read it, are reported, not fatal;
 * everything else tar complains about still fails the copy stage.
 */
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { createBoundClaims } from '../cluster/workload.ts';
import { assertNoHelperPods, clusterSuite, createNamespace, kubectlNkvm } from './support.ts';

const test = clusterSuite();

/** Every file the application publishes (f*) holds exactly this, 4 KiB (16 KiB under q/, r/, s/); only its temporary files (.t*) may be torn. */
const LINE = 'nkvm whole file, 32 bytes long.\n';
const WHOLE = LINE.repeat(128);
const WHOLE_BIG = WHOLE.repeat(4);

/**
 * What a database, a cache or a mail queue does, as four loops that also append to a log: in each
 * of 24 directories of 100 files, a temporary file renamed over a published one and another
 * deleted; and three directories of 300 files of 16 KiB, each renamed back and forth. tar lists a
 * directory, then reads its entries one by one: by then some are elsewhere. The log has grown
 * between tar's read of it and the helper's look after tar.
 */
const BUSY_APP = String.raw`
cd /data
line='${LINE.trimEnd()}'
i=0; while [ $i -lt 128 ]; do echo "$line"; i=$((i+1)); done > .seed
cat .seed .seed .seed .seed > .big
for d in $(seq -w 0 23); do
  mkdir -p z$d
  for i in $(seq 0 99); do cp .seed z$d/f$i; done
done
for d in q r s; do
  mkdir -p $d/a && for i in $(seq 0 299); do cp .big $d/a/f$i; done
done
touch ready
n=0
while :; do
  for d in $(seq -w 0 23); do
    cp .seed z$d/.t$n && mv z$d/.t$n z$d/f$((n % 100))
    rm -f z$d/f$(((n + 50) % 100))
  done
  echo "z $n" >> app.log
  n=$((n + 1))
done &
for d in q r s; do
  while :; do mv $d/a $d/b; mv $d/b $d/a; echo "$d" >> app.log; done &
done
wait
`;

function busyPod(namespace: string, image: string): string {
  return `apiVersion: v1
kind: Pod
metadata: {name: busy, namespace: ${namespace}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: app
    image: ${image}
    command: [sh, -c, ${JSON.stringify(BUSY_APP)}]
    readinessProbe: {exec: {command: [test, -f, /data/ready]}, periodSeconds: 1}
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: live}}]
`;
}

/** The log among the changed paths (the sample names the first five only: more than five may hide it). */
function logChanged(result: { changed?: { count: number; sample: string[] } }): boolean {
  return Boolean(result.changed && (result.changed.sample.includes('app.log') || result.changed.count > result.changed.sample.length));
}

test('a claim whose application renames, deletes and appends while tar reads it backs up; vanished and changed paths are reported, every published file is whole', async (t) => {
  t.timeout(10 * 60_000);
  const { cluster } = t.context;
  const namespace = await createNamespace(cluster, 'live');
  t.context.diagnose = { namespace, sourcePod: 'busy' };
  await createBoundClaims(cluster, namespace, ['live']);
  await cluster.kubectl(['apply', '-f', '-'], { input: busyPod(namespace, cluster.images.helper) });
  await cluster.kubectl(['wait', '--for=condition=Ready', 'pod/busy', '-n', namespace, '--timeout=180s'], { timeoutMs: 190_000 });
  const home = fs.mkdtempSync(path.join(t.context.workDir, 'live-home-'));
  t.teardown(() => fs.rmSync(home, { recursive: true, force: true }));
  const catalog = path.join(home, 'catalog.sqlite');
  const flags = ['--catalog', catalog, '--output-dir', path.join(home, 'artifacts'), '--compression', 'gzip'];

  // Whether a path vanishes under tar is up to the scheduler: on a loaded machine the application may
  // sit still for a whole copy. Every backup must succeed; one of a few must have caught both a path
  // vanishing and the log growing after tar read it (in CI a backup caught only the first, or a
  // published file changing but not the log).
  let backup: Awaited<ReturnType<typeof kubectlNkvm>>;
  let result;
  for (let attempt = 1; ; attempt++) {
    backup = await kubectlNkvm(t.context, ['backup', 'live', '-n', namespace, '-o', 'json', ...flags]);
    t.is(backup.exitCode, 0, String(backup.stderr) + String(backup.stdout));
    [result] = JSON.parse(String(backup.stdout)).items;
    t.is(result.status, 'succeeded', result.message);
    if ((result.vanished?.count > 0 && logChanged(result)) || attempt === 6) break;
  }
  t.true(result.vanished?.count > 0, `paths vanished: ${JSON.stringify(result.vanished)}`);
  t.true(result.vanished.sample.every((p: string) => /^(?:z\d\d\/(?:\.t\d+|f\d+)|[qrs]\/[ab](?:\/f\d+)?)$/.test(p)), result.vanished.sample.join(', '));
  t.regex(result.message, /^backed up to .* \(\d+ paths? vanished while the backup ran, so are not in it: [zqrs]/);
  // The log grows all the time: tar archived it at one size, the helper saw it at another afterwards.
  // The log is appended to throughout; the sample names the first five changed paths only.
  t.true(logChanged(result), `changed: ${JSON.stringify(result.changed)}`);
  t.regex(String(backup.stderr), /warning: .*live changed while it was backed up: /);

  const row = JSON.parse((await execa('sqlite3', ['-json', catalog, `SELECT status, vanished, changed, message FROM backups WHERE id = '${result.id}'`])).stdout);
  t.like(row[0], { status: 'succeeded', vanished: result.vanished.count, changed: result.changed.count, message: result.message });
  const show = await kubectlNkvm(t.context, ['artifacts', 'show', result.id, ...flags.slice(0, 2)]);
  t.regex(String(show.stdout), new RegExp(`Vanished: +${result.vanished.count} `));
  t.regex(String(show.stdout), new RegExp(`Changed: +${result.changed.count} `));

  // The archive is whole (real tar reads it to its end), and so is every file the application published.
  const tree = fs.mkdtempSync(path.join(home, 'tree-'));
  await execa('tar', ['-xzf', result.artifact.path, '-C', tree]);
  let published = 0;
  const dirs = [...fs.readdirSync(tree).filter((name) => /^z\d\d$/.test(name)), ...['q/a', 'q/b', 'r/a', 'r/b', 's/a', 's/b'].filter((dir) => fs.existsSync(path.join(tree, dir)))];
  for (const dir of dirs) {
    for (const name of fs.readdirSync(path.join(tree, dir)).filter((file) => file.startsWith('f'))) {
      published += 1;
      t.is(fs.readFileSync(path.join(tree, dir, name), 'utf8'), dir.startsWith('z') ? WHOLE : WHOLE_BIG, `${dir}/${name} is whole`);
    }
  }
  t.true(published > 1000, `${published} published files`);
  await assertNoHelperPods(t, 10_000);
});
