/**
 * Node.js single executable applications: one preparation blob made from the esbuild bundle, then
 * injected into each platform's official Node.js binary with postject.
 *
 * The blob for the platform this runs on also holds V8's code cache of the script (useCodeCache): the
 * executable then starts without compiling 8 MiB of JavaScript (136 ms -> 100 ms for --help here).
 * The cache is valid only for the Node.js binary that made it, so every other platform gets a blob
 * with the script alone. V8 seeds its code cache from a random seed: --random-seed fixes it, so the
 * same sources give the same bytes (other seed flags, such as --hash-seed, would make the running
 * executable reject the cache). The blob must be made by the very Node.js version it is injected
 * into, so this refuses to run on any other version.
 *
 * Why postject and not `node --build-sea` (which Node 26 has, and which also takes a foreign
 * "executable"): nodejs/node#65479 reports that --build-sea produces a segfaulting executable for
 * macOS x64 in Node 26 while the blob + postject path works on the same runtime. postject is also the
 * path Node's documentation describes for every platform, so all five are built the same way.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { NODE_VERSION, SEA_FUSE, SEA_MACHO_SEGMENT, SEA_RESOURCE, type Platform } from './config.ts';

interface PostjectApi {
  inject(filename: string, resourceName: string, resourceData: Buffer,
    options?: { machoSegmentName?: string; sentinelFuse?: string; overwrite?: boolean }): Promise<void>;
}

/** Writes the SEA preparation blob for `bundle` into `workDir`; returns its path. */
export function makeBlob(bundle: string, workDir: string, options: { codeCache: boolean }): string {
  if (process.versions.node !== NODE_VERSION) {
    throw new Error(`the SEA blob must be made by Node.js ${NODE_VERSION} (the version injected into); this is ${process.version}: run it with node_modules/.bin/node`);
  }
  const kind = options.codeCache ? 'with-code-cache' : 'portable';
  const blob = path.join(workDir, `sea-prep-${kind}.blob`);
  const config = path.join(workDir, `sea-config-${kind}.json`);
  fs.writeFileSync(config, `${JSON.stringify({
    main: bundle,
    output: blob,
    disableExperimentalSEAWarning: true,
    useSnapshot: false,
    useCodeCache: options.codeCache,
  }, null, 2)}\n`);
  execFileSync(process.execPath, ['--random-seed=1', '--experimental-sea-config', config], { stdio: ['ignore', 'ignore', 'inherit'] });
  return blob;
}

/**
 * Copies `nodeBinary` to `output` and injects `blob`. postject's LIEF prints warnings about
 * Node's ELF notes and the PE's (now stale) Authenticode signature; they are harmless and hidden
 * unless the injection fails.
 */
export async function injectBlob(postjectApi: string, nodeBinary: string, blob: string, output: string, platform: Platform): Promise<void> {
  const { inject } = createRequire(import.meta.url)(postjectApi) as PostjectApi;
  const tmp = `${output}.partial-${process.pid}`;
  fs.copyFileSync(nodeBinary, tmp);
  fs.chmodSync(tmp, 0o755);
  const quiet = await silenced(() => inject(tmp, SEA_RESOURCE, fs.readFileSync(blob), {
    sentinelFuse: SEA_FUSE,
    ...(platform.os === 'darwin' ? { machoSegmentName: SEA_MACHO_SEGMENT } : {}),
  }));
  if (quiet.error) {
    fs.rmSync(tmp, { force: true });
    process.stderr.write(quiet.output);
    throw quiet.error;
  }
  fs.renameSync(tmp, output);
}

/**
 * Runs `fn` with what it writes to stdout and stderr captured (postject's WASM module prints through
 * console.log and console.warn, which write to these streams).
 */
async function silenced(fn: () => Promise<void>): Promise<{ error?: unknown; output: string }> {
  const streams = [process.stdout, process.stderr] as const;
  const originals = streams.map((stream) => stream.write);
  let output = '';
  for (const stream of streams) {
    stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      output += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      const callback = rest.find((arg) => typeof arg === 'function') as (() => void) | undefined;
      callback?.();
      return true;
    }) as typeof stream.write;
  }
  try {
    await fn();
    return { output };
  } catch (error) {
    return { error, output };
  } finally {
    streams.forEach((stream, i) => { stream.write = originals[i]!; });
  }
}
