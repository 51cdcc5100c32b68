/**
 * The main thread's side of the sealing worker (seal-worker.ts): large new chunks go to it, in
 * order, each as a copy the worker owns, and come back sealed. The worker starts with the first chunk and
 * keeps the process alive only while it has work.
 */
import fs from 'node:fs';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { MasterKey } from './crypto.ts';
import type { SealedBlob } from './seal.ts';
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
  private worker: Worker | undefined;
  private failure: Error | undefined;
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: (blob: SealedBlob) => void; reject: (error: Error) => void }>();

  constructor(key: MasterKey, compress: boolean) {
    this.data = { key, compress };
  }

  /** False once the worker failed to start or died: chunks are then sealed on the main thread. */
  get available(): boolean {
    return this.failure === undefined;
  }

  /** Seals a copy of `chunk` on the worker: `chunk` may be reused as soon as this returns. */
  seal(chunk: Uint8Array): Promise<SealedBlob> {
    const worker = this.started();
    const plaintext = new Uint8Array(chunk.length);
    plaintext.set(chunk);
    const seq = ++this.seq;
    const sealed = new Promise<SealedBlob>((resolve, reject) => this.waiting.set(seq, { resolve, reject }));
    if (this.waiting.size === 1) worker.ref();
    const request: SealRequest = { seq, plaintext: plaintext.buffer };
    worker.postMessage(request, [plaintext.buffer]);
    return sealed;
  }

  /** Stops the worker, failing what it still had. */
  async close(): Promise<void> {
    const worker = this.worker;
    this.fail(new Error('the sealing worker was closed'));
    await worker?.terminate();
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const { script, eval: isScript } = sealWorkerScript();
    const worker = new Worker(script, { eval: isScript, workerData: this.data });
    worker.unref();
    worker.on('message', (reply: SealReply) => this.settle(reply));
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

  private fail(error: Error): void {
    this.failure ??= error;
    this.worker = undefined;
    for (const { reject } of this.waiting.values()) reject(error);
    this.waiting.clear();
  }
}
