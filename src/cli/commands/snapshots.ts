/**
 * `kubectl nkvm snapshots`: what the repository holds, read from the repository itself (not the
 * catalog), so snapshots written from another machine, by the in-cluster schedule, by k8up or by
 * the restic CLI show up too. A claim's snapshots have the namespace as host and `/data/<pvc>` as
 * path, k8up's convention.
 */
import type { Argv, CommandModule } from 'yargs';
import type { SnapshotWithId } from '../../repository/snapshot.ts';
import { formatBytes } from '../format.ts';
import type { GlobalOptions } from '../global-options.ts';
import { asList, renderTable, toJson, toYaml, writeResult } from '../output.ts';
import { openRepository, withRepositoryOptions, type RepositoryFlags } from '../repository-options.ts';
import { listing } from './index.ts';

interface SnapshotsArgs extends GlobalOptions, RepositoryFlags {
  pvc: string | undefined;
  output: 'table' | 'wide' | 'json' | 'yaml' | 'name';
}

/** The claim a snapshot holds, by k8up's convention (`/data/<pvc>`); undefined for other paths. */
export function claimOfSnapshot(snapshot: SnapshotWithId): string | undefined {
  const match = snapshot.paths.length === 1 ? /^\/data\/([^/]+)$/.exec(snapshot.paths[0]!) : null;
  return match?.[1];
}

export function renderSnapshots(snapshots: SnapshotWithId[], format: SnapshotsArgs['output']): string {
  switch (format) {
    case 'json':
      return toJson(asList(snapshots));
    case 'yaml':
      return toYaml(asList(snapshots));
    case 'name':
      return snapshots.map((snapshot) => `${snapshot.id}\n`).join('');
    default: {
      const wide = format === 'wide';
      const headers = ['id', 'time', 'namespace', 'pvc', 'size', 'files', ...(wide ? ['paths', 'tags', 'program'] : [])];
      const rows = snapshots.map((snapshot) => [
        snapshot.id.slice(0, 8),
        snapshot.time.replace(/\.\d+/, ''),
        snapshot.hostname ?? '-',
        claimOfSnapshot(snapshot) ?? '-',
        formatBytes(snapshot.summary?.total_bytes_processed),
        snapshot.summary ? String(snapshot.summary.total_files_processed) : '-',
        ...(wide ? [snapshot.paths.join(','), (snapshot.tags ?? []).join(',') || '-', snapshot.program_version ?? '-'] : []),
      ]);
      return renderTable(headers, rows);
    }
  }
}

export const snapshotsCommand: CommandModule<GlobalOptions, SnapshotsArgs> = {
  ...listing('snapshots'),
  builder: (argv) =>
    withRepositoryOptions(argv)
      .option('pvc', { type: 'string', description: 'Only snapshots of this claim (path /data/<pvc>)' })
      .option('output', { alias: 'o', choices: ['table', 'wide', 'json', 'yaml', 'name'] as const, default: 'table' as const, description: 'Output format (name: full snapshot IDs)' })
      .example('kubectl nkvm snapshots', 'Every snapshot in the repository')
      .example('kubectl nkvm snapshots -n shop --pvc data -o json', "One claim's snapshots, for scripts")
      .example('kubectl nkvm snapshots --repo s3:https://s3.example.com/backups/shop', 'Another repository') as unknown as Argv<SnapshotsArgs>,
  handler: async (args) => {
    const opened = await openRepository(args);
    try {
      const snapshots = (await opened.repository.listSnapshots()).filter(
        (snapshot) => (!args.namespace || snapshot.hostname === args.namespace) && (!args.pvc || claimOfSnapshot(snapshot) === args.pvc),
      );
      writeResult(renderSnapshots(snapshots, args.output));
    } finally {
      await opened.close();
    }
  },
};
