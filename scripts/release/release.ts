/**
 * `npm run release`: one self-contained `kubectl-nkvm` executable per platform (a Node.js single
 * executable application: the esbuild bundle dist/kubectl-nkvm injected into that platform's official
 * Node.js binary), each archived with LICENSE and kubectl_complete-nkvm (.cmd on Windows: the script
 * kubectl 1.26+ runs for completion, see complete-executable.ts), and the Krew manifest for them:
 *   dist/release/kubectl-nkvm_<os>_<arch>.tar.gz   (.zip for Windows, holding kubectl-nkvm.exe)
 *   dist/release/plugin.yaml                        (rendered from the template ./plugin.yaml)
 * Every executable's format is checked; macOS ones are signed ad hoc and their signature checked; the
 * one for this machine, if any, is run and must print what the bundle prints. Finally, where Go is
 * available, krew's own validate-krew-manifest checks the manifest.
 *
 *   node scripts/release/release.ts [--platforms linux/amd64,darwin/arm64,...] [--skip-krew-validation]
 *
 * Run it with node_modules/.bin/node (Node.js 26.10.0: the blob must be made by the version injected
 * into) after `node build.mjs`; `npm run release` does both.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { sha256File, writeTarGz, writeZip } from './archive.ts';
import { rcodesignPath, signAdHoc, verifyAdHocSignature } from './codesign.ts';
import { COMPLETE_NAME, completeName, completeScript } from './complete-executable.ts';
import {
  archiveName, binName, BUNDLE, CACHE, LICENSE, log, PLATFORMS, platformId, pluginVersion, RELEASE_DIR, REPO_ROOT, SEA_BUNDLES, SEA_FRONT, TEMPLATE,
} from './config.ts';
import { nodeBinaryFor, postjectModule } from './fetch.ts';
import { checkFormat } from './format.ts';
import { renderManifest } from './manifest.ts';
import { injectBlob, makeBlob } from './sea.ts';
import { CLI_ASSET, LIBRARY_ASSETS } from '../../src/sea-assets.ts';

const { values: args } = parseArgs({
  options: { platforms: { type: 'string' }, 'skip-krew-validation': { type: 'boolean', default: false } },
});
const wanted = args.platforms ? args.platforms.split(',').map((s) => s.trim()) : PLATFORMS.map(platformId);
const unknown = wanted.filter((id) => !PLATFORMS.some((p) => platformId(p) === id));
if (unknown.length > 0) throw new Error(`unknown platform(s) ${unknown.join(', ')}; known: ${PLATFORMS.map(platformId).join(', ')}`);
const platforms = PLATFORMS.filter((p) => wanted.includes(platformId(p)));

if (!fs.existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run 'node build.mjs' (npm run release does)`);
const version = pluginVersion();
const started = Date.now();

// A stale archive must never be taken for this run's: start from an empty release directory.
fs.rmSync(RELEASE_DIR, { recursive: true, force: true });
const work = path.join(RELEASE_DIR, '.work');
fs.mkdirSync(work, { recursive: true });

// Archive entries' time: SOURCE_DATE_EPOCH, else the last commit's, so the same tree gives the same bytes.
const mtime = Number(process.env.SOURCE_DATE_EPOCH ??
  (spawnSync('git', ['log', '-1', '--format=%ct'], { cwd: REPO_ROOT, encoding: 'utf8' }).stdout.trim() || 0));

/**
 * The same inputs give the same archives (they are reproducible), so a release is kept under the
 * cache keyed by everything it is made of: the bundles, the front, the release scripts, the
 * template, the license, the platforms, the entries' time, the flags and this Node. A second run of
 * the same tree (CI after a developer's run) copies it instead of spending minutes rebuilding it.
 */
const key = createHash('sha256');
const seaBundles = [CLI_ASSET, ...LIBRARY_ASSETS].map((asset) => path.join(SEA_BUNDLES, asset));
for (const file of [BUNDLE, SEA_FRONT, ...seaBundles, TEMPLATE, LICENSE, ...fs.readdirSync(import.meta.dirname).sort().map((name) => path.join(import.meta.dirname, name))]) {
  key.update(`${path.basename(file)}\0`).update(fs.readFileSync(file));
}
key.update(JSON.stringify({ platforms: platforms.map(platformId), mtime, version, node: process.version, skipKrew: args['skip-krew-validation'] }));
const cached = path.join(CACHE, 'release', key.digest('hex').slice(0, 32));
if (fs.existsSync(path.join(cached, '.complete'))) {
  fs.cpSync(cached, RELEASE_DIR, { recursive: true, filter: (source) => path.basename(source) !== '.complete' });
  fs.rmSync(work, { recursive: true, force: true });
  log(`the same release is cached: ${path.relative(REPO_ROOT, RELEASE_DIR)}/ copied from ${cached}`);
  for (const name of fs.readdirSync(RELEASE_DIR).filter((file) => file !== 'plugin.yaml')) process.stdout.write(`${sha256File(path.join(RELEASE_DIR, name))}  ${name}\n`);
  process.exit(0);
}

