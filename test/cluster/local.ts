/**
 * The `local` provider: a real single-node cluster from upstream binaries (etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler, kubelet) and Debian's containerd, runc and CNI plugins,
 * started in the order of kubernetes' hack/local-up-cluster.sh, without DNS; a DNAT rule of its own
 * stands in for kube-proxy for the one Service pods need, `kubernetes`. Its default StorageClass is
 * KinD's, local-path-provisioner, provisioning into the cluster's volumes directory.
 *
 * Everything a cluster owns lives in its own directory (certs, kubeconfigs, etcd data, kubelet
 * root, containerd root/state, volumes, the files behind its loop devices, logs) and its own ports,
 * cgroup root, CNI bridge and node IP, so dispose() can stop exactly what it started and leave
 * nothing behind. state.json in that directory records it all, so `npm run cluster:down` can
 * dispose a cluster another process started.
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { csiStateDir, ensureSnapshotStorage, kubeletRootDirOf } from './csi-snapshots.ts';
import { buildImages, HELPER_IMAGE, HELPER_IMAGE_WITHOUT_SHELL, LOCAL_PATH_PROVISIONER_IMAGE, PAUSE_IMAGE } from './images/build.ts';
import { DEFAULT_STORAGE_CLASS, localPathStorageManifest } from './local-path-storage.ts';
import { etcdBinary, kubectlBinary, kubernetesBinDir, localPathProvisionerBinary } from './paths.ts';
import { run, sleep, waitFor } from './run.ts';
import { ClusterStartError, type TestCluster } from './types.ts';


/** Raw block volumes (volumeMode: Block): loop devices over sparse files, one PV each, sized in MiB. */
const BLOCK_STORAGE_CLASS = 'nkvm-block';
// Two tests take four each: an image restored into devices of its size (and one too small).
const BLOCK_DEVICE_SIZES_MIB = [64, 64, 64, 32, 64, 64, 64];
const COMPONENTS = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'containerd', 'kubelet'] as const;
type Component = (typeof COMPONENTS)[number];

/** Everything dispose() needs, persisted beside the cluster's files. */
interface LocalClusterState {
  name: string;
  dir: string;
  nodeIP: string;
  bridge: string;
  cgroupRoot: string;
  containerdSocket: string;
  pids: Partial<Record<Component, number>>;
  /** The loop devices behind the block PVs, in PV order; absent in states written before they existed. */
  loopDevices?: string[];
  /** This cluster's Service range (its own, so clusters side by side never share an address). */
  serviceCIDR?: string;
  /** The nat chain that sends pods' traffic for the `kubernetes` Service to the API server. */
  serviceChain?: string;
}

/** The `kubernetes` Service's ClusterIP: the first address of the range. */
function serviceIPOf(serviceCIDR: string): string {
  return serviceCIDR.replace(/\.0\/24$/, '.1');
}

/**
 * Pods reach the API server the standard way, through the `kubernetes` Service (the ClusterIP and
 * port 443 the kubelet puts in KUBERNETES_SERVICE_HOST/PORT): one DNAT rule per cluster, in a chain
 * of its own, to the API server on the node IP. kube-proxy would do the same, but two kube-proxies
 * on one host (a test cluster beside a dev cluster) rewrite each other's shared KUBE-* chains; a
 * chain per cluster cannot collide, and the cluster needs no other Service.
 */
async function routeKubernetesService(state: LocalClusterState, apiserverPort: number): Promise<void> {
  const chain = state.serviceChain!;
  await run('iptables', ['-t', 'nat', '-N', chain]);
  await run('iptables', ['-t', 'nat', '-A', chain, '-d', `${serviceIPOf(state.serviceCIDR!)}/32`, '-p', 'tcp', '--dport', '443', '-j', 'DNAT', '--to-destination', `${state.nodeIP}:${apiserverPort}`]);
  await run('iptables', ['-t', 'nat', '-I', 'PREROUTING', '-j', chain]);
}

