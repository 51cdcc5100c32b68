/** `kubectl nkvm status`: the in-cluster schedule, when it last ran, and how its last runs ended. */
import chalk from 'chalk';
import type { Argv, CommandModule } from 'yargs';
import { DEFAULT_INSTALL_NAMESPACE, INSTALL_LABEL, INSTALL_NAMESPACE_LABEL } from '../../install/manifests.ts';
import { connectFromFlags } from '../context.ts';
import type { GlobalOptions } from '../global-options.ts';
import { renderTable, toJson, toYaml, writeResult } from '../output.ts';
import { listing } from './index.ts';

interface StatusArgs extends GlobalOptions {
  name: string;
  output: 'text' | 'json' | 'yaml';
}

interface JobLike {
  metadata?: { name?: string; creationTimestamp?: string | Date };
  status?: { startTime?: string | Date; completionTime?: string | Date; succeeded?: number; failed?: number; active?: number; conditions?: { type: string; status: string; message?: string }[] };
}

export interface StatusReport {
  install: { name: string; namespace: string };
  schedule: string | null;
  suspended: boolean;
  lastScheduleTime: string | null;
  lastSuccessfulTime: string | null;
  jobs: { name: string; started: string | null; finished: string | null; result: 'succeeded' | 'failed' | 'running'; message: string | null }[];
}

const iso = (value: string | Date | undefined) => (value === undefined ? null : new Date(value).toISOString().replace(/\.\d{3}Z$/, 'Z'));

function jobResult(job: JobLike): StatusReport['jobs'][number] {
  const failed = job.status?.conditions?.find((condition) => condition.type === 'Failed' && condition.status === 'True');
  const complete = job.status?.conditions?.find((condition) => condition.type === 'Complete' && condition.status === 'True');
  return {
    name: job.metadata?.name ?? '',
    started: iso(job.status?.startTime),
    finished: iso(job.status?.completionTime),
    result: complete ? 'succeeded' : failed ? 'failed' : 'running',
    message: failed?.message ?? null,
  };
}

export const statusCommand: CommandModule<GlobalOptions, StatusArgs> = {
  ...listing('status'),
  builder: (argv) =>
    argv
      .option('name', { type: 'string', default: 'nkvm', description: 'The name given to install' })
      .option('output', { alias: 'o', choices: ['text', 'json', 'yaml'] as const, default: 'text' as const, description: 'Output format' })
      .example('kubectl nkvm status', 'The install in nkvm-system')
      .example('kubectl nkvm status -n backups -o json', 'For scripts and monitoring') as unknown as Argv<StatusArgs>,
  handler: async (args) => {
    const client = await connectFromFlags(args);
    const install = { name: args.name, namespace: args.namespace ?? DEFAULT_INSTALL_NAMESPACE };
    const { installCronJob } = await import('../../install/cluster-store.ts');
    const cronJob = (await installCronJob(client, install)) as { spec?: { schedule?: string; suspend?: boolean }; status?: { lastScheduleTime?: string | Date; lastSuccessfulTime?: string | Date } };
    const selector = `${INSTALL_LABEL}=${install.name},${INSTALL_NAMESPACE_LABEL}=${install.namespace}`;
    const jobs = ((await client.listLabelled('batch/v1', 'Job', selector)) as JobLike[])
      .filter((job) => job.metadata?.creationTimestamp !== undefined)
      .sort((a, b) => new Date(b.metadata!.creationTimestamp!).getTime() - new Date(a.metadata!.creationTimestamp!).getTime())
      .slice(0, 5)
      .map(jobResult);
    const report: StatusReport = {
      install,
      schedule: cronJob.spec?.schedule ?? null,
      suspended: Boolean(cronJob.spec?.suspend),
      lastScheduleTime: iso(cronJob.status?.lastScheduleTime),
      lastSuccessfulTime: iso(cronJob.status?.lastSuccessfulTime),
      jobs,
    };
    if (args.output === 'json') return writeResult(toJson(report));
    if (args.output === 'yaml') return writeResult(toYaml(report));
    const lines = [
      `Install:          ${install.name} in ${install.namespace}`,
      `Schedule:         ${report.schedule ?? '-'}${report.suspended ? chalk.yellow(' (suspended)') : ''}`,
      `Last scheduled:   ${report.lastScheduleTime ?? 'never'}`,
      `Last successful:  ${report.lastSuccessfulTime ?? 'never'}`,
      '',
    ];
    const table = jobs.length
      ? renderTable(
          ['job', 'result', 'started', 'finished', 'message'],
          jobs.map((job) => [job.name, job.result === 'succeeded' ? chalk.green(job.result) : job.result === 'failed' ? chalk.red(job.result) : job.result, job.started ?? '-', job.finished ?? '-', job.message ?? '']),
        )
      : 'No runs yet.\n';
    writeResult(`${lines.join('\n')}\n${table}`);
  },
};
