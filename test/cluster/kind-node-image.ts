/**
 * The kind provider's node image, assembled offline instead of pulled: kind's own (kindest/node)
 * cannot be pulled here, and `kind build node-image` pulls images and clones sources. It is what
 * kind's images/base Dockerfile makes, on Debian bookworm (systemd 252 still boots on cgroup v1):
 *   - a debootstrapped root with that Dockerfile's packages, Debian's containerd, runc and CNI plugins
 *     in place of the ones it compiles, and the files of images/base/files from the kind module;
 *   - the Kubernetes binaries scripts/build-cluster-binaries.sh compiles (kubeadm, kubelet, kubectl);
 *   - the images kubeadm v1.34 deploys, made from the same binaries, preloaded into containerd,
 *     with the local cluster's pause, local-path-provisioner and helper (its helper pods') images;
 *   - a static CNI config instead of kindnetd (which no registry here serves): one node needs no
 *     routes to other nodes, and local-path as the default StorageClass, as kind ships it.
 * Cached by content: the debootstrapped root and the finished root as tarballs under the cache, the
 * image in Docker under a tag carrying the key.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  buildArchive, buildImages, type BuiltImage, contentKey, HELPER_IMAGE, HELPER_IMAGE_WITHOUT_SHELL, type ImageSpec, installBinary, LOCAL_PATH_PROVISIONER_IMAGE, sha256,
} from './images/build.ts';
import { ensureDocker } from './docker.ts';
import { localPathStorageManifest } from './local-path-storage.ts';
import { run, waitFor } from './run.ts';
import {
  CACHE_DIR, corednsBinary, KUBEADM_COREDNS_VERSION, KUBEADM_ETCD_VERSION, kubeadmEtcdBinary, KUBERNETES_VERSION,
  kindModuleDir, kubernetesBinDir,
} from './paths.ts';

/** Tarballs and imports of a gigabyte. */
const SLOW = { timeoutMs: 900_000 };

const DEBIAN_SUITE = 'bookworm';
const DEBIAN_MIRROR = process.env.NKVM_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';
/** kind's base image packages (images/base/Dockerfile), less the rootless and network-storage ones, plus the runtime it compiles. */
const NODE_PACKAGES = [
  'systemd', 'conntrack', 'iptables', 'nftables', 'iproute2', 'ethtool', 'util-linux', 'mount', 'kmod', 'libseccomp2',
  'pigz', 'e2fsprogs', 'bash', 'ca-certificates', 'jq', 'procps', 'containerd', 'runc', 'containernetworking-plugins',
];
/** kube-proxy programs iptables: its image carries these packages' files from the node root. */
const IPTABLES_PACKAGES = ['iptables', 'libxtables12', 'libip4tc2', 'libip6tc2', 'libnftnl11', 'libmnl0', 'libnetfilter-conntrack3', 'libnfnetlink0', 'libc6'];
const KUBEADM_IMAGE_REPOSITORY = 'registry.k8s.io';
const CNI_PLUGINS = ['host-local', 'loopback', 'ptp', 'portmap'];
/** kind's default pod subnet; the controller-manager gives the only node its first /24. */
const POD_SUBNET = '10.244.0.0/24';
const NODE_IMAGE_REPOSITORY = 'nkvm.local/kind-node';
const KIND_DIR = path.join(CACHE_DIR, 'kind');

async function imageExists(image: string): Promise<boolean> {
  return run('docker', ['image', 'inspect', image], { timeoutMs: 30_000 }).then(() => true, () => false);
}

