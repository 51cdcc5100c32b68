/**
 * Builds the images the local cluster needs, as docker-archive tars that `ctr images import` takes:
 * no registry is reachable here, so every image is made from local files. Cached by content.
 *   - the pod sandbox (pause), compiled static from pause.c
 *   - the plugin's default helper image, from busybox-static with its applets linked in /bin
 *   - the same without sh and tar, to make the copy stage fail on purpose in tests
 *   - rancher's local-path-provisioner (built by scripts/build-cluster-binaries.sh), the default
 *     StorageClass's dynamic provisioner, as on KinD; its helper pods use the helper image
 * And, apart, since only the suites that take VolumeSnapshots load it (test/cluster/csi-snapshots.ts):
 *   - our CSI driver, compiled here from test/cluster/csi-driver, with the upstream sidecars
 *     (csi-provisioner, csi-snapshotter, snapshot-controller) built by scripts/build-cluster-binaries.sh
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_HELPER_IMAGE } from '../../../src/backup/defaults.ts';
import {
  CACHE_DIR, csiDriverSourceDir, csiProvisionerBinary, csiSnapshotterBinary, LOCAL_PATH_PROVISIONER_VERSION, localPathProvisionerBinary,
  REPO_ROOT, snapshotControllerBinary,
} from '../paths.ts';

export const PAUSE_IMAGE = 'registry.k8s.io/pause:3.10';
export const HELPER_IMAGE = DEFAULT_HELPER_IMAGE;
export const HELPER_IMAGE_WITHOUT_SHELL = 'nkvm.local/busybox-without-shell:test';
export const LOCAL_PATH_PROVISIONER_IMAGE = `nkvm.local/local-path-provisioner:${LOCAL_PATH_PROVISIONER_VERSION}`;

const BUSYBOX = '/bin/busybox';
const PAUSE_SOURCE = path.join(import.meta.dirname, 'pause.c');

export interface ImageSpec {
  name: string;
  /** Fills an empty directory with the image's root file system. */
  populate(root: string): void;
  cmd: string[];
  entrypoint?: string[];
  /** PATH=/bin unless given. */
  env?: string[];
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Copies an executable into an image's root as DIR/NAME, mode 0755. */
export function installBinary(root: string, binary: string, name: string, dir = 'usr/local/bin'): void {
  fs.mkdirSync(path.join(root, dir), { recursive: true });
  fs.copyFileSync(binary, path.join(root, dir, name));
  fs.chmodSync(path.join(root, dir, name), 0o755);
}

function busyboxRoot(root: string, skip: Set<string>): void {
  for (const dir of ['bin', 'tmp', 'etc', 'data']) fs.mkdirSync(path.join(root, dir), { recursive: true });
  fs.chmodSync(path.join(root, 'tmp'), 0o1777);
  fs.copyFileSync(BUSYBOX, path.join(root, 'bin', 'busybox'));
  fs.chmodSync(path.join(root, 'bin', 'busybox'), 0o755);
  const applets = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const applet of applets) {
    if (applet === 'busybox' || skip.has(applet)) continue;
    fs.symlinkSync('busybox', path.join(root, 'bin', applet));
  }
  fs.writeFileSync(path.join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  fs.writeFileSync(path.join(root, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
}

function imageSpecs(workDir: string): ImageSpec[] {
  return [
    {
      name: PAUSE_IMAGE,
      cmd: ['/pause'],
      populate: (root) => {
        execFileSync('gcc', ['-static', '-Os', '-s', '-o', path.join(root, 'pause'), PAUSE_SOURCE], { cwd: workDir });
      },
    },
    { name: HELPER_IMAGE, cmd: ['sh'], populate: (root) => busyboxRoot(root, new Set()) },
    { name: HELPER_IMAGE_WITHOUT_SHELL, cmd: ['sleep', '3600'], populate: (root) => busyboxRoot(root, new Set(['tar', 'sh'])) },
    {
      name: LOCAL_PATH_PROVISIONER_IMAGE,
      cmd: ['local-path-provisioner'],
      populate: (root) => installBinary(root, localPathProvisionerBinary, 'local-path-provisioner', 'bin'),
    },
  ];
}

/** Writes one docker-archive: manifest.json, the config blob, and one uncompressed layer tar. */
export function buildArchive(spec: ImageSpec, outFile: string, workDir: string): void {
  const root = path.join(workDir, 'rootfs');
  const archive = path.join(workDir, 'archive');
  fs.mkdirSync(root, { recursive: true });
  fs.mkdirSync(archive, { recursive: true });
  spec.populate(root);
  const layer = path.join(archive, 'layer.tar');
  execFileSync('tar', ['--create', '--file', layer, '--numeric-owner', '--owner=0', '--group=0', '--mtime=@0', '--sort=name', '-C', root, '.']);
  const diffId = `sha256:${sha256(fs.readFileSync(layer))}`;
  const config = JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: { Entrypoint: spec.entrypoint, Cmd: spec.cmd, Env: spec.env ?? ['PATH=/bin'], WorkingDir: '/' },
    rootfs: { type: 'layers', diff_ids: [diffId] },
    history: [{ created_by: 'kubectl-nkvm test/cluster/images/build.ts' }],
  });
  const configName = `${sha256(config)}.json`;
  fs.writeFileSync(path.join(archive, configName), config);
  fs.writeFileSync(path.join(archive, 'manifest.json'), JSON.stringify([{ Config: configName, RepoTags: [spec.name], Layers: ['layer.tar'] }]));
  execFileSync('tar', ['--create', '--file', outFile, '-C', archive, 'manifest.json', configName, 'layer.tar']);
}

