/**
 * `npm run bench`: the copy path's figures, each against what a user would run by hand, measured in
 * the same run on the same cluster (wall time of the whole command, helper start-up included):
 *   - each compression against its hand pipeline, on a claim of NKVM_BENCH_MIB (1024) MiB of mixed
 *     data (a third each of random bytes, text and zeros): gzip vs `kubectl exec tar | gzip -6`,
 *     zstd vs `| zstd -3 -T0`, none vs `kubectl exec tar > file`; medians of NKVM_BENCH_REPEAT (3);
 *   - the plugin's peak RSS (GNU time's maximum resident set) in each;
 *   - --parallel 4 against --parallel 1, and against four hand pipelines at once (xargs -P4), over 8 claims of NKVM_BENCH_PARALLEL_MIB (64) MiB;
 *   - files/s over NKVM_BENCH_FILES (1,000,000) files of 4 KiB (text), against the hand pipeline;
 *   - completion: NKVM_BENCH_ROUNDS (3) rounds of `backup --parallel 3` over three big claims,
 *     against three hand pipelines at once, each checked for its whole tar stream;
 *   - repository: a claim of NKVM_BENCH_REPOSITORY_FILES (1,024) files of 1 MiB into a fresh local
 *     repository against `kubectl exec tar | restic backup --stdin` (restic v0.19.1), then an
 *     unchanged second backup and one after 1% of the files were rewritten, against the first, with
 *     the bytes the API server sent (counted by a relay in front of it) and the repository's growth;
 *     and a restore of the claim from the repository against one from its tar artifact (zstd).
 *   - small-files: NKVM_BENCH_REPOSITORY_SMALL_FILES (200,000) files of 2 KiB into a repository, an
 *     unchanged second backup against the first.
 *   - movers: the same NKVM_BENCH_MIB (1024) MiB mixed claim into an S3 repository (versitygw on the
 *     node's address) by a data mover pod (--mover pod) and over exec (--mover exec), wall time side
 *     by side, the bytes the API server sent during the mover's backup (relay-counted), and the mover
 *     process's own peak RSS in its pod; with the files section, also the mover over its million files.
 * The plugin measured is the executable Krew installs (the linux/amd64 release archive's, built fresh
 * at the start from this checkout; its Node.js runs with the options the release gives it), not the
 * bundle on the machine's Node. Figures, never pass/fail: the goals are printed beside them. NKVM_BENCH_ONLY=modes,parallel,files,
 * completion,repository,small-files,movers runs a subset.
 */
import { execa } from 'execa';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createCluster, type TestCluster } from '../test/cluster/index.ts';
import { kubernetesBinDir, REPO_ROOT } from '../test/cluster/paths.ts';
import { seedWorkload } from '../test/cluster/workload.ts';
import { findRestic } from '../test/cluster/restic.ts';
import { startCountingProxy } from '../test/cluster/counting-proxy.ts';
import { startS3Server } from '../test/cluster/s3-server.ts';
import { buildImage } from './image/build.ts';

const env = process.env;
const bigMiB = Number(env.NKVM_BENCH_MIB ?? 1024);
const repeat = Number(env.NKVM_BENCH_REPEAT ?? 3);
const parallelMiB = Number(env.NKVM_BENCH_PARALLEL_MIB ?? 64);
const fileCount = Number(env.NKVM_BENCH_FILES ?? 1_000_000);
const rounds = Number(env.NKVM_BENCH_ROUNDS ?? 3);
const repositoryFiles = Number(env.NKVM_BENCH_REPOSITORY_FILES ?? 1024);
const repositorySmallFiles = Number(env.NKVM_BENCH_REPOSITORY_SMALL_FILES ?? 200_000);
const only = new Set((env.NKVM_BENCH_ONLY ?? 'modes,parallel,files,completion,repository,small-files,movers').split(','));

