import test from 'ava';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { clientVersionLine, fastAnswer, helpWidth, PRERENDERED_HELP_WIDTHS } from '../../src/cli/fast-paths.ts';
import { REPO_ROOT } from '../cluster/paths.ts';

const HELP = { 100: 'help at 100\n', 110: 'help at 110\n' };

test('--help is answered from the text prerendered for the width the CLI would wrap to, and only then', (t) => {
  t.is(fastAnswer(['--help'], '/usr/local/bin/kubectl-nkvm', undefined, HELP), 'help at 100\n', 'not a terminal: 100');
  t.is(fastAnswer(['--help'], '/usr/local/bin/kubectl-nkvm', 200, HELP), 'help at 110\n', 'a wide terminal: 110');
  t.is(fastAnswer(['--help'], '/usr/local/bin/kubectl-nkvm', 80, HELP), undefined, 'a narrow terminal: the CLI wraps it');
  t.is(fastAnswer(['--help', 'backup'], '/usr/local/bin/kubectl-nkvm', undefined, HELP), undefined);
  t.is(fastAnswer(['-h'], '/usr/local/bin/kubectl-nkvm', undefined, HELP), undefined);
  t.deepEqual(PRERENDERED_HELP_WIDTHS.map((w) => helpWidth(w === 110 ? 300 : undefined)), [100, 110]);
});

test('version --client is answered with the version line; completion runs and other commands are not', (t) => {
  t.is(fastAnswer(['version', '--client'], 'kubectl-nkvm', undefined, HELP), `${clientVersionLine()}\n`);
  t.regex(clientVersionLine(), /^Client Version: v\d+\.\d+\.\d+ \(node v\d+\.\d+\.\d+, \w+\/\w+\)$/);
  t.is(fastAnswer(['version', '--client', '-o', 'json'], 'kubectl-nkvm', undefined, HELP), undefined);
  t.is(fastAnswer(['version'], 'kubectl-nkvm', undefined, HELP), undefined);
  t.is(fastAnswer(['--help'], '/home/me/.krew/bin/kubectl_complete-nkvm', undefined, HELP), undefined, 'kubectl_complete-nkvm --help completes the word --help');
  t.is(fastAnswer(['version', '--client'], '/krew/bin/kubectl_complete-nkvm.exe', undefined, HELP), undefined);
});

test('the front built beside the bundle answers --help exactly as the CLI does, at each prerendered width', (t) => {
  for (const width of PRERENDERED_HELP_WIDTHS) {
    const help = (file: string) => execFileSync(process.execPath, [
      '--import', `data:text/javascript,Object.defineProperty(process.stdout, "columns", { value: ${width === 110 ? 160 : 100} })`,
      path.join(REPO_ROOT, 'dist', file), '--help',
    ], { encoding: 'utf8' });
    const fromFront = help('sea-front.js');
    t.is(fromFront, help('kubectl-nkvm'), `width ${width}`);
    t.true(fromFront.split('\n').some((line) => line.length > 100) === (width === 110), `width ${width} wraps at ${width}`);
  }
});
