import test from 'ava';
import { describeUnknownArguments, editDistance } from '../../src/cli/unknown-flags.ts';

const BACKUP_FLAGS = ['parallel', 'output', 'o', 'namespace', 'n', 'compression', 'all', 'all-namespaces', 'A', 'retries', 'allow-partial'];

test('the flag is named as typed, once, with the nearest real flag', (t) => {
  t.deepEqual(describeUnknownArguments('Unknown arguments: such-flag, suchFlag', ['backup', 'data', '--no-such-flag'], BACKUP_FLAGS), {
    message: 'unknown flag: --no-such-flag',
    hint: undefined,
  });
  t.deepEqual(describeUnknownArguments('Unknown argument: paralel', ['backup', 'data', '--paralel=3'], BACKUP_FLAGS), {
    message: 'unknown flag: --paralel',
    hint: 'did you mean --parallel for --paralel?',
  });
  t.deepEqual(describeUnknownArguments('Unknown arguments: compresion, x', ['backup', '--compresion', 'gzip', '-x'], BACKUP_FLAGS), {
    message: 'unknown flags: --compresion, -x',
    hint: 'did you mean --compression for --compresion?',
  });
});

test('a stray word is an unexpected argument; other messages are left alone', (t) => {
  t.deepEqual(describeUnknownArguments('Unknown argument: extra', ['discover', 'extra'], BACKUP_FLAGS), { message: 'unexpected argument: "extra"', hint: undefined });
  t.is(describeUnknownArguments('Not enough non-option arguments', ['restore'], BACKUP_FLAGS), undefined);
});

test('edit distance', (t) => {
  t.is(editDistance('paralel', 'parallel'), 1);
  t.is(editDistance('', 'abc'), 3);
  t.is(editDistance('kitten', 'sitting'), 3);
});
