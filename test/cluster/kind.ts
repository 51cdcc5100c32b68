/**
 * The `kind` provider: the same disposable single-node cluster, made by `kind create cluster` from
 * the node image test/cluster/kind-node-image.ts builds offline (or NKVM_KIND_NODE_IMAGE), one code
 * path wherever Docker and kind exist. Each cluster gets its own Docker network, removed with it;
 * the images tests need that the node image lacks are loaded with `kind load` (into every node).
 * Where no Docker engine runs, test/cluster/docker.ts starts dockerd, and stops it when the last
 * cluster is gone.
 *
 * A suite that needs several nodes asks for workers ({ workers: 2 }): one control plane and that
 * many workers, from a kind config file. The node image's static CNI gives every node the same pod
 * subnet and no routes between nodes: pods reach the API server and the host, not pods of other nodes.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
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
  create: (name: string, kubeconfigPath: string, image: string, configPath?: string) => [
    kind, 'create', 'cluster', '--name', name, '--kubeconfig', kubeconfigPath, '--image', image, ...(configPath ? ['--config', configPath] : []), '--wait', '120s',
  ],
  delete: (name: string, kubeconfigPath: string) => [kind, 'delete', 'cluster', '--name', name, '--kubeconfig', kubeconfigPath],
  exportLogs: (name: string, dir: string) => [kind, 'export', 'logs', dir, '--name', name],
  loadImageArchive: (name: string, archive: string) => [kind, 'load', 'image-archive', archive, '--name', name],
  removeNetwork: (name: string) => ['docker', 'network', 'rm', name],
  inspectNetwork: (name: string) => ['docker', 'network', 'inspect', name, '--format', '{{range .IPAM.Config}}{{.Gateway}} {{end}}'],
};

export interface KindClusterOptions {
  /** Worker nodes beside the control plane. None (the default): one node that is both. */
  workers?: number;
}

/** kind's config for one control plane and `workers` workers (with workers, kind keeps kubeadm's taint on the control plane). */
export function kindClusterConfig(workers: number): string {
  return ['kind: Cluster', 'apiVersion: kind.x-k8s.io/v1alpha4', 'nodes:', '- role: control-plane', ...Array.from({ length: workers }, () => '- role: worker'), ''].join('\n');
}

/**
 * The host's address on the cluster's Docker network (its bridge's gateway), which pods of every
 * node reach: a server bound to it alone is open to the cluster and to this machine, nowhere else.
 */
export async function kindNetworkGateway(cluster: Pick<TestCluster, 'name' | 'provider'>): Promise<string> {
  if (cluster.provider !== 'kind') throw new Error(`cluster ${cluster.name} is not a kind cluster`);
  const gateways = (await runLine(kindCommands.inspectNetwork(cluster.name), { timeoutMs: 30_000 })).trim().split(/\s+/);
  const gateway = gateways.find((address) => net.isIPv4(address));
  if (!gateway) throw new Error(`the Docker network ${cluster.name} has no IPv4 gateway (${gateways.join(', ') || 'none'})`);
  return gateway;
}

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

export async function startKindCluster(
  options: KindClusterOptions = {},
  log: (line: string) => void = (line) => process.stderr.write(`[kind] ${line}\n`),
): Promise<TestCluster> {
  const name = `nkvm-it-${randomUUID()}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-`));
  const kubeconfigPath = path.join(dir, 'kubeconfig');
  const workers = options.workers ?? 0;
  try {
    await ensureDocker(log);
    const otherNodeImage = process.env.NKVM_KIND_NODE_IMAGE;
    let configPath: string | undefined;
    if (workers > 0) {
      configPath = path.join(dir, 'kind-config.yaml');
      fs.writeFileSync(configPath, kindClusterConfig(workers));
    }
    await runLine(kindCommands.create(name, kubeconfigPath, otherNodeImage ?? (await ensureKindNodeImage(log)), configPath), { env: kindEnvironment(name) });
    // kind's --wait is for the control plane alone: a worker that joined may not be Ready yet.
    if (workers > 0) {
      await runLine([kubectl, '--kubeconfig', kubeconfigPath, 'wait', '--for=condition=Ready', 'nodes', '--all', '--timeout=180s'], { timeoutMs: 190_000 });
    }
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
