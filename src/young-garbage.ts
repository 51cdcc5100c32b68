/**
 * A bound on the garbage a data path leaves between collections. Every buffer a stream hands over
 * (1 MiB from a file, blocks from an exec) and every ciphertext is garbage a moment later. V8 starts
 * a collection only once about 64 MB more is held outside its heap than after the last one, so the
 * process carried 60 to 100 MiB of dead buffers on top of what it uses, more or less as the GC's
 * timing fell. The buffers die young: a young-generation collection (a scavenge, about 0.5 ms here
 * with a small live set) frees them. Running one every YOUNG_GARBAGE_BOUND bytes bounds the garbage by that.
 *
 * The collector is reached by turning on --expose-gc at run time and taking `gc` from a new context,
 * so neither the bundle nor the single executable needs a command-line flag. Where that fails, the
 * bound is only V8's own.
 *
 * Garbage that outlives a scavenge lands in the old generation, which V8 lets grow to a multiple of
 * what it last found alive; here a full collection comes once what is held grows by a fixed slack.
 * That multiple is set too (HEAP_GROWING).
 */
import { Transform } from 'node:stream';
import v8 from 'node:v8';
import vm from 'node:vm';

type Collect = (options: { type: 'minor' | 'major'; execution: 'sync' | 'async' }) => void;

let collect: Collect | null | undefined;

/**
 * V8 starts marking the old generation once the room left under its limit is less than what the
 * young generation could promote at once (16 MiB with 8 MiB semi-spaces). A copy holds 14-18 MB of
 * live objects there, and V8 set its limit only some 16 MB above them, so marking began again as
 * soon as a full collection ended: 70-95 full collections per GiB copied, a second of the main
 * thread. A limit three times what is live leaves that room (the full collections above still bound
 * the garbage): a 1 GiB backup with zstd, two runs each, took 4.1-4.3 s of CPU and 8.4 s instead of
 * 5.8 s and 9.3 s, at the same peak RSS, with 2 full collections of V8's own. It is set when a data
 * path first collects, after the command's code has loaded: given to the executable on its command
 * line instead (--initial-old-space-size=48 did as well), it made every start 3-10 ms slower.
 */
const HEAP_GROWING = '--heap-growing-percent=200';

function collector(): Collect | null {
  if (collect !== undefined) return collect;
  collect = null;
  try {
    v8.setFlagsFromString(HEAP_GROWING);
    const exposed = (globalThis as { gc?: Collect }).gc;
    if (typeof exposed === 'function') return (collect = exposed);
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as unknown;
    if (typeof gc === 'function') collect = gc as Collect;
  } catch {
    // No collector: V8's own schedule.
  }
  return collect;
}

/**
 * restic's average chunk is 1 MiB: a scavenge every 4 chunks costs well under 1% of a backup's time.
 * A backup of 1 GiB into a repository through the API server, three runs each in turns: a scavenge
 * every 8 MiB and a slack of 32 MiB peaked at 224/228/224 MiB, 4 and 16 at 208/231/212, in the same
 * time (10.3-11.2 s). Most full collections there are V8's own, started by the buffers the stream
 * allocates outside the heap (about 100 a GiB, some 0.8 s of the main thread, either way).
 */
const YOUNG_GARBAGE_BOUND = 4 * 1024 * 1024;

/** Garbage allowed in the old generation above what the last full collection left. */
const OLD_GARBAGE_SLACK = 16 * 1024 * 1024;

/**
 * One count for the thread: copies that run at once (--parallel) share its heap. With a count of
 * their own each, each copy compared the whole heap with a limit it had set alone, and collected it
 * whenever the others' buffers passed that: `backup --parallel 4` over 8 claims of 64 MiB ran 48-63
 * full collections (1.3-1.6 s of the main thread); with one count, 28-38.
 */
let since = 0;
let limit = 0;

/**
 * Counts bytes handed over (and so soon garbage); every YOUNG_GARBAGE_BOUND bytes, collects the
 * young generation, and the whole heap too when what is held grew by OLD_GARBAGE_SLACK since the
 * last full collection (what outlived a scavenge: buffers and objects of a large directory, say).
 */
export function addGarbage(bytes: number): void {
  since += bytes;
  if (since < YOUNG_GARBAGE_BOUND) return;
  since = 0;
  const gc = collector();
  if (!gc) return;
  gc({ type: 'minor', execution: 'sync' });
  const held = heldBytes();
  if (limit === 0) limit = held + OLD_GARBAGE_SLACK;
  if (held <= limit) return;
  gc({ type: 'major', execution: 'sync' });
  limit = heldBytes() + OLD_GARBAGE_SLACK;
}

/** A pass-through that counts what goes by as garbage soon (addGarbage): for a stream a data path hands on. */
export function countingGarbage(): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      addGarbage(chunk.length);
      callback(null, chunk);
    },
  });
}

/** The JS heap in use and the buffers outside it. */
function heldBytes(): number {
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}
