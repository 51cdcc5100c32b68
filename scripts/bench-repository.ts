/**
 * The repository's speed and memory against the real restic, side by side in one run, no cluster:
 *   - a NKVM_BENCH_MIB (1024) MiB mixed tar (a third random, a third text, a third zeros), made once
 *     with real tar from deterministic data, fed from a file into `restic backup --stdin` and into
 *     archiveTree + saveArchiveSnapshot, each into a fresh local repository; then the same again
 *     (the dedup path); then a restore of the snapshot to /dev/null (`restic dump` vs restoreTar);
 *   - NKVM_BENCH_FILES (100,000) files of 1-4 KiB, first and unchanged second backup.
 * Wall time of the whole command (process start included), MiB/s, peak RSS (GNU time for restic,
 * process.resourceUsage().maxRSS in our child process), ratio ours/restic; medians of
 * NKVM_BENCH_REPEAT (3) runs, each run a fresh pair of repositories. The load average is printed.
 *
 * Usage: node scripts/bench-repository.ts   (NKVM_BENCH_DIR keeps the generated tars between runs;
 * RESTIC defaults to ~/.cache/nkvm/restic-v0.19.1/bin/restic)
 */
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';

const env = process.env;
const self = fileURLToPath(import.meta.url);
const PASSWORD = 'bench';

if (process.argv[2] === '--child') {
  await child(process.argv[3]!, process.argv[4]!, process.argv[5]);
  process.exit(0);
}

async function child(op: string, repoDir: string, file?: string): Promise<void> {
  const { Repository } = await import('../src/repository/repository.ts');
  const { LocalBackend } = await import('../src/repository/backends/local.ts');
  const backend = new LocalBackend(repoDir);
  if (op === 'init') {
    await Repository.init(backend, PASSWORD);
  } else if (op === 'backup') {
    const { archiveTree, saveArchiveSnapshot } = await import('../src/repository/archiver.ts');
    const repo = await Repository.open(backend, PASSWORD);
    const options = { path: '/data/bench', hostname: 'bench' };
    const archived = await archiveTree(repo, fs.createReadStream(file!, { highWaterMark: 1024 * 1024 }), options);
    await saveArchiveSnapshot(repo, archived, options);
  } else if (op === 'restore') {
    const { restoreTar } = await import('../src/repository/restorer.ts');
    const repo = await Repository.open(backend, PASSWORD);
    const snapshots = await repo.listSnapshots();
    await pipeline(restoreTar(repo, snapshots.at(-1)!), fs.createWriteStream('/dev/null'));
  }
  process.stdout.write(JSON.stringify({ maxRSS: process.resourceUsage().maxRSS }) + '\n');
}

const restic = env.RESTIC ?? path.join(os.homedir(), '.cache/nkvm/restic-v0.19.1/bin/restic');
const mib = Number(env.NKVM_BENCH_MIB ?? 1024);
const fileCount = Number(env.NKVM_BENCH_FILES ?? 100_000);
const repeat = Number(env.NKVM_BENCH_REPEAT ?? 3);
const only = new Set((env.NKVM_BENCH_ONLY ?? 'mixed,files').split(','));
const dir = env.NKVM_BENCH_DIR ?? path.join(os.tmpdir(), 'nkvm-bench-repository');
fs.mkdirSync(dir, { recursive: true });

