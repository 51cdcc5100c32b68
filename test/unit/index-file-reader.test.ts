/**
 * Index files read from their bytes: the same blobs as JSON.parse finds in them, whatever the key
 * order, whitespace, unknown keys and null lists; files the reader leaves (escapes, a pack's blobs
 * before its ID, fractions) still load, through JSON.parse; bad IDs and types are refused as before.
 */
import test from 'ava';
import { sha256 } from '../../src/repository/crypto.ts';
import { encodeIndexFiles, Index } from '../../src/repository/index.ts';
import { readIndexFile, UnusualIndexFile } from '../../src/repository/index-file-reader.ts';
import type { BlobType } from '../../src/repository/pack.ts';

const id = (n: number) => sha256(Buffer.from(`blob ${n}`)).toString('hex');

/** What JSON.parse finds in a file, blob by blob: the reader's oracle. */
function parsed(file: string): string[] {
  const json = JSON.parse(file) as { packs?: { id: string; blobs: { id: string; type: string; offset: number; length: number; uncompressed_length?: number }[] | null }[] | null };
  return (json.packs ?? []).flatMap((pack) => (pack.blobs ?? []).map((b) => `${pack.id} ${b.type} ${b.id} ${b.offset} ${b.length} ${b.uncompressed_length ?? 0}`));
}

function read(file: string): string[] {
  const bytes = Buffer.from(file);
  const packs: string[] = [];
  const blobs: string[] = [];
  readIndexFile(bytes, (packId) => packs.push(packId) - 1, (type: BlobType, idAt, pack, offset, length, uncompressedLength) => {
    blobs.push(`${packs[pack]} ${type} ${bytes.toString('latin1', idAt, idAt + 64)} ${offset} ${length} ${uncompressedLength}`);
  });
  return blobs;
}

test('a file our encoder wrote reads as JSON.parse reads it', (t) => {
  const packs = Array.from({ length: 30 }, (_, p) => ({
    id: id(10_000 + p),
    blobs: Array.from({ length: 100 }, (_, b) => ({ type: (b % 7 ? 'data' : 'tree') as BlobType, id: id(p * 100 + b), offset: b * 1000, length: 1000, ...(b % 2 ? { uncompressedLength: 3000 + b } : {}) })),
  }));
  for (const file of encodeIndexFiles(packs)) t.deepEqual(read(file.toString()), parsed(file.toString()));
});

test('any key order, whitespace, unknown keys, null lists and supersedes: as JSON.parse reads them', (t) => {
  const file = `{
    "supersedes": ["${id(1)}", "${id(2)}"],
    "extra": {"nested": [1, 2.5, "x\\"y", null, true, false, {"a": []}]},
    "packs": [
      {"blobs": null, "id": "${id(3)}"},
      {"id": "${id(4)}", "note": "a \\\\ backslash", "blobs": [
        {"length": 38, "uncompressed_length": 64, "offset": 0, "type": "tree", "id": "${id(5)}"},
        { "id" : "${id(6)}" , "type" : "data" , "offset" : 38 , "length" : 1234567890123 }
      ]},
      {"id": "${id(7)}", "blobs": []}
    ]
  }
  `;
  t.deepEqual(read(file), parsed(file));
  t.is(read(file).length, 2);
  t.deepEqual(read('{"packs":null}'), []);
  t.deepEqual(read('{}'), []);
});

test('what the reader leaves is left to JSON.parse: escapes in a string it reads, blobs before their pack\'s ID, fractions, bad JSON', (t) => {
  const blob = `{"id":"${id(5)}","type":"data","offset":0,"length":38}`;
  for (const file of [
    `{"packs":[{"id":"\\u0030${id(4).slice(1)}","blobs":[${blob}]}]}`,
    `{"packs":[{"blobs":[${blob}],"id":"${id(4)}"}]}`,
    `{"packs":[{"id":"${id(4)}","blobs":[{"id":"${id(5)}","type":"data","offset":0.5,"length":38}]}]}`,
    `{"packs":[{"id":"${id(4)}","blobs":[${blob}]}]`,
    `{"packs":[{"id":"${id(4)}","blobs":[${blob},]}]}`,
  ]) {
    t.throws(() => read(file), { instanceOf: UnusualIndexFile }, file);
  }
  // Through the index: the same blobs as JSON.parse gives, nothing of the half-read attempt left.
  const index = new Index();
  index.addFile(Buffer.from(`{"packs":[{"blobs":[${blob}],"id":"${id(4)}"}]}`));
  index.addFile(Buffer.from(`{"packs":[{"id":"\\u0030${id(4).slice(1)}","blobs":[{"id":"${id(6)}","type":"tree","offset":1,"length":2}]}]}`));
  t.deepEqual(index.get('data', id(5)), { type: 'data', pack: id(4), offset: 0, length: 38 });
  t.deepEqual(index.get('tree', id(6)), { type: 'tree', pack: `0${id(4).slice(1)}`, offset: 1, length: 2 });
  t.is(index.size, 2);
  t.throws(() => index.addFile(Buffer.from('{"packs":[')), { instanceOf: SyntaxError });
});

test('a blob ID that is not 64 lowercase hex digits, or a type that is neither data nor tree, is refused naming the pack', (t) => {
  const index = new Index();
  const file = (blob: string) => Buffer.from(`{"packs":[{"id":"${id(4)}","blobs":[${blob}]}]}`);
  t.throws(() => index.addFile(file(`{"id":"${id(5).toUpperCase()}","type":"data","offset":0,"length":1}`)), { message: new RegExp(`^index: invalid blob ID "${id(5).toUpperCase()}" in pack ${id(4)}$`) });
  t.throws(() => index.addFile(file(`{"id":"${id(5).slice(2)}","type":"data","offset":0,"length":1}`)), { message: /^index: invalid blob ID ".*" in pack / });
  t.throws(() => index.addFile(file(`{"type":"data","offset":0,"length":1}`)), { message: `index: invalid blob ID undefined in pack ${id(4)}` });
  t.throws(() => index.addFile(file(`{"id":"${id(5)}","type":"blob","offset":0,"length":1}`)), { message: `index: invalid blob type "blob" in pack ${id(4)}` });
});
