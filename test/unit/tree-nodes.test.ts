/**
 * A directory's nodes held as their JSON (TreeNodes) and a parent's tree looked up by name without
 * decoding it whole (NodesByName): the same blobs and the same nodes as the Node objects give.
 */
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { encodeTree, NodesByName, sortByBytes, TreeNodes } from '../../src/repository/tree-nodes.ts';
import { decodeTree, encodeNode, type Node } from '../../src/repository/tree.ts';

const time = 1_733_450_000_123_456_789n;
const file = (name: Buffer | string, extra: Partial<Node> = {}): Node => ({
  name: Buffer.isBuffer(name) ? name : Buffer.from(name), type: 'file', mode: 0o644, mtime: time, atime: time, ctime: time, uid: 1000, gid: 1000, size: 4, inode: 7, links: 1, content: ['ab'.repeat(32)], ...extra,
});
/** What the tree blob was before TreeNodes: Node objects sorted and joined. */
const byObjects = (nodes: Node[]) => Buffer.from(`{"nodes":[${[...nodes].sort((a, b) => Buffer.compare(a.name, b.name)).map(encodeNode).join(',')}]}\n`);

test('placed in any order, the blob is the sorted tree the Node objects give; in order, the same', (t) => {
  const names = ['b', 'a', '😀', 'A', '-dash', 'a\nb', '\xe9'].map((n) => file(n));
  names.push(file(Buffer.from([0xff, 0x00])));
  const shuffled = new TreeNodes();
  for (const node of names) shuffled.add(node);
  t.deepEqual(encodeTree(shuffled), byObjects(names));
  const sorted = new TreeNodes();
  for (const node of [...names].sort((a, b) => Buffer.compare(a.name, b.name))) sorted.add(node);
  t.deepEqual(encodeTree(sorted), byObjects(names));
  t.is(sorted.count, names.length);
  t.deepEqual(encodeTree(new TreeNodes()), Buffer.from('{"nodes":[]}\n'));
});

test('nodes borrowed from a parent tree where they lie, among copied ones and after ordered ones, give the same blob', (t) => {
  const parentNodes = Array.from({ length: 3_000 }, (_, i) => file(`p${i}`, { size: i }));
  const parent = new NodesByName(encodeTree(parentNodes));
  const tree = new TreeNodes();
  const placed: Node[] = [];
  // In order first (the arena packs full blocks), then borrowed and copied in turns.
  for (let i = 0; i < 5_000; i++) placed.push(file(`a${String(i).padStart(5, '0')}`));
  for (const node of placed) tree.add(node);
  for (const [i, node] of parentNodes.entries()) {
    if (i % 3 === 0) tree.add(node);
    else tree.addBorrowed(node.name, parent.json(node.name)!);
    placed.push(node);
  }
  t.deepEqual(encodeTree(tree), byObjects(placed));
  t.is(tree.count, placed.length);
  // Taken back out by name, decoded as it was.
  t.deepEqual(tree.take(Buffer.from('p7')), parentNodes[7]);
  t.deepEqual(encodeTree(tree), byObjects(placed.filter((node) => node.name.toString() !== 'p7')));
});

test('two nodes of one name are an error, placed apart or together', (t) => {
  t.throws(() => encodeTree([file('x'), file('y'), file('x')]), { message: /two entries named "x"/ });
  t.throws(() => encodeTree([file('x'), file('x')]), { message: /two entries named "x"/ });
});

