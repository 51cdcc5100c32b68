/**
 * Completion end to end without a cluster: src/main.ts answering `__complete` and runs under the name
 * kubectl_complete-nkvm (exit 0, nothing on stderr, quick even when the server never answers), the
 * kubeconfig and the catalog as sources, and the bash script of `kubectl nkvm completion bash` in a
 * real bash.
 */
import test from 'ava';
import { execa } from 'execa';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Catalog } from '../../src/store/catalog.ts';
import { backupRecord } from './fixtures/backup-record.ts';
import { bashComplete, compWords } from './fixtures/completion-bash.ts';

const MAIN = path.resolve(import.meta.dirname, '../../src/main.ts');
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-completion-'));
test.after.always(() => fs.rmSync(home, { recursive: true, force: true }));

/** A PATH whose kubectl-nkvm runs src/main.ts, and a link to it named kubectl_complete-nkvm. */
const bin = path.join(home, 'bin');
fs.mkdirSync(bin);
fs.writeFileSync(path.join(bin, 'kubectl-nkvm'), `#!/bin/sh\nexec "${process.execPath}" "${MAIN}" "$@"\n`, { mode: 0o755 });
fs.symlinkSync(MAIN, path.join(bin, 'kubectl_complete-nkvm'));

function kubeconfig(name: string, server: string, contexts: string[] = ['test']): string {
  const file = path.join(home, `${name}.kubeconfig`);
  fs.writeFileSync(file, JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'test', cluster: { server } }],
    users: [{ name: 'test', user: { token: 'x' } }],
    contexts: contexts.map((context) => ({ name: context, context: { cluster: 'test', user: 'test', namespace: 'shop' } })),
    'current-context': contexts[0],
  }));
  return file;
}

function env(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}`,
    HOME: home,
    NKVM_HOME: path.join(home, 'nkvm'),
    KUBECONFIG: path.join(home, 'none'),
    NKVM_REMOTE_KUBECONFIG: path.join(home, 'none'),
    NKVM_SERVICEACCOUNT_DIR: path.join(home, 'none'),
    ...extra,
  };
}

function nkvm(args: string[], extra: Record<string, string> = {}) {
  return execa(process.execPath, [MAIN, ...args], { env: env(extra), extendEnv: false, reject: false, timeout: 30_000 });
}

test('__complete prints the candidates, then the directive; exit 0, nothing on stderr', async (t) => {
  const run = await nkvm(['__complete', 'backup', '--compression', '']);
  t.is(run.exitCode, 0);
  t.is(run.stdout, 'gzip\nzstd\nnone\n:4');
  t.is(run.stderr, '');
  const noDescriptions = await nkvm(['__completeNoDesc', 'ar']);
  t.is(noDescriptions.stdout, 'artifacts\n:4');
});

test('without credentials, cluster values are simply absent', async (t) => {
  const run = await nkvm(['__complete', 'backup', '-n', '']);
  t.is(run.exitCode, 0);
  t.is(run.stdout, ':4');
  t.is(run.stderr, '');
});

test('an API server that never answers costs about the 2 s timeout, and the process does not wait for its socket', async (t) => {
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => sockets.push(socket)); // accepts, never answers
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  try {
    // The baseline asks a server that refuses at once: the same start and the same cluster client
    // loaded, without the wait (both vary with the machine's load, the wait does not).
    let started = Date.now();
    const refused = await nkvm(['__complete', '--kubeconfig', kubeconfig('refused', 'https://127.0.0.1:1'), 'backup', '-n', '']);
    const baseline = Date.now() - started;
    t.is(refused.stdout, ':4');
    t.is(refused.stderr, '');
    // The line's --request-timeout bounds the source (completion's own default is 5 s: engine.ts).
    started = Date.now();
    const run = await nkvm(['__complete', '--kubeconfig', kubeconfig('silent', `https://127.0.0.1:${port}`), '--request-timeout', '2s', 'backup', '-n', '']);
    const elapsed = Date.now() - started;
    t.is(run.exitCode, 0);
    t.is(run.stdout, ':4');
    t.is(run.stderr, '');
    t.true(elapsed < baseline + 4000, `took ${elapsed} ms; against a server that refuses ${baseline} ms`);
  } finally {
    for (const socket of sockets) socket.destroy();
    server.close();
  }
});

