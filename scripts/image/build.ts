/**
 * `npm run image`: the plugin as an OCI image for linux/amd64 and linux/arm64, made from the
 * project's own files with no registry and no container engine: the release's single executable,
 * the shared libraries Node's official Linux binaries link against (from pinned Debian 12 packages,
 * checked by sha256), Debian's CA certificates, and a non-root user. No shell.
 *
 * Reproducible: every input is pinned, the layer tar is written with sorted names, owner 0 and
 * mtime 0, gzip without a timestamp, and the config's creation time is the last commit's; the same
 * sources give the same digest.
 *
 * Output: dist/image/kubectl-nkvm-<version>.oci.tar, an OCI image layout (index.json with one
 * manifest per platform) that also holds a docker-archive manifest.json for the host platform:
 * `ctr images import`, `docker load` and `podman load` all take it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { CACHE_DIR, REPO_ROOT } from '../../test/cluster/paths.ts';
import { imageReference } from '../../src/install/image.ts';
import { pluginVersion } from '../../src/version.ts';

const DEBIAN_POOL = 'http://deb.debian.org/debian/pool/main';

/** Debian 12 packages: what Node's Linux binary links against (libc, libm, libdl, libpthread, libstdc++, libgcc_s, libatomic), and the CAs. */
const PACKAGES: Record<'amd64' | 'arm64' | 'all', { file: string; sha256: string }[]> = {
  amd64: [
    { file: 'g/glibc/libc6_2.36-9+deb12u14_amd64.deb', sha256: 'ba4f88f73dbc3ae9055f3c20f4523bfdbaf1ad13ff95e258924f77d20b4fbedf' },
    { file: 'g/gcc-12/libstdc++6_12.2.0-14+deb12u1_amd64.deb', sha256: '5cd3171216d4ab0fc911cfe9c35509bf2dd8f47761c43b7f6a4296701551a24d' },
    { file: 'g/gcc-12/libgcc-s1_12.2.0-14+deb12u1_amd64.deb', sha256: '3016e62cb4b7cd8038822870601f5ed131befe942774d0f745622cc77d8a88f7' },
    { file: 'g/gcc-12/libatomic1_12.2.0-14+deb12u1_amd64.deb', sha256: 'fbd4e154a6b444229ea002cc209df099209c0adc09102e5fd21239a3d2b55e2d' },
  ],
  arm64: [
    { file: 'g/glibc/libc6_2.36-9+deb12u14_arm64.deb', sha256: '01f4330719fd4f65580e16ea5a0527f372fca750e8f588d26deaf09f2d3b1cf4' },
    { file: 'g/gcc-12/libstdc++6_12.2.0-14+deb12u1_arm64.deb', sha256: '26e138c677a985775331373828a6c286c551ff397cb735d00e2383cb273d1cb2' },
    { file: 'g/gcc-12/libgcc-s1_12.2.0-14+deb12u1_arm64.deb', sha256: '576926b283613db80168ddf76380a3bd877602778cf0d226caa7bfbfa71eacf3' },
    { file: 'g/gcc-12/libatomic1_12.2.0-14+deb12u1_arm64.deb', sha256: '1693aa13ce2b30d061a519fc28b77b9bab8c8e45804ced5969d99821e1bc2159' },
  ],
  all: [{ file: 'c/ca-certificates/ca-certificates_20230311+deb12u1_all.deb', sha256: '0d5f444f594e48c1e16a41d8fc628a09b24c658916a1274025c2330f2a802bed' }],
};

const ARCHES = ['amd64', 'arm64'] as const;
type Arch = (typeof ARCHES)[number];
/** The user the image runs as: not root, and the uid distroless images use. */
const NONROOT = 65532;

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const log = (text: string) => process.stderr.write(`[image] ${text}\n`);

/** A pinned package, downloaded once into the cache and checked every time. */
function debPackage(entry: { file: string; sha256: string }): string {
  const dir = path.join(CACHE_DIR, 'debs');
  fs.mkdirSync(dir, { recursive: true });
  const local = path.join(dir, path.basename(entry.file));
  if (!fs.existsSync(local)) {
    execFileSync('curl', ['-fsSL', '--retry', '3', '-o', `${local}.partial`, `${DEBIAN_POOL}/${entry.file}`]);
    fs.renameSync(`${local}.partial`, local);
  }
  const actual = sha256(fs.readFileSync(local));
  if (actual !== entry.sha256) throw new Error(`${local}: sha256 ${actual}, expected ${entry.sha256}`);
  return local;
}

function releaseArchive(arch: Arch): string {
  const archive = path.join(REPO_ROOT, 'dist', 'release', `kubectl-nkvm_linux_${arch}.tar.gz`);
  if (!fs.existsSync(archive)) throw new Error(`${archive} is missing: run \`node scripts/release/release.ts --platforms linux/amd64,linux/arm64\` first (npm run image does)`);
  return archive;
}

