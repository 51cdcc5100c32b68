/** Where the cluster toolchain lives: versioned directories under the cache, outside the repo. */
import os from 'node:os';
import path from 'node:path';

export const KUBERNETES_VERSION = process.env.NKVM_KUBERNETES_VERSION ?? 'v1.34.4';
export const ETCD_VERSION = process.env.NKVM_ETCD_VERSION ?? 'v3.6.16';
export const LOCAL_PATH_PROVISIONER_VERSION = 'v0.0.30';
/** kind, and the etcd and CoreDNS versions kubeadm v1.34 deploys (scripts/build-cluster-binaries.sh --kind). */
export const KIND_VERSION = 'v0.33.0';
export const KUBEADM_ETCD_VERSION = 'v3.6.5';
export const KUBEADM_COREDNS_VERSION = 'v1.12.1';
/** The snapshot machinery beside the test clusters' CSI driver (scripts/build-cluster-binaries.sh). */
export const EXTERNAL_SNAPSHOTTER_VERSION = 'v8.7.0';
export const EXTERNAL_PROVISIONER_VERSION = 'v6.4.0';
export const CACHE_DIR = process.env.NKVM_CACHE ?? path.join(os.homedir(), '.cache', 'nkvm');
export const REPO_ROOT = path.resolve(import.meta.dirname, '..', '..');

export const kubernetesBinDir = path.join(CACHE_DIR, `kubernetes-${KUBERNETES_VERSION}`, 'bin');
export const etcdBinary = path.join(CACHE_DIR, `etcd-${ETCD_VERSION}`, 'bin', 'etcd');
export const kubectlBinary = path.join(kubernetesBinDir, 'kubectl');
export const localPathProvisionerBinary = path.join(CACHE_DIR, `local-path-provisioner-${LOCAL_PATH_PROVISIONER_VERSION}`, 'bin', 'local-path-provisioner');
export const kindBinary = path.join(CACHE_DIR, `kind-${KIND_VERSION}`, 'bin', 'kind');
export const kindModuleDir = path.join(CACHE_DIR, 'go', 'mod', 'sigs.k8s.io', `kind@${KIND_VERSION}`);
export const kubeadmEtcdBinary = path.join(CACHE_DIR, `etcd-${KUBEADM_ETCD_VERSION}`, 'bin', 'etcd');
export const corednsBinary = path.join(CACHE_DIR, `coredns-${KUBEADM_COREDNS_VERSION}`, 'bin', 'coredns');
export const nkvmRuncBinary = path.join(CACHE_DIR, 'nkvm-runc', 'nkvm-runc');
const externalSnapshotterDir = path.join(CACHE_DIR, `external-snapshotter-${EXTERNAL_SNAPSHOTTER_VERSION}`);
export const snapshotControllerBinary = path.join(externalSnapshotterDir, 'bin', 'snapshot-controller');
export const csiSnapshotterBinary = path.join(externalSnapshotterDir, 'bin', 'csi-snapshotter');
/** external-snapshotter's client/config/crd: the VolumeSnapshot CRDs (and the group-snapshot ones, which we do not apply). */
export const snapshotCrdDir = path.join(externalSnapshotterDir, 'crd');
export const csiProvisionerBinary = path.join(CACHE_DIR, `external-provisioner-${EXTERNAL_PROVISIONER_VERSION}`, 'bin', 'csi-provisioner');
/** Our CSI driver's Go module, built into its image by test/cluster/images/build.ts. */
export const csiDriverSourceDir = path.join(REPO_ROOT, 'test', 'cluster', 'csi-driver');
