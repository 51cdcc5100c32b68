/** Where the cluster toolchain lives: versioned directories under the cache, outside the repo. */
import os from 'node:os';
import path from 'node:path';

export const KUBERNETES_VERSION = process.env.NKVM_KUBERNETES_VERSION ?? 'v1.34.4';
export const ETCD_VERSION = process.env.NKVM_ETCD_VERSION ?? 'v3.6.16';
export const CACHE_DIR = process.env.NKVM_CACHE ?? path.join(os.homedir(), '.cache', 'nkvm');
export const REPO_ROOT = path.resolve(import.meta.dirname, '..', '..');

export const kubernetesBinDir = path.join(CACHE_DIR, `kubernetes-${KUBERNETES_VERSION}`, 'bin');
export const etcdBinary = path.join(CACHE_DIR, `etcd-${ETCD_VERSION}`, 'bin', 'etcd');
export const kubectlBinary = path.join(kubernetesBinDir, 'kubectl');