test('a node larger than a block (a file of 20,000 chunks) and many nodes across blocks', (t) => {
  const big = file('big', { content: Array.from({ length: 20_000 }, (_, i) => i.toString(16).padStart(64, '0')) });
  const many = Array.from({ length: 5_000 }, (_, i) => file(`f${i}`));
  const nodes = [...many.slice(0, 2_500), big, ...many.slice(2_500)];
  t.deepEqual(encodeTree(nodes), byObjects(nodes));
  // Placed in order, the blocks are the tree as they lie, a block's unused end left out.
  const inOrder = [...nodes].sort((a, b) => Buffer.compare(a.name, b.name));
  t.deepEqual(encodeTree(inOrder), byObjects(nodes));
  t.deepEqual(encodeTree([big]), byObjects([big]));
  // In order through several (compressed) blocks, then one out of order: the blocks are read back for the sort.
  const late = [...inOrder, file('0-first')];
  t.deepEqual(encodeTree(late), byObjects(late));
});

test('a parent tree by name: each node as decodeTree gives it, for names escaped, not UTF-8, or not first in their node', (t) => {
  const nodes = [
    file('plain'),
    file('quo"te\\back'),
    file(Buffer.from([0x61, 0xff, 0x0a])),
    file('\u2028'),
    file('x', { extra: { extended_attributes: [{ name: 'user.a', value: 'e30=' }], generic_attributes: { braces: '{[' } } }),
    { ...file('d'), type: 'dir', content: undefined, subtree: 'cd'.repeat(32) } as Node,
  ];
  const blob = encodeTree(nodes);
  const byName = new NodesByName(blob);
  for (const node of decodeTree(blob)) t.deepEqual(byName.get(node.name), node);
  t.is(byName.get(Buffer.from('missing')), undefined);
  // Another writer's field order: the name is not the node's first field.
  const other = new NodesByName(Buffer.from('{"nodes":[{"type":"file","name":"late","content":[]},{"name":"n\\u00e9","type":"dir","subtree":"00"}]}\n'));
  t.is(other.get(Buffer.from('late'))?.type, 'file');
  t.is(other.get(Buffer.from('né'))?.subtree, '00');
});

test('a parent tree by name: 20,000 names found by their bytes, others not; a name twice makes the count -1 and the later node is found', (t) => {
  const names = Array.from({ length: 20_000 }, (_, i) => `f${i}`);
  const byName = new NodesByName(encodeTree(names.map((name) => file(name))));
  t.is(byName.count, 20_000);
  for (const name of names) t.deepEqual(byName.get(Buffer.from(name))?.name, Buffer.from(name));
  for (const name of ['f20000', 'f', 'f1 ', 'F1', '']) t.is(byName.json(Buffer.from(name)), undefined, name);
  const twice = new NodesByName(Buffer.from('{"nodes":[{"name":"a","type":"file","size":1},{"name":"a","type":"file","size":2},{"name":"b","type":"file","size":3}]}\n'));
  t.is(twice.count, -1);
  t.is(twice.get(Buffer.from('a'))?.size, 2);
  t.is(twice.get(Buffer.from('b'))?.size, 3);
});

test('a large directory tree read back in order holds a few of its blocks at a time, not the whole tree', (t) => {
  // 1,600 files of 300 chunks each: 32 MB of JSON in ~32 blocks, kept compressed (random IDs halve).
  const ids = randomBytes(32 * 300 * 1_600).toString('hex');
  const tree = new TreeNodes();
  for (let i = 0; i < 1_600; i++) {
    const content = Array.from({ length: 300 }, (_, c) => ids.slice((i * 300 + c) * 64, (i * 300 + c + 1) * 64));
    tree.add(file(`f${String(i).padStart(5, '0')}`, { content }));
  }
  const before = process.memoryUsage().arrayBuffers;
  let grown = 0;
  let bytes = 0;
  // Read twice, as a blob is hashed and then compressed.
  for (let pass = 0; pass < 2; pass++) {
    for (const piece of tree.pieces()) {
      bytes += piece.length;
      grown = Math.max(grown, process.memoryUsage().arrayBuffers - before);
    }
  }
  t.is(bytes, 2 * tree.length);
  t.true(tree.length > 30 * 1024 * 1024);
  t.true(grown < 16 * 1024 * 1024, `buffers grew by ${(grown / 1048576).toFixed(1)} MiB while the tree was read`);
});

