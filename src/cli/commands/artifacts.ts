import type { Argv, CommandModule } from 'yargs';
import type { BackupRecord, BackupStatus } from '../../store/catalog.ts';
import { formatBytes, formatDuration } from '../format.ts';
import type { GlobalOptions } from '../global-options.ts';
import { asList, OUTPUT_FORMATS, renderTable, toJson, toYaml, writeInfo, writeResult, type OutputFormat } from '../output.ts';
import { openCatalog, withStoreOptions, type StoreOptions } from '../store-options.ts';

interface ListArgs extends GlobalOptions, StoreOptions {
  pvc: string | undefined;
  status: BackupStatus | undefined;
  limit: number | undefined;
  output: OutputFormat;
}

interface ShowArgs extends GlobalOptions, StoreOptions {
  id: string;
  output: 'text' | 'json' | 'yaml';
}

function durationOf(record: BackupRecord): number | null {
  return record.finishedAt ? Date.parse(record.finishedAt) - Date.parse(record.startedAt) : null;
}

export function renderRecords(records: BackupRecord[], format: OutputFormat): string {
  switch (format) {
    case 'json':
      return toJson(asList(records));
    case 'yaml':
      return toYaml(asList(records));
    case 'name':
      return records.map((record) => `${record.id}\n`).join('');
    case 'table':
    case 'wide': {
      const wide = format === 'wide';
      const headers = ['id', 'namespace', 'pvc', 'status', 'started', 'duration', 'size', 'entries', ...(wide ? ['context', 'node', 'sha256'] : []), 'artifact / message'];
      const rows = records.map((record) => [
        record.id,
        record.namespace,
        record.pvc,
        record.status,
        record.startedAt.replace(/\.\d{3}Z$/, 'Z'),
        formatDuration(durationOf(record)),
        formatBytes(record.bytes),
        record.fileCount === null ? '-' : String(record.fileCount),
        ...(wide ? [record.context ?? '-', record.node ?? '-', record.sha256 ?? '-'] : []),
        record.artifactPath ?? record.message ?? '',
      ]);
      return renderTable(headers, rows);
    }
  }
}

export function renderRecordText(record: BackupRecord): string {
  const fields: [string, string][] = [
    ['ID', record.id],
    ['Status', record.status],
    ['Namespace', record.namespace],
    ['PVC', record.pvc],
    ['Volume', record.pv ?? '-'],
    ['Storage class', record.storageClass ?? '-'],
    ['Capacity', record.capacity ?? '-'],
    ['Node', record.node ?? '-'],
    ['Helper pod', record.helperPod ?? '-'],
    ['Context', record.context ?? '-'],
    ['Cluster', record.cluster ?? '-'],
    ['Credentials', record.credentialSource ?? '-'],
    ['Started', record.startedAt],
    ['Finished', record.finishedAt ?? '-'],
    ['Duration', formatDuration(durationOf(record))],
    ['Artifact', record.artifactPath ?? '-'],
    ['Compression', record.compression ?? '-'],
    ['Size', record.bytes === null ? '-' : `${formatBytes(record.bytes)} (${record.bytes} bytes; ${formatBytes(record.tarBytes)} uncompressed)`],
    ['Entries', record.fileCount === null ? '-' : String(record.fileCount)],
    ['SHA-256', record.sha256 ?? '-'],
    ...(record.failedStage ? ([['Failed stage', record.failedStage]] as [string, string][]) : []),
    ['Message', record.message ?? '-'],
    ['Plugin version', record.pluginVersion],
  ];
  const width = Math.max(...fields.map(([label]) => label.length)) + 1;
  return fields.map(([label, value]) => `${`${label}:`.padEnd(width)} ${value}\n`).join('');
}

const listCommand: CommandModule<GlobalOptions, ListArgs> = {
  command: 'list',
  describe: 'List backups recorded in the catalog, newest first',
  builder: (argv) =>
    withStoreOptions(argv)
      .option('pvc', { type: 'string', description: 'Only backups of this claim' })
      .option('status', { choices: ['running', 'succeeded', 'failed', 'interrupted'] as const, description: 'Only backups with this outcome' })
      .option('limit', { type: 'number', description: 'At most this many rows' })
      .option('output', { alias: 'o', choices: OUTPUT_FORMATS, default: 'table' as OutputFormat, description: 'Output format (name: IDs)' })
      .example('kubectl nkvm artifacts list', 'Every backup in the catalog')
      .example('kubectl nkvm artifacts list -n shop --pvc data --status succeeded -o json', 'Good backups of one claim, for scripts') as unknown as Argv<ListArgs>,
  handler: async (args) => {
    const catalog = await openCatalog(args);
    const records = await catalog.listBackups({
      ...(args.namespace ? { namespace: args.namespace } : {}),
      ...(args.pvc ? { pvc: args.pvc } : {}),
      ...(args.status ? { status: args.status } : {}),
      ...(args.limit ? { limit: args.limit } : {}),
    });
    if (records.length === 0 && (args.output === 'table' || args.output === 'wide')) {
      writeInfo(`No backups recorded in ${catalog.file}.`);
      return;
    }
    writeResult(renderRecords(records, args.output));
  },
};

const showCommand: CommandModule<GlobalOptions, ShowArgs> = {
  command: 'show <id>',
  describe: 'Show one backup: where its artifact is, its checksum, size, timings and outcome',
  builder: (argv) =>
    withStoreOptions(argv)
      .positional('id', { type: 'string', demandOption: true, description: 'Backup ID, or a unique prefix of at least 4 characters' })
      .option('output', { alias: 'o', choices: ['text', 'json', 'yaml'] as const, default: 'text' as const, description: 'Output format' })
      .example('kubectl nkvm artifacts show 3f9c2a', 'Details of one backup')
      .example('kubectl nkvm artifacts show 3f9c2a -o json | jq -r .sha256', 'Its checksum') as unknown as Argv<ShowArgs>,
  handler: async (args) => {
    const catalog = await openCatalog(args);
    const record = await catalog.findBackup(String(args.id));
    if (args.output === 'json') writeResult(toJson(record));
    else if (args.output === 'yaml') writeResult(toYaml(record));
    else writeResult(renderRecordText(record));
  },
};

export const artifactsCommand: CommandModule<GlobalOptions, GlobalOptions> = {
  command: 'artifacts',
  describe: 'Inspect the backups recorded in the catalog',
  builder: (argv) => argv.command([listCommand, showCommand] as never[]).demandCommand(1, 'Name an artifacts command: list or show.'),
  handler: () => {},
};