/** The release's single executable for linux/<arch>, unpacked from its archive. */
function releaseExecutable(arch: Arch, into: string): void {
  const archive = releaseArchive(arch);
  const unpacked = fs.mkdtempSync(path.join(into, '..', 'release-'));
  execFileSync('tar', ['-xzf', archive, '-C', unpacked, 'kubectl-nkvm']);
  fs.mkdirSync(path.join(into, 'usr', 'local', 'bin'), { recursive: true });
  fs.renameSync(path.join(unpacked, 'kubectl-nkvm'), path.join(into, 'usr', 'local', 'bin', 'kubectl-nkvm'));
  fs.rmSync(unpacked, { recursive: true });
}

function populate(arch: Arch, root: string): void {
  for (const entry of [...PACKAGES[arch], ...PACKAGES.all]) execFileSync('dpkg-deb', ['-x', debPackage(entry), root]);
  // One bundle file, as update-ca-certificates would make it, in a fixed order.
  const mozilla = path.join(root, 'usr', 'share', 'ca-certificates', 'mozilla');
  const bundle = fs.readdirSync(mozilla).filter((name) => name.endsWith('.crt')).sort().map((name) => fs.readFileSync(path.join(mozilla, name), 'utf8').trimEnd() + '\n').join('');
  fs.mkdirSync(path.join(root, 'etc', 'ssl', 'certs'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc', 'ssl', 'certs', 'ca-certificates.crt'), bundle);
  // Only what runs: no documentation, package scripts, locales' conversion modules or helper programs.
  for (const dropped of ['usr/share', 'usr/lib/x86_64-linux-gnu/gconv', 'usr/lib/aarch64-linux-gnu/gconv', 'usr/bin', 'usr/sbin', 'sbin', 'usr/libexec', 'etc/ld.so.conf.d', 'usr/lib/gcc']) {
    fs.rmSync(path.join(root, dropped), { recursive: true, force: true });
  }
  releaseExecutable(arch, root);
  fs.writeFileSync(path.join(root, 'etc', 'passwd'), `root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:${NONROOT}:${NONROOT}:nonroot:/tmp:/sbin/nologin\n`);
  fs.writeFileSync(path.join(root, 'etc', 'group'), `root:x:0:\nnonroot:x:${NONROOT}:\n`);
  fs.mkdirSync(path.join(root, 'tmp'), { mode: 0o1777 });
  fs.chmodSync(path.join(root, 'tmp'), 0o1777);
}

interface Blob {
  digest: string;
  size: number;
  mediaType: string;
}

class Layout {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
    fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  }
  add(data: Buffer, mediaType: string): Blob {
    const hex = sha256(data);
    fs.writeFileSync(path.join(this.dir, 'blobs', 'sha256', hex), data);
    return { digest: `sha256:${hex}`, size: data.length, mediaType };
  }
}

/** One platform's image: a gzipped layer, its config and its manifest, into the layout. */
function buildPlatform(arch: Arch, layout: Layout, workDir: string, created: string): { manifest: Blob; config: Blob; layer: Blob } {
  const root = path.join(workDir, `rootfs-${arch}`);
  fs.mkdirSync(root, { recursive: true });
  populate(arch, root);
  const tarFile = path.join(workDir, `layer-${arch}.tar`);
  execFileSync('tar', ['--create', '--file', tarFile, '--format=gnu', '--sort=name', '--numeric-owner', '--owner=0', '--group=0', '--mtime=@0', '-C', root, '.']);
  const tar = fs.readFileSync(tarFile);
  // zlib writes no timestamp or name into the gzip header: the same tar gives the same bytes.
  const layer = layout.add(zlib.gzipSync(tar, { level: 6 }), 'application/vnd.oci.image.layer.v1.tar+gzip');
  const config = layout.add(
    Buffer.from(
      JSON.stringify({
        created,
        architecture: arch,
        os: 'linux',
        config: {
          User: `${NONROOT}:${NONROOT}`,
          Env: ['PATH=/usr/local/bin', 'HOME=/tmp'],
          Entrypoint: ['/usr/local/bin/kubectl-nkvm'],
          Cmd: ['--help'],
          WorkingDir: '/tmp',
          Labels: { 'org.opencontainers.image.title': 'kubectl-nkvm', 'org.opencontainers.image.version': pluginVersion },
        },
        rootfs: { type: 'layers', diff_ids: [`sha256:${sha256(tar)}`] },
        history: [{ created, created_by: 'kubectl-nkvm scripts/image/build.ts' }],
      }),
    ),
    'application/vnd.oci.image.config.v1+json',
  );
  const manifest = layout.add(
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [layer] })),
    'application/vnd.oci.image.manifest.v1+json',
  );
  return { manifest, config, layer };
}

export interface BuiltImage {
  archive: string;
  reference: string;
  /** The digest of the multi-platform index: what manifests pin. */
  digest: string;
}

