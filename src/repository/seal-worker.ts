/**
 * The sealing worker's thread: compresses and encrypts the large new chunks the main thread sends
 * (sealBlob), so that a backup's chunking and its sealing run on two cores. Started by
 * sealer.ts with the master key and whether the repository compresses.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BlobCompressor } from './compression.ts';
import type { MasterKey } from './crypto.ts';
import { SEAL_WORKER_READY, sealBlob } from './seal.ts';
import { addGarbage } from '../young-garbage.ts';
import type { SealRequest, SealReply, SealWorkerData } from './sealer.ts';

const { key: raw, compress } = workerData as SealWorkerData;
const key: MasterKey = { encrypt: Buffer.from(raw.encrypt), mac: { k: Buffer.from(raw.mac.k), r: Buffer.from(raw.mac.r) } };
const compressor = compress ? new BlobCompressor() : undefined;

parentPort!.on('message', ({ seq, plaintext }: SealRequest) => {
  let reply: SealReply;
  try {
    const { sealed, uncompressedLength } = sealBlob(key, compressor, Buffer.from(plaintext));
    reply = { seq, sealed: sealed.buffer as ArrayBuffer, uncompressedLength };
    parentPort!.postMessage(reply, [reply.sealed]);
    // Each chunk and its sealed copy are garbage once sent: this thread's heap is bounded as the main one's.
    addGarbage(plaintext.byteLength);
  } catch (error) {
    reply = { seq, error: error instanceof Error ? error.message : String(error) };
    parentPort!.postMessage(reply);
  }
});

parentPort!.postMessage(SEAL_WORKER_READY);
