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
