/**
 * `artifacts fetch --from-cluster`: one artifact of the in-cluster store to the local disk, through
 * the sha256 the in-cluster catalog recorded, then into the local catalog as the same backup with
 * its local path, so verify, restore and prune treat it like any other.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { PassThrough } from 'node:stream';
import { CatalogError, UsageError } from '../errors.ts';
import { commitArtifact, partialPath } from '../backup/artifacts.ts';
import { Digest } from '../backup/digest.ts';
import type { BackupRecord, Catalog } from '../store/catalog.ts';
import type { ClusterStore } from './cluster-store.ts';

export async function fetchArtifact(remote: Catalog, store: ClusterStore, id: string, outputDir: string, local: Catalog): Promise<BackupRecord> {
  const record = await remote.findBackup(id);
  if (record.status !== 'succeeded' || !record.artifactPath) throw new UsageError(`backup ${record.id} is ${record.status}: only a succeeded backup has an artifact to fetch`);
  if (await local.getBackup(record.id)) throw new CatalogError(`backup ${record.id} is already in the local catalog ${local.file}`, { hint: `see it with \`kubectl nkvm artifacts show ${record.id}\`` });
  const target = path.join(outputDir, record.namespace, record.pvc, path.posix.basename(record.artifactPath));
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const partial = partialPath(target);
  const digest = new Digest();
  const intake = new PassThrough();
  const written = pipeline(intake, digest, fs.createWriteStream(partial, { flags: 'wx', mode: 0o600 }));
  try {
    await store.copy(record.artifactPath, intake);
    await written;
    const sha256 = digest.hash.digest('hex');
    if (sha256 !== record.sha256 || digest.bytes !== record.bytes) {
      throw new CatalogError(`the copy of ${record.artifactPath} does not match the in-cluster catalog (sha256 ${sha256}, ${digest.bytes} bytes; expected ${record.sha256}, ${record.bytes} bytes); nothing was kept`);
    }
    commitArtifact(partial, target);
  } catch (error) {
    intake.destroy();
    await written.catch(() => {});
    fs.rmSync(partial, { force: true });
    throw error;
  }
  const fetched: BackupRecord = { ...record, artifactPath: target };
  await local.insertBackup(fetched);
  return fetched;
}
