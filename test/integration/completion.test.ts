/**
 * Shell completion against a real cluster, as a user meets it:
 *  - kubectl's own plugin completion (kubectl 1.26+): `kubectl __complete nkvm ...` is what kubectl's
 *    shell scripts run on TAB; kubectl runs kubectl_complete-nkvm from PATH, here the script the
 *    release ships (copied next to kubectl-nkvm) and a link to the plugin under that name;
 *  - the bash script printed by `kubectl nkvm completion bash`, loaded in a real bash and called as
 *    bash calls it.
 * Namespaces and claims come from the cluster, honouring -n, --kubeconfig, --context and the
 * kubeconfig's namespace; an unreachable server just means no cluster candidates.
 */
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { COMPLETE_NAME, COMPLETE_SCRIPT_SH } from '../../scripts/release/complete-executable.ts';
import { Catalog } from '../../src/store/catalog.ts';
import { claimManifest } from '../cluster/workload.ts';
import { backupRecord } from '../unit/fixtures/backup-record.ts';
import { bashComplete } from '../unit/fixtures/completion-bash.ts';
import { clusterSuite, createNamespace, kubectlNkvm, pluginBundle, type SuiteContext } from './support.ts';

const test = clusterSuite();

/** Claims that never bind (their class does not exist): listing them is all completion needs. */
const UNBOUND_CLASS = 'nkvm-completion-unbound';

interface Completion {
  values: string[];
  lines: string[];
  directive: number | undefined;
  exitCode: number | undefined;
}

type Variant = 'script' | 'link';

/**
 * PATH for one way of providing kubectl_complete-nkvm: the shipped script copied into the directory
 * that holds kubectl-nkvm (as the caveats' copy would), or a link named kubectl_complete-nkvm to the
 * plugin itself (as the caveats' ln -s does).
 */
function completePath(context: SuiteContext, variant: Variant): string {
  const dir = path.join(context.workDir, `complete-${variant}`);
  if (!fs.existsSync(dir)) {
    fs.mkdirSync(dir);
    if (variant === 'script') {
      fs.symlinkSync(pluginBundle, path.join(dir, 'kubectl-nkvm'));
      fs.writeFileSync(path.join(dir, COMPLETE_NAME), COMPLETE_SCRIPT_SH, { mode: 0o755 });
    } else {
      fs.symlinkSync(pluginBundle, path.join(dir, COMPLETE_NAME));
    }
  }
  return [dir, context.pluginPath].join(path.delimiter);
}

/** `kubectl __complete nkvm WORD...`: what kubectl's completion scripts ask kubectl on TAB. */
async function kubectlComplete(context: SuiteContext, variant: Variant, words: string[], env: Record<string, string> = {}): Promise<Completion> {
  const run = await execa('kubectl', ['__complete', 'nkvm', ...words], {
    reject: false,
    extendEnv: false,
    env: {
      PATH: completePath(context, variant),
      HOME: context.workDir,
      KUBECONFIG: context.cluster.kubeconfigPath,
      NKVM_HOME: path.join(context.workDir, 'nkvm-home'),
      ...env,
    },
    timeout: 60_000,
  });
  const lines = String(run.stdout).split('\n').filter(Boolean);
  const last = /^:(\d+)$/.exec(lines.at(-1) ?? '');
  const candidates = last ? lines.slice(0, -1) : lines;
  return { lines: candidates, values: candidates.map((line) => line.split('\t')[0]!), directive: last ? Number(last[1]) : undefined, exitCode: run.exitCode };
}

let namespace = '';

async function claimsNamespace(context: SuiteContext): Promise<string> {
  if (namespace) return namespace;
  namespace = await createNamespace(context.cluster, 'complete');
  for (const claim of ['data', 'logs']) {
    await context.cluster.kubectl(['apply', '-f', '-'], { input: claimManifest(namespace, claim, UNBOUND_CLASS) });
  }
  context.diagnose = { namespace };
  return namespace;
}

