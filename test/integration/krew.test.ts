/**
 * The release as a user receives it: the archives `npm run release` made (scripts/bootstrap.sh makes
 * them before the integration suites), installed with krew, run with no Node.js anywhere on PATH
 * against a real cluster, and uninstalled without a trace; and the single executable giving the same
 * results as the bundle.
 */
import { execa } from 'execa';
import { load as loadYaml } from 'js-yaml';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { COMPLETE_NAME, completeName, completeScript } from '../../scripts/release/complete-executable.ts';
import { archiveName, binName, PLATFORMS, RELEASE_DIR, REPO_ROOT } from '../../scripts/release/config.ts';
import { detectFormat } from '../../scripts/release/format.ts';
import { kubernetesBinDir } from '../cluster/paths.ts';
import { seedWorkload } from '../cluster/workload.ts';
import { clusterSuite, createNamespace, pluginBundle } from './support.ts';

const test = clusterSuite({
  ownCluster: "its last test compares two runs of `discover -A`, which other files' claims and pods would change between them",
});

interface Manifest {
  spec: { version: string; platforms: { selector: { matchLabels: { os: string; arch: string } }; uri: string; sha256: string; bin: string }[] };
}

function manifest(): Manifest {
  return loadYaml(fs.readFileSync(path.join(RELEASE_DIR, 'plugin.yaml'), 'utf8')) as Manifest;
}

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Unpacks an archive (tar.gz, or zip through Python's zipfile) and returns its entries and modes. */
async function unpack(archive: string, into: string): Promise<Map<string, number>> {
  fs.mkdirSync(into, { recursive: true });
  if (archive.endsWith('.zip')) {
    const listing = await execa('python3', ['-c', [
      'import json, sys, zipfile',
      'z = zipfile.ZipFile(sys.argv[1]); z.extractall(sys.argv[2])',
      'print(json.dumps({i.filename: (i.external_attr >> 16) & 0o7777 for i in z.infolist()}))',
    ].join('\n'), archive, into]);
    return new Map(Object.entries(JSON.parse(listing.stdout) as Record<string, number>));
  }
  await execa('tar', ['-xzf', archive, '-C', into]);
  const listed = (await execa('tar', ['-tzf', archive])).stdout.trim().split('\n');
  return new Map(listed.map((name) => [name, fs.statSync(path.join(into, name)).mode & 0o7777]));
}

/** A directory of symlinks to exactly the tools named: a PATH with no node on it. */
function toolDir(dir: string, tools: Record<string, string>): string {
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, target] of Object.entries(tools)) fs.symlinkSync(target, path.join(dir, name));
  return dir;
}

function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => !e.isDirectory()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

test('every release archive holds the executable and kubectl_complete-nkvm (0755) and LICENSE, matches the manifest, and is built for its platform', async (t) => {
  const { spec } = manifest();
  t.regex(spec.version, /^v\d+\.\d+\.\d+$/);
  t.is(spec.version, `v${JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')).version}`);
  t.is(spec.platforms.length, PLATFORMS.length);
  for (const platform of PLATFORMS) {
    const name = archiveName(platform);
    const archive = path.join(RELEASE_DIR, name);
    const entry = spec.platforms.find((p) => p.selector.matchLabels.os === platform.os && p.selector.matchLabels.arch === platform.arch);
    t.truthy(entry, `${name} is in the manifest`);
    t.is(entry!.sha256, sha256(archive), `${name}: the manifest's sha256`);
    t.true(entry!.uri.endsWith(`/${spec.version}/${name}`), entry!.uri);
    t.is(entry!.bin, binName(platform));
    const into = path.join(t.context.workDir, 'archives', `${platform.os}-${platform.arch}`);
    const entries = await unpack(archive, into);
    t.deepEqual([...entries.keys()].sort(), [binName(platform), completeName(platform), 'LICENSE'].sort(), `${name}: entries`);
    t.is(entries.get(binName(platform)), 0o755, `${name}: the executable bit`);
    t.is(entries.get(completeName(platform)), 0o755, `${name}: ${completeName(platform)}'s executable bit`);
    t.is(fs.readFileSync(path.join(into, completeName(platform)), 'utf8'), completeScript(platform), `${name}: ${completeName(platform)}`);
    t.true(fs.readFileSync(path.join(into, 'LICENSE')).equals(fs.readFileSync(path.join(REPO_ROOT, 'LICENSE'))));
    t.is(detectFormat(path.join(into, binName(platform))), platform.format, `${name}: executable format`);
  }
});

