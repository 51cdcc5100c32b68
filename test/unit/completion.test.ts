/**
 * Completion's logic: the words typed after `kubectl nkvm` -> candidates and cobra's directive, over
 * the real command tree (read from the same command modules main.ts registers), with fake sources
 * standing in for the cluster, the kubeconfig and the catalog.
 */
import test from 'ava';
import yargs from 'yargs';
import { artifactsCommand } from '../../src/cli/commands/artifacts.ts';
import { backupCommand } from '../../src/cli/commands/backup.ts';
import { completionCommand } from '../../src/cli/commands/completion.ts';
import { diagnoseCommand } from '../../src/cli/commands/diagnose.ts';
import { discoverCommand } from '../../src/cli/commands/discover.ts';
import { restoreCommand } from '../../src/cli/commands/restore.ts';
import { verifyCommand } from '../../src/cli/commands/verify.ts';
import { versionCommand } from '../../src/cli/commands/version.ts';
import { complete, Directive, type Candidate, type CatalogQuery, type CompletionSources, type ConnectionFlags, type KubeconfigEntry } from '../../src/cli/completion/engine.ts';
import { formatCompletions } from '../../src/cli/completion/protocol.ts';
import { completionRequest } from '../../src/cli/invocation.ts';
import { commandsOfYargs, commandTree } from '../../src/cli/completion/spec.ts';
import { withGlobalOptions } from '../../src/cli/global-options.ts';

const MODULES = [discoverCommand, backupCommand, restoreCommand, verifyCommand, artifactsCommand, diagnoseCommand, versionCommand, completionCommand];
const root = commandTree(MODULES);

interface Call {
  source: string;
  connection?: ConnectionFlags;
  query?: CatalogQuery;
  entry?: KubeconfigEntry;
}

/** Sources that answer from fixed lists and note what they were asked. */
function fakeSources(overrides: Partial<CompletionSources> = {}): { sources: CompletionSources; calls: Call[] } {
  const calls: Call[] = [];
  const named = (names: string[], description?: string): Candidate[] => names.map((value) => ({ value, ...(description ? { description } : {}) }));
  const sources: CompletionSources = {
    namespaces: async (connection) => {
      calls.push({ source: 'namespaces', connection });
      return named(['default', 'kube-system', 'shop', 'shop-staging']);
    },
    claims: async (connection) => {
      calls.push({ source: 'claims', connection });
      return named(['data', 'db-0', 'db-1'], 'Bound, 1Gi, standard');
    },
    storageClasses: async (connection) => {
      calls.push({ source: 'storageClasses', connection });
      return named(['standard', 'fast']);
    },
    kubeconfig: async (connection, entry) => {
      calls.push({ source: 'kubeconfig', connection, entry });
      return entry === 'context' ? named(['kind-nkvm', 'prod', 'arn:aws:eks:us-east-1:1:cluster/x']) : named([`${entry}-a`, `${entry}-b`]);
    },
    backups: async (query) => {
      calls.push({ source: 'backups', query });
      return [{ value: 'ffff00000002', description: 'shop/data, succeeded' }, { value: 'aaaa00000001', description: 'shop/db-0, succeeded' }];
    },
    catalogClaims: async (query) => {
      calls.push({ source: 'catalogClaims', query });
      return named(['data', 'db-0'], 'in shop');
    },
    ...overrides,
  };
  return { sources, calls };
}

async function values(words: string[], overrides: Partial<CompletionSources> = {}) {
  const { sources, calls } = fakeSources(overrides);
  const result = await complete(root, words, sources, { timeoutMs: 200 });
  return { values: result.candidates.map((c) => c.value), candidates: result.candidates, directive: result.directive, calls };
}

test('the tree is read from the command modules: commands, subcommands, flags with their short forms, positionals', (t) => {
  t.deepEqual(root.subcommands.map((c) => c.name), ['discover', 'backup', 'restore', 'verify', 'artifacts', 'diagnose', 'version', 'completion']);
  const backup = root.subcommands.find((c) => c.name === 'backup')!;
  t.like(backup.positionals[0], { name: 'pvc', variadic: true });
  t.like(backup.flags.find((f) => f.name === 'output'), { aliases: ['o'], takesValue: true, choices: ['table', 'wide', 'json', 'yaml', 'name'] });
  t.like(backup.flags.find((f) => f.name === 'all'), { takesValue: false });
  t.like(backup.flags.find((f) => f.name === 'toleration'), { array: true });
  t.like(root.flags.find((f) => f.name === 'namespace'), { aliases: ['n'], takesValue: true, global: true });
  t.like(root.flags.find((f) => f.name === 'color'), { negatable: true });
  t.deepEqual(root.subcommands.find((c) => c.name === 'artifacts')!.subcommands.map((c) => c.name), ['list', 'show', 'fetch', 'prune']);
  t.like(root.subcommands.find((c) => c.name === 'restore')!.flags.find((f) => f.name === 'to'), { required: true });
});

