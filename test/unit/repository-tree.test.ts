import test from 'ava';
import { encodeTree } from '../../src/repository/tree-nodes.ts';
import { decodeTree, encodeNode, fromGoFileMode, goQuote, goUnquote, toGoFileMode, type Node } from '../../src/repository/tree.ts';
import { formatTime, parseTime } from '../../src/repository/time.ts';

// Go 1.26: fmt.Println(uint32(m), m) for each os.FileMode.
const modes: [Parameters<typeof toGoFileMode>[0], number, number, string][] = [
  ['dir', 0o755, 2147484141, 'drwxr-xr-x'],
  ['symlink', 0o777, 134218239, 'Lrwxrwxrwx'],
  ['file', 0o4755, 8389101, 'urwxr-xr-x'],
  ['dir', 0o2775, 2151678461, 'dgrwxrwxr-x'],
  ['dir', 0o1777, 2148532735, 'dtrwxrwxrwx'],
  ['fifo', 0o644, 33554852, 'prw-r--r--'],
  ['chardev', 0o620, 69206416, 'Dcrw--w----'],
];
for (const [type, unix, go, shown] of modes) {
  test(`Go os.FileMode of a ${type} ${unix.toString(8)} is ${go} (${shown})`, (t) => {
    t.is(toGoFileMode(type, unix), go);
    t.is(fromGoFileMode(go), unix);
  });
}

// Go 1.26: strconv.Quote(name) without the outer quotes, keyed by the name's bytes in hex.
const quoted: Record<string, string> = {
  '2d6c656164696e67': '-leading',
  '6261636b5c736c617368': 'back\\\\slash',
  '6e65770a6c696e65': 'new\\nline',
  '706c61696e': 'plain',
  '71756f227465': 'quo\\"te',
  '7461620968657265': 'tab\\there',
  '77697468207370616365': 'with space',
  '7f01': '\\x7f\\x01',
  c2a06e627370: '\\u00a0nbsp',
  c3a920c3bc6ec3af: 'é ünï',
  e280a8: '\\u2028',
  e282: '\\xe2\\x82',
  eda080: '\\xed\\xa0\\x80',
  f09f9880: '😀',
  fffe: '\\xff\\xfe',
};
for (const [hex, expected] of Object.entries(quoted)) {
  test(`name ${hex} is quoted as Go's strconv.Quote does, and back`, (t) => {
    const bytes = Buffer.from(hex, 'hex');
    t.is(goQuote(bytes), expected);
    t.deepEqual(goUnquote(expected), bytes);
  });
}

test('unquotes the octal and \\U escapes Go accepts too', (t) => {
  t.deepEqual(goUnquote('\\377\\U0001F600\\a'), Buffer.from([0xff, 0xf0, 0x9f, 0x98, 0x80, 7]));
  t.throws(() => goUnquote('bad\\q'));
});

const time = 1_733_450_000_123_456_789n;
const node = (name: Buffer, extra: Partial<Node> = {}): Node => ({ name, type: 'file', mode: 0o644, mtime: time, atime: time, ctime: time, uid: 1000, gid: 1000, size: 0, content: [], ...extra });

test('nodes are ordered by name as bytes, not as JS strings', (t) => {
  // JS compares UTF-16 units: "😀" (0xD83D...) < "\uFF01". As UTF-8 bytes, which Go compares, EF BC 81 < F0 9F 98 80.
  const names = ['😀', '\uff01', 'B', 'a', '\xe9'].map((s) => Buffer.from(s));
  const names2 = [...names, Buffer.from([0xff]), Buffer.from([0x61, 0x00])];
  const tree = decodeTree(encodeTree(names2.map((n) => node(n))));
  t.deepEqual(
    tree.map((n) => n.name.toString('hex')),
    ['42', '61', '6100', 'c3a9', 'efbc81', 'f09f9880', 'ff'],
  );
  t.throws(() => encodeTree([node(Buffer.from('x')), node(Buffer.from('x'))]), { message: /two entries named "x"/ });
});

test('a file node has content [] and restic\'s field order; a directory content null and a subtree', (t) => {
  t.is(
    encodeNode(node(Buffer.from('f\n'), { mode: toGoFileMode('file', 0o644), size: 0 })),
    '{"name":"f\\\\n","type":"file","mode":420,"mtime":"2024-12-06T01:53:20.123456789Z","atime":"2024-12-06T01:53:20.123456789Z","ctime":"2024-12-06T01:53:20.123456789Z","uid":1000,"gid":1000,"content":[]}',
  );
  const dir = JSON.parse(encodeNode(node(Buffer.from('d'), { type: 'dir', mode: toGoFileMode('dir', 0o755), content: undefined, subtree: 'ab' }))) as Record<string, unknown>;
  t.is(dir.content, null);
  t.is(dir.subtree, 'ab');
});