test('krew installs the linux/amd64 archive; it runs with no node on PATH against the cluster; kubectl completes it once linked as the caveats say; uninstall leaves nothing', async (t) => {
  const { cluster, workDir } = t.context;
  const krewBin = (await execa('bash', [path.join(REPO_ROOT, 'scripts', 'release', 'build-krew.sh')])).stdout.trim();
  const krewRoot = path.join(workDir, 'krew-root');
  // The local provider's kubectl, or (kind) the user's.
  const localKubectl = path.join(kubernetesBinDir, 'kubectl');
  const kubectl = fs.existsSync(localKubectl) ? localKubectl : (await execa('sh', ['-c', 'command -v kubectl'])).stdout.trim();
  const tools = toolDir(path.join(workDir, 'krew-tools'), {
    kubectl,
    'kubectl-krew': path.join(krewBin, 'kubectl-krew'),
  });
  const PATH = [path.join(krewRoot, 'bin'), tools].join(path.delimiter);
  const env = { PATH, HOME: workDir, KREW_ROOT: krewRoot, KUBECONFIG: cluster.kubeconfigPath, NKVM_HOME: path.join(workDir, 'krew-home') };
  const run = (args: string[], extra: Record<string, string> = {}) => execa('kubectl', args, { env: { ...env, ...extra }, extendEnv: false, reject: false });

  const install = await run(['krew', 'install', `--manifest=${path.join(RELEASE_DIR, 'plugin.yaml')}`, `--archive=${path.join(RELEASE_DIR, 'kubectl-nkvm_linux_amd64.tar.gz')}`]);
  t.is(install.exitCode, 0, String(install.stderr));
  for (const dir of PATH.split(path.delimiter)) t.false(fs.existsSync(path.join(dir, 'node')), `no node in ${dir}`);

  const namespace = await createNamespace(cluster, 'krew');
  t.context.diagnose = { namespace, sourcePod: 'app' };
  await seedWorkload(cluster, { namespace, claim: 'data', pod: 'app' });
  const version = await run(['nkvm', 'version']);
  t.is(version.exitCode, 0, String(version.stderr));
  t.regex(String(version.stdout), /^Server Version: v1\.\d+\.\d+/m);
  const discover = await run(['nkvm', 'discover', '-n', namespace, '-o', 'json']);
  t.is(discover.exitCode, 0, String(discover.stderr));
  t.like(JSON.parse(String(discover.stdout)).items[0], { namespace, name: 'data', phase: 'Bound' });
  const backup = await run(['nkvm', 'backup', 'data', '-n', namespace, '-o', 'json'], { NKVM_TRACE_BUNDLES: '1' });
  t.is(backup.exitCode, 0, String(backup.stderr));
  t.like(JSON.parse(String(backup.stdout)).items[0], { status: 'succeeded' });
  // A backup's pods, exec and lists go over node:https: neither the client's generated API nor undici is loaded (some 23 MiB of its memory).
  t.deepEqual(String(backup.stderr).match(/loading bundle \S+/g), ['loading bundle kubectl-nkvm-kubeconfig.js']);

  // Completion: kubectl 1.26+ runs kubectl_complete-nkvm from PATH; the archive ships it, and the
  // caveats link the plugin itself under that name (the executable answers under that name).
  t.true(fs.existsSync(path.join(krewRoot, 'store', 'nkvm', manifest().spec.version, COMPLETE_NAME)), `${COMPLETE_NAME} is in the plugin's directory`);
  const completions = async (words: string[]) => String((await run(['__complete', 'nkvm', ...words])).stdout).split('\n');
  t.false((await completions([''])).some((line) => line.startsWith('backup\t')), 'no completion before the link');
  const link = path.join(krewRoot, 'bin', COMPLETE_NAME);
  const caveats = (loadYaml(fs.readFileSync(path.join(RELEASE_DIR, 'plugin.yaml'), 'utf8')) as { spec: { caveats: string } }).spec.caveats;
  const linkCommand = /^\s*(ln -sf kubectl-nkvm .*)$/m.exec(caveats)?.[1];
  t.truthy(linkCommand, 'the caveats say how to link it');
  const linked = await execa('sh', ['-c', linkCommand!], { env: { PATH: '/usr/bin:/bin', HOME: workDir, KREW_ROOT: krewRoot }, reject: false });
  t.is(linked.exitCode, 0, String(linked.stderr));
  t.true(fs.lstatSync(link).isSymbolicLink());
  t.true((await completions([''])).includes('backup\tBack up claims into the repository (or compressed tar artifacts), each recorded in the catalog'));
  t.true((await completions(['backup', '-n', ''])).includes(namespace), 'namespaces from the cluster');
  t.true((await completions(['backup', '-n', namespace, ''])).some((line) => line.startsWith('data\t')), 'claims from the cluster');
  const backupId = String(JSON.parse(String(backup.stdout)).items[0].id);
  t.true((await completions(['restore', ''])).some((line) => line.startsWith(`${backupId}\t`)), 'backup IDs from the catalog');
  fs.rmSync(link); // krew does not know the link: the user removes it, as the caveats say

  // Uninstalling checks for krew's plugin index, which `krew update` would clone from GitHub.
  fs.mkdirSync(path.join(krewRoot, 'index', 'default'), { recursive: true });
  await execa('git', ['init', '--quiet', path.join(krewRoot, 'index', 'default')]);
  const uninstall = await run(['krew', 'uninstall', 'nkvm']);
  t.is(uninstall.exitCode, 0, String(uninstall.stderr));
  t.deepEqual(filesUnder(krewRoot).filter((file) => !file.startsWith(`index${path.sep}`)), [], 'nothing of the plugin is left');
});

