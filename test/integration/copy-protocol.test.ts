/**
 * The copy protocol on a real cluster (src/kube/acked-exec.ts): the helper's command stays alive
 * until the plugin acknowledges the whole output; a copy cut just before the end is retried in the
 * same helper and succeeds; an acknowledgement that never comes ends at the helper's deadline; and a
 * consumer that stalls near the end, which makes a bare `kubectl exec tar` lose its tail, loses
 * nothing. Faults are injected with NKVM_TEST_FAULT (src/backup/faults.ts).
 */
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { seedWorkload } from '../cluster/workload.ts';
import { assertNoHelperPods, clusterSuite, createNamespace, HELPER_SELECTOR, kubectlNkvm, type SuiteContext } from './support.ts';

const test = clusterSuite();

const SEED = 'set -e; head -c 67108864 /dev/urandom > /data/random.bin; seq 1 200000 > /data/text.txt; mkdir /data/dir; echo hi > /data/dir/file';

interface Workspace {
  namespace: string;
  storeFlags: string[];
  catalog: string;
  outputDir: string;
}

let shared: Workspace | undefined;

/** One seeded namespace for the suite (the tests only read it), and a fresh catalog per test. */
async function workspace(t: ExecutionContext<SuiteContext>): Promise<Workspace> {
  const { cluster, workDir } = t.context;
  if (!shared) {
    const namespace = await createNamespace(cluster, 'protocol');
    await seedWorkload(cluster, { namespace, claim: 'data', pod: 'app' }, SEED);
    shared = { namespace, storeFlags: [], catalog: '', outputDir: '' };
  }
  t.context.diagnose = { namespace: shared.namespace, sourcePod: 'app' };
  const home = fs.mkdtempSync(path.join(workDir, 'protocol-home-'));
  t.teardown(() => fs.rmSync(home, { recursive: true, force: true }));
  const catalog = path.join(home, 'catalog.sqlite');
  const outputDir = path.join(home, 'artifacts');
  return { namespace: shared.namespace, catalog, outputDir, storeFlags: ['--catalog', catalog, '--output-dir', outputDir] };
}

function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

/** sha256 of random.bin as the pod sees it and as the artifact holds it. */
async function assertArtifactHoldsTheClaim(t: ExecutionContext<SuiteContext>, ws: Workspace, artifact: string): Promise<void> {
  const inPod = (await t.context.cluster.kubectl(['exec', 'app', '-n', ws.namespace, '--', 'sha256sum', '/data/random.bin'])).split(' ')[0] ?? '';
  const unpacked = await execa('tar', ['-xOf', artifact, './random.bin'], { encoding: 'buffer', maxBuffer: 128 * 1024 * 1024 });
  t.is(createHash('sha256').update(unpacked.stdout).digest('hex'), inPod);
}

async function catalogRow(ws: Workspace, id: string): Promise<Record<string, unknown>> {
  const sqlite = await execa('sqlite3', ['-json', ws.catalog, `SELECT status, attempts, message FROM backups WHERE id = '${id}'`]);
  return JSON.parse(sqlite.stdout)[0];
}

async function helperProcesses(t: ExecutionContext<SuiteContext>, namespace: string): Promise<string | undefined> {
  const pods = await t.context.cluster.kubectl(['get', 'pods', '-n', namespace, '-l', HELPER_SELECTOR, '--field-selector=status.phase=Running', '-o', 'name']);
  const pod = pods.trim().split('\n')[0]?.replace('pod/', '');
  if (!pod) return undefined;
  return t.context.cluster.kubectl(['exec', pod, '-n', namespace, '--', 'ps', '-o', 'args']).catch(() => undefined);
}

test('the helper keeps running after tar ends, until the plugin acknowledges the output', async (t) => {
  const ws = await workspace(t);
  const run = kubectlNkvm(t.context, ['backup', 'data', '-n', ws.namespace, '-o', 'json', ...ws.storeFlags], { env: { NKVM_TEST_FAULT: 'hold-ack=8' } });
  // Wait for the moment between tar's end and the acknowledgement: the wrapper alive, tar gone.
  let waiting: string | undefined;
  for (const deadline = Date.now() + 60_000; !waiting && Date.now() < deadline; ) {
    const processes = await helperProcesses(t, ws.namespace);
    if (processes?.includes('nkvm-ack') && !/^tar /m.test(processes)) waiting = processes;
    else await new Promise((resolve) => setTimeout(resolve, 300));
  }
  t.truthy(waiting, 'the helper was seen waiting for the acknowledgement after tar ended');
  const finished = await run;
  t.is(finished.exitCode, 0, String(finished.stderr));
  const [result] = JSON.parse(String(finished.stdout)).items;
  t.like(result, { status: 'succeeded', attempts: 1 });
  await assertArtifactHoldsTheClaim(t, ws, result.artifact.path);
  await assertNoHelperPods(t, 10_000);
});

