/**
 * The real restic, the judge of the repository format in the tests: v0.19.1 built from the Go module
 * proxy by scripts/build-repository-tools.sh (run by scripts/bootstrap.sh) and cached by version.
 */
import { execa, type Result } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { CACHE_DIR } from './paths.ts';

export const RESTIC_VERSION = 'v0.19.1';
export const resticBinary = process.env.NKVM_RESTIC ?? path.join(CACHE_DIR, `restic-${RESTIC_VERSION}`, 'bin', 'restic');

/** The restic binary's path; an error saying how to get it when it is missing. */
export function findRestic(): string {
  if (!fs.existsSync(resticBinary)) {
    throw new Error(`restic ${RESTIC_VERSION} is missing at ${resticBinary}: run \`sh scripts/bootstrap.sh\` (it builds it with scripts/build-repository-tools.sh), or set NKVM_RESTIC`);
  }
  return resticBinary;
}

/** Debian 12's restic 0.14.0 (scripts/bootstrap.sh installs it pinned): the first release with repository format 2. */
export const DEBIAN_RESTIC_VERSION = '0.14.0';
export const debianResticBinary = process.env.NKVM_RESTIC_DEBIAN ?? '/usr/bin/restic';

export function findDebianRestic(): string {
  if (!fs.existsSync(debianResticBinary)) {
    throw new Error(`Debian's restic ${DEBIAN_RESTIC_VERSION} is missing at ${debianResticBinary}: run \`sh scripts/bootstrap.sh --cluster\` on Debian 12 (apt-get install restic=0.14.0-1+b5), or set NKVM_RESTIC_DEBIAN`);
  }
  return debianResticBinary;
}

/** Runs restic (v0.19.1, or the binary given) on a repository with a password; never throws on its exit code. */
export function restic(
  repository: string,
  password: string,
  args: string[],
  options: { env?: Record<string, string>; binary?: string } = {},
): Promise<Result<{ reject: false }>> {
  return execa(options.binary ?? findRestic(), ['--repo', repository, '--no-cache', ...args], {
    reject: false,
    env: { RESTIC_PASSWORD: password, ...options.env },
    timeout: 5 * 60_000,
  });
}
