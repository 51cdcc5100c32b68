import test from 'ava';
import { chooseProvider } from '../cluster/index.ts';
import { KIND_HELPER_WITHOUT_SHELL, kindCommands } from '../cluster/kind.ts';
import { DEFAULT_HELPER_IMAGE } from '../../src/backup/defaults.ts';

test('the kind provider creates and deletes exactly the named cluster with its own kubeconfig', (t) => {
  t.deepEqual(kindCommands.create('nkvm-it-1', '/tmp/k'), ['kind', 'create', 'cluster', '--name', 'nkvm-it-1', '--kubeconfig', '/tmp/k', '--wait', '120s']);
  t.deepEqual(kindCommands.delete('nkvm-it-1', '/tmp/k'), ['kind', 'delete', 'cluster', '--name', 'nkvm-it-1', '--kubeconfig', '/tmp/k']);
  t.deepEqual(kindCommands.exportLogs('nkvm-it-1', '/tmp/logs'), ['kind', 'export', 'logs', '/tmp/logs', '--name', 'nkvm-it-1']);
});

test('the kind provider loads the public helper image and a copy without sh and tar into the cluster', (t) => {
  t.deepEqual(kindCommands.pullHelper(), ['docker', 'pull', DEFAULT_HELPER_IMAGE]);
  t.deepEqual(kindCommands.buildHelperWithoutShell('/d'), ['docker', 'build', '--tag', KIND_HELPER_WITHOUT_SHELL, '/d']);
  t.deepEqual(kindCommands.loadImage('nkvm-it-1', DEFAULT_HELPER_IMAGE), ['kind', 'load', 'docker-image', DEFAULT_HELPER_IMAGE, '--name', 'nkvm-it-1']);
});

test('NKVM_CLUSTER_PROVIDER chooses the provider and rejects unknown names', async (t) => {
  t.is(await chooseProvider({ NKVM_CLUSTER_PROVIDER: 'local' }), 'local');
  t.is(await chooseProvider({ NKVM_CLUSTER_PROVIDER: 'kind' }), 'kind');
  await t.throwsAsync(chooseProvider({ NKVM_CLUSTER_PROVIDER: 'minikube' }), { message: /must be "local" or "kind"/ });
});