for (const variant of ['script', 'link'] as const) {
  test(`kubectl completes commands, flags and choices through kubectl_complete-nkvm (${variant})`, async (t) => {
    const commands = await kubectlComplete(t.context, variant, ['']);
    t.is(commands.exitCode, 0);
    for (const command of ['discover', 'backup', 'restore', 'verify', 'artifacts', 'diagnose', 'version', 'completion']) t.true(commands.values.includes(command), command);
    t.true(commands.lines.includes('backup\tBack up claims into the repository (or compressed tar artifacts), each recorded in the catalog'), 'with descriptions');
    t.is(commands.directive, 4);
    t.deepEqual((await kubectlComplete(t.context, variant, ['artifacts', ''])).values, ['list', 'show', 'fetch', 'prune']);
    t.deepEqual((await kubectlComplete(t.context, variant, ['backup', '--comp'])).values, ['--compression']);
    const shortFlags = (await kubectlComplete(t.context, variant, ['backup', '-'])).values;
    for (const flag of ['-n', '-o', '-A', '-l', '--namespace', '--all', '--allow-partial']) t.true(shortFlags.includes(flag), flag);
    t.deepEqual((await kubectlComplete(t.context, variant, ['backup', '-o', ''])).values, ['table', 'wide', 'json', 'yaml', 'name']);
    t.deepEqual((await kubectlComplete(t.context, variant, ['backup', '--compression', ''])).values, ['gzip', 'zstd', 'none']);
    t.deepEqual((await kubectlComplete(t.context, variant, ['restore', 'x', '--mode', 'o'])).values, ['overwrite']);
  });
}

test('kubectl completes namespaces and claims from the cluster, in the namespace of -n', async (t) => {
  const ns = await claimsNamespace(t.context);
  const namespaces = await kubectlComplete(t.context, 'script', ['backup', '-n', '']);
  for (const expected of [ns, 'default', 'kube-system']) t.true(namespaces.values.includes(expected), expected);
  t.deepEqual((await kubectlComplete(t.context, 'link', ['discover', '--namespace', ns.slice(0, -2)])).values, [ns]);
  const claims = await kubectlComplete(t.context, 'script', ['backup', '-n', ns, '']);
  t.deepEqual(claims.values, ['data', 'logs']);
  t.is(claims.lines[0], `data\tPending, 1Gi, ${UNBOUND_CLASS}`);
  t.deepEqual((await kubectlComplete(t.context, 'link', ['backup', '-n', ns, 'data', ''])).values, ['logs'], 'a claim named is not offered again');
  t.deepEqual((await kubectlComplete(t.context, 'link', ['diagnose', '--namespace', ns, 'l'])).values, ['logs']);
  t.deepEqual((await kubectlComplete(t.context, 'script', ['restore', 'abcd', '-n', ns, '--to', ''])).values, ['data', 'logs']);
  t.deepEqual((await kubectlComplete(t.context, 'script', ['backup', '-n', 'default', ''])).values, [], 'no claims in default');
});

test('the connection flags typed are honoured: --kubeconfig, --context, and the kubeconfig namespace', async (t) => {
  const ns = await claimsNamespace(t.context);
  const nowhere = { KUBECONFIG: path.join(t.context.workDir, 'no-such-kubeconfig') };
  t.deepEqual((await kubectlComplete(t.context, 'script', ['backup', '-n', ns, ''], nowhere)).values, [], 'no credentials, no claims');
  const kubeconfig = t.context.cluster.kubeconfigPath;
  t.deepEqual((await kubectlComplete(t.context, 'script', ['--kubeconfig', kubeconfig, 'backup', '-n', ns, ''], nowhere)).values, ['data', 'logs']);
  const contexts = await kubectlComplete(t.context, 'link', ['--kubeconfig', kubeconfig, '--context', ''], nowhere);
  const current = (await t.context.cluster.kubectl(['config', 'current-context'])).trim();
  t.deepEqual(contexts.values, [current]);
  t.deepEqual((await kubectlComplete(t.context, 'link', ['backup', '--context', current, '-n', ns, ''])).values, ['data', 'logs']);
  t.deepEqual((await kubectlComplete(t.context, 'link', ['backup', '--context', 'no-such-context', '-n', ns, ''])).values, []);
  // A kubeconfig whose context names the namespace: no -n needed.
  const withNamespace = path.join(t.context.workDir, 'namespaced.kubeconfig');
  fs.copyFileSync(kubeconfig, withNamespace);
  await execa('kubectl', ['config', 'set-context', '--current', `--namespace=${ns}`, `--kubeconfig=${withNamespace}`], { env: { PATH: t.context.pluginPath } });
  t.deepEqual((await kubectlComplete(t.context, 'script', ['backup', ''], { KUBECONFIG: withNamespace })).values, ['data', 'logs']);
});

