/**
 * Large chunks sealed on the worker thread: the same blobs as sealed here, stored in the order they
 * were given, a duplicate among them (or of a stored blob) stored once and not sent to the worker; a worker that dies fails what it had and later
 * chunks are sealed here; and the worker as the bundle embeds it runs.
 */
import test from 'ava';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { build } from 'esbuild';
import { cliBundleOptions } from '../../scripts/cli-bundle.ts';
import { LocalBackend } from '../../src/repository/backends/local.ts';
import { randomMasterKey, decrypt, sha256 } from '../../src/repository/crypto.ts';
import { decompress } from '../../src/repository/compression.ts';
import { Repository } from '../../src/repository/repository.ts';
import { MainThreadLoad, SEAL_ON_WORKER_AT, Sealer, type SealReply, type SealWorkerData } from '../../src/repository/sealer.ts';

const KDF = { N: 1024, r: 8, p: 1 };

async function repository(t: { teardown(fn: () => void): void }, sealingWorker: boolean): Promise<Repository> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-seal-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  await Repository.init(new LocalBackend(dir), 'pw', { kdf: KDF });
  const repo = await Repository.open(new LocalBackend(dir), 'pw', { sealingWorker });
  t.teardown(() => void repo.close());
  return repo;
}

/** Half random, half text: some chunks compress, some do not. */
const chunk = (i: number) => Buffer.concat([crypto.randomBytes(SEAL_ON_WORKER_AT), Buffer.from(`line ${i}\n`.repeat(40_000))]);

test('chunks sealed on the worker are the blobs saveBlob stores, in order, a duplicate stored once', async (t) => {
  const repo = await repository(t, true);
  const chunks = [chunk(1), chunk(2), chunk(3)];
  chunks.push(chunks[1]!);
  const scratch = Buffer.alloc(chunks[0]!.length);
  const saving = chunks.map((data) => {
    // The chunk may be reused once saveChunkOnWorker returns: hand it over in a buffer then overwritten.
    data.copy(scratch);
    const started = repo.saveChunkOnWorker(scratch.subarray(0, data.length));
    scratch.fill(0);
    return started;
  });
  t.true(saving.every((started) => started !== undefined));
  const saved = await Promise.all(saving);
  t.deepEqual(saved.map((s) => s!.id), chunks.map((data) => sha256(data).toString('hex')));
  t.deepEqual(saved.map((s) => s!.added), [true, true, true, false]);
  const sealer = (repo as unknown as { sealer: Sealer }).sealer;
  const sealed = sealer.seal.bind(sealer);
  let sent = 0;
  sealer.seal = (data) => ((sent += 1), sealed(data));
  t.false((await repo.saveChunkOnWorker(chunks[2]!))!.added);
  t.is(sent, 0, 'a chunk the repository has is hashed, not sealed again');
  t.is(repo.saveChunkOnWorker(Buffer.alloc(SEAL_ON_WORKER_AT - 1)), undefined, 'a small chunk is saved with saveBlob');
  await repo.flush();
  for (const [index, blob] of saved.entries()) t.deepEqual(await repo.loadBlob('data', blob!.id), chunks[index]);
  t.is(repo.stats.dataBlobs, 3);
  t.is(repo.stats.dataAdded, chunks[0]!.length + chunks[1]!.length + chunks[2]!.length);
  // The same chunks sealed here: same IDs, same plaintexts.
  const here = await repository(t, false);
  t.is(here.saveChunkOnWorker(chunks[0]!), undefined);
  t.deepEqual((await here.saveBlob('data', chunks[0]!)).id, saved[0]!.id);
});

test('a worker that cannot start: the chunks given to it are sealed on the main thread', async (t) => {
  const key = randomMasterKey();
  const sealer = new Sealer(key, true, { script: 'throw new Error("no thread for you")', eval: true });
  const data = Buffer.from('compressible '.repeat(50_000));
  const { sealed, uncompressedLength } = await sealer.seal(data);
  t.is(uncompressedLength, data.length);
  t.deepEqual(decompress(decrypt(key, sealed), data.length), data);
  t.false(sealer.available);
  t.throws(() => sealer.seal(data), { any: true, message: /no thread for you/ });
});