async function unrouteKubernetesService(chain: string): Promise<void> {
  await run('iptables', ['-t', 'nat', '-D', 'PREROUTING', '-j', chain]).catch(() => '');
  await run('iptables', ['-t', 'nat', '-F', chain]).catch(() => '');
  await run('iptables', ['-t', 'nat', '-X', chain]).catch(() => '');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Distinct free ports, one per name. */
async function freePorts<Name extends string>(names: readonly Name[]): Promise<Record<Name, number>> {
  const taken = new Set<number>();
  const ports = {} as Record<Name, number>;
  for (const name of names) {
    let port = await freePort();
    while (taken.has(port)) port = await freePort();
    taken.add(port);
    ports[name] = port;
  }
  return ports;
}


function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** openssl, one key and certificate per identity, all signed by the cluster's own CA. */
async function makePki(pki: string, nodeName: string, nodeIP: string, serviceIP: string): Promise<void> {
  fs.mkdirSync(pki, { recursive: true });
  const key = (name: string) => run('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', path.join(pki, `${name}.key`)]);
  await key('ca');
  await run('openssl', ['req', '-x509', '-new', '-key', path.join(pki, 'ca.key'), '-subj', '/CN=nkvm-local-ca', '-days', '30', '-out', path.join(pki, 'ca.crt')]);
  const leaf = async (name: string, subject: string, extensions: string) => {
    await key(name);
    const extFile = path.join(pki, `${name}.ext`);
    fs.writeFileSync(extFile, `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n${extensions}\n`);
    await run('openssl', ['req', '-new', '-key', path.join(pki, `${name}.key`), '-subj', subject, '-out', path.join(pki, `${name}.csr`)]);
    await run('openssl', [
      'x509', '-req', '-in', path.join(pki, `${name}.csr`), '-CA', path.join(pki, 'ca.crt'), '-CAkey', path.join(pki, 'ca.key'),
      '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '30', '-extfile', extFile, '-out', path.join(pki, `${name}.crt`),
    ]);
  };
  await Promise.all([
    leaf('kube-apiserver', '/CN=kube-apiserver',
      `extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:${serviceIP},IP:${nodeIP}`),
    leaf('admin', '/O=system:masters/CN=nkvm-admin', 'extendedKeyUsage=clientAuth'),
    leaf('kube-controller-manager', '/CN=system:kube-controller-manager', 'extendedKeyUsage=clientAuth'),
    leaf('kube-scheduler', '/CN=system:kube-scheduler', 'extendedKeyUsage=clientAuth'),
    leaf('apiserver-kubelet-client', '/CN=kube-apiserver-kubelet-client', 'extendedKeyUsage=clientAuth'),
    leaf('kubelet', `/O=system:nodes/CN=system:node:${nodeName}`, 'extendedKeyUsage=clientAuth'),
    leaf('kubelet-serving', `/CN=${nodeName}`, `extendedKeyUsage=serverAuth\nsubjectAltName=DNS:${nodeName},IP:${nodeIP}`),
    key('service-account'),
  ]);
  await run('openssl', ['ec', '-in', path.join(pki, 'service-account.key'), '-pubout', '-out', path.join(pki, 'service-account.pub')]);
}

function writeKubeconfig(file: string, server: string, pki: string, user: string, clusterName: string): void {
  fs.writeFileSync(
    file,
    `apiVersion: v1
kind: Config
clusters:
- name: ${clusterName}
  cluster:
    server: ${server}
    certificate-authority: ${path.join(pki, 'ca.crt')}
users:
- name: ${user}
  user:
    client-certificate: ${path.join(pki, `${user}.crt`)}
    client-key: ${path.join(pki, `${user}.key`)}
contexts:
- name: ${clusterName}
  context:
    cluster: ${clusterName}
    user: ${user}
    namespace: default
current-context: ${clusterName}
`,
  );
}

function cgroupHierarchies(): string[] {
  const base = '/sys/fs/cgroup';
  return fs
    .readdirSync(base)
    .filter((entry) => entry !== 'unified' && fs.statSync(path.join(base, entry)).isDirectory() && !fs.lstatSync(path.join(base, entry)).isSymbolicLink())
    .map((entry) => path.join(base, entry));
}