test('a symlink target that is not UTF-8 goes in linktarget_raw', (t) => {
  const json = JSON.parse(encodeNode(node(Buffer.from('l'), { type: 'symlink', content: undefined, linkTarget: Buffer.from([0x61, 0xff]) }))) as Record<string, unknown>;
  t.is(json.linktarget_raw, Buffer.from([0x61, 0xff]).toString('base64'));
  t.deepEqual(decodeTree(encodeTree([node(Buffer.from('l'), { type: 'symlink', content: undefined, linkTarget: Buffer.from([0x61, 0xff]) })]))[0]!.linkTarget, Buffer.from([0x61, 0xff]));
});

test('times: RFC3339Nano from BigInt nanoseconds, exactly, both ways', (t) => {
  t.is(formatTime(time), '2024-12-06T01:53:20.123456789Z');
  t.is(formatTime(1_000_000_000_000_000_000n), '2001-09-09T01:46:40Z');
  t.is(formatTime(1_500_000_000n), '1970-01-01T00:00:01.5Z');
  t.is(formatTime(-1n), '1969-12-31T23:59:59.999999999Z');
  t.is(parseTime('2024-12-06T01:53:20.123456789Z'), time);
  t.is(parseTime('2024-12-06T02:53:20.123456789+01:00'), time);
  t.is(parseTime('2026-12-06T04:04:44.856845688Z'), 1_796_529_884_856_845_688n);
  t.is(parseTime('0001-02-03T04:05:06Z'), -62_132_730_894n * 1_000_000_000n);
  t.is(formatTime(parseTime('0001-02-03T04:05:06Z')), '0001-02-03T04:05:06Z');
  // Outside what RFC 3339 writes: clamped, not an error that fails a backup.
  t.is(formatTime(10n ** 30n), '9999-12-31T23:59:59.999999999Z');
  t.is(formatTime(-(10n ** 30n)), '0000-01-01T00:00:00Z');
});

test('reads nodes leniently: missing fields, null lists, unknown fields kept', (t) => {
  const [n] = decodeTree(Buffer.from('{"nodes":[{"name":"x","type":"file","mtime":"2024-12-06T01:53:20Z","content":null,"extended_attributes":null,"future":1}]}'));
  t.is(n!.uid, 0);
  t.is(n!.content, undefined);
  t.deepEqual(n!.extra, { future: 1 });
});

test('times read and written by hand agree with Date over years 1 to 9999, offsets and fractions of any length', (t) => {
  let seed = 12345;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const start = new Date(0);
  start.setUTCFullYear(1, 0, 1);
  const first = start.getTime(); // 0001-01-01
  const last = Date.UTC(9999, 11, 30);
  const written = (date: Date) => `${String(date.getUTCFullYear()).padStart(4, '0')}${date.toISOString().slice(-20, -5)}`;
  for (let i = 0; i < 2000; i++) {
    const ms = Math.floor(first + next() * (last - first));
    const ns = BigInt(ms) * 1_000_000n + BigInt(Math.floor(next() * 1e6));
    const text = formatTime(ns);
    t.is(text.slice(0, 19), written(new Date(ms)), text);
    t.is(parseTime(text), ns, text);
    // The same instant with an offset, and more than nine digits of fraction.
    const fraction = String(Number(((ns % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n)).padStart(9, '0');
    const local = `${written(new Date(ms + (5 * 3600 + 30 * 60) * 1000))}.${fraction}77+05:30`;
    t.is(parseTime(local), ns, local);
  }
  t.is(formatTime(0n), '1970-01-01T00:00:00Z');
  t.is(formatTime(-1n), '1969-12-31T23:59:59.999999999Z');
  t.is(parseTime('0001-01-01T00:00:00Z'), BigInt(first / 1000) * 1_000_000_000n);
  for (const bad of ['2024-12-06T01:53:20', '2024-12-06 01:53:20Z', '2024-12-06T01:53:20.Z', '2024-12-06T01:53:2xZ', '2024-12-06T01:53:20+0100', '2024-12-06T01:53:20Zjunk']) {
    t.throws(() => parseTime(bad), { message: /not an RFC 3339 time/ }, bad);
  }
});
