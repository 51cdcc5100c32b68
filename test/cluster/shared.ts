/**
 * One cluster for many test files. `node test/cluster/cli.ts run -- COMMAND...` starts a cluster of
 * the chosen provider, runs COMMAND with NKVM_SHARED_CLUSTER naming the cluster's record (a JSON
 * file in the cluster's directory), and disposes the cluster when COMMAND ends: passed, failed, or
 * interrupted (SIGINT, SIGTERM and SIGHUP are passed on to COMMAND's process group, and the cluster
 * goes once it has stopped). The suites attach to that cluster instead of starting their own
 * (test/integration/support.ts); each test works in namespaces of its own.
 *
 * Before disposing, the runner checks that no helper pod is left anywhere in the cluster: a test's
 * own check looks only at its file's namespaces, since files run side by side, and this one covers
 * the whole cluster once they are all done.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { HELPER_COMPONENT } from '../../src/backup/helper-pod.ts';
import { createCluster } from './index.ts';
import { attachKindCluster } from './kind.ts';
import { attachLocalCluster } from './local.ts';
import { sleep } from './run.ts';
import type { TestCluster } from './types.ts';

export const SHARED_CLUSTER_ENV = 'NKVM_SHARED_CLUSTER';
export const HELPER_SELECTOR = `app.kubernetes.io/component=${HELPER_COMPONENT}`;

/** What another process needs to reach a running cluster and, for its starter, to dispose it. */
export interface ClusterRecord {
  name: string;
  provider: 'local' | 'kind';
  dir: string;
  kubeconfigPath: string;
}

export function recordOf(cluster: TestCluster): ClusterRecord {
  return { name: cluster.name, provider: cluster.provider, dir: cluster.dir, kubeconfigPath: cluster.kubeconfigPath };
}

export function readRecord(file: string): ClusterRecord {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as ClusterRecord;
}

/** A full handle (dispose included) of the recorded cluster. */
export function attachCluster(record: ClusterRecord): TestCluster {
  return record.provider === 'local' ? attachLocalCluster(record.dir) : attachKindCluster(record.name, record.kubeconfigPath, record.dir);
}

/**
 * The cluster NKVM_SHARED_CLUSTER names, if any. Its dispose() does nothing: the process that
 * started the cluster disposes it.
 */
export function sharedCluster(env: NodeJS.ProcessEnv = process.env): TestCluster | undefined {
  const file = env[SHARED_CLUSTER_ENV];
  if (!file) return undefined;
  if (!fs.existsSync(file)) throw new Error(`${SHARED_CLUSTER_ENV}=${file}: no such file`);
  return { ...attachCluster(readRecord(file)), dispose: async () => {} };
}

/**
 * Helper pods left, as namespace/pod-name, in the namespaces given (all when none are given).
 * Helper pods are deleted with no grace period; graceMs gives the API that long to drop them.
 */
export async function helperPodsLeft(cluster: TestCluster, options: { namespaces?: Iterable<string>; graceMs?: number } = {}): Promise<string[]> {
  const scope = options.namespaces ? new Set(options.namespaces) : undefined;
  const list = async () =>
    (await cluster.kubectl(['get', 'pods', '-A', '-l', HELPER_SELECTOR, '-o', 'jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{"\\n"}{end}']))
      .split('\n')
      .filter((line) => line && (!scope || scope.has(line.split('/')[0]!)));
  let left = await list();
  for (const deadline = Date.now() + (options.graceMs ?? 0); left.length > 0 && Date.now() < deadline; ) {
    await sleep(250);
    left = await list();
  }
  return left;
}

const SIGNAL_NUMBERS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;
type ForwardedSignal = keyof typeof SIGNAL_NUMBERS;

/**
 * Starts a cluster, runs the command against it (NKVM_SHARED_CLUSTER set), checks that no helper
 * pod is left, and disposes the cluster whatever happened. Resolves to the exit code to use: the
 * command's, 1 if helper pods were left, 128 + the signal's number when interrupted.
 */
export async function runWithSharedCluster(command: string[], log: (line: string) => void = (line) => process.stderr.write(`[shared cluster] ${line}\n`)): Promise<number> {
  let interrupted: ForwardedSignal | undefined;
  let child: ReturnType<typeof spawn> | undefined;
  const onSignal = (signal: ForwardedSignal) => {
    if (interrupted) return; // a second Ctrl-C must not cut the dispose short
    interrupted = signal;
    if (child?.pid && child.exitCode === null) {
      log(`${signal}: passing it on to ${command[0]}, then disposing the cluster`);
      signalGroup(child.pid, signal);
    } else {
      log(`${signal}: disposing the cluster`);
    }
  };
  for (const signal of Object.keys(SIGNAL_NUMBERS) as ForwardedSignal[]) process.on(signal, onSignal);

  const started = Date.now();
  const cluster = await createCluster();
  log(`${cluster.name} (${cluster.provider}) up in ${seconds(started)}; KUBECONFIG=${cluster.kubeconfigPath}`);
  let exitCode = 1;
  try {
    if (interrupted) return 128 + SIGNAL_NUMBERS[interrupted];
    const recordFile = path.join(cluster.dir, 'shared-cluster.json');
    fs.writeFileSync(recordFile, `${JSON.stringify(recordOf(cluster), null, 2)}\n`);
    const ran = Date.now();
    // A process group of its own, so that a signal reaches the command and everything it started
    // (test workers, plugin runs), and nothing of it outlives the cluster.
    child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'inherit', 'inherit'], detached: true, env: { ...process.env, [SHARED_CLUSTER_ENV]: recordFile } });
    const pid = child.pid;
    exitCode = await new Promise<number>((resolve) => {
      child!.on('error', (error) => {
        log(`${command[0]}: ${error.message}`);
        resolve(127);
      });
      child!.on('exit', (code, signal) => resolve(code ?? 128 + (SIGNAL_NUMBERS[signal as ForwardedSignal] ?? 9)));
    });
    if (pid) signalGroup(pid, 'SIGKILL'); // whatever of the group is still running
    log(`${command.join(' ')} ended (exit ${exitCode}) after ${seconds(ran)}`);
    if (interrupted) return 128 + SIGNAL_NUMBERS[interrupted];
    const left = await helperPodsLeft(cluster, { graceMs: 10_000 });
    if (left.length > 0) {
      log(`helper pods left in the cluster after every suite ended: ${left.join(', ')}`);
      exitCode ||= 1;
    } else {
      log('no helper pod is left in the cluster');
    }
    return exitCode;
  } finally {
    const disposing = Date.now();
    await cluster.dispose();
    log(`${cluster.name} disposed in ${seconds(disposing)}`);
    for (const signal of Object.keys(SIGNAL_NUMBERS) as ForwardedSignal[]) process.off(signal, onSignal);
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone
  }
}

const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)}s`;