test('the commands are read from a yargs instance as main.ts builds it', (t) => {
  const cli = withGlobalOptions(yargs([])).command(MODULES as never[]);
  const fromYargs = commandTree(commandsOfYargs(cli));
  t.deepEqual(fromYargs.subcommands.map((c) => c.name), root.subcommands.map((c) => c.name));
  t.deepEqual(fromYargs.subcommands.map((c) => c.description), root.subcommands.map((c) => c.description));
  t.deepEqual(
    fromYargs.subcommands.find((c) => c.name === 'artifacts')!.subcommands.map((c) => c.name),
    ['list', 'show', 'fetch', 'prune'],
  );
});

test('command names, with their descriptions', async (t) => {
  const all = await values(['']);
  t.deepEqual(all.values, root.subcommands.map((c) => c.name));
  t.is(all.directive, Directive.noFileComp);
  t.is(all.candidates.find((c) => c.value === 'backup')!.description, backupCommand.describe as string);
  t.deepEqual((await values(['ba'])).values, ['backup']);
  t.deepEqual((await values(['artifacts', ''])).values, ['list', 'show', 'fetch', 'prune']);
  t.deepEqual((await values(['artifacts', 'p'])).values, ['prune']);
  t.deepEqual((await values(['-n', 'shop', 'di'])).values, ['discover', 'diagnose'], 'after a global flag and its value');
  t.deepEqual((await values(['completion', ''])).values, ['bash', 'zsh', 'fish', 'powershell']);
  t.deepEqual((await values(['nonsense', ''])).values, [], 'nothing after an unknown command');
});

test('flags of the command typed so far: long names and short forms, global ones included', async (t) => {
  const backup = await values(['backup', '-']);
  for (const flag of ['--compression', '--all', '-A', '--output', '-o', '--namespace', '-n', '--context', '--kubeconfig', '--helper-image', '--help', '-h']) {
    t.true(backup.values.includes(flag), flag);
  }
  t.false(backup.values.includes('--mode'), "restore's flag is not backup's");
  t.true(backup.values.includes('--no-color') && !backup.values.includes('--color'), 'a boolean that is on by default is offered as --no-');
  t.is(backup.directive, Directive.noFileComp);
  t.is(backup.candidates.find((c) => c.value === '-o')!.description, 'Output format of the results (name: artifact paths)');
  t.deepEqual((await values(['backup', '--comp'])).values, ['--compression']);
  t.deepEqual((await values(['restore', '--mo'])).values, ['--mode', '--mover', '--mover-image']);
  t.deepEqual((await values(['artifacts', 'list', '--s'])).values.filter((v) => v.startsWith('--st')), ['--status']);
  t.false((await values(['backup', '--all', '--a'])).values.includes('--all'), 'a flag given is not offered again');
  t.false((await values(['backup', '-A', '--a'])).values.includes('--all-namespaces'), '... by its short form either');
  t.true((await values(['backup', '--toleration', 'a', '--tol'])).values.includes('--toleration'), 'a repeatable one is');
  t.false((await values(['--no-color', 'backup', '--no-'])).values.includes('--no-color'));
});

test('namespaces from the cluster, honouring the connection flags typed', async (t) => {
  const plain = await values(['backup', '-n', '']);
  t.deepEqual(plain.values, ['default', 'kube-system', 'shop', 'shop-staging']);
  t.is(plain.directive, Directive.noFileComp);
  t.deepEqual((await values(['discover', '--namespace', 'sh'])).values, ['shop', 'shop-staging']);
  t.deepEqual((await values(['discover', '--namespace=sh'])).values, ['shop', 'shop-staging'], '--flag=value: values, the shell keeps the flag');
  t.deepEqual((await values(['discover', '-n=sh'])).values, ['shop', 'shop-staging']);
  const connected = await values(['--kubeconfig', '/k/config', 'backup', '--context=prod', '--server', 'https://x', '--as-group', 'a', '--as-group', 'b', '--insecure-skip-tls-verify', '-n', '']);
  t.deepEqual(connected.calls[0]!.connection, { kubeconfig: '/k/config', context: 'prod', server: 'https://x', asGroup: ['a', 'b'], insecureSkipTlsVerify: true });
});

