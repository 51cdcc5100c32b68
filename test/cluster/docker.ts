/**
 * The Docker engine the kind provider needs. Where one runs (a laptop, GitHub Actions) it is used as
 * is. Where none runs but Debian's docker.io is installed and there is no systemd to start it (these
 * machines), dockerd is started here and stopped again by stopDockerIfStarted(), which also removes
 * the iptables chains it made. Where the capability bounding set lacks capabilities (these
 * machines lack CAP_SYS_RESOURCE), privileged containers, and so KinD nodes, need nkvm-runc as the
 * default runtime (scripts/kind/nkvm-runc).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CACHE_DIR, nkvmRuncBinary } from './paths.ts';
import { run, sleep } from './run.ts';

/** Survives the process that started dockerd (cluster:up, then cluster:down), not a reboot. */
const STATE_DIR = '/run/nkvm-dockerd';
const PID_FILE = path.join(STATE_DIR, 'dockerd.pid');
const LOG_FILE = path.join(CACHE_DIR, 'docker', 'dockerd.log');

async function succeeds(command: string, args: string[], timeoutMs = 15_000): Promise<boolean> {
  return run(command, args, { timeoutMs }).then(() => true, () => false);
}

/** Whether this process's bounding set holds every capability the kernel knows. */
export function boundingSetIsFull(status = fs.readFileSync('/proc/self/status', 'utf8'), lastCap = fs.readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8')): boolean {
  const bounding = BigInt(`0x${/^CapBnd:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? '0'}`);
  const full = (1n << (BigInt(lastCap.trim()) + 1n)) - 1n;
  return (bounding & full) === full;
}

export function dockerdArguments(useRuntimeWrapper: boolean): string[] {
  return [
    '--pidfile', PID_FILE,
    '--storage-driver', 'overlay2',
    // kind makes its own network per cluster; the default bridge would only add docker0.
    '--bridge', 'none',
    // Nodes need no routing (kubectl reaches them through a published port, which docker-proxy
    // serves); left alone, dockerd would enable IP forwarding and set the FORWARD policy to DROP,
    // which other networks on the machine (the local provider's pods) would feel.
    '--ip-forward=false',
    ...(useRuntimeWrapper ? ['--add-runtime', `nkvm-runc=${nkvmRuncBinary}`, '--default-runtime', 'nkvm-runc'] : []),
  ];
}

function iptables(args: string[]): Promise<string> {
  return run('iptables', ['-w', ...args]);
}

/** Starts dockerd unless a Docker engine answers already. */
export async function ensureDocker(log: (line: string) => void = () => {}): Promise<void> {
  if (await succeeds('docker', ['info'])) return;
  if (!(await succeeds('dockerd', ['--version']))) {
    throw new Error('no Docker engine answers and dockerd is not installed: run `sh scripts/bootstrap.sh --cluster`, or start Docker');
  }
  const useRuntimeWrapper = !boundingSetIsFull();
  if (useRuntimeWrapper && !fs.existsSync(nkvmRuncBinary)) throw new Error(`${nkvmRuncBinary} is missing: run \`sh scripts/bootstrap.sh --cluster\``);
  fs.mkdirSync(STATE_DIR, { recursive: true });
  fs.mkdirSync(path.dirname(LOG_FILE), { recursive: true });
  log(`starting dockerd${useRuntimeWrapper ? ' with nkvm-runc as its default runtime' : ''} (log: ${LOG_FILE})`);
  const logFd = fs.openSync(LOG_FILE, 'a');
  const dockerd = spawn('dockerd', dockerdArguments(useRuntimeWrapper), { detached: true, stdio: ['ignore', logFd, logFd] });
  dockerd.unref();
  fs.closeSync(logFd);
  for (const deadline = Date.now() + 60_000; !(await succeeds('docker', ['info'], 5000)); ) {
    if (Date.now() > deadline || dockerd.exitCode !== null) {
      throw new Error(`dockerd did not come up; the end of ${LOG_FILE}:\n${fs.readFileSync(LOG_FILE, 'utf8').split('\n').slice(-20).join('\n')}`);
    }
    await sleep(500);
  }
}

/**
 * Stops the dockerd ensureDocker() started, once no kind node of any cluster runs on it, and removes
 * its iptables chains. An engine someone else started is left alone.
 */
export async function stopDockerIfStarted(): Promise<void> {
  if (!fs.existsSync(PID_FILE)) return;
  const nodes = await run('docker', ['ps', '--quiet', '--filter', 'label=io.x-k8s.kind.cluster']).then((out) => out.trim(), () => '');
  if (nodes) return;
  const pid = Number(fs.readFileSync(PID_FILE, 'utf8').trim());
  if (pid > 0) {
    try {
      process.kill(pid, 'SIGTERM');
      for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(250)) process.kill(pid, 0);
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  await removeDockerChains();
  fs.rmSync(STATE_DIR, { recursive: true, force: true });
}

/** dockerd leaves its DOCKER* chains, and the jumps to them, when it stops. */
async function removeDockerChains(): Promise<void> {
  for (const table of ['filter', 'nat']) {
    const rules = (await iptables(['-t', table, '-S'])).split('\n');
    for (const rule of rules.filter((line) => /^-A \S+ .*-j DOCKER/.test(line) && !/^-A DOCKER/.test(line))) {
      await iptables(['-t', table, '-D', ...rule.slice(3).split(' ')]).catch(() => '');
    }
    const chains = rules.map((line) => /^-N (DOCKER\S*)$/.exec(line)?.[1]).filter((chain): chain is string => Boolean(chain));
    for (const chain of chains) await iptables(['-t', table, '-F', chain]).catch(() => '');
    for (const chain of chains) await iptables(['-t', table, '-X', chain]).catch(() => '');
  }
}