const NAMESPACE = 'bench';
/** The repositories' password, ours and restic's. */
const password = { RESTIC_PASSWORD: 'bench-password' };
const MODES = [
  { compression: 'gzip', hand: 'gzip -6', handName: 'kubectl exec tar | gzip -6', goal: 0.8 },
  { compression: 'zstd', hand: 'zstd -3 -T0 -q', handName: 'kubectl exec tar | zstd -3 -T0', goal: 1.0 },
  { compression: 'none', hand: 'cat', handName: 'kubectl exec tar > file', goal: 1.15 },
] as const;

const log = (text: string) => process.stderr.write(`[bench] ${text}\n`);
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-bench-'));
const binDir = path.join(workDir, 'bin');
fs.mkdirSync(binDir);
// What users run: the single executable, built from this checkout (the movers' image wants arm64's too).
log('building the release archives (scripts/release/release.ts)');
await execa(process.execPath, [path.join(REPO_ROOT, 'scripts', 'release', 'release.ts'), '--platforms', only.has('movers') ? 'linux/amd64,linux/arm64' : 'linux/amd64', '--skip-krew-validation'], { stdout: 'ignore', stderr: 'inherit' });
await execa('tar', ['-xzf', path.join(REPO_ROOT, 'dist', 'release', 'kubectl-nkvm_linux_amd64.tar.gz'), '-C', binDir, 'kubectl-nkvm']);
const out = path.join(workDir, 'out');

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const mib = (bytes: number) => bytes / 1048576;

interface Timed {
  seconds: number;
  peakMiB: number;
  /** CPU seconds of the command line's processes (user + system). */
  cpuSeconds: number;
  /** Busy CPU seconds of the whole machine meanwhile, the cluster's processes included (Linux). */
  machineCpuSeconds: number | undefined;
  stdout: string;
}

/** The machine's busy CPU time so far, in seconds, from /proc/stat (in USER_HZ, 100 on Linux); undefined elsewhere. */
function machineBusySeconds(): number | undefined {
  try {
    const [user, nice, system, , , irq, softirq] = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    return (user! + nice! + system! + irq! + softirq!) / 100;
  } catch {
    return undefined;
  }
}

