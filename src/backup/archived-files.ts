/**
 * The regular files a tar stream archived, with the size and mtime each header gave, held compactly
 * enough for a million files: two 32-bit fingerprints per file (FNV-1a of its path; of its size and
 * mtime) in an open-addressing table, 16 bytes a file at most. The copy looks up the files the helper
 * saw modified since tar began: one archived with another size or mtime changed after tar read its
 * header. A fingerprint collision (about one in four billion per lookup) can only hide such a change
 * or report one that was not.
 */
const EMPTY = 0;
const INITIAL_SLOTS = 1024;

function fnv1a(bytes: Uint8Array, seed = 0x811c9dc5): number {
  let hash = seed;
  for (const byte of bytes) hash = Math.imul(hash ^ byte, 0x01000193);
  return hash >>> 0;
}

function nonEmpty(hash: number): number {
  return hash === EMPTY ? 1 : hash;
}

function stateHash(size: number, mtime: number): number {
  return nonEmpty(fnv1a(Buffer.from(`${size} ${mtime}`)));
}

export type ArchivedState = 'absent' | 'same' | 'changed';

export class ArchivedFiles {
  private names = new Uint32Array(INITIAL_SLOTS);
  private states = new Uint32Array(INITIAL_SLOTS);
  private used = 0;

  get size(): number {
    return this.used;
  }

  add(name: Uint8Array, size: number, mtime: number): void {
    if (2 * (this.used + 1) > this.names.length) this.grow();
    const key = nonEmpty(fnv1a(name));
    const slot = this.slotOf(key, this.names);
    if (this.names[slot] === EMPTY) this.used += 1;
    this.names[slot] = key;
    this.states[slot] = stateHash(size, mtime);
  }

  /** How the file `name`, now of `size` and `mtime`, compares with what was archived under that name. */
  compare(name: Uint8Array, size: number, mtime: number): ArchivedState {
    const slot = this.slotOf(nonEmpty(fnv1a(name)), this.names);
    if (this.names[slot] === EMPTY) return 'absent';
    return this.states[slot] === stateHash(size, mtime) ? 'same' : 'changed';
  }

  /** The slot holding `key`, or the empty slot where it would go (linear probing). */
  private slotOf(key: number, names: Uint32Array): number {
    const mask = names.length - 1;
    let slot = key & mask;
    while (names[slot] !== EMPTY && names[slot] !== key) slot = (slot + 1) & mask;
    return slot;
  }

  private grow(): void {
    const names = new Uint32Array(this.names.length * 2);
    const states = new Uint32Array(this.states.length * 2);
    for (let i = 0; i < this.names.length; i++) {
      if (this.names[i] === EMPTY) continue;
      const slot = this.slotOf(this.names[i]!, names);
      names[slot] = this.names[i]!;
      states[slot] = this.states[i]!;
    }
    this.names = names;
    this.states = states;
  }
}