/** The kubelet insists its --cgroup-root exists; cpuset needs cpus/mems before a task may join. */
function createCgroupRoot(cgroupRoot: string): void {
  for (const hierarchy of cgroupHierarchies()) {
    const dir = path.join(hierarchy, cgroupRoot);
    fs.mkdirSync(dir, { recursive: true });
    if (path.basename(hierarchy) === 'cpuset') {
      for (const file of ['cpuset.cpus', 'cpuset.mems']) {
        fs.writeFileSync(path.join(dir, file), fs.readFileSync(path.join(hierarchy, file), 'utf8'));
      }
    }
  }
}

function removeCgroupTree(dir: string): void {
  if (!fs.existsSync(dir)) return;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) removeCgroupTree(path.join(dir, entry.name));
  }
  try {
    fs.rmdirSync(dir);
  } catch {
    // A cgroup still holding a task cannot go; its processes were killed, so this is rare and harmless.
  }
}

export function mountsUnder(dir: string): string[] {
  const mountPoints = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((mountPoint): mountPoint is string => Boolean(mountPoint))
    // mountinfo escapes spaces and the like as octal.
    .map((mountPoint) => mountPoint.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))));
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  // Deepest first, so nested mounts come off before their parents.
  return [...new Set(mountPoints.filter((m) => m === dir || m.startsWith(prefix)))].sort((a, b) => b.length - a.length);
}

function startProcess(state: LocalClusterState, component: Component, command: string, args: string[]): void {
  const logFile = path.join(state.dir, 'logs', `${component}.log`);
  const log = fs.openSync(logFile, 'a');
  const child = spawn(command, args, {
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...process.env, PATH: `/usr/sbin:/usr/bin:/sbin:/bin:${process.env.PATH ?? ''}` },
  });
  fs.closeSync(log);
  child.unref();
  if (!child.pid) throw new Error(`could not start ${component}`);
  state.pids[component] = child.pid;
  saveState(state);
}

function saveState(state: LocalClusterState): void {
  fs.writeFileSync(path.join(state.dir, 'state.json'), `${JSON.stringify(state, null, 2)}\n`);
}

function tail(file: string, lines: number): string {
  if (!fs.existsSync(file)) return '(no log)';
  return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
}

function componentLogs(dir: string, lines = 40): string {
  return COMPONENTS.map((component) => `==> ${component}.log <==\n${tail(path.join(dir, 'logs', `${component}.log`), lines)}`).join('\n\n');
}

