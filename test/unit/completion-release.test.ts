/**
 * What the release ships for completion: the kubectl_complete-nkvm script in each archive (it hands
 * kubectl's words to kubectl-nkvm __complete), and the Krew manifest's caveats and short description.
 */
import test from 'ava';
import { execa } from 'execa';
import { load as loadYaml } from 'js-yaml';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { COMPLETE_NAME, COMPLETE_SCRIPT_CMD, COMPLETE_SCRIPT_SH, completeName, completeScript } from '../../scripts/release/complete-executable.ts';
import { TEMPLATE } from '../../scripts/release/config.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-complete-exe-'));
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A kubectl-nkvm that prints each argument it got on a line of its own, in brackets. */
function fakePlugin(at: string, label: string): void {
  fs.mkdirSync(at, { recursive: true });
  fs.writeFileSync(path.join(at, 'kubectl-nkvm'), `#!/bin/sh\necho ${label}\nfor a in "$@"; do echo "[$a]"; done\n`, { mode: 0o755 });
}

function install(at: string): string {
  fs.mkdirSync(at, { recursive: true });
  const file = path.join(at, COMPLETE_NAME);
  fs.writeFileSync(file, COMPLETE_SCRIPT_SH, { mode: 0o755 });
  return file;
}

test('the script runs the kubectl-nkvm beside it with __complete and the words, empty ones and blanks kept', async (t) => {
  const bin = path.join(dir, 'beside');
  fakePlugin(bin, 'beside');
  const script = install(bin);
  const run = await execa(script, ['backup', 'my claim', ''], { env: { PATH: path.join(dir, 'nothing') }, extendEnv: false });
  t.is(run.stdout, 'beside\n[__complete]\n[backup]\n[my claim]\n[]');
});

test('with no kubectl-nkvm beside it, the one on PATH; with none at all, no answer and no error', async (t) => {
  const elsewhere = path.join(dir, 'elsewhere');
  fakePlugin(elsewhere, 'on-path');
  const script = install(path.join(dir, 'alone'));
  const run = await execa(script, ['ba'], { env: { PATH: `${elsewhere}:/usr/bin:/bin` }, extendEnv: false });
  t.is(run.stdout, 'on-path\n[__complete]\n[ba]');
  const none = await execa(script, ['ba'], { env: { PATH: '/usr/bin:/bin' }, extendEnv: false, reject: false });
  t.deepEqual([none.exitCode, none.stdout, none.stderr], [0, '', '']);
});

test('Windows gets a .cmd that runs kubectl-nkvm.exe __complete with the words, CRLF line ends', (t) => {
  t.is(completeName({ os: 'windows' }), 'kubectl_complete-nkvm.cmd');
  t.is(completeName({ os: 'darwin' }), 'kubectl_complete-nkvm');
  t.is(completeScript({ os: 'windows' }), COMPLETE_SCRIPT_CMD);
  t.regex(COMPLETE_SCRIPT_CMD, /^"%nkvm%" __complete %\*\r$/m);
  t.regex(COMPLETE_SCRIPT_CMD, /%~dp0kubectl-nkvm\.exe/);
  t.false(/[^\r]\n/.test(COMPLETE_SCRIPT_CMD), 'every line ends in CRLF');
});

test("the Krew manifest: a short description of at most 50 characters, and caveats that say how to turn completion on", (t) => {
  const manifest = loadYaml(fs.readFileSync(TEMPLATE, 'utf8')) as { spec: { shortDescription: string; caveats?: string } };
  t.true(manifest.spec.shortDescription.length <= 50, `${manifest.spec.shortDescription.length} characters`);
  const caveats = manifest.spec.caveats ?? '';
  t.regex(caveats, /^\s*ln -sf kubectl-nkvm "\$\{KREW_ROOT:-\$HOME\/\.krew\}\/bin\/kubectl_complete-nkvm"$/m);
  t.regex(caveats, /kubectl_complete-nkvm\.cmd/);
  t.regex(caveats, /source <\(kubectl nkvm completion bash\)/);
});
