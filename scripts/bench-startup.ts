/**
 * Start-up, for `npm run bench`: how long `kubectl nkvm --help` and `kubectl nkvm version --client`
 * take through the executable Krew installs (the linux/amd64 single executable, built here with
 * `scripts/release/release.ts --platforms linux/amd64`) and through the bundle on Node, against
 * `kubectl version --client` on the same machine, in the same run. Medians of NKVM_BENCH_STARTUP_RUNS
 * (21) runs each, after one warm-up. Goal: within 1.5x of kubectl. The executable answers those two
 * from its front (src/sea-front.ts); `discover --help` shows what loading the whole CLI costs.
 */
import { execa, execaSync } from 'execa';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { kubernetesBinDir, REPO_ROOT } from '../test/cluster/paths.ts';

const runs = Number(process.env.NKVM_BENCH_STARTUP_RUNS ?? 21);
const GOAL = 1.5;
const log = (text: string) => process.stderr.write(`[bench] ${text}\n`);
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function wallMs(command: string, args: string[]): Promise<number> {
  await execa(command, args, { stdout: 'ignore', stderr: 'ignore' }); // warm-up: page cache, not the figure
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = process.hrtime.bigint();
    await execa(command, args, { stdout: 'ignore', stderr: 'ignore' });
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return median(times);
}

/** The executable as Krew installs it: from the linux/amd64 release archive, built if missing. */
function singleExecutable(workDir: string): string {
  const archive = path.join(REPO_ROOT, 'dist', 'release', 'kubectl-nkvm_linux_amd64.tar.gz');
  if (!fs.existsSync(archive)) {
    log('building the linux/amd64 release archive (scripts/release/release.ts --platforms linux/amd64)');
    execaSync(process.execPath, [path.join(REPO_ROOT, 'scripts', 'release', 'release.ts'), '--platforms', 'linux/amd64', '--skip-krew-validation'], { stdio: 'inherit' });
  }
  execaSync('tar', ['-xzf', archive, '-C', workDir]);
  return path.join(workDir, 'kubectl-nkvm');
}

const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-bench-startup-'));
try {
  const kubectl = path.join(kubernetesBinDir, 'kubectl');
  const bundle = path.join(REPO_ROOT, 'dist', 'kubectl-nkvm');
  const executable = singleExecutable(workDir);
  const reference = await wallMs(kubectl, ['version', '--client']);
  const rows: [string, number][] = [];
  for (const [name, command, prefix] of [
    ['single executable (Krew)', executable, []],
    ['bundle on Node', process.execPath, [bundle]],
  ] as const) {
    rows.push([`${name}: --help`, await wallMs(command, [...prefix, '--help'])]);
    rows.push([`${name}: version --client`, await wallMs(command, [...prefix, 'version', '--client'])]);
    // Not a goal: what any other command pays before it starts, the whole CLI loaded.
    rows.push([`${name}: discover --help`, await wallMs(command, [...prefix, 'discover', '--help'])]);
  }
  const nodeAlone = await wallMs(process.execPath, ['-e', '0']);
  console.log(`\nStart-up, ${os.cpus().length} cores, Node ${process.version}; wall ms, median of ${runs}; ratio = ours / kubectl version --client (${reference.toFixed(0)} ms)`);
  for (const [name, ms] of rows) console.log(`${name.padEnd(44)} ${ms.toFixed(0).padStart(5)} ms   ratio ${(ms / reference).toFixed(2)}${name.endsWith('discover --help') ? "" : `   goal <= ${GOAL.toFixed(2)}`}`);
  console.log(`${'node -e 0 (the floor of any Node program)'.padEnd(44)} ${nodeAlone.toFixed(0).padStart(5)} ms`);
} finally {
  fs.rmSync(workDir, { recursive: true, force: true });
}