test('an unreachable API server gives no cluster candidates, quickly, and never an error', async (t) => {
  const unreachable = path.join(t.context.workDir, 'unreachable.kubeconfig');
  fs.writeFileSync(unreachable, JSON.stringify({
    apiVersion: 'v1', kind: 'Config',
    clusters: [{ name: 'gone', cluster: { server: 'https://127.0.0.1:1' } }],
    users: [{ name: 'gone', user: { token: 'x' } }],
    contexts: [{ name: 'gone', context: { cluster: 'gone', user: 'gone' } }],
    'current-context': 'gone',
  }));
  const started = Date.now();
  const result = await kubectlComplete(t.context, 'script', ['backup', '-n', ''], { KUBECONFIG: unreachable });
  t.deepEqual([result.exitCode, result.values, result.directive], [0, [], 4]);
  t.true(Date.now() - started < 10_000, `${Date.now() - started} ms`);
});

test('kubectl completes backup IDs from the local catalog, newest first', async (t) => {
  const catalog = await Catalog.open(path.join(t.context.workDir, 'nkvm-home', 'catalog.sqlite'));
  await catalog.insertBackup(backupRecord({ id: 'aaaa11112222', status: 'succeeded', namespace: 'shop', pvc: 'data', startedAt: '2026-01-01T00:00:00.000Z' }));
  await catalog.insertBackup(backupRecord({ id: 'bbbb11112222', status: 'succeeded', namespace: 'shop', pvc: 'logs', startedAt: '2026-01-02T00:00:00.000Z' }));
  const restore = await kubectlComplete(t.context, 'script', ['restore', '']);
  t.deepEqual(restore.values, ['bbbb11112222', 'aaaa11112222']);
  t.is(restore.directive, 4 | 32);
  t.deepEqual((await kubectlComplete(t.context, 'link', ['artifacts', 'show', 'a'])).values, ['aaaa11112222']);
});

test('bash: the script of `kubectl nkvm completion bash` completes kubectl nkvm from the cluster', async (t) => {
  const ns = await claimsNamespace(t.context);
  const script = await kubectlNkvm(t.context, ['completion', 'bash']);
  t.is(script.exitCode, 0, String(script.stderr));
  const scriptFile = path.join(t.context.workDir, 'nkvm-completion.bash');
  fs.writeFileSync(scriptFile, String(script.stdout));
  const env = { PATH: t.context.pluginPath, HOME: t.context.workDir, KUBECONFIG: t.context.cluster.kubeconfigPath, COLUMNS: '100' };
  const load = `source ${JSON.stringify(scriptFile)}`;
  const values = async (line: string) => (await bashComplete(load, line, env)).map((reply) => reply.split(' ')[0]);
  t.deepEqual(await values('kubectl nkvm back'), ['backup']);
  t.deepEqual(await values('kubectl nkvm artifacts '), ['list', 'show', 'fetch', 'prune']);
  t.deepEqual(await values('kubectl nkvm backup --compr'), ['--compression']);
  t.deepEqual(await values('kubectl nkvm backup -o js'), ['json']);
  t.true((await values('kubectl nkvm backup -n ')).includes(ns));
  t.deepEqual(await values(`kubectl nkvm discover --namespace=${ns.slice(0, -2)}`), [ns], '--flag=value: the value after the =');
  t.deepEqual(await values(`kubectl nkvm backup -n ${ns} `), ['data', 'logs']);
  t.deepEqual(await bashComplete(load, `kubectl nkvm backup -n ${ns} `, env), [`data  (Pending, 1Gi, ${UNBOUND_CLASS})`, `logs  (Pending, 1Gi, ${UNBOUND_CLASS})`]);
  t.deepEqual(await values(`kubectl nkvm backup -n ${ns} d`), ['data']);
  t.deepEqual(await values(`kubectl-nkvm restore x --namespace ${ns} --to=l`), ['logs']);
});