export interface BuiltImage {
  name: string;
  archive: string;
}

/** A cache key over the content of the files that shape some images. */
export function contentKey(files: string[]): string {
  return sha256(files.map((file) => sha256(fs.readFileSync(file))).join(':')).slice(0, 16);
}

/** Builds (or finds in the cache) the archives of `specs`; `cacheKey` covers every input that shapes them. */
export function buildImageArchives(cacheKey: string, specs: (workDir: string) => ImageSpec[]): BuiltImage[] {
  const cacheDir = path.join(CACHE_DIR, `images-${cacheKey}`);
  fs.mkdirSync(cacheDir, { recursive: true });
  const workRoot = fs.mkdtempSync(path.join(cacheDir, 'work-'));
  try {
    return specs(workRoot).map((spec, index) => {
      const archive = path.join(cacheDir, `${spec.name.replace(/[^a-zA-Z0-9.-]+/g, '_')}.tar`);
      if (!fs.existsSync(archive)) {
        const workDir = path.join(workRoot, String(index));
        fs.mkdirSync(workDir);
        // Suites on both providers may build the same image at once (npm test runs them side by side).
        const partial = `${archive}.partial-${process.pid}`;
        buildArchive(spec, partial, workDir);
        fs.renameSync(partial, archive);
      }
      return { name: spec.name, archive };
    });
  } finally {
    fs.rmSync(workRoot, { recursive: true, force: true });
  }
}

/** The images every local cluster imports, and the kind provider loads into its node. */
export function buildImages(): BuiltImage[] {
  return buildImageArchives(contentKey([BUSYBOX, PAUSE_SOURCE, localPathProvisionerBinary, import.meta.filename]), imageSpecs);
}

/** Our CSI driver's sources: what its build depends on besides the Go toolchain. */
function csiDriverSources(): string[] {
  return fs.readdirSync(csiDriverSourceDir).filter((file) => /\.go$|^go\.(mod|sum)$/.test(file)).sort().map((file) => path.join(csiDriverSourceDir, file));
}

const CSI_SIDECARS = [csiProvisionerBinary, csiSnapshotterBinary, snapshotControllerBinary];

/**
 * One image for the whole CSI deployment: the driver (a static Go build, with the project's Go
 * settings from scripts/go-env.sh) and the three sidecars, each started by its command. Its tag
 * carries the content key, so a cluster never runs a stale build under a reused name.
 */
export function buildCsiImage(): BuiltImage {
  for (const binary of CSI_SIDECARS) {
    if (!fs.existsSync(binary)) throw new Error(`${binary} is missing: run sh scripts/bootstrap.sh --cluster`);
  }
  const key = contentKey([...csiDriverSources(), ...CSI_SIDECARS, import.meta.filename]);
  const name = `nkvm.local/nkvm-csi:${key}`;
  const [image] = buildImageArchives(`csi-${key}`, () => [{
    name,
    cmd: ['nkvm-csi-driver'],
    populate: (root) => {
      fs.mkdirSync(path.join(root, 'bin'), { recursive: true });
      fs.mkdirSync(path.join(root, 'tmp'), { mode: 0o1777 });
      fs.chmodSync(path.join(root, 'tmp'), 0o1777);
      const output = path.join(root, 'bin', 'nkvm-csi-driver');
      execFileSync('sh', ['-c', `. "${REPO_ROOT}/scripts/go-env.sh" && go build -ldflags "-s -w" -o "$1" .`, 'go-build', output], { cwd: csiDriverSourceDir });
      for (const binary of CSI_SIDECARS) installBinary(root, binary, path.basename(binary), 'bin');
    },
  }]);
  return image!;
}
