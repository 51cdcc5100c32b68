/**
 * The S3 backend's figures against a local versitygw (test/cluster/s3-server.ts), side by side with
 * curl --aws-sigv4 moving the same bytes to the same server (what a user would otherwise run):
 *   - PUT and GET of one NKVM_BENCH_S3_MIB (64) MiB object, median of NKVM_BENCH_REPEAT (3);
 *   - 500 small (1 KiB) writes one after another, and the TCP connections that took (keep-alive);
 *   - the repository code archiving a tar of the same object into S3 and into a local directory
 *     (archiveTar: chunking, encryption, packs; the backend's share is the difference);
 *   - SHA-256 of the object alone, the part of the PUT that signing the real payload costs (curl
 *     is handed the hash, untimed; the server checks it for both).
 * Nothing is asserted; the figures are printed.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import diagnosticsChannel from 'node:diagnostics_channel';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { archiveTar } from '../src/repository/archiver.ts';
import { LocalBackend } from '../src/repository/backends/local.ts';
import { S3Backend } from '../src/repository/backends/s3.ts';
import { Repository } from '../src/repository/repository.ts';
import { startS3Server } from '../test/cluster/s3-server.ts';

const mib = Number(process.env.NKVM_BENCH_S3_MIB ?? 64);
const repeat = Number(process.env.NKVM_BENCH_REPEAT ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rate = (bytes: number, ms: number) => `${((bytes / 1024 / 1024) / (ms / 1000)).toFixed(0)} MiB/s`;

let connections = 0;
diagnosticsChannel.subscribe('undici:client:connected', () => {
  connections++;
});

const server = await startS3Server();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-bench-s3-'));
try {
  const backend = new S3Backend(server.location('bench'), { env: server.env });
  const data = randomBytes(mib * 1024 * 1024);
  const file = path.join(tmp, 'object.bin');
  fs.writeFileSync(file, data);

  const payloadHash = createHash('sha256').update(data).digest('hex');
  const hashMs: number[] = [];
  const putMs: number[] = [];
  const getMs: number[] = [];
  const curlPutMs: number[] = [];
  const curlGetMs: number[] = [];
  const curl = (args: string[]) =>
    execFileSync('curl', ['-sS', '-f', '--aws-sigv4', `aws:amz:${server.region}:s3`, '--user', `${server.accessKeyId}:${server.secretAccessKey}`, ...args]);
  for (let i = 0; i < repeat; i++) {
    let t0 = performance.now();
    createHash('sha256').update(data).digest();
    hashMs.push(performance.now() - t0);

    const id = randomBytes(32).toString('hex');
    t0 = performance.now();
    await backend.write('data', id, data);
    putMs.push(performance.now() - t0);
    t0 = performance.now();
    const back = await backend.read('data', id);
    getMs.push(performance.now() - t0);
    if (!back.equals(data)) throw new Error('read back different bytes');
    await backend.remove('data', id);

    const url = `${server.endpoint}/${server.bucket}/bench/curl-${i}`;
    t0 = performance.now();
    // The payload's hash, computed beforehand (not timed): the server checks it, as it does ours.
    curl(['-H', `x-amz-content-sha256: ${payloadHash}`, '-T', file, url]);
    curlPutMs.push(performance.now() - t0);
    t0 = performance.now();
    curl(['-H', `x-amz-content-sha256: ${createHash('sha256').update('').digest('hex')}`, '-o', path.join(tmp, 'back.bin'), url]);
    curlGetMs.push(performance.now() - t0);
  }
  const bytes = data.length;
  console.log(`S3 backend against versitygw v1.8.0 on 127.0.0.1, ${mib} MiB object, median of ${repeat}:`);
  console.log(`  PUT  ours ${median(putMs).toFixed(0)} ms (${rate(bytes, median(putMs))}), curl --aws-sigv4 ${median(curlPutMs).toFixed(0)} ms (${rate(bytes, median(curlPutMs))}), ratio ${(median(putMs) / median(curlPutMs)).toFixed(2)}`);
  console.log(`  GET  ours ${median(getMs).toFixed(0)} ms (${rate(bytes, median(getMs))}), curl ${median(curlGetMs).toFixed(0)} ms (${rate(bytes, median(curlGetMs))}), ratio ${(median(getMs) / median(curlGetMs)).toFixed(2)}`);
  console.log(`  SHA-256 of the payload alone ${median(hashMs).toFixed(0)} ms (${rate(bytes, median(hashMs))}): the cost of signing the real payload`);

  const before = connections;
  const small = randomBytes(1024);
  const t0 = performance.now();
  for (let i = 0; i < 500; i++) await backend.write('index', randomBytes(32).toString('hex'), small);
  const ms = performance.now() - t0;
  console.log(`  500 sequential 1 KiB writes: ${ms.toFixed(0)} ms (${(500 / (ms / 1000)).toFixed(0)} writes/s) over ${connections - before} new TCP connection(s)`);

  // One tar of the object (GNU tar: it is what a user has), archived into each repository.
  const tarFile = path.join(tmp, 'object.tar');
  execFileSync('tar', ['-c', '-f', tarFile, '-C', tmp, 'object.bin']);
  const archive = async (repo: Repository) => {
    const t0 = performance.now();
    await archiveTar(repo, Readable.from(fs.createReadStream(tarFile)), { path: '/data/bench', hostname: 'bench' });
    return performance.now() - t0;
  };
  const s3Ms: number[] = [];
  const localMs: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const s3Repo = new S3Backend(server.location(`archive-${i}`), { env: server.env });
    s3Ms.push(await archive(await Repository.init(s3Repo, 'bench')));
    await s3Repo.close();
    localMs.push(await archive(await Repository.init(new LocalBackend(path.join(tmp, `repo-${i}`)), 'bench')));
  }
  console.log(`  archiveTar of the ${mib} MiB tar: into S3 ${median(s3Ms).toFixed(0)} ms (${rate(bytes, median(s3Ms))}), into a local directory ${median(localMs).toFixed(0)} ms (${rate(bytes, median(localMs))}), ratio ${(median(s3Ms) / median(localMs)).toFixed(2)}`);
  await backend.close();
} finally {
  await server.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
}