async function stopPid(pid: number | undefined, graceMs: number): Promise<void> {
  if (!pid || !isAlive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(100);
  if (isAlive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
    while (isAlive(pid)) await sleep(50);
  }
}

/** containerd's shims outlive containerd itself; find the ones serving this cluster's socket. */
function shimPids(containerdSocket: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (cmdline[0]?.includes('containerd-shim') && cmdline.includes(containerdSocket)) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

/** Sparse files under dir, each attached to a free loop device; returns the devices in order. */
async function attachBlockDevices(state: LocalClusterState): Promise<string[]> {
  const blockDir = path.join(state.dir, 'block');
  fs.mkdirSync(blockDir, { recursive: true });
  state.loopDevices = [];
  for (const [index, sizeMiB] of BLOCK_DEVICE_SIZES_MIB.entries()) {
    const file = path.join(blockDir, `dev-${index}.img`);
    fs.closeSync(fs.openSync(file, 'w'));
    fs.truncateSync(file, sizeMiB * 1024 * 1024);
    state.loopDevices.push((await run('losetup', ['--find', '--show', file])).trim());
    saveState(state);
  }
  return state.loopDevices;
}

/**
 * Loop devices whose backing file lies under dir, found by backing file rather than by the names
 * in state.json, which another cluster may have reused since. Besides ours this finds the kubelet's:
 * while a pod uses a block volume, the kubelet holds the device with a loop device of its own over
 * its bind mount of it (under the kubelet root), and a stopped kubelet never releases it.
 */
async function loopDevicesUnder(dir: string): Promise<{ name: string; backFile: string }[]> {
  const prefixes = new Set([dir]);
  try {
    prefixes.add(fs.realpathSync(dir));
  } catch {
    // dir is gone: its devices still name it as it was
  }
  const listed = JSON.parse((await run('losetup', ['--list', '--json', '--output', 'NAME,BACK-FILE'])).trim() || '{}') as {
    loopdevices?: { name: string; 'back-file': string | null }[];
  };
  return (listed.loopdevices ?? [])
    // A backing file removed while attached is listed with " (deleted)" appended.
    .map((device) => ({ name: device.name, backFile: (device['back-file'] ?? '').replace(/ \(deleted\)$/, '') }))
    .filter(({ backFile }) => [...prefixes].some((prefix) => backFile.startsWith(`${prefix}/`)));
}

async function detachLoopDevices(dir: string): Promise<void> {
  // The kubelet's devices first: each holds one of ours open, and a device detached while open
  // only goes once its last user lets go.
  const ours = path.join(dir, 'block') + '/';
  const devices = (await loopDevicesUnder(dir)).sort((a, b) => Number(a.backFile.includes(ours)) - Number(b.backFile.includes(ours)));
  for (const device of devices) await run('losetup', ['--detach', device.name]).catch(() => '');
  await waitFor(`the loop devices under ${dir} to detach`, 10_000, async () => (await loopDevicesUnder(dir)).length === 0).catch(async () => {
    const remaining = (await loopDevicesUnder(dir)).map((device) => `${device.name} (${device.backFile})`);
    throw new Error(`could not detach loop devices ${remaining.join(', ')}`);
  });
}

/** Stops a cluster from its recorded state: safe to run twice, and after a crash of the starter. */
export async function disposeLocalCluster(dir: string): Promise<void> {
  const stateFile = path.join(dir, 'state.json');
  if (!fs.existsSync(stateFile)) {
    await detachLoopDevices(dir);
    fs.rmSync(dir, { recursive: true, force: true });
    return;
  }
  const state = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as LocalClusterState;
  // The kubelet first, so it does not restart what we take down next.
  await stopPid(state.pids.kubelet, 10_000);
  // Before the containers go: a CSI driver's node plugin (test/cluster/csi-snapshots.ts) attaches
  // loop devices from inside its container, and their backing files read as paths under dir only
  // while that container lives (after, as paths inside its mount). Detached while still open, a
  // device goes once its last user lets go; the waiting detach below checks they all went.
  for (const device of await loopDevicesUnder(dir).catch(() => [])) await run('losetup', ['--detach', device.name]).catch(() => '');
  const ctr = ['--address', state.containerdSocket, '--namespace', 'k8s.io'];
  const netnsPaths = new Set<string>();
  if (state.pids.containerd && isAlive(state.pids.containerd)) {
    const containers = (await run('ctr', [...ctr, 'containers', 'list', '--quiet']).catch(() => '')).split('\n').filter(Boolean);
    for (const id of containers) {
      const info = await run('ctr', [...ctr, 'containers', 'info', id]).catch(() => '');
      for (const match of info.matchAll(/"path": "(\/var\/run\/netns\/[^"]+)"/g)) netnsPaths.add(match[1]!);
      await run('ctr', [...ctr, 'tasks', 'kill', '--signal', 'SIGKILL', id]).catch(() => '');
    }
    for (const id of containers) {
      await run('ctr', [...ctr, 'tasks', 'delete', '--force', id]).catch(() => '');
      await run('ctr', [...ctr, 'containers', 'delete', id]).catch(() => '');
    }
  }
  await stopPid(state.pids.containerd, 10_000);
  for (const pid of shimPids(state.containerdSocket)) await stopPid(pid, 2_000);
  for (const component of ['kube-scheduler', 'kube-controller-manager', 'kube-apiserver', 'etcd'] as const) {
    await stopPid(state.pids[component], 10_000);
  }
  for (const netns of netnsPaths) {
    await run('umount', [netns]).catch(() => '');
    fs.rmSync(netns, { force: true });
  }
  // Before the unmounts: the kubelet's loop devices keep its bind mounts of ours busy.
  await detachLoopDevices(dir).catch((error) => process.stderr.write(`cluster ${state.name}: ${(error as Error).message}\n`));
  for (const mountPoint of mountsUnder(dir)) {
    await run('umount', [mountPoint]).catch(() => run('umount', ['--lazy', mountPoint]).catch(() => ''));
  }
  if (state.serviceChain) await unrouteKubernetesService(state.serviceChain);
  await run('ip', ['link', 'delete', state.bridge]).catch(() => '');
  await run('ip', ['address', 'delete', `${state.nodeIP}/32`, 'dev', 'lo']).catch(() => '');
  // The empty cgroup2 hierarchy beside v1 ("unified") gets the same tree from the runtime; it goes too.
  for (const hierarchy of [...cgroupHierarchies(), '/sys/fs/cgroup/unified']) removeCgroupTree(path.join(hierarchy, state.cgroupRoot));
  const remaining = mountsUnder(dir);
  if (remaining.length > 0) throw new Error(`cluster ${state.name}: could not unmount ${remaining.join(', ')}`);
  await detachLoopDevices(dir).catch((error) => {
    throw new Error(`cluster ${state.name}: ${(error as Error).message}`);
  });
  fs.rmSync(dir, { recursive: true, force: true });
}

function containerdConfig(dir: string, socket: string, streamPort: number): string {
  return `version = 2
root = "${dir}/containerd/root"
state = "${dir}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "${socket}"

[ttrpc]
  address = "${socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  # The machine's bounding set lacks CAP_SYS_RESOURCE: negative oom_score_adj must be clamped.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "${streamPort}"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${dir}/cni/net.d"
`;
}

function kubeletConfig(state: LocalClusterState, ports: { kubelet: number; healthz: number }): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${state.nodeIP}
port: ${ports.kubelet}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${ports.healthz}
tlsCertFile: ${state.dir}/pki/kubelet-serving.crt
tlsPrivateKeyFile: ${state.dir}/pki/kubelet-serving.key
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: ${state.dir}/pki/ca.crt
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://${state.containerdSocket}
imageServiceEndpoint: unix://${state.containerdSocket}
cgroupDriver: cgroupfs
cgroupRoot: /${state.cgroupRoot}
cgroupsPerQOS: true
failSwapOn: false
# The images are imported, not pulled: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
makeIPTablesUtilChains: false
resolvConf: ""
podLogsDir: ${state.dir}/pod-logs
volumePluginDir: ${state.dir}/kubelet-plugins
serializeImagePulls: false
registerNode: true
rotateCertificates: false
staticPodPath: ""
`;
}

function cniConfig(state: LocalClusterState, subnet: string): string {
  return JSON.stringify(
    {
      cniVersion: '0.4.0',
      name: state.name,
      plugins: [
        {
          type: 'bridge',
          bridge: state.bridge,
          isGateway: true,
          ipMasq: false,
          // A default route through the bridge: Service addresses are off the pod subnet.
          ipam: { type: 'host-local', ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: path.join(state.dir, 'cni', 'ipam') },
        },
      ],
    },
    null,
    2,
  );
}

/** Local PVs must name their node; the kubelet labels it kubernetes.io/hostname=<--hostname-override>. */
function blockVolumesManifest(nodeName: string, loopDevices: string[]): string {
  return loopDevices
    .map(
      (device, index) => `---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: nkvm-block-pv-${index}
  labels:
    nkvm.dev/test-volume: "true"
spec:
  capacity:
    storage: ${BLOCK_DEVICE_SIZES_MIB[index]}Mi
  volumeMode: Block
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ${BLOCK_STORAGE_CLASS}
  local:
    path: ${device}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - key: kubernetes.io/hostname
          operator: In
          values: [${nodeName}]
`,
    )
    .join('');
}

/** The two StorageClasses: local-path (the default, dynamic, as on KinD) and the static block volumes. */
function storageManifest(dir: string, nodeName: string, loopDevices: string[]): string {
  return `${localPathStorageManifest({ basePath: path.join(dir, 'volumes'), provisionerImage: LOCAL_PATH_PROVISIONER_IMAGE, helperImage: HELPER_IMAGE })}---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: ${BLOCK_STORAGE_CLASS}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
reclaimPolicy: Retain
${blockVolumesManifest(nodeName, loopDevices)}`;
}

/** Proves the cluster end to end: a claim of the default class is provisioned, mounted, and exec works. */
const GATE_POD = `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: nkvm-cluster-gate
  namespace: default
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Mi}}
---
apiVersion: v1
kind: Pod
metadata:
  name: nkvm-cluster-gate
  namespace: default
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: gate
    image: ${HELPER_IMAGE}
    command: [sleep, "3600"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: nkvm-cluster-gate}}]
