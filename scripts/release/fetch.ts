/**
 * Downloads what a release is built from, with npm's own client (`npm pack`), into the cache:
 * each platform's official Node.js binary from the registry's per-platform packages, and postject.
 * Every tarball is checked against the sha512 pinned in config.ts before it is unpacked; a finished
 * unpack is marked with .complete, so later runs reuse it.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CACHE, log, NODE_VERSION, platformId, POSTJECT, type Platform } from './config.ts';

function npmPack(spec: string, integrity: string, dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const [name, version] = [spec.slice(0, spec.lastIndexOf('@')), spec.slice(spec.lastIndexOf('@') + 1)];
  const tarball = path.join(dir, `${name.replace(/^@/, '').replace('/', '-')}-${version}.tgz`);
  if (!fs.existsSync(tarball)) {
    log(`fetching ${spec} from the npm registry`);
    execFileSync('npm', ['pack', '--silent', '--pack-destination', dir, spec], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  const actual = `sha512-${createHash('sha512').update(fs.readFileSync(tarball)).digest('base64')}`;
  if (actual !== integrity) {
    fs.rmSync(tarball, { force: true });
    throw new Error(`${spec}: the tarball's sha512 is ${actual}, not the pinned ${integrity}`);
  }
  return tarball;
}

function unpack(tarball: string, dest: string, members: string[]): void {
  const tmp = `${dest}.partial-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  execFileSync('tar', ['-xzf', tarball, '-C', tmp, ...members], { stdio: 'inherit' });
  fs.writeFileSync(path.join(tmp, '.complete'), '');
  fs.rmSync(dest, { recursive: true, force: true });
  fs.renameSync(tmp, dest);
}

/** The official Node.js binary for a platform, unpacked in the cache; returns its path. */
export function nodeBinaryFor(platform: Platform): string {
  const root = path.join(CACHE, `node-v${NODE_VERSION}`);
  const dest = path.join(root, `${platform.os}-${platform.arch}`);
  const binary = path.join(dest, platform.nodeBinary);
  if (fs.existsSync(path.join(dest, '.complete')) && fs.existsSync(binary)) return binary;
  const tarball = npmPack(`${platform.nodePackage}@${NODE_VERSION}`, platform.integrity, root);
  log(`unpacking the Node.js ${NODE_VERSION} binary for ${platformId(platform)}`);
  unpack(tarball, dest, [platform.nodeBinary]);
  return binary;
}

/** postject's programmatic API (dist/api.js is self-contained: its CLI's dependency is not needed). */
export function postjectModule(): string {
  const root = path.join(CACHE, `postject-${POSTJECT.version}`);
  const dest = path.join(root, 'pkg');
  const api = path.join(dest, 'package', 'dist', 'api.js');
  if (fs.existsSync(path.join(dest, '.complete')) && fs.existsSync(api)) return api;
  const tarball = npmPack(`postject@${POSTJECT.version}`, POSTJECT.integrity, root);
  unpack(tarball, dest, ['package/dist/api.js', 'package/package.json', 'package/LICENSE']);
  return api;
}
