/**
 * What the integration suites share: the gate, the cluster (one started for the whole run, which
 * NKVM_SHARED_CLUSTER names, or else one per suite), the plugin on PATH exactly as a user would have
 * it (`kubectl nkvm ...` finds `kubectl-nkvm`), and the diagnostics printed when a test fails.
 */
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { execa, type ResultPromise } from 'execa';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createCluster, type TestCluster } from '../cluster/index.ts';
import { kubernetesBinDir, REPO_ROOT } from '../cluster/paths.ts';
import { HELPER_SELECTOR, helperPodsLeft, sharedCluster } from '../cluster/shared.ts';
import { waitForDefaultServiceAccount } from '../cluster/workload.ts';

export const integrationEnabled = process.env.NKVM_RUN_KIND_INTEGRATION === '1';

export interface SuiteContext {
  cluster: TestCluster;
  /** True when the cluster is the run's shared one: other files' tests run on it at the same time. */
  shared: boolean;
  /** PATH with kubectl-nkvm (the built bundle) and kubectl on it. */
  pluginPath: string;
  workDir: string;
  /** What a test sets so that, if it fails, the diagnostics look at its namespace and workload. */
  diagnose?: DiagnosticsScope;
}

export const pluginBundle = path.join(REPO_ROOT, 'dist', 'kubectl-nkvm');

export interface SuiteOptions {
  /**
   * Why this suite needs a cluster of its own even when the run shares one: it changes or asserts
   * something of the whole cluster that other files' tests, running at the same time, would disturb.
   */
  ownCluster?: string;
  /**
   * Starts the suite's own cluster in place of the chosen provider's single node (a KinD cluster
   * with workers, say); only with ownCluster.
   */
  startCluster?: () => Promise<TestCluster>;
}

/**
 * Registers the suite's cluster: the run's shared one (NKVM_SHARED_CLUSTER, started and disposed
 * by test/cluster/cli.ts run), or else one created before the tests and disposed after them even
 * when they fail. Without NKVM_RUN_KIND_INTEGRATION=1 every test is skipped; with it, a cluster
 * that cannot start fails the run with its logs.
 */
/**
 * A work directory of the suite's own whose bin/ holds the built plugin as `kubectl-nkvm`, and the
 * PATH on which kubectl (the cluster's, where built) finds it, as a user's would.
 */
export function pluginWorkDir(prefix: string): { workDir: string; pluginPath: string } {
  if (!fs.existsSync(pluginBundle)) throw new Error(`${pluginBundle} is missing: run \`node build.mjs\` first`);
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const binDir = path.join(workDir, 'bin');
  fs.mkdirSync(binDir);
  fs.symlinkSync(pluginBundle, path.join(binDir, 'kubectl-nkvm'));
  const kubectlDir = fs.existsSync(path.join(kubernetesBinDir, 'kubectl')) ? [kubernetesBinDir] : [];
  return { workDir, pluginPath: [binDir, ...kubectlDir, process.env.PATH ?? ''].join(path.delimiter) };
}

export function clusterSuite(options: SuiteOptions = {}): TestFn<SuiteContext>['serial'] {
  const test = anyTest as TestFn<SuiteContext>;
  // Tests in a suite share its cluster, so they run one after another.
  if (!integrationEnabled) return test.skip as unknown as TestFn<SuiteContext>['serial'];
  test.before(async (t) => {
    t.timeout(20 * 60_000, 'starting the cluster');
    const { workDir, pluginPath } = pluginWorkDir('nkvm-it-work-');
    t.context.workDir = workDir;
    t.context.pluginPath = pluginPath;
    const shared = options.ownCluster ? undefined : sharedCluster();
    t.context.shared = Boolean(shared);
    if (options.startCluster && !options.ownCluster) throw new Error('a suite that starts its own cluster says why (ownCluster)');
    t.context.cluster = shared ?? (await (options.startCluster ?? createCluster)());
  });
  test.afterEach.always(async (t) => {
    if (!t.passed && t.context.cluster) t.log(await collectDiagnostics(t.context.cluster, t.context.diagnose));
  });
  test.after.always(async (t) => {
    await t.context.cluster?.dispose();
    if (t.context.workDir) fs.rmSync(t.context.workDir, { recursive: true, force: true });
  });
  return test.serial;
}

export { HELPER_SELECTOR };