log(`kubectl-nkvm ${version}: ${platforms.map(platformId).join(', ')}`);
const postject = postjectModule();
const rcodesign = platforms.some((p) => p.os === 'darwin') ? rcodesignPath() : undefined;

const host = PLATFORMS.find((p) => p.os === process.platform && p.arch === (process.arch === 'x64' ? 'amd64' : process.arch));
// The host's executable carries V8's code cache (valid only for this very Node binary); the rest the script alone.
const portableBlob = makeBlob(work, { codeCache: false });
const hostBlob = host && platforms.some((p) => platformId(p) === platformId(host)) ? makeBlob(work, { codeCache: true }) : undefined;
const archives = new Map<string, string>();
for (const platform of platforms) {
  const id = platformId(platform);
  const dir = path.join(work, `${platform.os}-${platform.arch}`);
  fs.mkdirSync(dir, { recursive: true });
  const exe = path.join(dir, binName(platform));
  const t0 = Date.now();
  const isHost = host !== undefined && platformId(platform) === platformId(host);
  await injectBlob(postject, nodeBinaryFor(platform), isHost ? hostBlob! : portableBlob, exe, platform);
  if (platform.os === 'darwin') {
    signAdHoc(rcodesign!, exe, 'kubectl-nkvm');
    const signature = verifyAdHocSignature(exe);
    log(`${id}: signed ad hoc as ${signature.identifier}; all ${signature.pages} page hashes match`);
  }
  checkFormat(exe, platform.format);
  const complete = path.join(dir, completeName(platform));
  fs.writeFileSync(complete, completeScript(platform), { mode: 0o755 });
  if (isHost) smokeTest(exe, complete);
  const archive = path.join(RELEASE_DIR, archiveName(platform));
  const entries = [
    { name: binName(platform), source: exe, mode: 0o755 },
    { name: completeName(platform), source: complete, mode: 0o755 },
    { name: 'LICENSE', source: LICENSE, mode: 0o644 },
  ];
  if (platform.os === 'windows') writeZip(archive, entries, mtime);
  else writeTarGz(archive, entries, mtime);
  archives.set(path.basename(archive), sha256File(archive));
  log(`${id}: ${path.relative(REPO_ROOT, archive)} (${mib(archive)}; executable ${mib(exe)}) in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
}

const { yaml, dropped } = renderManifest(TEMPLATE, version, archives);
const manifestFile = path.join(RELEASE_DIR, 'plugin.yaml');
fs.writeFileSync(manifestFile, yaml);
if (dropped.length > 0) log(`left out of plugin.yaml (not built in this run): ${dropped.join(', ')}`);
fs.rmSync(work, { recursive: true, force: true });

if (!args['skip-krew-validation']) validateWithKrew(manifestFile);
fs.cpSync(RELEASE_DIR, cached, { recursive: true });
fs.writeFileSync(path.join(cached, '.complete'), '');
// The three newest releases are kept (a full one and `npm run image`'s two platforms, say): each is up to a few hundred MB.
const releases = path.join(CACHE, 'release');
const byAge = fs.readdirSync(releases).map((name) => path.join(releases, name)).sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
for (const old of byAge.slice(3)) fs.rmSync(old, { recursive: true, force: true });
log(`done in ${((Date.now() - started) / 1000).toFixed(0)}s: ${path.relative(REPO_ROOT, RELEASE_DIR)}/`);
for (const [name, sha256] of archives) process.stdout.write(`${sha256}  ${name}\n`);

function mib(file: string): string {
  return `${(fs.statSync(file).size / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * The executable for this machine must run with no Node.js on PATH and print what the bundle prints,
 * and answer completion requests the three ways kubectl may ask: `__complete`, run under the name
 * kubectl_complete-nkvm (a link), and through the shipped kubectl_complete-nkvm script.
 */
function smokeTest(exe: string, completeScriptFile: string): void {
  // An empty directory as the whole PATH: this machine's /usr/bin may well hold a node.
  const emptyPath = fs.mkdtempSync(path.join(work, 'empty-path-'));
  const env = { PATH: emptyPath, HOME: emptyPath, KUBECONFIG: path.join(emptyPath, 'none') };
  const linkDir = fs.mkdtempSync(path.join(work, 'link-'));
  fs.symlinkSync(exe, path.join(linkDir, COMPLETE_NAME));
  const runs: { label: string; file: string; args: string[]; bundleArgs?: string[] }[] = [
    { label: 'version --client', file: exe, args: ['version', '--client'] },
    { label: '--help', file: exe, args: ['--help'] },
    { label: '__complete', file: exe, args: ['__complete', 'backup', '--compression', ''] },
    { label: `as ${COMPLETE_NAME}`, file: path.join(linkDir, COMPLETE_NAME), args: ['artifacts', ''], bundleArgs: ['__complete', 'artifacts', ''] },
    { label: `the ${COMPLETE_NAME} script`, file: '/bin/sh', args: [completeScriptFile, 'restore', '--mode', ''], bundleArgs: ['__complete', 'restore', '--mode', ''] },
  ];
  for (const { label, file, args, bundleArgs } of runs) {
    const sea = spawnSync(file, args, { env, encoding: 'utf8' });
    const bundle = spawnSync(process.execPath, [BUNDLE, ...(bundleArgs ?? args)], { env, encoding: 'utf8' });
    if (sea.status !== 0 || sea.stdout !== bundle.stdout || sea.stderr !== bundle.stderr || sea.status !== bundle.status) {
      throw new Error(`${exe} (${label}): exit ${sea.status}, differs from the bundle's (exit ${bundle.status})\n${sea.stdout}${sea.stderr}`);
    }
  }
  log(`${path.basename(exe)} runs without Node.js on PATH and prints what the bundle prints (${runs.map((run) => `'${run.label}'`).join(', ')})`);
}

/**
 * krew's own checks. validate-krew-manifest (which wants the file named after the plugin, nkvm.yaml)
 * checks the manifest's structure; its install step downloads each platform's URI, which exists only
 * once the release is published, so it is skipped and replaced by what it would do: for every
 * platform, `kubectl-krew install --manifest --archive` of the local archive into a throw-away
 * KREW_ROOT with KREW_OS/KREW_ARCH set to that platform, which must leave the binary and LICENSE.
 */
function validateWithKrew(manifest: string): void {
  let bin: string;
  try {
    bin = execFileSync('bash', [path.join(REPO_ROOT, 'scripts', 'release', 'build-krew.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  } catch {
    log('warning: krew could not be built (is Go installed?); the manifest was not checked with krew');
    return;
  }
  const dir = fs.mkdtempSync(path.join(RELEASE_DIR, '.krew-'));
  try {
    fs.copyFileSync(manifest, path.join(dir, 'nkvm.yaml'));
    const validate = spawnSync(path.join(bin, 'validate-krew-manifest'), ['-skip-install', '-manifest', path.join(dir, 'nkvm.yaml')], { encoding: 'utf8' });
    if (validate.status !== 0) throw new Error(`validate-krew-manifest rejected plugin.yaml:\n${validate.stderr}`);
    log('validate-krew-manifest: structure OK, every platform selector used, none overlapping');
    for (const platform of platforms) {
      const root = path.join(dir, `${platform.os}-${platform.arch}`);
      const install = spawnSync(path.join(bin, 'kubectl-krew'), ['install', `--manifest=${manifest}`, `--archive=${path.join(RELEASE_DIR, archiveName(platform))}`], {
        encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: dir, KREW_ROOT: root, KREW_OS: platform.os, KREW_ARCH: platform.arch },
      });
      const store = path.join(root, 'store', 'nkvm', version);
      const linked = path.join(root, 'bin', binName(platform));
      if (install.status !== 0 || !fs.existsSync(path.join(store, 'LICENSE')) || !fs.existsSync(path.join(store, completeName(platform))) || !fs.existsSync(linked)) {
        throw new Error(`krew install of ${archiveName(platform)} failed (exit ${install.status}):\n${install.stdout}${install.stderr}`);
      }
    }
    log(`krew installs every archive (${platforms.map(platformId).join(', ')}) with its LICENSE and ${COMPLETE_NAME}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
