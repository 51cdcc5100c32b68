import test from 'ava';
import { decrypt, encrypt, poly1305Mac, randomMasterKey, UnauthenticatedError, type MasterKey } from '../../src/repository/crypto.ts';

const hex = (s: string) => Buffer.from(s, 'hex');

// restic's internal/repository/crypto/crypto_int_test.go: poly1305Tests (from the Poly1305-AES paper).
const poly1305Tests = [
  { msg: 'f3f6', r: '851fc40c3467ac0be05cc20404f3f700', k: 'ec074c835580741701425b623235add6', nonce: 'fb447350c4e868c52ac3275cf9d4327e', mac: 'f4c633c3044fc145f84f335cb81953de' },
  { msg: '', r: 'a0f3080000f46400d0c7e9076c834403', k: '75deaa25c09f208e1dc4ce6b5cad3fbf', nonce: '61ee09218d29b0aaed7e154a2c5509cc', mac: 'dd3fab2251f11ac759f0887129cc2ee7' },
  {
    msg: '663cea190ffb83d89593f3f476b6bc24d7e679107ea26adb8caf6652d0656136',
    r: '48443d0bb0d21109c89a100b5ce2c208',
    k: '6acb5f61a7176dd320c5c1eb2edcdc74',
    nonce: 'ae212a55399729595dea458bc621ff0e',
    mac: '0ee1c16bb73f0f4fd19881753c01cdbe',
  },
  {
    msg: 'ab0812724a7f1e342742cbed374d94d136c6b8795d45b3819830f2c04491faf0990c62e48b8018b2c3e4a0fa3134cb67fa83e158c994d961c4cb21095c1bf9',
    r: '12976a08c4426d0ce8a82407c4f48207',
    k: 'e1a5668a4d5b66a5f68cc5424ed5982d',
    nonce: '9ae831e743978d3a23527c7128149e3a',
    mac: '5154ad0d2cb26e01274fc51148491f1b',
  },
];

for (const [i, v] of poly1305Tests.entries()) {
  test(`Poly1305-AES as restic computes it, vector ${i}`, (t) => {
    t.is(poly1305Mac(hex(v.msg), hex(v.nonce), { k: hex(v.k), r: hex(v.r) }).toString('hex'), v.mac);
  });
}

// restic's testValues: a ciphertext restic wrote, with its keys.
const key: MasterKey = {
  encrypt: hex('303e8687b1d7db18421bdc6bb8588ccadac4d59ee87b8ff70c44e635790cafef'),
  mac: { k: hex('ef4d8824cb80b2bcc5fbff8a9b12a42c'), r: hex('cc8d4b948ee0ebfe1d415de921d10353') },
};
const ciphertext = hex('69fb41c62d12def4593bd71757138606338f621aeaeb39da0fe4f99233f8037a54ea63338a813bcf3f75d8c3cc75dddf8750');

test("decrypts restic's test ciphertext", (t) => {
  t.is(decrypt(key, ciphertext).toString(), 'Dies ist ein Test!');
});

for (const [what, at] of [
  ['the MAC', ciphertext.length - 8],
  ['the IV', 2],
  ['the ciphertext', 16 + 5],
] as const) {
  test(`a changed byte in ${what} is a typed error`, (t) => {
    const tampered = Buffer.from(ciphertext);
    tampered[at]! ^= 0x23;
    t.throws(() => decrypt(key, tampered), { instanceOf: UnauthenticatedError });
  });
}

test('round trip, and another key does not open it', (t) => {
  const own = randomMasterKey();
  const plaintext = Buffer.from('some data '.repeat(1000));
  const sealed = encrypt(own, plaintext);
  t.is(sealed.length, plaintext.length + 32);
  t.deepEqual(decrypt(own, sealed), plaintext);
  t.throws(() => decrypt(randomMasterKey(), sealed), { instanceOf: UnauthenticatedError });
  t.throws(() => decrypt(own, sealed.subarray(0, 31)), { instanceOf: UnauthenticatedError });
});