test('a copy cut after its last byte but before the acknowledgement is retried in the same helper and succeeds', async (t) => {
  const ws = await workspace(t);
  const run = await kubectlNkvm(t.context, ['backup', 'data', '-n', ws.namespace, '-o', 'json', ...ws.storeFlags], { env: { NKVM_TEST_FAULT: 'cut-before-ack' } });
  t.is(run.exitCode, 0, String(run.stderr));
  const [result] = JSON.parse(String(run.stdout)).items;
  t.like(result, { status: 'succeeded', attempts: 2 });
  t.regex(result.message, /\(2 attempts; attempt 1: the exec stream was cut: /);
  t.like(await catalogRow(ws, result.id), { status: 'succeeded', attempts: 2 });
  await assertArtifactHoldsTheClaim(t, ws, result.artifact.path);
  t.deepEqual(filesUnder(ws.outputDir), [result.artifact.path], 'no partial file of the first attempt is left');
  // Both attempts ran in the one helper pod the backup created.
  const scheduled = await t.context.cluster.kubectl(['get', 'events', '-n', ws.namespace, '--field-selector', `reason=Scheduled,involvedObject.name=${result.helperPod}`, '-o', 'name']);
  t.is(scheduled.trim().split('\n').filter(Boolean).length, 1);
  await assertNoHelperPods(t, 10_000);
});

test('--retries 0: a cut copy fails at once, as a copy-stage failure with no artifact', async (t) => {
  const ws = await workspace(t);
  const run = await kubectlNkvm(t.context, ['backup', 'data', '-n', ws.namespace, '--retries', '0', '-o', 'json', ...ws.storeFlags], { env: { NKVM_TEST_FAULT: 'cut-before-ack' } });
  t.is(run.exitCode, 1, String(run.stderr));
  const [result] = JSON.parse(String(run.stdout)).items;
  t.like(result, { status: 'failed', stage: 'copy', errorCode: 'CopyStageError', attempts: 1 });
  t.regex(result.message, /^copy stage failed: the exec stream was cut/);
  t.deepEqual(filesUnder(ws.outputDir), []);
  await assertNoHelperPods(t, 10_000);
});

test('an acknowledgement that never comes ends in a clear failure at the helper deadline, never a hang', async (t) => {
  const ws = await workspace(t);
  const started = Date.now();
  const run = await kubectlNkvm(t.context, ['backup', 'data', '-n', ws.namespace, '-o', 'json', ...ws.storeFlags], {
    env: { NKVM_TEST_FAULT: 'withhold-ack', NKVM_ACK_TIMEOUT_SECONDS: '3' },
  });
  t.is(run.exitCode, 1, String(run.stderr));
  const [result] = JSON.parse(String(run.stdout)).items;
  t.like(result, { status: 'failed', stage: 'copy', errorCode: 'CopyStageError', attempts: 1 });
  t.regex(result.message, /^copy stage failed: the helper pod gave up waiting for this client's acknowledgement: no acknowledgement from kubectl-nkvm within 3s/);
  t.true(Date.now() - started < 90_000, 'it ended soon after the deadline');
  t.deepEqual(filesUnder(ws.outputDir), []);
  await assertNoHelperPods(t, 10_000);
});

test('a consumer that stalls near the end loses nothing and needs no retry', async (t) => {
  const ws = await workspace(t);
  // The stall starts 8 MiB before the end of the tar stream and lasts past tar's exit.
  const tarBytes = Number((await t.context.cluster.kubectl(['exec', 'app', '-n', ws.namespace, '--', 'sh', '-c', 'tar -c -f - -C /data . | wc -c'])).trim());
  const run = await kubectlNkvm(t.context, ['backup', 'data', '-n', ws.namespace, '-o', 'json', ...ws.storeFlags], {
    env: { NKVM_TEST_FAULT: `stall-at=${tarBytes - 8 * 1024 * 1024}:5` },
  });
  t.is(run.exitCode, 0, String(run.stderr));
  const [result] = JSON.parse(String(run.stdout)).items;
  t.like(result, { status: 'succeeded', attempts: 1 });
  t.is(result.artifact.tarBytes, tarBytes);
  await assertArtifactHoldsTheClaim(t, ws, result.artifact.path);
});