test('the single executable and the bundle give the same results on the same commands', async (t) => {
  const { cluster, workDir } = t.context;
  const dir = path.join(workDir, 'sea');
  await unpack(path.join(RELEASE_DIR, 'kubectl-nkvm_linux_amd64.tar.gz'), dir);
  const sea = path.join(dir, 'kubectl-nkvm');
  const namespace = await createNamespace(cluster, 'parity');
  await seedWorkload(cluster, { namespace, claim: 'data', pod: 'app' });
  const catalog = path.join(workDir, 'parity.sqlite');
  const env = { PATH: '/usr/bin:/bin', HOME: workDir, KUBECONFIG: cluster.kubeconfigPath, NO_COLOR: '1' };
  const commands = [
    ['--help'],
    ['backup', '--help'],
    ['version', '--client', '-o', 'json'],
    ['discover', '-n', namespace, '-o', 'json'],
    ['discover', '-A'],
    ['diagnose', 'data', '-n', namespace, '-o', 'json'],
    ['artifacts', 'list', '-o', 'json', '--catalog', catalog],
    ['backup'],
    ['discover', '--kubeconfig', path.join(workDir, 'no-such-kubeconfig')],
    ['__complete', 'backup', '-n', namespace, ''],
    ['__complete', 'restore', '--catalog', catalog, ''],
  ];
  for (const command of commands) {
    const fromSea = await execa(sea, command, { env, extendEnv: false, reject: false });
    const fromBundle = await execa(process.execPath, [pluginBundle, ...command], { env, extendEnv: false, reject: false });
    t.deepEqual(
      { exitCode: fromSea.exitCode, stdout: fromSea.stdout, stderr: fromSea.stderr },
      { exitCode: fromBundle.exitCode, stdout: fromBundle.stdout, stderr: fromBundle.stderr },
      command.join(' '),
    );
  }
});