test('claims from the cluster, in the namespace given by -n', async (t) => {
  const claims = await values(['backup', '-n', 'shop', '']);
  t.deepEqual(claims.values, ['data', 'db-0', 'db-1']);
  t.deepEqual(claims.calls, [{ source: 'claims', connection: { namespace: 'shop' } }]);
  t.is(claims.candidates[0]!.description, 'Bound, 1Gi, standard');
  t.deepEqual((await values(['backup', 'db'])).values, ['db-0', 'db-1']);
  t.deepEqual((await values(['backup', 'db-0', ''])).values, ['data', 'db-1'], 'claims already named are not offered again');
  t.deepEqual((await values(['backup', '-nshop', 'data', '-o', 'json', ''])).calls[0]!.connection, { namespace: 'shop' });
  t.deepEqual((await values(['diagnose', ''])).values, ['data', 'db-0', 'db-1']);
  t.deepEqual((await values(['diagnose', 'data', ''])).values, [], 'diagnose takes one claim');
  t.deepEqual((await values(['restore', 'abcd', '--to', 'd'])).values, ['data', 'db-0', 'db-1']);
  t.deepEqual((await values(['restore', 'abcd', '--to='])).values, ['data', 'db-0', 'db-1']);
  t.deepEqual((await values(['restore', '--storage-class', ''])).values, ['standard', 'fast']);
});

test('backup IDs from the catalog, newest first, for restore, verify and artifacts show', async (t) => {
  const restore = await values(['restore', '']);
  t.deepEqual(restore.values, ['ffff00000002', 'aaaa00000001']);
  t.is(restore.directive, Directive.noFileComp | Directive.keepOrder);
  t.deepEqual(restore.calls, [{ source: 'backups', query: { catalog: undefined, status: 'succeeded' } }]);
  t.deepEqual((await values(['verify', 'a'])).values, ['aaaa00000001']);
  const show = await values(['artifacts', 'show', '--catalog', '/c.sqlite', '']);
  t.deepEqual(show.calls, [{ source: 'backups', query: { catalog: '/c.sqlite', status: undefined } }]);
  t.deepEqual((await values(['artifacts', 'show', 'ffff00000002', ''])).values, []);
  t.deepEqual((await values(['restore', 'ffff00000002', ''])).values, ['--to'], 'with nothing else to type, the required flag');
  const pvc = await values(['verify', '--all', '-n', 'shop', '--pvc', '']);
  t.deepEqual(pvc.values, ['data', 'db-0']);
  t.deepEqual(pvc.calls, [{ source: 'catalogClaims', query: { catalog: undefined, namespace: 'shop' } }]);
});

test('values declared as choices: -o, --compression, --mode, --progress', async (t) => {
  t.deepEqual((await values(['backup', '-o', ''])).values, ['table', 'wide', 'json', 'yaml', 'name']);
  t.deepEqual((await values(['backup', '--output', 'j'])).values, ['json']);
  t.deepEqual((await values(['discover', '--output=y'])).values, ['yaml']);
  t.deepEqual((await values(['backup', '-Ao', ''])).values, ['table', 'wide', 'json', 'yaml', 'name'], 'a value flag ending a group of short flags');
  t.deepEqual((await values(['backup', '--compression', ''])).values, ['gzip', 'zstd', 'none']);
  t.deepEqual((await values(['restore', 'x', '--mode', ''])).values, ['empty-only', 'overwrite']);
  t.deepEqual((await values(['artifacts', 'show', 'x', '-o', ''])).values, ['text', 'json', 'yaml']);
  t.is((await values(['backup', '-o', ''])).directive, Directive.noFileComp);
});

test('kubeconfig contexts, clusters and users, from the kubeconfig given by --kubeconfig', async (t) => {
  const contexts = await values(['--kubeconfig', '/k', '--context', '']);
  t.deepEqual(contexts.values, ['kind-nkvm', 'prod', 'arn:aws:eks:us-east-1:1:cluster/x']);
  t.deepEqual(contexts.calls, [{ source: 'kubeconfig', connection: { kubeconfig: '/k' }, entry: 'context' }]);
  t.deepEqual((await values(['backup', '--context=arn:aws:'])).values, ['arn:aws:eks:us-east-1:1:cluster/x']);
  t.deepEqual((await values(['--cluster', ''])).values, ['cluster-a', 'cluster-b']);
  t.deepEqual((await values(['--user', ''])).values, ['user-a', 'user-b']);
});

