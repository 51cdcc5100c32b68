import test from 'ava';
import { chooseProvider } from '../cluster/index.ts';
import { boundingSetIsFull, dockerdArguments } from '../cluster/docker.ts';
import { kindClusterConfig, kindCommands, kindEnvironment } from '../cluster/kind.ts';

test('the kind provider creates and deletes exactly the named cluster, from the given node image, with its own kubeconfig', (t) => {
  const [, ...create] = kindCommands.create('nkvm-it-1', '/tmp/k', 'nkvm.local/kind-node:v1.34.4-abc');
  t.deepEqual(create, ['create', 'cluster', '--name', 'nkvm-it-1', '--kubeconfig', '/tmp/k', '--image', 'nkvm.local/kind-node:v1.34.4-abc', '--wait', '120s']);
  t.deepEqual(kindCommands.delete('nkvm-it-1', '/tmp/k').slice(1), ['delete', 'cluster', '--name', 'nkvm-it-1', '--kubeconfig', '/tmp/k']);
  t.deepEqual(kindCommands.loadImageArchive('nkvm-it-1', '/a.tar').slice(1), ['load', 'image-archive', '/a.tar', '--name', 'nkvm-it-1']);
});

test('a cluster with workers is created from a kind config of one control plane and that many workers', (t) => {
  const [, ...create] = kindCommands.create('nkvm-it-1', '/tmp/k', 'nkvm.local/kind-node:v1.34.4-abc', '/tmp/kind-config.yaml');
  t.deepEqual(create, ['create', 'cluster', '--name', 'nkvm-it-1', '--kubeconfig', '/tmp/k', '--image', 'nkvm.local/kind-node:v1.34.4-abc', '--config', '/tmp/kind-config.yaml', '--wait', '120s']);
  t.is(kindClusterConfig(2), 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n- role: worker\n');
});

test('each kind cluster gets a Docker network of its own name, which dispose removes', (t) => {
  t.is(kindEnvironment('nkvm-it-1', { PATH: '/bin' }).KIND_EXPERIMENTAL_DOCKER_NETWORK, 'nkvm-it-1');
  t.is(kindEnvironment('nkvm-it-1', { PATH: '/bin' }).PATH, '/bin');
  t.deepEqual(kindCommands.removeNetwork('nkvm-it-1'), ['docker', 'network', 'rm', 'nkvm-it-1']);
});

test('the runtime wrapper is used only where the bounding set lacks a capability the kernel knows', (t) => {
  const status = (bounding: string) => `Name:\tnode\nCapEff:\t000001ffffffffff\nCapBnd:\t${bounding}\nCapAmb:\t0000000000000000\n`;
  t.true(boundingSetIsFull(status('000001ffffffffff'), '40\n'));
  t.false(boundingSetIsFull(status('000001fffeffffff'), '40\n'), 'CAP_SYS_RESOURCE (24) missing, as on these machines');
  t.true(boundingSetIsFull(status('000000ffffffffff'), '39\n'), 'an older kernel knows fewer');
  const withWrapper = dockerdArguments(true);
  t.regex(withWrapper[withWrapper.indexOf('--add-runtime') + 1]!, /^nkvm-runc=\/.*\/nkvm-runc$/);
  t.is(withWrapper[withWrapper.indexOf('--default-runtime') + 1], 'nkvm-runc');
  t.false(dockerdArguments(false).includes('--default-runtime'));
  t.true(dockerdArguments(false).includes('--ip-forward=false'), 'the FORWARD policy of the machine stays as it is');
});

test('NKVM_CLUSTER_PROVIDER chooses the provider and rejects unknown names', async (t) => {
  t.is(await chooseProvider({ NKVM_CLUSTER_PROVIDER: 'local' }), 'local');
  t.is(await chooseProvider({ NKVM_CLUSTER_PROVIDER: 'kind' }), 'kind');
  await t.throwsAsync(chooseProvider({ NKVM_CLUSTER_PROVIDER: 'minikube' }), { message: /must be "local" or "kind"/ });
});