test('NKVM_COMPLETION_DEBUG=1 says on stderr why a source gave nothing', async (t) => {
  const run = await nkvm(['__complete', '--kubeconfig', kubeconfig('refused-debug', 'https://127.0.0.1:1'), '-n', ''], { NKVM_COMPLETION_DEBUG: '1' });
  t.is(run.stdout, ':4');
  t.regex(run.stderr, /kubectl-nkvm completion: /);
});

test('contexts from the kubeconfig that --kubeconfig names', async (t) => {
  const file = kubeconfig('contexts', 'https://127.0.0.1:1', ['kind-nkvm', 'prod']);
  const run = await nkvm(['__complete', '--kubeconfig', file, 'discover', '--context', '']);
  t.is(run.stdout, 'kind-nkvm\tcluster test, namespace shop, current\nprod\tcluster test, namespace shop\n:4');
  const fromEnv = await nkvm(['__complete', '--context=p'], { KUBECONFIG: file });
  t.is(fromEnv.stdout, 'prod\tcluster test, namespace shop\n:4');
});

test('backup IDs from the catalog, newest first; no catalog is created when there is none', async (t) => {
  const catalogFile = path.join(home, 'ids', 'catalog.sqlite');
  const none = await nkvm(['__complete', 'restore', '--catalog', catalogFile, '']);
  t.is(none.stdout, ':36');
  t.false(fs.existsSync(catalogFile));
  const catalog = await Catalog.open(catalogFile);
  await catalog.insertBackup(backupRecord({ id: 'aaaa00000001', status: 'succeeded', namespace: 'shop', pvc: 'data', startedAt: '2026-01-01T00:00:00.000Z' }));
  await catalog.insertBackup(backupRecord({ id: 'bbbb00000002', status: 'failed', namespace: 'shop', pvc: 'db-0', startedAt: '2026-01-02T00:00:00.000Z' }));
  await catalog.insertBackup(backupRecord({ id: 'cccc00000003', status: 'succeeded', namespace: 'shop', pvc: 'db-0', startedAt: '2026-01-03T00:00:00.000Z' }));
  const restore = await nkvm(['__complete', 'restore', '--catalog', catalogFile, '']);
  t.is(restore.stdout, 'cccc00000003\tshop/db-0, succeeded, 2026-01-03T00:00:00Z\naaaa00000001\tshop/data, succeeded, 2026-01-01T00:00:00Z\n:36');
  const show = await nkvm(['__completeNoDesc', 'artifacts', 'show', '--catalog', catalogFile, '']);
  t.is(show.stdout, 'cccc00000003\nbbbb00000002\naaaa00000001\n:36');
  const pvc = await nkvm(['__completeNoDesc', 'artifacts', 'list', '--catalog', catalogFile, '--pvc', '']);
  t.is(pvc.stdout, 'db-0\ndata\n:4');
});

test('run under the name kubectl_complete-nkvm, it answers completion requests for its arguments', async (t) => {
  const run = await execa(process.execPath, [path.join(bin, 'kubectl_complete-nkvm'), 'artifacts', ''], { env: env(), extendEnv: false, reject: false });
  t.is(run.exitCode, 0);
  t.is(run.stdout.split('\n').map((line) => line.split('\t')[0]).join(' '), 'list show fetch prune :4');
  t.is(run.stderr, '');
});

test('compWords splits a line as bash does', (t) => {
  t.deepEqual(compWords('kubectl nkvm '), ['kubectl', 'nkvm', '']);
  t.deepEqual(compWords('kubectl nkvm backup --context=arn:aws:e'), ['kubectl', 'nkvm', 'backup', '--context', '=', 'arn', ':', 'aws', ':', 'e']);
  t.deepEqual(compWords('kubectl-nkvm -o='), ['kubectl-nkvm', '-o', '=']);
});

