/**
 * The main thread's side of the sealing worker (seal-worker.ts): large new chunks go to it, in
 * order, each as a copy the worker owns, and come back sealed. The worker starts with the first chunk and
 * keeps the process alive only while it has work.
 */
import fs from 'node:fs';
import os from 'node:os';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { MasterKey } from './crypto.ts';
import { BlobCompressor } from './compression.ts';
import { SEAL_WORKER_READY, sealBlob, type SealedBlob } from './seal.ts';
import { sealWorkerScript } from './seal-worker-source.ts';

export interface SealWorkerData {
  key: MasterKey;
  compress: boolean;
}

export interface SealRequest {
  seq: number;
  plaintext: ArrayBuffer;
}

export type SealReply = { seq: number; sealed: ArrayBuffer; uncompressedLength?: number } | { seq: number; error: string };

/** Chunks at least this large are sealed on the worker: for smaller ones, a message costs more than it saves. */
export const SEAL_ON_WORKER_AT = 256 * 1024;

/**
 * Whether a second thread can run beside this one: the CPUs the process may run on, bounded by its
 * cgroup's CPU quota (a pod's CPU limit: a data mover's default of one core leaves a worker
 * nothing to run on but the main thread's time).
 */
export function sealingWorkerHelps(): boolean {
  const quota = cgroupCpuQuota();
  return Math.min(os.availableParallelism(), quota ?? Infinity) >= 2;
}

/** The share of its time the main thread is busy, and the idle CPUs beside it, over a window this long, that start the worker. */
const LOAD_WINDOW_MS = 500;
const BUSY_SHARE = 0.9;
const IDLE_CPUS = 0.5;

/**
 * Whether a sealing worker would make a backup faster: the main thread is busy (not waiting on the
 * event loop for the next bytes) at least BUSY_SHARE of the last window, and the machine had at
 * least IDLE_CPUS of a CPU idle meanwhile for the worker to run on. A local file or a mover reading
 * a disk leaves a CPU idle; a stream through the API server here kept both CPUs busy (the API
 * server, the kubelet and tar beside us: 0.1-0.2 CPUs idle), and the worker made the backup no
 * faster while it cost memory (its isolate, a copy of each chunk each way: 25-40 MiB at the peak).
 */
export class MainThreadLoad {
  private readonly idleCpuMs: () => number;
  private since: EventLoopUtilization = performance.eventLoopUtilization();
  private sinceAt = performance.now();
  private idleSince: number;

  /** `idleCpuMs`: milliseconds all CPUs have been idle, as os.cpus() counts them (tests give their own). */
  constructor(idleCpuMs = idleMsOfAllCpus) {
    this.idleCpuMs = idleCpuMs;
    this.idleSince = idleCpuMs();
  }

  /** Measured once a window has passed since the last measure; false until then. */
  workerWouldHelp(): boolean {
    const now = performance.now();
    if (now - this.sinceAt < LOAD_WINDOW_MS) return false;
    const current = performance.eventLoopUtilization();
    const { utilization } = performance.eventLoopUtilization(current, this.since);
    const idle = this.idleCpuMs();
    const idleCpus = (idle - this.idleSince) / (now - this.sinceAt);
    this.since = current;
    this.sinceAt = now;
    this.idleSince = idle;
    return utilization >= BUSY_SHARE && idleCpus >= IDLE_CPUS;
  }
}

function idleMsOfAllCpus(): number {
  let total = 0;
  for (const cpu of os.cpus()) total += cpu.times.idle;
  return total;
}

