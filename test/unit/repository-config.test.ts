import test from 'ava';
import { encodeConfig, newConfig, parseConfig, UnsupportedConfigError } from '../../src/repository/config.ts';

const config = (json: unknown) => Buffer.from(JSON.stringify(json));
const valid = { version: 2, id: 'a'.repeat(64), chunker_polynomial: '3da3358b4dc173' };

test('reads a version 2 config, the polynomial exactly (above 2^53)', (t) => {
  const parsed = parseConfig(config(valid));
  t.is(parsed.version, 2);
  t.is(parsed.chunkerPolynomial, 0x3da3358b4dc173n);
  t.is(parseConfig(config({ ...valid, chunker_polynomial: '3fb175b8deb1d1' })).chunkerPolynomial.toString(16), '3fb175b8deb1d1');
});

test('refuses unknown fields, naming them', (t) => {
  const error = t.throws(() => parseConfig(config({ ...valid, compression: 'max', extra: 1 }), '/repo'), { instanceOf: UnsupportedConfigError });
  t.is(error.message, 'config of /repo has fields this version does not know: "compression", "extra"; refusing to use the repository');
});

test('refuses unknown versions, naming them', (t) => {
  const error = t.throws(() => parseConfig(config({ ...valid, version: 3 }), '/repo'), { instanceOf: UnsupportedConfigError });
  t.is(error.message, 'config of /repo has repository version 3; this version supports 1 and 2');
  t.throws(() => parseConfig(config({ ...valid, version: '2' })), { instanceOf: UnsupportedConfigError, message: /version "2"/ });
});

test('refuses a missing or malformed polynomial', (t) => {
  t.throws(() => parseConfig(config({ version: 2, id: 'x' })), { message: /chunker_polynomial undefined/ });
  t.throws(() => parseConfig(config({ ...valid, chunker_polynomial: '0x3da3' })), { message: /invalid chunker_polynomial "0x3da3"/ });
});

test('writes what it reads: restic\'s field names, hex polynomial without 0x', (t) => {
  const fresh = newConfig(0x3da3358b4dc173n);
  const json = JSON.parse(encodeConfig(fresh).toString()) as Record<string, unknown>;
  t.deepEqual(Object.keys(json), ['version', 'id', 'chunker_polynomial']);
  t.is(json.chunker_polynomial, '3da3358b4dc173');
  t.deepEqual(parseConfig(encodeConfig(fresh)), fresh);
});