const LOAD = 'source <(kubectl-nkvm completion bash)';

test('bash: commands, flags and values, for kubectl-nkvm and for kubectl nkvm', async (t) => {
  t.deepEqual(await bashComplete(LOAD, 'kubectl-nkvm ba', env()), ['backup']);
  t.deepEqual(await bashComplete(LOAD, 'kubectl nkvm ba', env()), ['backup']);
  t.deepEqual(await bashComplete(LOAD, 'kubectl nkvm backup --comp', env()), ['--compression']);
  t.deepEqual(await bashComplete(LOAD, 'kubectl nkvm backup --compression ', env()), ['gzip', 'zstd', 'none']);
  t.deepEqual(await bashComplete(LOAD, 'kubectl nkvm backup --compression=z', env()), ['zstd'], 'what follows the = is replaced');
  t.deepEqual(await bashComplete(LOAD, 'kubectl nkvm backup --compression=', env()), ['gzip', 'zstd', 'none']);
  t.deepEqual(await bashComplete(LOAD, 'kubectl nkvm backup --compression= ', env()), [], 'after a blank, a new word: claims, from no cluster');
});

test('bash: descriptions beside several candidates, within the terminal width; none beside one', async (t) => {
  const listed = await bashComplete(LOAD, 'kubectl nkvm artifacts ', env({ COLUMNS: '60' }));
  t.deepEqual(listed.map((line) => line.split(' ')[0]), ['list', 'show', 'fetch', 'prune']);
  t.is(listed[0], 'list   (List backups recorded in the catalog, newest first)');
  t.true(listed.every((line) => line.length < 60), listed.join('\n'));
  t.is(listed[1]!.at(-1), ')');
  const inserted = await bashComplete(LOAD, 'kubectl nkvm artifacts ', env({ COMP_TYPE: '37' }));
  t.deepEqual(inserted, ['list', 'show', 'fetch', 'prune'], 'menu-complete inserts values only');
});

test('bash: a context with colons completes the part after the last colon, as readline replaces it', async (t) => {
  const file = kubeconfig('arn', 'https://127.0.0.1:1', ['arn:aws:eks:us-east-1:123:cluster/a', 'arn:aws:eks:eu-west-1:123:cluster/b', 'kind']);
  const extra = env({ KUBECONFIG: file });
  t.deepEqual(await bashComplete(LOAD, 'kubectl nkvm discover --context arn:aws:eks:u', extra), ['us-east-1:123:cluster/a']);
  t.deepEqual(await bashComplete(LOAD, 'kubectl nkvm discover --context=arn:aws:eks:e', extra), ['eu-west-1:123:cluster/b']);
  t.deepEqual((await bashComplete(LOAD, 'kubectl nkvm discover --context=', extra)).map((line) => line.split(' ')[0]).sort(), [
    'arn:aws:eks:eu-west-1:123:cluster/b', 'arn:aws:eks:us-east-1:123:cluster/a', 'kind',
  ]);
});

test("bash: kubectl's own completion keeps answering for everything but nkvm", async (t) => {
  const load = `_fake_kubectl() { COMPREPLY=("kubectl-says:\${COMP_WORDS[COMP_CWORD]}"); }; complete -o default -F _fake_kubectl kubectl; ${LOAD}`;
  t.deepEqual(await bashComplete(load, 'kubectl ge', env()), ['kubectl-says:ge']);
  t.deepEqual(await bashComplete(load, 'kubectl get pods -n ', env()), ['kubectl-says:']);
  t.deepEqual(await bashComplete(load, 'kubectl nkvm vers', env()), ['version']);
  const spec = await execa('bash', ['-c', `${load}; complete -p kubectl`], { env: env(), extendEnv: false });
  t.is(spec.stdout, 'complete -o default -F _kubectl_nkvm_kubectl kubectl', "kubectl's options kept");
  t.deepEqual(await bashComplete(LOAD, 'kubectl nk', env()), ['nkvm'], 'with no completion for kubectl, the plugin name');
});