`;

const adminKubeconfig = (dir: string) => path.join(dir, 'admin.kubeconfig');

/** The handle tests get, for a cluster started here or by another process (attachLocalCluster). */
function localCluster(state: LocalClusterState): TestCluster {
  const { name, dir } = state;
  const kubeconfigPath = adminKubeconfig(dir);
  let disposed = false;
  const cluster: TestCluster = {
    name,
    provider: 'local',
    kubeconfigPath,
    dir,
    images: { helper: HELPER_IMAGE, helperWithoutShell: HELPER_IMAGE_WITHOUT_SHELL },
    storageClass: DEFAULT_STORAGE_CLASS,
    blockStorageClass: BLOCK_STORAGE_CLASS,
    kubectl: (args, options = {}) => run(kubectlBinary, ['--kubeconfig', kubeconfigPath, ...args], options),
    loadImageArchive: async (archive) => void (await run('ctr', ['--address', state.containerdSocket, '--namespace', 'k8s.io', 'images', 'import', '--all-platforms', archive], { timeoutMs: 300_000 })),
    enableSnapshots: () => ensureSnapshotStorage(cluster, { kubeletRootDir: kubeletRootDirOf(cluster), stateDir: csiStateDir(cluster) }),
    logs: async () => componentLogs(dir, 60),
    dispose: async () => {
      if (disposed) return;
      disposed = true;
      await disposeLocalCluster(dir);
    },
  };
  return cluster;
}

/** The handle of a running cluster another process started (test/cluster/shared.ts), from the state.json in its directory. */
export function attachLocalCluster(dir: string): TestCluster {
  const stateFile = path.join(dir, 'state.json');
  if (!fs.existsSync(stateFile)) throw new Error(`${dir} holds no local cluster (no state.json)`);
  return localCluster(JSON.parse(fs.readFileSync(stateFile, 'utf8')) as LocalClusterState);
}

export async function startLocalCluster(): Promise<TestCluster> {
  for (const binary of [etcdBinary, path.join(kubernetesBinDir, 'kubelet'), kubectlBinary, localPathProvisionerBinary]) {
    if (!fs.existsSync(binary)) {
      throw new ClusterStartError(`${binary} is missing`, 'run `sh scripts/bootstrap.sh --cluster` to build the cluster toolchain');
    }
  }
  if (process.getuid?.() !== 0) throw new ClusterStartError('the local provider must run as root (containerd, mounts, cgroups)', '');

  const id = randomUUID();
  const short = id.replace(/-/g, '').slice(0, 8);
  const name = `nkvm-it-${id}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-`));
  const octet2 = 128 + (parseInt(short.slice(0, 2), 16) % 120);
  const octet3 = parseInt(short.slice(2, 4), 16);
  const state: LocalClusterState = {
    name,
    dir,
    nodeIP: `10.${octet2}.${octet3}.1`,
    bridge: `nkvm${short}`,
    cgroupRoot: `nkvm-${short}`,
    containerdSocket: path.join(dir, 'containerd.sock'),
    pids: {},
    // Node IP, pod subnet (third octet ^ 0x80) and Service range (^ 0x40) differ in the third octet.
    serviceCIDR: `10.${octet2}.${octet3 ^ 0x40}.0/24`,
    serviceChain: `NKVM-${short.toUpperCase()}`,
  };
  for (const sub of ['logs', 'pki', 'etcd', 'kubelet', 'cni/net.d', 'volumes', 'pod-logs']) fs.mkdirSync(path.join(dir, sub), { recursive: true });
  saveState(state);

  const pki = path.join(dir, 'pki');
  const kubeconfigPath = adminKubeconfig(dir);
  const kubectl = (args: string[], options: { input?: string; timeoutMs?: number } = {}) =>
    run(kubectlBinary, ['--kubeconfig', kubeconfigPath, ...args], options);

  try {
    await run('ip', ['address', 'add', `${state.nodeIP}/32`, 'dev', 'lo']);
    const { etcdClient, etcdPeer, apiserver, kcm, scheduler, kubelet, healthz, stream } = await freePorts(
      ['etcdClient', 'etcdPeer', 'apiserver', 'kcm', 'scheduler', 'kubelet', 'healthz', 'stream'] as const,
    );
    const images = buildImages();
    await makePki(pki, name, state.nodeIP, serviceIPOf(state.serviceCIDR!));
    // On the address this cluster made (on lo), not every interface of the machine: pods reach it there too.
    const server = `https://${state.nodeIP}:${apiserver}`;
    writeKubeconfig(kubeconfigPath, server, pki, 'admin', name);
    for (const user of ['kube-controller-manager', 'kube-scheduler']) writeKubeconfig(path.join(dir, `${user}.kubeconfig`), server, pki, user, name);
    writeKubeconfig(path.join(dir, 'kubelet.kubeconfig'), server, pki, 'kubelet', name);

    startProcess(state, 'etcd', etcdBinary, [
      '--name', 'etcd', '--data-dir', path.join(dir, 'etcd'),
      '--listen-client-urls', `http://127.0.0.1:${etcdClient}`, '--advertise-client-urls', `http://127.0.0.1:${etcdClient}`,
      '--listen-peer-urls', `http://127.0.0.1:${etcdPeer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${etcdPeer}`,
      '--initial-cluster', `etcd=http://127.0.0.1:${etcdPeer}`, '--log-level', 'warn',
      '--unsafe-no-fsync', // a disposable test cluster: speed over durability
    ]);
    await waitFor('etcd', 30_000, async () => (await fetch(`http://127.0.0.1:${etcdClient}/health`)).ok);

    startProcess(state, 'kube-apiserver', path.join(kubernetesBinDir, 'kube-apiserver'), [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      // All addresses: 127.0.0.1 for the kubeconfigs, the node IP for pods through the kubernetes Service.
      `--bind-address=${state.nodeIP}`, `--secure-port=${apiserver}`, `--advertise-address=${state.nodeIP}`,
      `--tls-cert-file=${pki}/kube-apiserver.crt`, `--tls-private-key-file=${pki}/kube-apiserver.key`,
      `--client-ca-file=${pki}/ca.crt`,
      '--authorization-mode=Node,RBAC', '--enable-admission-plugins=NodeRestriction',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki}/service-account.pub`, `--service-account-signing-key-file=${pki}/service-account.key`,
      `--service-cluster-ip-range=${state.serviceCIDR}`,
      `--kubelet-client-certificate=${pki}/apiserver-kubelet-client.crt`, `--kubelet-client-key=${pki}/apiserver-kubelet-client.key`,
      '--kubelet-preferred-address-types=InternalIP',
      '--allow-privileged=true', `--cert-dir=${pki}`, '--endpoint-reconciler-type=none', '--profiling=false', '--v=1',
    ]);
    await waitFor('kube-apiserver /readyz', 90_000, async () => (await kubectl(['get', '--raw', '/readyz'], { timeoutMs: 5000 })).trim() === 'ok');
    // exec and logs go from the API server to the kubelet under this identity.
    await kubectl(['create', 'clusterrolebinding', 'nkvm-apiserver-kubelet-client', '--clusterrole=system:kubelet-api-admin', '--user=kube-apiserver-kubelet-client']);
    await routeKubernetesService(state, apiserver);

    const componentFlags = (user: string, port: number) => [
      `--kubeconfig=${dir}/${user}.kubeconfig`, `--authentication-kubeconfig=${dir}/${user}.kubeconfig`,
      `--authorization-kubeconfig=${dir}/${user}.kubeconfig`, '--leader-elect=false',
      '--bind-address=127.0.0.1', `--secure-port=${port}`, '--profiling=false', '--v=1',
    ];
    startProcess(state, 'kube-controller-manager', path.join(kubernetesBinDir, 'kube-controller-manager'), [
      ...componentFlags('kube-controller-manager', kcm),
      '--use-service-account-credentials=true', `--service-account-private-key-file=${pki}/service-account.key`,
      `--root-ca-file=${pki}/ca.crt`, `--cluster-signing-cert-file=${pki}/ca.crt`, `--cluster-signing-key-file=${pki}/ca.key`,
      `--service-cluster-ip-range=${state.serviceCIDR}`, '--controllers=*,-cloud-node-lifecycle-controller,-node-ipam-controller',
    ]);
    startProcess(state, 'kube-scheduler', path.join(kubernetesBinDir, 'kube-scheduler'), componentFlags('kube-scheduler', scheduler));

    fs.writeFileSync(path.join(dir, 'containerd.toml'), containerdConfig(dir, state.containerdSocket, stream));
    fs.writeFileSync(path.join(dir, 'cni', 'net.d', '10-nkvm.conflist'), cniConfig(state, `10.${octet2}.${octet3 ^ 0x80}.0/24`));
    startProcess(state, 'containerd', 'containerd', ['--config', path.join(dir, 'containerd.toml'), '--log-level', 'warn']);
    const ctr = ['--address', state.containerdSocket, '--namespace', 'k8s.io'];
    await waitFor('containerd', 30_000, async () => (await run('ctr', [...ctr, 'version'], { timeoutMs: 5000 }), true));
    for (const image of images) await run('ctr', [...ctr, 'images', 'import', '--no-unpack', image.archive]);

    createCgroupRoot(state.cgroupRoot);
    // A CSI driver's node plugin mounts volumes under the kubelet root with Bidirectional propagation,
    // which needs that root on a shared mount; this machine's root mount is private. Its own shared
    // mount, unmounted with the others under dir by dispose.
    const kubeletRoot = path.join(dir, 'kubelet');
    await run('mount', ['--bind', kubeletRoot, kubeletRoot]);
    await run('mount', ['--make-rshared', kubeletRoot]);
    fs.writeFileSync(path.join(dir, 'kubelet.yaml'), kubeletConfig(state, { kubelet, healthz }));
    startProcess(state, 'kubelet', path.join(kubernetesBinDir, 'kubelet'), [
      `--config=${dir}/kubelet.yaml`, `--kubeconfig=${dir}/kubelet.kubeconfig`, `--root-dir=${kubeletRoot}`,
      `--cert-dir=${pki}`, `--hostname-override=${name}`, `--node-ip=${state.nodeIP}`, '--v=1',
    ]);

    const loopDevices = await attachBlockDevices(state);
    await kubectl(['apply', '-f', '-'], { input: storageManifest(dir, name, loopDevices) });
    await waitFor('the node to be Ready', 90_000, async () =>
      (await kubectl(['get', 'node', name, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'])).trim() === 'True',
    );
    await waitFor('the default ServiceAccount and kube-root-ca.crt', 60_000, async () => {
      await kubectl(['get', 'serviceaccount', 'default', '-n', 'default']);
      await kubectl(['get', 'configmap', 'kube-root-ca.crt', '-n', 'default']);
      return true;
    });
    await kubectl(['apply', '-f', '-'], { input: GATE_POD });
    await kubectl(['wait', '--for=condition=Ready', 'pod/nkvm-cluster-gate', '-n', 'default', '--timeout=90s'], { timeoutMs: 100_000 });
    const echoed = await kubectl(['exec', 'nkvm-cluster-gate', '-n', 'default', '--', 'sh', '-c', 'echo gate-ok > /data/gate && cat /data/gate']);
    if (echoed.trim() !== 'gate-ok') throw new Error(`exec into the gate pod returned ${JSON.stringify(echoed)}`);
    await kubectl(['delete', 'pod,pvc', 'nkvm-cluster-gate', '-n', 'default', '--wait=true', '--timeout=60s']);
  } catch (error) {
    const logs = componentLogs(dir);
    await disposeLocalCluster(dir).catch((disposeError) => process.stderr.write(`dispose after failed start: ${disposeError}\n`));
    throw new ClusterStartError(`local cluster ${name} did not start: ${(error as Error).message}`, logs);
  }

  return localCluster(state);
}