/** The namespaces this file's tests made (createNamespace): where its backups and restores run their helpers. */
const ownNamespaces = new Set<string>();

/**
 * Fails the test if any helper pod is left: in the whole cluster when the suite has it to itself;
 * on the shared cluster, in the namespaces this file made, since other files' helpers come and go
 * there at the same time (the shared cluster's runner checks the whole cluster once all have
 * ended). Helper pods are deleted with no grace period; graceMs gives the API that long to drop them.
 */
export async function assertNoHelperPods(t: ExecutionContext<SuiteContext>, graceMs = 0): Promise<void> {
  const left = await helperPodsLeft(t.context.cluster, { graceMs, ...(t.context.shared ? { namespaces: ownNamespaces } : {}) });
  t.deepEqual(left, [], 'no helper pod is left');
}

/**
 * Runs `kubectl nkvm ...` as a user would: kubectl finds the plugin on PATH. Never throws on exit
 * codes. The run is also the process, for a test that interrupts it (`run.kill('SIGINT')`).
 */
export function kubectlNkvm(context: SuiteContext, args: string[], options: { env?: Record<string, string>; input?: string } = {}): ResultPromise<{ reject: false }> {
  return execa('kubectl', ['nkvm', ...args], {
    reject: false,
    env: { PATH: context.pluginPath, HOME: context.workDir, KUBECONFIG: context.cluster.kubeconfigPath, ...options.env },
    extendEnv: false,
    ...(options.input !== undefined ? { input: options.input } : {}),
    timeout: 5 * 60_000,
  });
}

/** A namespace of the test's own, deleted afterwards. */
export async function createNamespace(cluster: TestCluster, prefix: string): Promise<string> {
  const name = `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
  ownNamespaces.add(name);
  await cluster.kubectl(['create', 'namespace', name]);
  await waitForDefaultServiceAccount(cluster, name);
  return name;
}

async function section(title: string, produce: () => Promise<string>): Promise<string> {
  try {
    return `### ${title}\n${(await produce()).trim()}\n`;
  } catch (error) {
    return `### ${title}\n(failed: ${(error as Error).message})\n`;
  }
}

/**
 * The diagnostics printed when a test fails: nodes and pods, PVC/PV status, namespace events,
 * source pod describe/logs, helper pods by label, and RBAC checks for the ServiceAccounts involved.
 */
export interface DiagnosticsScope {
  namespace?: string;
  sourcePod?: string;
  serviceAccounts?: string[];
}

export async function collectDiagnostics(cluster: TestCluster, options: DiagnosticsScope = {}): Promise<string> {
  const { namespace, sourcePod, serviceAccounts = [] } = options;
  const k = (args: string[]) => cluster.kubectl(args, { timeoutMs: 30_000 });
  const parts = [
    await section('nodes', () => k(['get', 'nodes', '-o', 'wide'])),
    await section('pods (all namespaces)', () => k(['get', 'pods', '-A', '-o', 'wide'])),
    await section('PVCs and PVs', () => k(['get', 'pvc,pv', '-A', '-o', 'wide'])),
    await section('helper pods (app.kubernetes.io/component=backup-helper)', () =>
      k(['get', 'pods', '-A', '-l', HELPER_SELECTOR, '-o', 'wide'])),
  ];
  if (namespace) {
    parts.push(await section(`events in ${namespace}`, () => k(['get', 'events', '-n', namespace, '--sort-by=.lastTimestamp'])));
    if (sourcePod) {
      parts.push(await section(`describe pod ${sourcePod}`, () => k(['describe', 'pod', sourcePod, '-n', namespace])));
      parts.push(await section(`logs of ${sourcePod}`, () => k(['logs', sourcePod, '-n', namespace, '--all-containers', '--tail=50'])));
    }
    for (const sa of serviceAccounts) {
      for (const [verb, resource] of [['list', 'persistentvolumeclaims'], ['create', 'pods'], ['create', 'pods/exec']] as const) {
        parts.push(await section(`can-i ${verb} ${resource} as ${sa}`, () =>
          k(['auth', 'can-i', verb, resource, '-n', namespace, `--as=system:serviceaccount:${namespace}:${sa}`]).catch((e: Error) => e.message)));
      }
    }
  }
  parts.push(await section(`${cluster.provider} cluster logs`, () => cluster.logs()));
  return parts.join('\n');
}
