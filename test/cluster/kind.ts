/**
 * The `kind` provider: the same disposable single-node cluster, made by `kind create cluster` from
 * the node image test/cluster/kind-node-image.ts builds offline (or NKVM_KIND_NODE_IMAGE), one code
 * path wherever Docker and kind exist. Each cluster gets its own Docker network, removed with it;
 * the images tests need that the node image lacks are loaded with `kind load`. Where no Docker engine
 * runs, test/cluster/docker.ts starts dockerd, and stops it when the last cluster is gone.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { csiStateDir, ensureSnapshotStorage, kubeletRootDirOf } from './csi-snapshots.ts';
import { ensureDocker, stopDockerIfStarted } from './docker.ts';
import { buildImages, HELPER_IMAGE, HELPER_IMAGE_WITHOUT_SHELL } from './images/build.ts';
import { ensureKindNodeImage } from './kind-node-image.ts';
import { DEFAULT_STORAGE_CLASS } from './local-path-storage.ts';
import { kindBinary, kubectlBinary } from './paths.ts';
import { run, type RunOptions } from './run.ts';
import { ClusterStartError, type TestCluster } from './types.ts';

/** The project's builds where they exist (scripts/bootstrap.sh --cluster), else what PATH has. */
const kind = fs.existsSync(kindBinary) ? kindBinary : 'kind';
const kubectl = fs.existsSync(kubectlBinary) ? kubectlBinary : 'kubectl';

/** The command lines this provider runs, as data, so a unit test can check them without Docker. */
export const kindCommands = {
  create: (name: string, kubeconfigPath: string, image: string) => [kind, 'create', 'cluster', '--name', name, '--kubeconfig', kubeconfigPath, '--image', image, '--wait', '120s'],
  delete: (name: string, kubeconfigPath: string) => [kind, 'delete', 'cluster', '--name', name, '--kubeconfig', kubeconfigPath],
  exportLogs: (name: string, dir: string) => [kind, 'export', 'logs', dir, '--name', name],
  loadImageArchive: (name: string, archive: string) => [kind, 'load', 'image-archive', archive, '--name', name],
  removeNetwork: (name: string) => ['docker', 'network', 'rm', name],
};

/** kind puts a cluster's nodes on the network this names; one per cluster, so none outlives it. */
export function kindEnvironment(name: string, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...env, KIND_EXPERIMENTAL_DOCKER_NETWORK: name };
}

function runLine([command, ...args]: string[], options: RunOptions = {}): Promise<string> {
  return run(command!, args, { timeoutMs: 600_000, ...options });
}

export async function kindAvailable(): Promise<boolean> {
  try {
    await runLine(['docker', 'info'], { timeoutMs: 15_000 });
    await runLine([kind, 'version'], { timeoutMs: 15_000 });
    return true;
  } catch {
    return false;
  }
}

export async function disposeKindCluster(name: string, kubeconfigPath: string, dir: string): Promise<void> {
  await runLine(kindCommands.delete(name, kubeconfigPath)).catch((error) => process.stderr.write(`${error}\n`));
  await runLine(kindCommands.removeNetwork(name)).catch(() => ''); // absent when create failed before making it
  await stopDockerIfStarted().catch((error) => process.stderr.write(`stopping dockerd: ${error}\n`));
  fs.rmSync(dir, { recursive: true, force: true });
}

/** The handle of a cluster: one started here, or one another process started and records (test/cluster/shared.ts). */
export function attachKindCluster(name: string, kubeconfigPath: string, dir: string): TestCluster {
  let disposed = false;
  const cluster: TestCluster = {
    name,
    provider: 'kind',
    kubeconfigPath,
    dir,
    images: { helper: HELPER_IMAGE, helperWithoutShell: HELPER_IMAGE_WITHOUT_SHELL },
    storageClass: DEFAULT_STORAGE_CLASS,
    kubectl: (args, options = {}) => runLine([kubectl, '--kubeconfig', kubeconfigPath, ...args], options),
    loadImageArchive: async (archive) => void (await runLine(kindCommands.loadImageArchive(name, archive), { timeoutMs: 300_000 })),
    enableSnapshots: () => ensureSnapshotStorage(cluster, { kubeletRootDir: kubeletRootDirOf(cluster), stateDir: csiStateDir(cluster) }),
    logs: () => exportLogs(name, dir),
    dispose: async () => {
      if (disposed) return;
      disposed = true;
      await disposeKindCluster(name, kubeconfigPath, dir);
    },
  };
  return cluster;
}

async function exportLogs(name: string, dir: string): Promise<string> {
  const logDir = path.join(dir, 'kind-logs');
  await runLine(kindCommands.exportLogs(name, logDir)).catch((error) => `kind export logs failed: ${error}`);
  return `kind logs exported to ${logDir}`;
}

export async function startKindCluster(log: (line: string) => void = (line) => process.stderr.write(`[kind] ${line}\n`)): Promise<TestCluster> {
  const name = `nkvm-it-${randomUUID()}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-`));
  const kubeconfigPath = path.join(dir, 'kubeconfig');
  try {
    await ensureDocker(log);
    const otherNodeImage = process.env.NKVM_KIND_NODE_IMAGE;
    await runLine(kindCommands.create(name, kubeconfigPath, otherNodeImage ?? (await ensureKindNodeImage(log))), { env: kindEnvironment(name) });
    // Our node image holds the helper image already (local-path's helper pods use it).
    const needed = otherNodeImage ? [HELPER_IMAGE, HELPER_IMAGE_WITHOUT_SHELL] : [HELPER_IMAGE_WITHOUT_SHELL];
    for (const built of buildImages().filter((b) => needed.includes(b.name))) await runLine(kindCommands.loadImageArchive(name, built.archive));
  } catch (error) {
    const exported = await exportLogs(name, dir);
    await disposeKindCluster(name, kubeconfigPath, dir);
    throw new ClusterStartError(`kind cluster ${name} did not start: ${(error as Error).message}`, exported);
  }
  return attachKindCluster(name, kubeconfigPath, dir);
}