/** Runs a shell command line with the plugin and kubectl on PATH; wall time, peak RSS and CPU of the command. */
async function timed(cluster: TestCluster, commandLine: string, extraEnv: Record<string, string> = {}): Promise<Timed> {
  const busyBefore = machineBusySeconds();
  const started = process.hrtime.bigint();
  const run = await execa('/usr/bin/time', ['-f', 'maxrss_kib=%M cpu=%U+%S', 'sh', '-c', commandLine], {
    env: { PATH: [binDir, kubernetesBinDir, env.PATH].join(path.delimiter), KUBECONFIG: cluster.kubeconfigPath, NKVM_HOME: path.join(workDir, 'home'), ...extraEnv },
    reject: false,
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const busyAfter = machineBusySeconds();
  if (run.exitCode !== 0) throw new Error(`${commandLine} failed (${run.exitCode}): ${run.stderr}`);
  const cpu = /cpu=([\d.]+)\+([\d.]+)/.exec(run.stderr);
  return {
    seconds,
    peakMiB: Number(/maxrss_kib=(\d+)/.exec(run.stderr)?.[1]) / 1024,
    cpuSeconds: Number(cpu?.[1]) + Number(cpu?.[2]),
    machineCpuSeconds: busyBefore === undefined || busyAfter === undefined ? undefined : busyAfter - busyBefore,
    stdout: run.stdout,
  };
}

async function seedClaim(cluster: TestCluster, claim: string, script: string): Promise<void> {
  await seedWorkload(cluster, { namespace: NAMESPACE, claim, pod: `app-${claim}` }, script, 30 * 60_000);
}

/** A third each of random bytes, text and zeros, as real volumes mix them. */
function mixedData(totalMiB: number): string {
  const third = Math.floor((totalMiB * 1048576) / 3);
  return `set -e; head -c ${third} /dev/urandom > /data/random.bin; seq 1 100000000 | head -c ${third} > /data/text.txt; head -c ${third} /dev/zero > /data/zeros.bin`;
}

/** Bytes of every file under a repository's directory. */
function repositoryBytes(dir: string): number {
  let total = 0;
  for (const name of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const stat = fs.statSync(path.join(dir, name));
    if (stat.isFile()) total += stat.size;
  }
  return total;
}

async function tarBytesOf(cluster: TestCluster, claim: string): Promise<number> {
  return Number((await cluster.kubectl(['exec', `app-${claim}`, '-n', NAMESPACE, '--', 'sh', '-c', 'tar -c -f - -C /data . | wc -c'], { timeoutMs: 30 * 60_000 })).trim());
}

function handPipeline(claim: string, hand: string, file: string): string {
  return `kubectl exec -n ${NAMESPACE} app-${claim} -- tar -c -f - -C /data . | ${hand} > ${file}`;
}

function pluginBackup(claims: string[], compression: string, extra = ''): string {
  return `kubectl nkvm backup ${claims.join(' ')} -n ${NAMESPACE} --compression ${compression} --output-dir ${out} -o json ${extra}`;
}

interface BackupItem {
  id: string;
  status: string;
  attempts: number;
  message: string;
  artifact?: { tarBytes: number; path: string };
}

function items(run: Timed): BackupItem[] {
  return (JSON.parse(run.stdout) as { items: BackupItem[] }).items;
}

const cluster = await createCluster();
const lines: string[] = [];
const print = (line = '') => {
  lines.push(line);
  console.log(line);
};
try {
  print(`kubectl-nkvm ${JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')).version} bench, ${os.cpus().length} cores (${os.cpus()[0]?.model}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${cluster.provider} cluster; ours is the single executable Krew installs`);

  if (only.has('modes') || only.has('completion') || only.has('movers')) {
    log(`seeding claim big-0 with ${bigMiB} MiB of mixed data`);
    await seedClaim(cluster, 'big-0', mixedData(bigMiB));
  }

  if (only.has('modes')) {
    const tarMiB = mib(await tarBytesOf(cluster, 'big-0'));
    print();
    print(`One claim, ${tarMiB.toFixed(0)} MiB of tar (a third each random, text, zeros); wall seconds, median of ${repeat}; ratio = ours / by hand`);
    print('mode   by hand                          hand s   ours s   ratio   goal     ours MiB/s   ours peak RSS');
    for (const mode of MODES) {
      const hand: number[] = [];
      const ours: number[] = [];
      const rss: number[] = [];
      for (let i = 0; i < repeat; i++) {
        log(`${mode.compression}: round ${i + 1} of ${repeat}`);
        fs.rmSync(out, { recursive: true, force: true });
        fs.mkdirSync(out, { recursive: true });
        hand.push((await timed(cluster, handPipeline('big-0', mode.hand, path.join(out, 'hand')))).seconds);
        const run = await timed(cluster, pluginBackup(['big-0'], mode.compression));
        if (items(run)[0]?.status !== 'succeeded') throw new Error(`backup failed: ${items(run)[0]?.message}`);
        ours.push(run.seconds);
        rss.push(run.peakMiB);
      }
      const ratio = median(ours) / median(hand);
      print(
        `${mode.compression.padEnd(6)} ${mode.handName.padEnd(32)} ${median(hand).toFixed(1).padStart(6)}   ${median(ours).toFixed(1).padStart(6)}   ${ratio.toFixed(2).padStart(5)}   <= ${mode.goal.toFixed(2)}  ${(tarMiB / median(ours)).toFixed(0).padStart(10)}   ${Math.max(...rss).toFixed(0).padStart(9)} MiB`,
      );
    }
  }

  if (only.has('parallel')) {
    const claims = Array.from({ length: 8 }, (_, i) => `par-${i}`);
    log(`seeding ${claims.length} claims of ${parallelMiB} MiB`);
    for (const claim of claims) await seedClaim(cluster, claim, mixedData(parallelMiB));
    print();
    print(`--parallel over ${claims.length} claims of ${parallelMiB} MiB (mixed data, zstd); wall seconds, median of ${repeat}`);
    const seconds: Record<number, number[]> = { 1: [], 4: [] };
    const peaks: Record<number, number[]> = { 1: [], 4: [] };
    const hand: number[] = [];
    // Where the time goes on a machine whose cores are all busy: the command's own CPU, and the
    // machine's (the API server, kubelet and container runtime serve both).
    const cpu = { hand: [] as number[], ours: [] as number[], handMachine: [] as number[], oursMachine: [] as number[] };
    // What a user would do by hand: four pipelines at once, the claims' pods already running.
    const handParallel = `printf '%s\\n' ${claims.join(' ')} | xargs -P4 -I{} sh -c '${handPipeline('{}', 'zstd -3 -T0 -q', path.join(out, '{}.tar.zst'))}'`;
    for (let i = 0; i < repeat; i++) {
      log(`by hand, 4 at once: round ${i + 1} of ${repeat}`);
      fs.rmSync(out, { recursive: true, force: true });
      fs.mkdirSync(out, { recursive: true });
      const byHand = await timed(cluster, handParallel);
      hand.push(byHand.seconds);
      cpu.hand.push(byHand.cpuSeconds);
      if (byHand.machineCpuSeconds !== undefined) cpu.handMachine.push(byHand.machineCpuSeconds);
      for (const parallel of [1, 4]) {
        log(`--parallel ${parallel}: round ${i + 1} of ${repeat}`);
        fs.rmSync(out, { recursive: true, force: true });
        const run = await timed(cluster, pluginBackup(claims, 'zstd', `--parallel ${parallel}`));
        if (items(run).some((item) => item.status !== 'succeeded')) throw new Error('a parallel backup failed');
        seconds[parallel]!.push(run.seconds);
        peaks[parallel]!.push(run.peakMiB);
        if (parallel === 4) {
          cpu.ours.push(run.cpuSeconds);
          if (run.machineCpuSeconds !== undefined) cpu.oursMachine.push(run.machineCpuSeconds);
        }
      }
    }
    const speedup = median(seconds[1]!) / median(seconds[4]!);
    print(`--parallel 1: ${median(seconds[1]!).toFixed(1)} s   --parallel 4: ${median(seconds[4]!).toFixed(1)} s   speed-up ${speedup.toFixed(2)}x   goal >= 1.80x`);
    print(`by hand, 4 pipelines at once (xargs -P4 kubectl exec tar | zstd -3 -T0): ${median(hand).toFixed(1)} s   --parallel 4 / by hand ${(median(seconds[4]!) / median(hand)).toFixed(2)}   goal <= 1.00`);
    const machine = cpu.handMachine.length > 0 ? `; the whole machine, cluster included: by hand ${median(cpu.handMachine).toFixed(1)}, ours ${median(cpu.oursMachine).toFixed(1)} of ${(os.cpus().length * median(seconds[4]!)).toFixed(1)} available` : '';
    print(`CPU seconds, medians: the command itself: by hand (kubectl, zstd) ${median(cpu.hand).toFixed(1)}, --parallel 4 ${median(cpu.ours).toFixed(1)}${machine}`);
    print(`ours peak RSS, the largest of ${repeat}: --parallel 1 ${Math.max(...peaks[1]!).toFixed(0)} MiB, --parallel 4 ${Math.max(...peaks[4]!).toFixed(0)} MiB   goal <= 150`);
  }

  if (only.has('files')) {
    const perDir = 100_000;
    const dirs = Math.ceil(fileCount / perDir);
    log(`seeding ${fileCount} files of 4 KiB in ${dirs} directories`);
    const script = Array.from({ length: dirs }, (_, d) => {
      const files = Math.min(perDir, fileCount - d * perDir);
      // awk writes the files without a process each (busybox has no split): 4 KiB, each one different.
      return `mkdir -p /data/d${d} && cd /data/d${d} && awk -v n=${files} 'BEGIN { s = "x"; while (length(s) < 4096) s = s s; s = substr(s, 1, 4080); for (i = 0; i < n; i++) { f = "f" i; printf "%s%016d", s, i > f; close(f) } }'`;
    }).join(' && ');
    await seedClaim(cluster, 'files', `set -e; ${script}`);
    const entries = fileCount + dirs + 1;
    print();
    print(`${fileCount} files of 4 KiB (${entries} tar entries), zstd against kubectl exec tar | zstd -3 -T0; wall seconds, median of ${repeat}`);
    const hand: number[] = [];
    const ours: number[] = [];
    const rss: number[] = [];
    for (let i = 0; i < repeat; i++) {
      log(`small files: round ${i + 1} of ${repeat}`);
      fs.rmSync(out, { recursive: true, force: true });
      fs.mkdirSync(out, { recursive: true });
      hand.push((await timed(cluster, handPipeline('files', 'zstd -3 -T0 -q', path.join(out, 'hand')))).seconds);
      const run = await timed(cluster, pluginBackup(['files'], 'zstd'));
      if (items(run)[0]?.status !== 'succeeded') throw new Error(`backup failed: ${items(run)[0]?.message}`);
      ours.push(run.seconds);
      rss.push(run.peakMiB);
    }
    const rate = (seconds: number) => Math.round(entries / seconds).toLocaleString('en-US');
    print(`by hand: ${median(hand).toFixed(1)} s (${rate(median(hand))} files/s)   ours: ${median(ours).toFixed(1)} s (${rate(median(ours))} files/s)   ratio ${(median(ours) / median(hand)).toFixed(2)}   goal <= 1.20   ours peak RSS ${Math.max(...rss).toFixed(0)} MiB`);
  }

  if (only.has('completion')) {
    const claims = ['big-0', 'big-1', 'big-2'];
    log('seeding two more big claims');
    for (const claim of claims.slice(1)) await seedClaim(cluster, claim, mixedData(bigMiB));
    const expected = await Promise.all(claims.map((claim) => tarBytesOf(cluster, claim)));
    let ours = 0;
    let firstAttempt = 0;
    let handComplete = 0;
    for (let round = 0; round < rounds; round++) {
      log(`completion: round ${round + 1} of ${rounds}`);
      fs.rmSync(out, { recursive: true, force: true });
      fs.mkdirSync(out, { recursive: true });
      const run = await timed(cluster, pluginBackup(claims, 'gzip', '--parallel 3'));
      for (const [index, item] of items(run).entries()) {
        if (item.status === 'succeeded' && item.artifact?.tarBytes === expected[index]) ours += 1;
        if (item.status === 'succeeded' && item.attempts === 1) firstAttempt += 1;
      }
      // Three hand pipelines at once; each is complete when its whole tar stream arrived.
      await timed(cluster, claims.map((claim) => `(${handPipeline(claim, 'gzip -6', path.join(out, `hand-${claim}.tar.gz`))}) &`).join(' ') + ' wait');
      for (const [index, claim] of claims.entries()) {
        const size = await execa('sh', ['-c', `gzip -dc ${path.join(out, `hand-${claim}.tar.gz`)} | wc -c`]);
        if (Number(size.stdout.trim()) === expected[index]) handComplete += 1;
      }
    }
    const total = rounds * claims.length;
    print();
    print(`Completion, ${rounds} rounds over three ${bigMiB} MiB claims at once, gzip:`);
    print(`ours (backup --parallel 3): ${ours} of ${total} complete, ${firstAttempt} of ${total} on the first attempt   by hand (3 x kubectl exec tar | gzip -6): ${handComplete} of ${total} complete`);
  }
  if (only.has('repository')) {
    const restic = findRestic();
    // 1,024 files of 1 MiB, a third each random, text and zeros: a claim where "1% of its files" means something.
    await seedClaim(cluster, 'files-1g', String.raw`set -e; cd /data; i=0; while [ $i -lt ${repositoryFiles} ]; do
      case $((i % 3)) in 0) head -c 1048576 /dev/urandom ;; 1) seq $((i * 100000)) 100000000 | head -c 1048576 ;; 2) head -c 1048576 /dev/zero ;; esac > "f$i"; i=$((i + 1)); done`);
    const tarBytes = await tarBytesOf(cluster, 'files-1g');
    const proxy = await startCountingProxy(cluster.kubeconfigPath, path.join(workDir, 'relayed.kubeconfig'));
    const relayed = { KUBECONFIG: proxy.kubeconfigFile };
    const hand: number[] = [];
    const runs: Record<'first' | 'unchanged' | 'rewritten', number[]> = { first: [], unchanged: [], rewritten: [] };
    const sent: Record<'unchanged' | 'rewritten', number[]> = { unchanged: [], rewritten: [] };
    const rss: number[] = [];
    const restores: Record<'tar' | 'repository', number[]> = { tar: [], repository: [] };
    const restoreRss: number[] = [];
    let grew = 0;
    for (let i = 0; i < repeat; i++) {
      log(`repository: round ${i + 1} of ${repeat}`);
      const handRepo = path.join(workDir, `restic-${i}`);
      const ourRepo = path.join(workDir, `ours-${i}`);
      await execa(restic, ['--repo', handRepo, 'init', '-q'], { env: password });
      hand.push((await timed(cluster, `kubectl exec -n ${NAMESPACE} app-files-1g -- tar -c -f - -C /data . | ${restic} --repo ${handRepo} --no-cache -q backup --stdin --stdin-filename data.tar`, password)).seconds);
      await timed(cluster, `kubectl nkvm repo init ${ourRepo}`, password);
      // Through the counting relay only where its count is the figure: the relay copies every byte
      // in this process, which the hand pipeline beside the first backup does not pay.
      const backup = async (through: 'relay' | 'direct') => {
        proxy.reset();
        const run = await timed(cluster, `kubectl nkvm backup files-1g -n ${NAMESPACE} --repo ${ourRepo} -o json`, { ...password, ...(through === 'relay' ? relayed : {}) });
        const [item] = JSON.parse(run.stdout).items as { status: string; message: string; snapshot?: { id: string } }[];
        if (item?.status !== 'succeeded') throw new Error(`backup into the repository failed: ${item?.message}`);
        rss.push(run.peakMiB);
        return { seconds: run.seconds, relayed: proxy.received, snapshot: item.snapshot!.id };
      };
      const first = await backup('direct');
      runs.first.push(first.seconds);
      // The claim restored into a new claim from the repository, and from today's tar artifact of it.
      const [artifact] = items(await timed(cluster, `kubectl nkvm backup files-1g -n ${NAMESPACE} --format tar -o json`));
      if (artifact?.status !== 'succeeded') throw new Error(`tar backup failed: ${artifact?.message}`);
      restores.tar.push((await timed(cluster, `kubectl nkvm restore ${artifact.id} --to from-tar-${i} --create --size 2Gi -n ${NAMESPACE} -o json`)).seconds);
      const restore = await timed(cluster, `kubectl nkvm restore ${first.snapshot} --repo ${ourRepo} --to from-repo-${i} --create --size 2Gi -n ${NAMESPACE} -o json`, password);
      restores.repository.push(restore.seconds);
      restoreRss.push(restore.peakMiB);
      await cluster.kubectl(['delete', 'pvc', `from-tar-${i}`, `from-repo-${i}`, '-n', NAMESPACE, '--wait=false']);
      const before = repositoryBytes(ourRepo);
      const unchanged = await backup('relay');
      grew = repositoryBytes(ourRepo) - before;
      runs.unchanged.push(unchanged.seconds);
      sent.unchanged.push(unchanged.relayed);
      // 1% of the files rewritten with new random bytes.
      const rewrite = Array.from({ length: Math.ceil(repositoryFiles / 100) }, (_, n) => `head -c 1048576 /dev/urandom > /data/f${n * 97 % repositoryFiles}`).join('; ');
      await cluster.kubectl(['exec', 'app-files-1g', '-n', NAMESPACE, '--', 'sh', '-c', rewrite]);
      const rewritten = await backup('relay');
      runs.rewritten.push(rewritten.seconds);
      sent.rewritten.push(rewritten.relayed);
      fs.rmSync(handRepo, { recursive: true, force: true });
      fs.rmSync(ourRepo, { recursive: true, force: true });
    }
    await proxy.close();
    const pct = (bytes: number) => `${((100 * bytes) / tarBytes).toFixed(2)}%`;
    print();
    print(`Into a local repository, one claim of ${repositoryFiles} files, ${mib(tarBytes).toFixed(0)} MiB of tar; wall seconds, median of ${repeat}; bytes the API server sent, counted by a relay in front of it`);
    print(`first backup: by hand (kubectl exec tar | restic backup --stdin) ${median(hand).toFixed(1)} s   ours ${median(runs.first).toFixed(1)} s   ratio ${(median(runs.first) / median(hand)).toFixed(2)}   goal <= 1.00   ours peak RSS ${Math.max(...rss).toFixed(0)} MiB (goal <= 150)  [runs hand ${hand.map((x) => x.toFixed(1)).join('/')}, ours ${runs.first.map((x) => x.toFixed(1)).join('/')}]`);
    print(`unchanged second backup: ${median(runs.unchanged).toFixed(1)} s, ${(median(runs.unchanged) / median(runs.first)).toFixed(2)} of the first (goal <= 0.20); the API server sent ${pct(median(sent.unchanged))} of the claim (goal < 1%); the repository grew by ${grew} bytes (goal < 0.5%)`);
    print(`1% of the files rewritten: ${median(runs.rewritten).toFixed(1)} s, ${(median(runs.rewritten) / median(runs.first)).toFixed(2)} of the first; the API server sent ${pct(median(sent.rewritten))} of the claim (goal < 3%)`);
    print(`restore into a new claim: from the repository ${median(restores.repository).toFixed(1)} s   from today's tar artifact (zstd) ${median(restores.tar).toFixed(1)} s   ratio ${(median(restores.repository) / median(restores.tar)).toFixed(2)}   goal <= 1.20   peak RSS ${Math.max(...restoreRss).toFixed(0)} MiB`);
  }
  if (only.has('small-files')) {
    // Many small files: what an unchanged second backup costs is listing them, not reading them.
    // awk writes them without a process each (busybox has no split): 2 KiB, each one different.
    await seedClaim(cluster, 'small-files', `set -e; mkdir -p /data/d && cd /data/d && awk -v n=${repositorySmallFiles} 'BEGIN { s = "x"; while (length(s) < 2048) s = s s; s = substr(s, 1, 2032); for (i = 0; i < n; i++) { f = "f" i; printf "%s%016d", s, i > f; close(f) } }'`);
    const smallRepo = path.join(workDir, 'ours-small');
    const small = async () => {
      const run = await timed(cluster, `kubectl nkvm backup small-files -n ${NAMESPACE} --repo ${smallRepo} -o json`, password);
      const [item] = JSON.parse(run.stdout).items as { status: string; message: string; snapshot?: { filesNew: number; filesUnmodified: number; bytesRead: number } }[];
      if (item?.status !== 'succeeded') throw new Error(`backup of the small files failed: ${item?.message}`);
      return { seconds: run.seconds, peakMiB: run.peakMiB, files: item.snapshot!.filesNew + item.snapshot!.filesUnmodified, unmodified: item.snapshot!.filesUnmodified, read: item.snapshot!.bytesRead };
    };
    // Each round a new repository: a first backup, then an unchanged second.
    const rounds: { first: Awaited<ReturnType<typeof small>>; second: Awaited<ReturnType<typeof small>> }[] = [];
    for (let round = 0; round < repeat; round++) {
      await timed(cluster, `kubectl nkvm repo init ${smallRepo}`, password);
      const first = await small();
      rounds.push({ first, second: await small() });
      fs.rmSync(smallRepo, { recursive: true, force: true });
    }
    const first = median(rounds.map((r) => r.first.seconds));
    const second = median(rounds.map((r) => r.second.seconds));
    const last = rounds.at(-1)!;
    print();
    print(`${last.first.files.toLocaleString('en-US')} files of 2 KiB into a repository, medians of ${repeat}: first backup ${first.toFixed(1)} s (peak RSS ${Math.max(...rounds.map((r) => r.first.peakMiB)).toFixed(0)} MiB), unchanged second ${second.toFixed(1)} s (peak RSS ${Math.max(...rounds.map((r) => r.second.peakMiB)).toFixed(0)} MiB, ${last.second.unmodified.toLocaleString('en-US')} files unmodified, ${last.second.read} bytes read): ${(second / first).toFixed(2)} of the first (goal <= 0.20)  [runs first ${rounds.map((r) => r.first.seconds.toFixed(1)).join('/')}, second ${rounds.map((r) => r.second.seconds.toFixed(1)).join('/')}]`);
  }
  if (only.has('movers') && cluster.provider === 'local') {
    // The mover image, from the release archives built at the start, loaded into the node.
    const image = buildImage(path.join(workDir, 'image'));
    await cluster.loadImageArchive(image.archive);
    const nodeIP = (await cluster.kubectl(['get', 'nodes', '-o', 'jsonpath={.items[0].status.addresses[?(@.type=="InternalIP")].address}'])).trim();
    const server = await startS3Server({ host: nodeIP });
    const proxy = await startCountingProxy(cluster.kubeconfigPath, path.join(workDir, 'movers.kubeconfig'));
    try {
      const s3 = { ...server.env, ...password };
      const tarBytes = await tarBytesOf(cluster, 'big-0');
      const into = async (claim: string, mode: 'pod' | 'exec', prefix: string) => {
        await timed(cluster, `kubectl nkvm repo init ${server.location(prefix)}`, s3);
        proxy.reset();
        const run = await timed(cluster, `kubectl nkvm backup ${claim} -n ${NAMESPACE} --repo ${server.location(prefix)} --mover ${mode} --mover-image ${image.reference} -o json`, { ...s3, KUBECONFIG: proxy.kubeconfigFile });
        const [item] = JSON.parse(run.stdout).items as { status: string; message: string; snapshot?: { moverPeakRssBytes?: number } }[];
        if (item?.status !== 'succeeded') throw new Error(`backup --mover ${mode} failed: ${item?.message}`);
        return { seconds: run.seconds, relayed: proxy.received, moverRssMiB: (item.snapshot?.moverPeakRssBytes ?? 0) / 1048576 };
      };
      const pod: Awaited<ReturnType<typeof into>>[] = [];
      const exec: number[] = [];
      for (let i = 0; i < repeat; i++) {
        log(`movers: round ${i + 1} of ${repeat}`);
        exec.push((await into('big-0', 'exec', `exec-${i}`)).seconds);
        pod.push(await into('big-0', 'pod', `pod-${i}`));
      }
      const podSeconds = median(pod.map((run) => run.seconds));
      print();
      print(`Into S3 (versitygw on the node's address), one claim of ${mib(tarBytes).toFixed(0)} MiB of tar (mixed); wall seconds, median of ${repeat}`);
      print(`over exec (--mover exec) ${median(exec).toFixed(1)} s   by a mover pod (--mover pod) ${podSeconds.toFixed(1)} s   speed-up ${(median(exec) / podSeconds).toFixed(2)}x   goal >= 1.30x`);
      print(`during the mover's backup the API server sent ${((100 * median(pod.map((run) => run.relayed))) / tarBytes).toFixed(3)}% of the claim (goal < 1%); the mover's peak RSS ${Math.max(...pod.map((run) => run.moverRssMiB)).toFixed(0)} MiB (goal < 200; its default limit is 512Mi)`);
      if (only.has('files')) {
        const files = await into('files', 'pod', 'files');
        print(`${fileCount} files of 4 KiB by a mover pod: ${files.seconds.toFixed(1)} s, the mover's peak RSS ${files.moverRssMiB.toFixed(0)} MiB (goal < 200)`);
      }
    } finally {
      await proxy.close();
      await server.dispose();
    }
  }
} finally {
  await cluster.dispose();
  fs.rmSync(workDir, { recursive: true, force: true });
}