/** Deterministic bytes: AES-256-CTR keystream under a fixed key. */
function random(seed: string, size: number): Buffer {
  const key = crypto.createHash('sha256').update(seed).digest();
  return crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

const WORDS = 'the quick brown fox jumps over lazy dog restic backup volume claim snapshot pack index tree blob chunk kubernetes pod node namespace'.split(' ');
function text(seed: string, size: number): Buffer {
  const bytes = random(seed, Math.ceil(size / 4));
  const out = Buffer.allocUnsafe(size + 64);
  let o = 0;
  for (let i = 0; o < size; i++) {
    const word = WORDS[bytes[i % bytes.length]! % WORDS.length]!;
    o += out.write(word, o, 'latin1');
    out[o++] = i % 13 === 12 ? 0x0a : 0x20;
  }
  return out.subarray(0, size);
}

function makeMixedTar(): string {
  const tar = path.join(dir, `mixed-${mib}.tar`);
  if (fs.existsSync(tar)) return tar;
  const src = path.join(dir, `mixed-${mib}`);
  fs.rmSync(src, { recursive: true, force: true });
  fs.mkdirSync(src);
  const third = Math.floor((mib * 1024 * 1024) / 3);
  const pieces = 4;
  for (let i = 0; i < pieces; i++) {
    const size = Math.floor(third / pieces);
    fs.writeFileSync(path.join(src, `random-${i}.bin`), random(`random-${i}`, size));
    fs.writeFileSync(path.join(src, `text-${i}.txt`), text(`text-${i}`, size));
    fs.writeFileSync(path.join(src, `zeros-${i}.bin`), Buffer.alloc(size));
  }
  execFileSync('tar', ['cf', tar + '.tmp', '-C', src, '.']);
  fs.renameSync(tar + '.tmp', tar);
  fs.rmSync(src, { recursive: true, force: true });
  return tar;
}

function makeFilesTar(): string {
  const tar = path.join(dir, `files-${fileCount}.tar`);
  if (fs.existsSync(tar)) return tar;
  const src = path.join(dir, `files-${fileCount}`);
  fs.rmSync(src, { recursive: true, force: true });
  const sizes = random('sizes', fileCount * 2);
  const content = text('files', 4096 * 64);
  for (let i = 0; i < fileCount; i++) {
    const sub = path.join(src, `d${String(Math.floor(i / 1000)).padStart(3, '0')}`);
    if (i % 1000 === 0) fs.mkdirSync(sub, { recursive: true });
    const size = 1024 + (sizes.readUInt16LE(i * 2) % 3073);
    const at = (i * 4099) % (content.length - size);
    fs.writeFileSync(path.join(sub, `f${i}.txt`), content.subarray(at, at + size));
  }
  execFileSync('tar', ['cf', tar + '.tmp', '-C', src, '.']);
  fs.renameSync(tar + '.tmp', tar);
  fs.rmSync(src, { recursive: true, force: true });
  return tar;
}

interface Run {
  seconds: number;
  rssMiB: number;
}

/** Runs a command under GNU time; stdin from a file (or nothing), stdout to /dev/null. */
function timed(command: string, args: string[], stdin: string | undefined, extraEnv: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const proc = spawn('/usr/bin/time', ['-v', command, ...args], {
      stdio: [stdin ? fs.openSync(stdin, 'r') : 'ignore', fs.openSync('/dev/null', 'w'), 'pipe'],
      env: { ...process.env, RESTIC_PASSWORD: PASSWORD, ...extraEnv },
    });
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.on('error', reject);
    proc.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      if (code !== 0) return reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}`));
      const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
      resolve({ seconds, rssMiB: rss ? Number(rss[1]) / 1024 : NaN });
    });
  });
}

const node = process.execPath;
const ours = (op: string, repo: string, file?: string) => timed(node, [self, '--child', op, repo, ...(file ? [file] : [])], undefined);
const resticBackup = (repo: string, tar: string) => timed(restic, ['-r', repo, 'backup', '--stdin', '--stdin-filename', 'data.tar', '-q', '--host', 'bench'], tar);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function line(label: string, mibs: number, restic: Run[], ourRuns: Run[], goal?: string): void {
  const r = { s: median(restic.map((x) => x.seconds)), m: median(restic.map((x) => x.rssMiB)) };
  const o = { s: median(ourRuns.map((x) => x.seconds)), m: median(ourRuns.map((x) => x.rssMiB)) };
  const rate = (s: number) => (mibs > 0 ? `${(mibs / s).toFixed(0).padStart(4)} MiB/s` : '');
  console.log(
    `${label.padEnd(28)} restic ${r.s.toFixed(2).padStart(6)} s ${rate(r.s)} ${r.m.toFixed(0).padStart(4)} MiB | ours ${o.s.toFixed(2).padStart(6)} s ${rate(o.s)} ${o.m.toFixed(0).padStart(4)} MiB | ratio ${(o.s / r.s).toFixed(2)}${goal ? ` (goal ${goal})` : ''}  [runs restic ${restic.map((x) => x.seconds.toFixed(1)).join('/')}, ours ${ourRuns.map((x) => x.seconds.toFixed(1)).join('/')}]`,
  );
}

async function bench(name: string, tar: string, withRestore: boolean): Promise<void> {
  const sizeMiB = fs.statSync(tar).size / 1024 / 1024;
  const first: [Run[], Run[]] = [[], []];
  const second: [Run[], Run[]] = [[], []];
  const restore: [Run[], Run[]] = [[], []];
  for (let i = 0; i < repeat; i++) {
    const rRepo = path.join(dir, `restic-repo-${name}-${process.pid}`);
    const oRepo = path.join(dir, `our-repo-${name}-${process.pid}`);
    for (const d of [rRepo, oRepo]) fs.rmSync(d, { recursive: true, force: true });
    execFileSync(restic, ['-r', rRepo, 'init', '-q'], { env: { ...process.env, RESTIC_PASSWORD: PASSWORD } });
    await ours('init', oRepo);
    // Alternate who goes first, so neither always meets a warmer page cache.
    const pair = async (r: () => Promise<Run>, o: () => Promise<Run>, into: [Run[], Run[]]) => {
      if (i % 2 === 0) {
        into[0].push(await r());
        into[1].push(await o());
      } else {
        into[1].push(await o());
        into[0].push(await r());
      }
    };
    await pair(() => resticBackup(rRepo, tar), () => ours('backup', oRepo, tar), first);
    await pair(() => resticBackup(rRepo, tar), () => ours('backup', oRepo, tar), second);
    if (withRestore) await pair(() => timed(restic, ['-r', rRepo, 'dump', 'latest', 'data.tar'], undefined), () => ours('restore', oRepo), restore);
  }
  for (const d of ['restic', 'our']) fs.rmSync(path.join(dir, `${d}-repo-${name}-${process.pid}`), { recursive: true, force: true });
  line(`${name}: first backup`, sizeMiB, ...first, '<= 1.0, RSS <= 150 MB');
  line(`${name}: second, unchanged`, sizeMiB, ...second);
  if (withRestore) line(`${name}: restore to /dev/null`, sizeMiB, ...restore);
}

console.log(`bench-repository: ${mib} MiB mixed, ${fileCount} small files, medians of ${repeat}; ${os.availableParallelism()} cores; ${execFileSync(restic, ['version']).toString().trim()}; node ${process.version}`);
console.log(`load before: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
if (only.has('mixed')) await bench('mixed', makeMixedTar(), true);
if (only.has('files')) await bench('files', makeFilesTar(), false);
console.log(`load after: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