test('a worker that dies fails the chunks it had; later chunks are sealed on the main thread', async (t) => {
  const sealer = new Sealer(randomMasterKey(), true);
  await sealer.seal(chunk(1)); // the worker is online, and the next chunk goes to it
  const pending = sealer.seal(chunk(2));
  await sealer.close();
  await t.throwsAsync(pending, { message: /sealing worker was closed/ });
  t.false(sealer.available);
  const repo = await repository(t, true);
  await repo.saveChunkOnWorker(chunk(1))!;
  const first = repo.saveChunkOnWorker(chunk(2))!;
  await (repo as unknown as { sealer: Sealer }).sealer.close();
  await t.throwsAsync(first, { message: /sealing worker/ });
  t.is(repo.saveChunkOnWorker(chunk(3)), undefined, 'no worker: the caller saves it with saveBlob');
});

test('the worker as the bundle embeds it seals a chunk that decrypts and decompresses to it', async (t) => {
  const result = await build({ ...cliBundleOptions('kubectl-nkvm'), write: false, logLevel: 'silent' });
  const bundle = result.outputFiles!.find((file) => file.path.endsWith('kubectl-nkvm'))!.text;
  const start = bundle.indexOf('function sealWorkerScript()');
  t.true(start >= 0, 'the bundle holds the embedded worker');
  const script = (new Function(`${bundle.slice(start, bundle.indexOf('\n}\n', start) + 2)}; return sealWorkerScript();`) as () => { script: string; eval: boolean })();
  t.true(script.eval);
  const key = randomMasterKey();
  const worker = new Worker(script.script, { eval: true, workerData: { key, compress: true } satisfies SealWorkerData });
  t.teardown(() => void worker.terminate());
  const plaintext = Buffer.from('compressible '.repeat(100_000));
  await new Promise((resolve) => worker.once('message', resolve)); // ready
  const reply = await new Promise<SealReply>((resolve) => {
    worker.once('message', resolve);
    const copy = new Uint8Array(plaintext);
    worker.postMessage({ seq: 1, plaintext: copy.buffer }, [copy.buffer]);
  });
  if ('error' in reply) return t.fail(reply.error);
  t.is(reply.uncompressedLength, plaintext.length);
  t.deepEqual(decompress(decrypt(key, Buffer.from(reply.sealed)), plaintext.length), plaintext);
});

/** Keeps this thread busy for `ms`, as chunking a fast local stream does. */
function spin(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

/** An idle-CPU clock for MainThreadLoad: `cpus` idle CPUs for as long as the test runs. */
function idleClock(cpus: number): () => number {
  const started = performance.now();
  return () => (performance.now() - started) * cpus;
}

test.serial('a worker would help once the main thread is busy most of a window with a CPU idle beside it', async (t) => {
  const waiting = new MainThreadLoad(idleClock(1));
  await new Promise((resolve) => setTimeout(resolve, 600));
  t.false(waiting.workerWouldHelp(), 'a thread that waited for its input');
  const busy = new MainThreadLoad(idleClock(1));
  spin(200);
  t.false(busy.workerWouldHelp(), 'not before a whole window has passed');
  spin(400);
  t.true(busy.workerWouldHelp());
  const crowded = new MainThreadLoad(idleClock(0.2));
  spin(600);
  t.false(crowded.workerWouldHelp(), 'a busy thread on a machine with no CPU to spare (a stream through the API server beside it)');
});

test.serial('by default, chunks that come slower than they are sealed stay on the main thread', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-seal-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  await Repository.init(new LocalBackend(dir), 'pw', { kdf: KDF });
  const repo = await Repository.open(new LocalBackend(dir), 'pw');
  t.teardown(() => void repo.close());
  t.is(repo.saveChunkOnWorker(chunk(1)), undefined, 'the first chunk starts the measure');
  await new Promise((resolve) => setTimeout(resolve, 600));
  t.is(repo.saveChunkOnWorker(chunk(2)), undefined);
  await repo.flush();
});