test('a large directory placed out of order stays compressed and is written in sorted windows: the same blob, whatever the window', (t) => {
  // 8,000 files of 20 chunks (some 12 MB of JSON in 12 blocks), placed in shuffled order among nodes
  // borrowed from a parent tree; one taken back out of a packed block.
  const id = (n: number) => createHash('sha256').update(String(n % 500)).digest('hex');
  const nodes = Array.from({ length: 8_000 }, (_, i) => file(`f${i}`, { content: Array.from({ length: 20 }, (_, c) => id(i * 20 + c)) }));
  const shuffled = [...nodes].sort(() => Math.random() - 0.5);
  const parentNodes = Array.from({ length: 500 }, (_, i) => file(`p${i}`, { size: i }));
  const parent = new NodesByName(encodeTree(parentNodes));
  const taken = shuffled[10]!;
  const expected = byObjects([...nodes.filter((node) => node !== taken), ...parentNodes]);
  for (const sortWindowBytes of [256 * 1024, 3 * 1024 * 1024, 64 * 1024 * 1024]) {
    const tree = new TreeNodes({ sortWindowBytes });
    for (const [i, node] of shuffled.entries()) {
      tree.add(node);
      if (i < parentNodes.length) tree.addBorrowed(parentNodes[i]!.name, parent.json(parentNodes[i]!.name)!);
    }
    t.deepEqual(tree.take(taken.name), taken, 'a node taken back from a packed block, decoded as it was');
    t.true(tree.heldJsonBytes < tree.length / 2, `the tree's ${(tree.length / 1048576).toFixed(1)} MB of JSON held in ${(tree.heldJsonBytes / 1048576).toFixed(1)} MiB`);
    t.deepEqual(encodeTree(tree), expected, `windows of ${sortWindowBytes} bytes`);
  }
  // Windows smaller than a node: one node each.
  const few = shuffled.slice(0, 50);
  const small = new TreeNodes({ sortWindowBytes: 1 });
  for (const node of few) small.add(node);
  t.deepEqual(encodeTree(small), byObjects(few));
});

test('names sort by their bytes as Buffer.compare orders them, a prefix first; a name twice is found', (t) => {
  // Many names sharing prefixes (radix ranges at several depths), bytes 0x00 and 0xff, prefixes of others.
  const alphabet = [0x00, 0x2e, 0x2f, 0x41, 0x61, 0x62, 0xc3, 0xff];
  const seen = new Set<string>();
  const names: Buffer[] = [];
  let state = 12345;
  const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) >>> 16;
  while (names.length < 20_000) {
    const length = 1 + (next() % 7);
    const name = Buffer.from(Array.from({ length }, () => alphabet[next() % alphabet.length]!));
    if (seen.has(name.toString('hex'))) continue;
    seen.add(name.toString('hex'));
    names.push(name);
  }
  names.push(Buffer.from('f'), Buffer.from('f1'), Buffer.from('f10'), Buffer.from('f2'));
  const starts = new Uint32Array(names.length + 1);
  names.forEach((name, k) => (starts[k + 1] = starts[k]! + name.length));
  const bytes = Buffer.concat(names);
  const { sorted, duplicate } = sortByBytes(bytes, starts);
  t.is(duplicate, undefined);
  t.deepEqual([...sorted].map((k) => names[k]!.toString('hex')), [...names].sort(Buffer.compare).map((name) => name.toString('hex')));
  // The same name twice, among many or among few.
  for (const count of [5, 5_000]) {
    const twice = [...names.slice(0, count), names[3]!];
    const twiceStarts = new Uint32Array(twice.length + 1);
    twice.forEach((name, k) => (twiceStarts[k + 1] = twiceStarts[k]! + name.length));
    const found = sortByBytes(Buffer.concat(twice), twiceStarts).duplicate;
    t.not(found, undefined);
    t.deepEqual(twice[found!], names[3]);
  }
});
