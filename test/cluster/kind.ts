/**
 * The `kind` provider, for machines with Docker and kind (a laptop, GitHub Actions): the same
 * disposable single-node cluster, made by `kind create cluster`. Its helper image is the plugin's
 * public default, pulled from the registry; the image without sh and tar is built from it by removing both.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { DEFAULT_HELPER_IMAGE } from '../../src/backup/defaults.ts';
import { ClusterStartError, type TestCluster } from './types.ts';

const execFileAsync = promisify(execFile);

export const KIND_HELPER_WITHOUT_SHELL = 'nkvm.local/busybox-without-shell:test';

/** The command lines this provider runs, as data, so a unit test can check them without Docker. */
export const kindCommands = {
  create: (name: string, kubeconfigPath: string) => ['kind', 'create', 'cluster', '--name', name, '--kubeconfig', kubeconfigPath, '--wait', '120s'],
  delete: (name: string, kubeconfigPath: string) => ['kind', 'delete', 'cluster', '--name', name, '--kubeconfig', kubeconfigPath],
  exportLogs: (name: string, dir: string) => ['kind', 'export', 'logs', dir, '--name', name],
  pullHelper: () => ['docker', 'pull', DEFAULT_HELPER_IMAGE],
  /** A copy of the helper image whose /bin/tar is gone, so the copy stage fails on purpose. */
  buildHelperWithoutShell: (dockerfileDir: string) => ['docker', 'build', '--tag', KIND_HELPER_WITHOUT_SHELL, dockerfileDir],
  loadImage: (name: string, image: string) => ['kind', 'load', 'docker-image', image, '--name', name],
};

async function run([command, ...args]: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const child = execFileAsync(command!, args, { maxBuffer: 256 * 1024 * 1024, timeout: options.timeoutMs ?? 600_000 });
  if (options.input !== undefined) child.child.stdin!.end(options.input);
  try {
    return (await child).stdout;
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${(error as Error).message.split('\n')[0]}\n${stderr ?? ''}`.trim());
  }
}

export async function kindAvailable(): Promise<boolean> {
  try {
    await run(['docker', 'info'], { timeoutMs: 15_000 });
    await run(['kind', 'version'], { timeoutMs: 15_000 });
    return true;
  } catch {
    return false;
  }
}

export async function disposeKindCluster(name: string, kubeconfigPath: string, dir: string): Promise<void> {
  await run(kindCommands.delete(name, kubeconfigPath)).catch((error) => process.stderr.write(`${error}\n`));
  fs.rmSync(dir, { recursive: true, force: true });
}

export async function startKindCluster(): Promise<TestCluster> {
  const name = `nkvm-it-${randomUUID()}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-`));
  const kubeconfigPath = path.join(dir, 'kubeconfig');
  const kubectl = (args: string[], options: { input?: string; timeoutMs?: number } = {}) =>
    run(['kubectl', '--kubeconfig', kubeconfigPath, ...args], options);
  const logs = async () => {
    const logDir = path.join(dir, 'kind-logs');
    await run(kindCommands.exportLogs(name, logDir)).catch((error) => `kind export logs failed: ${error}`);
    return `kind logs exported to ${logDir}`;
  };
  const dispose = () => disposeKindCluster(name, kubeconfigPath, dir);
  try {
    await run(kindCommands.create(name, kubeconfigPath));
    await run(kindCommands.pullHelper());
    const dockerfileDir = path.join(dir, 'without-shell');
    fs.mkdirSync(dockerfileDir);
    fs.writeFileSync(path.join(dockerfileDir, 'Dockerfile'), `FROM ${DEFAULT_HELPER_IMAGE}\nRUN ["/bin/rm", "/bin/tar", "/bin/sh"]\n`);
    await run(kindCommands.buildHelperWithoutShell(dockerfileDir));
    await run(kindCommands.loadImage(name, DEFAULT_HELPER_IMAGE));
    await run(kindCommands.loadImage(name, KIND_HELPER_WITHOUT_SHELL));
  } catch (error) {
    const exported = await logs();
    await dispose();
    throw new ClusterStartError(`kind cluster ${name} did not start: ${(error as Error).message}`, exported);
  }
  return {
    name,
    provider: 'kind',
    kubeconfigPath,
    dir,
    images: { helper: DEFAULT_HELPER_IMAGE, helperWithoutShell: KIND_HELPER_WITHOUT_SHELL },
    // kind's default class, local-path, provisions on first use (WaitForFirstConsumer).
    storageClass: 'standard',
    kubectl,
    loadImageArchive: async (archive) => void (await run(['kind', 'load', 'image-archive', archive, '--name', name])),
    logs,
    dispose,
  };
}