/** CPUs' worth of time the cgroup allows (cgroup v2 cpu.max, else v1's CFS quota), or undefined for no limit. */
function cgroupCpuQuota(): number | undefined {
  const read = (file: string) => {
    try {
      return fs.readFileSync(file, 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  const v2 = read('/sys/fs/cgroup/cpu.max')?.split(' ');
  if (v2) return v2[0] === 'max' ? undefined : Number(v2[0]) / Number(v2[1]);
  const quota = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us'));
  const period = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_period_us'));
  return quota > 0 && period > 0 ? quota / period : undefined;
}

export class Sealer {
  private readonly data: SealWorkerData;
  private readonly script: { script: string | URL; eval: boolean };
  private worker: Worker | undefined;
  private online = false;
  private failure: Error | undefined;
  private seq = 0;
  /** Chunks given before the worker was ready: still ours, sent once it is, sealed here if it never is. */
  private queued: SealRequest[] = [];
  private readonly waiting = new Map<number, { resolve: (blob: SealedBlob) => void; reject: (error: Error) => void }>();
  private compressor: BlobCompressor | undefined;

  /** `script`: what the worker runs (tests give one that fails). */
  constructor(key: MasterKey, compress: boolean, script = sealWorkerScript()) {
    this.data = { key, compress };
    this.script = script;
  }

  /** False once the worker failed to start or died: chunks are then sealed on the main thread. */
  get available(): boolean {
    return this.failure === undefined;
  }

  /**
   * Seals a copy of `chunk` on the worker: `chunk` may be reused as soon as this returns. Throws
   * when the worker cannot be made (the caller seals the chunk itself).
   */
  seal(chunk: Uint8Array): Promise<SealedBlob> {
    const worker = this.started();
    const plaintext = new Uint8Array(chunk.length);
    plaintext.set(chunk);
    const seq = ++this.seq;
    const sealed = new Promise<SealedBlob>((resolve, reject) => this.waiting.set(seq, { resolve, reject }));
    if (this.waiting.size === 1) worker.ref();
    const request: SealRequest = { seq, plaintext: plaintext.buffer };
    if (this.online) worker.postMessage(request, [request.plaintext]);
    else this.queued.push(request);
    return sealed;
  }

  /** Stops the worker: what it had fails, what it had not yet been sent is sealed here. */
  async close(): Promise<void> {
    const worker = this.worker;
    this.fail(new Error('the sealing worker was closed'));
    await worker?.terminate();
  }

  private started(): Worker {
    if (this.failure) throw this.failure;
    if (this.worker) return this.worker;
    let worker: Worker;
    try {
      worker = new Worker(this.script.script, { eval: this.script.eval, workerData: this.data });
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
      throw error;
    }
    worker.unref();
    worker.on('message', (reply: SealReply | typeof SEAL_WORKER_READY) => {
      if (reply !== SEAL_WORKER_READY) return this.settle(reply);
      this.online = true;
      for (const request of this.queued.splice(0)) worker.postMessage(request, [request.plaintext]);
    });
    worker.on('error', (error: Error) => this.fail(error));
    worker.on('exit', (code) => this.fail(new Error(`the sealing worker exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }

  private settle(reply: SealReply): void {
    const waiting = this.waiting.get(reply.seq);
    if (!waiting) return;
    this.waiting.delete(reply.seq);
    if (this.waiting.size === 0) this.worker?.unref();
    if ('error' in reply) waiting.reject(new Error(`sealing a blob failed: ${reply.error}`));
    else waiting.resolve({ sealed: Buffer.from(reply.sealed), ...(reply.uncompressedLength === undefined ? {} : { uncompressedLength: reply.uncompressedLength }) });
  }

  /** The worker is gone: chunks it never had are sealed here, those it had fail (their bytes went with it). */
  private fail(error: Error): void {
    this.failure ??= error;
    this.worker = undefined;
    for (const { seq, plaintext } of this.queued.splice(0)) {
      const waiting = this.waiting.get(seq)!;
      this.waiting.delete(seq);
      try {
        if (this.data.compress) this.compressor ??= new BlobCompressor();
        waiting.resolve(sealBlob(this.data.key, this.compressor, Buffer.from(plaintext)));
      } catch (sealing) {
        waiting.reject(sealing instanceof Error ? sealing : new Error(String(sealing)));
      }
    }
    for (const { reject } of this.waiting.values()) reject(error);
    this.waiting.clear();
  }
}
