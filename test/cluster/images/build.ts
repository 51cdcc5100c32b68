/**
 * Builds the images the local cluster needs, as docker-archive tars that `ctr images import` takes:
 * no registry is reachable here, so every image is made from local files. Cached by content.
 *   - the pod sandbox (pause), compiled static from pause.c
 *   - the plugin's default helper image, from busybox-static with its applets linked in /bin
 *   - the same without sh and tar, to make the copy stage fail on purpose in tests
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_HELPER_IMAGE } from '../../../src/backup/defaults.ts';
import { CACHE_DIR } from '../paths.ts';

export const PAUSE_IMAGE = 'registry.k8s.io/pause:3.10';
export const HELPER_IMAGE = DEFAULT_HELPER_IMAGE;
export const HELPER_IMAGE_WITHOUT_SHELL = 'nkvm.local/busybox-without-shell:test';

const BUSYBOX = '/bin/busybox';
const PAUSE_SOURCE = path.join(import.meta.dirname, 'pause.c');

interface ImageSpec {
  name: string;
  /** Fills an empty directory with the image's root file system. */
  populate(root: string): void;
  cmd: string[];
}

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
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
  ];
}

/** Writes one docker-archive: manifest.json, the config blob, and one uncompressed layer tar. */
function buildArchive(spec: ImageSpec, outFile: string, workDir: string): void {
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
    config: { Cmd: spec.cmd, Env: ['PATH=/bin'], WorkingDir: '/' },
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

/** Builds (or finds in the cache) every image; the cache key covers the inputs that shape them. */
export function buildImages(): BuiltImage[] {
  const key = sha256(
    [fs.readFileSync(BUSYBOX), fs.readFileSync(PAUSE_SOURCE), fs.readFileSync(import.meta.filename)].map((b) => sha256(b)).join(':'),
  ).slice(0, 16);
  const cacheDir = path.join(CACHE_DIR, `images-${key}`);
  fs.mkdirSync(cacheDir, { recursive: true });
  const workRoot = fs.mkdtempSync(path.join(cacheDir, 'work-'));
  try {
    return imageSpecs(workRoot).map((spec, index) => {
      const archive = path.join(cacheDir, `${spec.name.replace(/[^a-zA-Z0-9.-]+/g, '_')}.tar`);
      if (!fs.existsSync(archive)) {
        const workDir = path.join(workRoot, String(index));
        fs.mkdirSync(workDir);
        buildArchive(spec, `${archive}.partial`, workDir);
        fs.renameSync(`${archive}.partial`, archive);
      }
      return { name: spec.name, archive };
    });
  } finally {
    fs.rmSync(workRoot, { recursive: true, force: true });
  }
}