test('files and directories are left to the shell; free values get nothing', async (t) => {
  t.deepEqual(await values(['--kubeconfig', '']).then((r) => [r.values, r.directive]), [[], Directive.default]);
  t.deepEqual(await values(['backup', '--catalog=']).then((r) => [r.values, r.directive]), [[], Directive.default]);
  t.deepEqual(await values(['backup', '--output-dir', '']).then((r) => [r.values, r.directive]), [[], Directive.filterDirs]);
  t.deepEqual(await values(['backup', '--selector', '']).then((r) => [r.values, r.directive]), [[], Directive.noFileComp]);
  t.deepEqual(await values(['backup', '--', '-']).then((r) => r.values), [], 'after --, a word starting with - is an argument');
});

test('a source that fails or never answers gives nothing, quickly, and the rest still works', async (t) => {
  const failing = await values(['backup', '-n', ''], { namespaces: async () => { throw new Error('connection refused'); } });
  t.deepEqual([failing.values, failing.directive], [[], Directive.noFileComp]);
  const started = Date.now();
  const hanging = await values(['backup', ''], { claims: () => new Promise<Candidate[]>(() => {}) });
  t.deepEqual(hanging.values, []);
  t.true(Date.now() - started < 1000, `gave up after the timeout (${Date.now() - started} ms)`);
  const errors: unknown[] = [];
  const { sources } = fakeSources({ namespaces: async () => { throw new Error('forbidden'); } });
  await complete(root, ['-n', ''], sources, { onError: (error) => errors.push(error) });
  t.is((errors[0] as Error).message, 'forbidden');
});

test('--request-timeout on the line is how long a source may take; without it, the default (5 s)', async (t) => {
  const slow = (ms: number) => ({ claims: () => new Promise<Candidate[]>((resolve) => setTimeout(() => resolve([{ value: 'late' }]), ms)) });
  const answer = async (words: string[], ms: number) => (await complete(root, words, fakeSources(slow(ms)).sources)).candidates.map((c) => c.value);
  t.deepEqual(await answer(['backup', '--request-timeout=100ms', ''], 300), []);
  t.deepEqual(await answer(['--request-timeout', '2s', 'backup', ''], 300), ['late']);
  t.deepEqual(await answer(['backup', ''], 2500), ['late'], 'a busy API server answering in 2.5 s still completes');
  t.deepEqual(await answer(['backup', '--request-timeout=x', ''], 300), ['late'], 'a timeout it cannot read leaves the default');
});

test('a completion request: __complete, __completeNoDesc, or a run as kubectl_complete-nkvm', (t) => {
  t.deepEqual(completionRequest(['__complete', 'backup', ''], '/x/kubectl-nkvm'), { words: ['backup', ''], descriptions: true });
  t.deepEqual(completionRequest(['__completeNoDesc', 'ba'], '/x/kubectl-nkvm'), { words: ['ba'], descriptions: false });
  t.deepEqual(completionRequest(['__complete'], '/x/kubectl-nkvm'), { words: [''], descriptions: true });
  t.deepEqual(completionRequest(['backup', '-n', ''], '/home/u/.krew/bin/kubectl_complete-nkvm'), { words: ['backup', '-n', ''], descriptions: true });
  t.deepEqual(completionRequest([], 'kubectl_complete-nkvm'), { words: [''], descriptions: true });
  t.deepEqual(completionRequest(['ba'], 'C:/krew/bin/kubectl_complete-nkvm.exe'), { words: ['ba'], descriptions: true });
  t.is(completionRequest(['backup', 'data'], '/home/u/.krew/bin/kubectl-nkvm'), undefined);
  t.is(completionRequest([], '/x/kubectl-nkvm'), undefined);
});

test("the answer in cobra's format: a candidate a line, a tab before its description, :directive last", (t) => {
  const result = { candidates: [{ value: 'backup', description: 'Back up claims' }, { value: 'data' }], directive: Directive.noFileComp };
  t.is(formatCompletions(result, true), 'backup\tBack up claims\ndata\n:4\n');
  t.is(formatCompletions(result, false), 'backup\ndata\n:4\n');
  t.is(formatCompletions({ candidates: [], directive: 0 }, true), ':0\n');
});

test('descriptions are one line without tabs; each value once', async (t) => {
  const result = await values(['backup', '-n', ''], {
    namespaces: async () => [{ value: 'a', description: 'first\tline\nsecond line' }, { value: 'a' }, { value: 'b' }],
  });
  t.deepEqual(result.candidates, [{ value: 'a', description: 'first line' }, { value: 'b' }]);
});
