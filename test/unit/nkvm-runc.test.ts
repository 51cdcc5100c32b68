/**
 * scripts/kind/nkvm-runc, built and run for real in front of a stand-in runc that records what it
 * was given: the spec it passes on keeps only capabilities of the bounding set, never lowers
 * oomScoreAdj below the caller's, and leaves every other value exactly as it was.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../cluster/paths.ts';

const ALL_CAPS = ['CAP_CHOWN', 'CAP_SYS_ADMIN', 'CAP_SYS_RESOURCE', 'CAP_NET_ADMIN'];
const HUGE_LIMIT = '9223372036854771712'; // beyond a float64's exact integers

function boundingCaps(): Set<string> {
  const mask = BigInt(`0x${/^CapBnd:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]}`);
  const numbers: Record<string, bigint> = { CAP_CHOWN: 0n, CAP_NET_ADMIN: 12n, CAP_SYS_ADMIN: 21n, CAP_SYS_RESOURCE: 24n };
  return new Set(Object.entries(numbers).filter(([, bit]) => (mask >> bit) & 1n).map(([name]) => name));
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-runc-test-'));
const wrapper = path.join(dir, 'nkvm-runc');
const fakeRunc = path.join(dir, 'runc');
test.before(() => {
  execFileSync('go', ['build', '-o', wrapper, '.'], {
    cwd: path.join(REPO_ROOT, 'scripts', 'kind', 'nkvm-runc'),
    env: { ...process.env, GOFLAGS: '-buildvcs=false', CGO_ENABLED: '0', GOTOOLCHAIN: 'local' },
  });
  // Records its arguments, and the file it would read, beside itself.
  fs.writeFileSync(fakeRunc, `#!/bin/sh\nprintf '%s\\n' "$@" > "${dir}/args"\nfor a in "$@"; do case "$prev" in --bundle) cp "$a/config.json" "${dir}/seen.json";; --process) cp "$a" "${dir}/seen.json";; esac; prev="$a"; done\n`, { mode: 0o755 });
});
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));

function runWrapper(args: string[]): { args: string[]; seen: Record<string, any> } {
  execFileSync(wrapper, args, { env: { ...process.env, NKVM_REAL_RUNC: fakeRunc } });
  return { args: fs.readFileSync(path.join(dir, 'args'), 'utf8').trim().split('\n'), seen: JSON.parse(fs.readFileSync(path.join(dir, 'seen.json'), 'utf8')) };
}

const process_ = () => ({
  capabilities: { bounding: [...ALL_CAPS], effective: [...ALL_CAPS], permitted: [...ALL_CAPS] },
  oomScoreAdj: -999,
});

test.serial('create --bundle: the container spec keeps only bounding-set capabilities, oomScoreAdj no lower than ours, big numbers exact', (t) => {
  const bundle = path.join(dir, 'bundle');
  fs.mkdirSync(bundle);
  fs.writeFileSync(path.join(bundle, 'config.json'), `{"ociVersion":"1.0.2","process":${JSON.stringify(process_())},"linux":{"resources":{"memory":{"limit":${HUGE_LIMIT}}}}}`);
  const args = ['--root', '/run/x', '--log', '/tmp/l', 'create', '--bundle', bundle, '--pid-file', '/tmp/p', 'id1'];
  const { args: passed, seen } = runWrapper(args);
  t.deepEqual(passed, args, 'runc gets the same arguments');
  const expected = ALL_CAPS.filter((cap) => boundingCaps().has(cap));
  t.deepEqual(seen.process.capabilities.bounding, expected);
  t.deepEqual(seen.process.capabilities.effective, expected);
  const own = Number(fs.readFileSync('/proc/self/oom_score_adj', 'utf8'));
  t.is(seen.process.oomScoreAdj, Math.max(-999, own));
  t.regex(fs.readFileSync(path.join(dir, 'seen.json'), 'utf8'), new RegExp(`"limit":${HUGE_LIMIT}`));
});

test.serial('exec --process (docker exec --privileged): the process file is adjusted the same way', (t) => {
  const processFile = path.join(dir, 'process.json');
  fs.writeFileSync(processFile, JSON.stringify(process_()));
  const { seen } = runWrapper(['exec', '--process', processFile, '--detach', 'id1']);
  t.deepEqual(seen.capabilities.permitted, ALL_CAPS.filter((cap) => boundingCaps().has(cap)));
});