/**
 * The image for the release archives in dist/release, written into `outDir`. The same inputs give
 * the same bytes, so an image is kept under the cache keyed by all of them (the two archives, this
 * script, which pins every package, the creation time and the reference) and copied from there the
 * next time; `fresh` builds it anyway (and checks it against the one kept).
 */
export function buildImage(outDir = path.join(REPO_ROOT, 'dist', 'image'), options: { fresh?: boolean } = {}): BuiltImage {
  const reference = imageReference(pluginVersion);
  const created = new Date(
    1000 * Number(process.env.SOURCE_DATE_EPOCH ?? (spawnSync('git', ['log', '-1', '--format=%ct'], { cwd: REPO_ROOT, encoding: 'utf8' }).stdout.trim() || 0)),
  ).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const key = createHash('sha256').update(JSON.stringify({ created, reference })).update(fs.readFileSync(import.meta.filename));
  for (const arch of ARCHES) key.update(fs.readFileSync(releaseArchive(arch)));
  const cached = path.join(CACHE_DIR, 'image', key.digest('hex').slice(0, 32));
  const archiveName = `kubectl-nkvm-${pluginVersion}.oci.tar`;
  const cachedDigest = fs.existsSync(path.join(cached, 'digest')) ? fs.readFileSync(path.join(cached, 'digest'), 'utf8') : undefined;
  fs.mkdirSync(outDir, { recursive: true });
  if (cachedDigest && !options.fresh) {
    fs.copyFileSync(path.join(cached, archiveName), path.join(outDir, archiveName));
    return { archive: path.join(outDir, archiveName), reference, digest: cachedDigest };
  }
  const built = buildImageFrom(outDir, reference, created);
  if (cachedDigest && cachedDigest !== built.digest) throw new Error(`the image built now (${built.digest}) differs from the one built before from the same inputs (${cachedDigest}, ${cached})`);
  if (!cachedDigest) {
    // Made aside and renamed into place: another process may be building the same image.
    const partial = `${cached}.${process.pid}.partial`;
    fs.mkdirSync(partial, { recursive: true });
    fs.copyFileSync(built.archive, path.join(partial, archiveName));
    fs.writeFileSync(path.join(partial, 'digest'), built.digest);
    try {
      fs.renameSync(partial, cached);
    } catch {
      fs.rmSync(partial, { recursive: true, force: true }); // the other one was first
    }
    // The three newest images are kept: each is about 90 MB.
    const images = path.join(CACHE_DIR, 'image');
    const byAge = fs.readdirSync(images).filter((name) => !name.endsWith('.partial')).map((name) => path.join(images, name)).sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
    for (const old of byAge.slice(3)) fs.rmSync(old, { recursive: true, force: true });
  }
  return built;
}

function buildImageFrom(outDir: string, reference: string, created: string): BuiltImage {
  const workDir = fs.mkdtempSync(path.join(outDir, 'work-'));
  try {
    const layout = new Layout(path.join(workDir, 'layout'));
    const platforms = ARCHES.map((arch) => ({ arch, ...buildPlatform(arch, layout, workDir, created) }));
    const index = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: platforms.map(({ arch, manifest }) => ({ ...manifest, platform: { architecture: arch, os: 'linux' } })),
    };
    const indexBlob = layout.add(Buffer.from(JSON.stringify(index)), index.mediaType);
    // The layout's entry point names the index and the tag it is imported under.
    fs.writeFileSync(path.join(layout.dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    fs.writeFileSync(
      path.join(layout.dir, 'index.json'),
      JSON.stringify({ schemaVersion: 2, mediaType: index.mediaType, manifests: [{ ...indexBlob, annotations: { 'io.containerd.image.name': reference, 'org.opencontainers.image.ref.name': pluginVersion } }] }),
    );
    // docker-archive's manifest.json (docker < 25 reads only this): the host's platform.
    const host = platforms.find((platform) => platform.arch === (process.arch === 'arm64' ? 'arm64' : 'amd64'))!;
    const blobPath = (blob: Blob) => `blobs/sha256/${blob.digest.slice('sha256:'.length)}`;
    fs.writeFileSync(path.join(layout.dir, 'manifest.json'), JSON.stringify([{ Config: blobPath(host.config), RepoTags: [reference], Layers: [blobPath(host.layer)] }]));
    const archive = path.join(outDir, `kubectl-nkvm-${pluginVersion}.oci.tar`);
    execFileSync('tar', ['--create', '--file', `${archive}.partial`, '--format=gnu', '--sort=name', '--numeric-owner', '--owner=0', '--group=0', '--mtime=@0', '-C', layout.dir, '.']);
    fs.renameSync(`${archive}.partial`, archive);
    return { archive, reference, digest: indexBlob.digest };
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const built = buildImage();
  log(`${built.archive} (${(fs.statSync(built.archive).size / 1048576).toFixed(1)} MiB): ${built.reference}@${built.digest}`);
  console.log(`${built.reference}@${built.digest}`);
}
