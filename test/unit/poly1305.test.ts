import test from 'ava';
import crypto from 'node:crypto';
import { poly1305 as nobleReference } from '@noble/ciphers/_poly1305.js';
import { poly1305 } from '../../src/repository/poly1305.ts';

const hex = (text: string) => Buffer.from(text.replace(/[^0-9a-f]/g, ''), 'hex');

test('RFC 8439 2.5.2: the tag of "Cryptographic Forum Research Group"', (t) => {
  const key = hex('85:d6:be:78:57:55:6d:33:7f:44:52:fe:42:d5:06:a8:01:03:80:8a:fb:0d:b2:fd:4a:bf:f6:af:41:49:f5:1b');
  t.is(poly1305(Buffer.from('Cryptographic Forum Research Group'), key).toString('hex'), 'a8061dc1305136c6c22b8baf0c0127a9');
});

// RFC 8439 A.3, vectors 5-9 (key = r || s): h near 2^130 - 5, and carries that wrap.
const edgeCases: [key: string, message: string, tag: string][] = [
  ['02' + '00'.repeat(31), 'ff'.repeat(16), '03' + '00'.repeat(15)],
  ['02' + '00'.repeat(15) + 'ff'.repeat(16), '02' + '00'.repeat(15), '03' + '00'.repeat(15)],
  ['01' + '00'.repeat(31), 'ff'.repeat(16) + 'f0' + 'ff'.repeat(15) + '11' + '00'.repeat(15), '05' + '00'.repeat(15)],
  ['01' + '00'.repeat(31), 'ff'.repeat(16) + 'fb' + 'fe'.repeat(15) + '01'.repeat(16), '00'.repeat(16)],
  ['02' + '00'.repeat(31), 'fd' + 'ff'.repeat(15), 'fa' + 'ff'.repeat(15)],
];

for (const [i, [key, message, tag]] of edgeCases.entries()) {
  test(`RFC 8439 A.3 vector ${i + 5}`, (t) => {
    t.is(poly1305(hex(message), hex(key)).toString('hex'), tag);
  });
}

test('the same tags as @noble/ciphers for every length up to 300 bytes, for 4 MiB and across the 1 MiB input', (t) => {
  const lengths = [...Array(301).keys(), 1024 * 1024 - 1, 1024 * 1024, 1024 * 1024 + 17, 4 * 1024 * 1024 + 5];
  for (const length of lengths) {
    const key = crypto.randomBytes(32);
    const message = crypto.randomBytes(length);
    t.is(poly1305(message, key).toString('hex'), Buffer.from(nobleReference(message, key)).toString('hex'), `length ${length}`);
  }
  const all = Buffer.alloc(64, 0xff);
  t.is(poly1305(all, all.subarray(0, 32)).toString('hex'), Buffer.from(nobleReference(all, all.subarray(0, 32))).toString('hex'), 'all ones');
});
