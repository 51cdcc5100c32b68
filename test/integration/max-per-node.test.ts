/**
 * --max-per-node on a real cluster: with --parallel 3 over three claims on one node and
 * --max-per-node 1, the copies (hooks included) run one after another there: their intervals, as
 * the results report them, never overlap.
 */
import { createBoundClaims } from '../cluster/workload.ts';
import { assertNoHelperPods, clusterSuite, createNamespace, kubectlNkvm } from './support.ts';

const test = clusterSuite();

test('--parallel 3 --max-per-node 1: every copy on the node waits for the one before it', async (t) => {
  t.timeout(6 * 60_000);
  const { cluster } = t.context;
  const namespace = await createNamespace(cluster, 'per-node');
  t.context.diagnose = { namespace };
  await createBoundClaims(cluster, namespace, ['one', 'two', 'three']);
  const run = await kubectlNkvm(t.context, ['backup', '--all', '-n', namespace, '--parallel', '3', '--max-per-node', '1', '--output-dir', `${t.context.workDir}/per-node`, '--catalog', `${t.context.workDir}/per-node.sqlite`, '-o', 'json']);
  t.is(run.exitCode, 0, String(run.stderr));
  const results = JSON.parse(String(run.stdout)).items as { status: string; node: string; copyStartedAt: string; copyFinishedAt: string }[];
  t.deepEqual(results.map((r) => r.status), ['succeeded', 'succeeded', 'succeeded']);
  t.is(new Set(results.map((r) => r.node)).size, 1, 'one node');
  const spans = results.map((r) => [Date.parse(r.copyStartedAt), Date.parse(r.copyFinishedAt)] as const).sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) t.true(spans[i]![0] >= spans[i - 1]![1], `copy ${i} began before copy ${i - 1} ended: ${JSON.stringify(spans)}`);
  const refused = await kubectlNkvm(t.context, ['backup', '--all', '-n', namespace, '--max-per-node', '0']);
  t.is(refused.exitCode, 2);
  await assertNoHelperPods(t, 10_000);
});