/** debootstrap is slow (minutes) and needs the mirror: its root is kept as a tarball. */
async function debootstrappedRoot(): Promise<string> {
  const key = sha256([DEBIAN_SUITE, DEBIAN_MIRROR, ...NODE_PACKAGES].join(' ')).slice(0, 16);
  const tarball = path.join(KIND_DIR, `${DEBIAN_SUITE}-${key}.tar`);
  if (fs.existsSync(tarball)) return tarball;
  fs.mkdirSync(KIND_DIR, { recursive: true });
  const root = fs.mkdtempSync(path.join(KIND_DIR, 'debootstrap-'));
  try {
    await run('debootstrap', ['--variant=minbase', `--include=${NODE_PACKAGES.join(',')}`, DEBIAN_SUITE, root, DEBIAN_MIRROR], { timeoutMs: 1_800_000 });
    fs.rmSync(path.join(root, 'var', 'cache', 'apt', 'archives'), { recursive: true, force: true });
    await run('tar', ['--create', '--file', `${tarball}.partial`, '--numeric-owner', '--xattrs', '-C', root, '.'], SLOW);
    fs.renameSync(`${tarball}.partial`, tarball);
    return tarball;
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

/** Files of installed Debian packages (their dpkg lists), copied from one root into another with their symlinks. */
function copyPackageFiles(fromRoot: string, toRoot: string, packages: string[]): void {
  for (const link of ['bin', 'sbin', 'lib', 'lib64']) {
    const target = fs.readlinkSync(path.join(fromRoot, link)); // merged /usr: usr/bin, ...
    fs.mkdirSync(path.join(toRoot, target), { recursive: true });
    fs.symlinkSync(target, path.join(toRoot, link));
  }
  const info = path.join(fromRoot, 'var', 'lib', 'dpkg', 'info');
  for (const pkg of packages) {
    const list = [`${pkg}.list`, `${pkg}:amd64.list`].map((name) => path.join(info, name)).find((file) => fs.existsSync(file));
    if (!list) throw new Error(`package ${pkg} is not installed in ${fromRoot}`);
    for (const entry of fs.readFileSync(list, 'utf8').split('\n').filter(Boolean)) {
      const source = path.join(fromRoot, entry);
      const stat = fs.lstatSync(source, { throwIfNoEntry: false });
      const target = path.join(toRoot, entry);
      // Directories come with their files; /lib and the like (merged /usr) are linked above.
      if (!stat || stat.isDirectory() || fs.lstatSync(target, { throwIfNoEntry: false })) continue;
      fs.mkdirSync(path.dirname(target), { recursive: true });
      if (stat.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(source), target);
      else fs.copyFileSync(source, target);
    }
  }
  // update-alternatives links (iptables -> xtables-nft-multi), made by maintainer scripts, not listed.
  for (const dir of ['usr/sbin', 'etc/alternatives']) {
    fs.mkdirSync(path.join(toRoot, dir), { recursive: true });
    for (const name of fs.readdirSync(path.join(fromRoot, dir)).filter((n) => /^(ip6?tables|arptables|ebtables)/.test(n))) {
      const source = path.join(fromRoot, dir, name);
      if (fs.lstatSync(source).isSymbolicLink() && !fs.existsSync(path.join(toRoot, dir, name))) fs.symlinkSync(fs.readlinkSync(source), path.join(toRoot, dir, name));
    }
  }
}

const IMAGE_PATH = ['PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin'];

/** The images kubeadm's manifests name (pulled with IfNotPresent, so only the exact tags count). */
function kubeadmImageSpecs(nodeRoot: string): ImageSpec[] {
  const binaryImage = (name: string, tag: string, binary: string): ImageSpec => ({
    name: `${KUBEADM_IMAGE_REPOSITORY}/${name}:${tag}`,
    cmd: [path.basename(binary)],
    env: IMAGE_PATH,
    populate: (root) => installBinary(root, binary, path.basename(binary)),
  });
  return [
    ...['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'].map((name) => binaryImage(name, KUBERNETES_VERSION, path.join(kubernetesBinDir, name))),
    binaryImage('etcd', `${KUBEADM_ETCD_VERSION.slice(1)}-0`, kubeadmEtcdBinary),
    {
      name: `${KUBEADM_IMAGE_REPOSITORY}/coredns/coredns:${KUBEADM_COREDNS_VERSION}`,
      entrypoint: ['/coredns'],
      cmd: [],
      env: IMAGE_PATH,
      populate: (root) => installBinary(root, corednsBinary, 'coredns', '.'),
    },
    {
      name: `${KUBEADM_IMAGE_REPOSITORY}/kube-proxy:${KUBERNETES_VERSION}`,
      cmd: ['kube-proxy'],
      env: IMAGE_PATH,
      populate: (root) => {
        copyPackageFiles(nodeRoot, root, IPTABLES_PACKAGES);
        installBinary(root, path.join(kubernetesBinDir, 'kube-proxy'), 'kube-proxy');
      },
    },
  ];
}

/** images/base's Dockerfile steps, on the debootstrapped root. */
async function applyKindBaseFiles(root: string): Promise<void> {
  const files = path.join(kindModuleDir, 'images', 'base', 'files');
  if (!fs.existsSync(files)) throw new Error(`${files} is missing: run \`sh scripts/bootstrap.sh --cluster\``);
  fs.cpSync(files, root, { recursive: true, verbatimSymlinks: true, force: true });
  // The module cache is read-only: scripts 0755, the rest 0644, directories 0755 (as the Dockerfile's COPY --chmod).
  const fix = (dir: string) => {
    for (const entry of fs.readdirSync(path.join(files, dir), { withFileTypes: true })) {
      const relative = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        fs.chmodSync(path.join(root, relative), 0o755);
        fix(relative);
      } else {
        fs.chmodSync(path.join(root, relative), /^(usr\/local\/bin|kind\/bin)\//.test(relative) ? 0o755 : 0o644);
      }
    }
  };
  fix('.');
  const rmGlob = (dir: string, pattern: RegExp) => {
    const full = path.join(root, dir);
    if (!fs.existsSync(full)) return;
    for (const name of fs.readdirSync(full).filter((n) => pattern.test(n))) fs.rmSync(path.join(full, name), { force: true });
  };
  rmGlob('lib/systemd/system/sysinit.target.wants', /^systemd-tmpfiles-setup\.service$/);
  rmGlob('lib/systemd/system/multi-user.target.wants', /./);
  for (const wants of fs.readdirSync(path.join(root, 'etc/systemd/system')).filter((n) => n.endsWith('.wants'))) rmGlob(`etc/systemd/system/${wants}`, /./);
  rmGlob('lib/systemd/system/local-fs.target.wants', /./);
  rmGlob('lib/systemd/system/sockets.target.wants', /udev|initctl/);
  rmGlob('lib/systemd/system/basic.target.wants', /./);
  fs.appendFileSync(path.join(root, 'etc/systemd/journald.conf'), 'ReadKMsg=no\n');
  fs.rmSync(path.join(root, 'usr/sbin/init'), { force: true });
  fs.symlinkSync('/usr/lib/systemd/systemd', path.join(root, 'usr/sbin/init'));
  await run('chroot', [root, 'systemctl', 'enable', 'kubelet.service', 'containerd.service', 'undo-mount-hacks.service']);
  await run('chroot', [root, 'systemctl', 'mask', 'systemd-binfmt.service']);
  fs.mkdirSync(path.join(root, 'etc/kubernetes/manifests'), { recursive: true });

  // Debian's containerd and CNI plugins, where kind's units and config look for its own builds.
  fs.symlinkSync('/usr/bin/containerd', path.join(root, 'usr/local/bin/containerd'));
  fs.mkdirSync(path.join(root, 'opt/cni/bin'), { recursive: true });
  for (const plugin of CNI_PLUGINS) fs.symlinkSync(`/usr/lib/cni/${plugin}`, path.join(root, 'opt/cni/bin', plugin));
  const spec = JSON.parse(await run('ctr', ['oci', 'spec'])) as { hooks?: { createContainer?: { path: string }[] }; process: { rlimits?: unknown } };
  spec.hooks = { ...spec.hooks, createContainer: [...(spec.hooks?.createContainer ?? []), { path: '/kind/bin/mount-product-files.sh' }] };
  delete spec.process.rlimits;
  fs.writeFileSync(path.join(root, 'etc/containerd/cri-base.json'), JSON.stringify(spec, null, 2));
  // Where the node's own oom_score_adj cannot be lowered (no CAP_SYS_RESOURCE in the bounding set),
  // containerd must not ask for less than its own; elsewhere clamping to it changes nothing that matters.
  const config = path.join(root, 'etc/containerd/config.toml');
  fs.writeFileSync(config, fs.readFileSync(config, 'utf8').replace('restrict_oom_score_adj = false', 'restrict_oom_score_adj = true'));
}

function writeKubernetesFiles(root: string): void {
  for (const name of ['kubeadm', 'kubelet', 'kubectl']) installBinary(root, path.join(kubernetesBinDir, name), name, 'usr/bin');
  fs.writeFileSync(path.join(root, 'kind/version'), `${KUBERNETES_VERSION}\n`);
  fs.mkdirSync(path.join(root, 'kind/manifests'), { recursive: true });
  // kind creates this unless the cluster config disables the default CNI; the network is the static config below.
  fs.writeFileSync(path.join(root, 'kind/manifests/default-cni.yaml'), `apiVersion: v1
kind: ConfigMap
metadata:
  name: nkvm-static-cni
  namespace: kube-system
data:
  note: pod networking is the static /etc/cni/net.d/10-static.conflist of the node image (single node, no kindnetd)
`);
  fs.writeFileSync(
    path.join(root, 'kind/manifests/default-storage.yaml'),
    localPathStorageManifest({ basePath: '/var/local-path-provisioner', provisionerImage: LOCAL_PATH_PROVISIONER_IMAGE, helperImage: HELPER_IMAGE }),
  );
  fs.mkdirSync(path.join(root, 'etc/cni/net.d'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc/cni/net.d/10-static.conflist'), JSON.stringify({
    cniVersion: '0.4.0',
    name: 'static',
    plugins: [
      { type: 'ptp', ipMasq: true, mtu: 1500, ipam: { type: 'host-local', dataDir: '/run/cni-ipam-state', ranges: [[{ subnet: POD_SUBNET }]], routes: [{ dst: '0.0.0.0/0' }] } },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  }, null, 2));
}

/** Imports image archives into the root's containerd store with a containerd of our own, as the node's would. */
async function preloadImages(root: string, images: BuiltImage[]): Promise<void> {
  const state = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-preload-'));
  const socket = path.join(state, 'containerd.sock');
  fs.writeFileSync(path.join(state, 'config.toml'), `version = 2
root = "${path.join(root, 'var/lib/containerd')}"
state = "${path.join(state, 'state')}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "${socket}"
`);
  const containerd = execFile('containerd', ['--config', path.join(state, 'config.toml')]);
  try {
    const ctr = ['--address', socket, '--namespace', 'k8s.io'];
    await waitFor('the preloading containerd', 15_000, async () => (await run('ctr', [...ctr, 'version'], { timeoutMs: 5000 }), true));
    for (const { name, archive } of images) {
      await run('ctr', [...ctr, 'images', 'import', '--no-unpack', archive], SLOW);
      // Pinned, as kind's node build does, so the kubelet's image GC never removes them.
      await run('ctr', [...ctr, 'images', 'label', name, 'io.cri-containerd.pinned=pinned']);
    }
  } finally {
    containerd.kill('SIGTERM');
    await new Promise((resolve) => containerd.once('exit', resolve));
    fs.rmSync(state, { recursive: true, force: true });
  }
}

function nodeImageKey(): string {
  const sources = [import.meta.filename, path.join(import.meta.dirname, 'local-path-storage.ts'), path.join(import.meta.dirname, 'images', 'build.ts')];
  return sha256([contentKey(sources), KUBERNETES_VERSION, KUBEADM_ETCD_VERSION, KUBEADM_COREDNS_VERSION, DEBIAN_SUITE, ...NODE_PACKAGES].join(' ')).slice(0, 12);
}

/**
 * The node image's name, built or imported into Docker when it is not there yet. A finished root is
 * kept as a tarball, so a Docker daemon with an empty store (a fresh machine, or a reset) imports
 * it in seconds instead of building it again.
 */
export async function ensureKindNodeImage(log: (line: string) => void = () => {}): Promise<string> {
  const key = nodeImageKey();
  const image = `${NODE_IMAGE_REPOSITORY}:${KUBERNETES_VERSION}-${key}`;
  if (await imageExists(image)) return image;
  const tarball = path.join(KIND_DIR, `node-${key}.tar`);
  if (!fs.existsSync(tarball)) {
    const started = Date.now();
    log(`building the kind node image ${image} (first time: a few minutes)`);
    const base = await debootstrappedRoot();
    const work = fs.mkdtempSync(path.join(KIND_DIR, 'node-'));
    try {
      const root = path.join(work, 'root');
      fs.mkdirSync(root);
      await run('tar', ['--extract', '--file', base, '--numeric-owner', '--xattrs', '-C', root], SLOW);
      await applyKindBaseFiles(root);
      writeKubernetesFiles(root);
      const kubeadmImages = await buildKubeadmImages(root, path.join(work, 'images'));
      // What the node itself runs: pause, and local-path with its helper image; tests load the rest.
      await preloadImages(root, [...kubeadmImages, ...buildImages().filter((built) => built.name !== HELPER_IMAGE_WITHOUT_SHELL)]);
      await run('tar', ['--create', '--file', `${tarball}.partial`, '--numeric-owner', '--xattrs', '-C', root, '.'], SLOW);
      fs.renameSync(`${tarball}.partial`, tarball);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
    // A gigabyte each: only the current one is kept.
    for (const old of fs.readdirSync(KIND_DIR).filter((name) => /^node-\w+\.tar$/.test(name) && name !== path.basename(tarball))) fs.rmSync(path.join(KIND_DIR, old));
    log(`built the kind node image in ${Math.round((Date.now() - started) / 1000)} s`);
  }
  // docker import takes ENTRYPOINT and ENV but, before Docker 23, not STOPSIGNAL (systemd exits on
  // SIGRTMIN+3; SIGTERM makes it re-execute): a one-line build adds it.
  const imported = `${image}-imported`;
  await run('docker', ['import', tarball, imported], SLOW);
  await run('docker', ['build', '--tag', image, '-'], {
    ...SLOW,
    env: { ...process.env, DOCKER_BUILDKIT: '0' },
    input: `FROM ${imported}\nENV container=docker\nSTOPSIGNAL SIGRTMIN+3\nENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]\n`,
  });
  await run('docker', ['rmi', imported]);
  const others = (await run('docker', ['images', '--format', '{{.Repository}}:{{.Tag}}', NODE_IMAGE_REPOSITORY])).split('\n').filter((name) => name && name !== image);
  if (others.length > 0) await run('docker', ['rmi', ...others]).catch(() => ''); // one a running cluster still uses stays
  return image;
}

/** Built per node image (kube-proxy's carries files from its root), not through the shared image cache. */
async function buildKubeadmImages(nodeRoot: string, dir: string): Promise<BuiltImage[]> {
  return kubeadmImageSpecs(nodeRoot).map((spec, index) => {
    const workDir = path.join(dir, String(index));
    fs.mkdirSync(workDir, { recursive: true });
    const archive = path.join(dir, `${index}.tar`);
    buildArchive(spec, archive, workDir);
    return { name: spec.name, archive };
  });
}

if (import.meta.main) {
  await ensureDocker((line) => console.error(line));
  console.log(await ensureKindNodeImage((line) => console.error(line)));
}
